"""`python -m collector`: parse a metrics file and print the ReportObservationLog request.

Flags follow the upstream file-metricscollector (`-t`, `-m`, `-f`, `-path`; `-s` is accepted for
the sidecar to come). Output: one JSON object `{trial_name, observation_log: {metric_logs}}`.
Exit status 2 for bad flags or filters, 1 when the file cannot be read."""
from __future__ import annotations

import argparse
import json
import sys

from collector.parse import FilterError, parse_text, split_list


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="collector", description=__doc__.splitlines()[0])
    p.add_argument("-t", dest="trial_name", default="", help="trial name")
    p.add_argument("-m", dest="metric_names", required=True, help="metric names, ';'-separated")
    p.add_argument("-f", dest="filters", default="", help="filter regexps, ';'-separated")
    p.add_argument("-path", "--path", dest="path", default="-", help="metrics file ('-': stdin)")
    p.add_argument("-s", dest="server", default="", help="DB manager address (not used yet)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.path == "-":
            text = sys.stdin.read()
        else:
            with open(args.path, encoding="utf-8", errors="replace", newline="") as fh:
                text = fh.read()
    except OSError as err:
        print(f"collector: cannot read metrics file: {err}", file=sys.stderr)
        return 1
    try:
        logs = parse_text(text, split_list(args.metric_names), split_list(args.filters))
    except FilterError as err:
        print(f"collector: {err}", file=sys.stderr)
        return 2
    request = {"trial_name": args.trial_name,
               "observation_log": {"metric_logs": [log.to_api() for log in logs]}}
    json.dump(request, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
