"""`python -m collector`: the metrics-collector program (the sidecar Katib injects into trial pods).

Flags follow upstream's collectors: `-t` trial name, `-m` metric names and `-f` filters
(`;`-separated), `-path` the metrics file (StdOut/File) or event directory (TensorFlowEvent),
`-kind PrometheusMetric -url URL` to scrape the trainer's endpoint while it runs, `-s` the katib address (`host:port` or a URL). With `-s` it waits for the training process (PID
watching, or `-wait-pid`), parses, and reports to katib's observation API with the trial's
token (`-token-file`, or $KATIB_COLLECTOR_TOKEN), retrying until `-deadline` seconds have passed
and keeping the report spooled on disk meanwhile (`-spool`). Without `-s` it prints the
ReportObservationLog request as JSON instead. Exit status: 0 reported (or printed), 1 training
failed / unreadable input / report not delivered, 2 bad flags or filters."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from collector.parse import FilterError, compile_filter, parse_text, split_list


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="collector", description=__doc__.splitlines()[0])
    p.add_argument("-t", dest="trial_name", default="", help="trial name")
    p.add_argument("-m", dest="metric_names", required=True, help="metric names, ';'-separated")
    p.add_argument("-f", dest="filters", default="", help="filter regexps, ';'-separated")
    p.add_argument("-path", "--path", dest="path", default="-",
                   help="metrics file, or a directory of TensorBoard event files ('-': stdin)")
    p.add_argument("-kind", dest="kind", choices=("auto", "StdOut", "File", "TensorFlowEvent", "PrometheusMetric"),
                   default="auto", help="what to read (auto: a -path directory is TensorFlowEvent, else a text file)")
    p.add_argument("-url", dest="url", default="", help="PrometheusMetric: the endpoint to scrape")
    p.add_argument("-s", dest="server", default="", help="katib address (host:port or URL); none: print")
    p.add_argument("-token-file", dest="token_file", default="",
                   help="file holding this trial's token (default: $KATIB_COLLECTOR_TOKEN)")
    p.add_argument("-ca-file", dest="ca_file", default=os.environ.get("KATIB_CA_FILE", ""),
                   help="CA bundle of katib's certificate (default: $KATIB_CA_FILE; $KATIB_CA_PEM, the PEM "
                        "itself, is trusted too; else the system's)")
    p.add_argument("-spool", dest="spool", default="",
                   help="directory for reports not yet delivered (default: <metrics dir>/.katib-spool)")
    p.add_argument("-deadline", dest="deadline", type=float, default=600.0,
                   help="seconds to keep retrying the report (default 600)")
    p.add_argument("-wait-pid", dest="wait_pid", type=int, default=int(os.environ.get("KATIB_TRAINING_PID") or 0),
                   help="wait for this process instead of the pod's top-level processes (default: "
                        "$KATIB_TRAINING_PID, which katib's local runner gives a sidecar)")
    p.add_argument("-no-wait", dest="no_wait", action="store_true", help="do not wait for the training process")
    p.add_argument("-timeout", dest="timeout", type=float, default=0.0,
                   help="seconds to wait for the training process (0: no limit)")
    p.add_argument("-p", dest="poll", type=float, default=1.0, help="poll interval in seconds (default 1)")
    return p


def fail(message: str, code: int = 1) -> int:
    print(f"collector: {message}", file=sys.stderr)
    return code


def is_events(args) -> bool:
    return args.kind == "TensorFlowEvent" or (args.kind == "auto" and args.path != "-" and Path(args.path).is_dir())


def collect(args, scraper=None) -> list:
    names, filters = split_list(args.metric_names), split_list(args.filters)
    if scraper is not None:
        return scraper.logs
    if is_events(args):
        from collector.tfevent import parse_directory
        return parse_directory(args.path, names)
    if args.path == "-":
        text = sys.stdin.read()
    else:
        with open(args.path, encoding="utf-8", errors="replace", newline="") as fh:
            text = fh.read()
    return parse_text(text, names, filters)


def wait(args, scraper=None) -> None:
    """Wait for the training process; a PrometheusMetric scraper reads the endpoint every poll
    interval meanwhile (and once more at the end, in case the endpoint outlives the process)."""
    import time

    from collector.wait import top_level_pids, wait_for

    if scraper is not None:
        scraper.once(time.time())
    if args.no_wait or (args.path == "-" and scraper is None) or (not args.server and not args.wait_pid):
        return
    marker_dir = None
    if scraper is None:
        marker_dir = args.path if is_events(args) else str(Path(args.path).parent)
    elif args.path != "-":
        marker_dir = str(Path(args.path).parent)

    def pause(seconds: float) -> None:
        time.sleep(seconds)
        if scraper is not None:
            scraper.once(time.time())

    pids = [args.wait_pid] if args.wait_pid else top_level_pids()
    try:
        wait_for(pids, marker_dir=marker_dir, poll=args.poll, timeout=args.timeout or None, sleep=pause)
    finally:
        if scraper is not None:
            scraper.once(time.time())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for fmt in split_list(args.filters):
            compile_filter(fmt)
    except FilterError as err:
        return fail(str(err), 2)
    scraper = None
    if args.kind == "PrometheusMetric":
        if not args.url:
            return fail("-kind PrometheusMetric needs -url (the trainer's metrics endpoint)", 2)
        from collector.prometheus import Scraper
        scraper = Scraper(args.url, split_list(args.metric_names))
    token = ""
    if args.server:
        try:
            token = (Path(args.token_file).read_text().strip() if args.token_file
                     else os.environ.get("KATIB_COLLECTOR_TOKEN", "").strip())
        except OSError as err:
            return fail(f"cannot read the token file: {err}", 2)
        if not token:
            return fail("a trial token is needed to report (-token-file or $KATIB_COLLECTOR_TOKEN)", 2)
        from collector.follow import Follower
        from collector.wait import WaitError
        # StdOut/File: the training output is in the file, not in any container log; echo it.
        echo = Follower(args.path, sys.stderr).start() if scraper is None and args.path != "-" \
            and not is_events(args) else None
        try:
            wait(args, scraper)
        except WaitError as err:
            return fail(str(err))
        finally:
            if echo is not None:
                echo.stop()
    elif scraper is not None:
        wait(args, scraper)
    try:
        logs = collect(args, scraper)
    except OSError as err:
        return fail(f"cannot read metrics: {err}")
    metric_logs = [log.to_api() for log in logs]
    if not args.server:
        json.dump({"trial_name": args.trial_name, "observation_log": {"metric_logs": metric_logs}}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    from collector.report import ReportError, deliver, spool

    base = Path(args.path) if is_events(args) else Path(args.path).parent if args.path != "-" else Path(".")
    directory = Path(args.spool) if args.spool else base / ".katib-spool"
    try:
        spool(directory, args.trial_name, metric_logs)
        delivered = deliver(args.server, directory, token=token, ca_file=args.ca_file or None,
                            ca_pem=os.environ.get("KATIB_CA_PEM") or None,
                            deadline=args.deadline, log=lambda msg: print(f"collector: {msg}", file=sys.stderr))
    except ReportError as err:
        return fail(str(err))
    except OSError as err:
        return fail(f"cannot spool the report in {directory}: {err}")
    print(f"collector: reported {len(metric_logs)} metric log(s) for trial {args.trial_name} "
          f"({delivered} report(s) delivered)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
