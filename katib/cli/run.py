"""`katib.py --fake run FILE`: apply experiments to the local control plane, run them to the
end with live progress on stderr, then print the result table (or JSON) on stdout.

Exit codes: 0 every experiment Succeeded, 1 any Failed, 2 invalid input, 130 interrupted."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from katib import report
from katib.errors import AlreadyExists, Invalid, KatibError, NotFound

logger = logging.getLogger(__name__)

DEFAULT_DB = "katib.db"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run experiments to completion on the local fake backend",
        description="Apply the Experiment(s) in FILE to a local control plane (requires --fake), run "
                    "every trial as a local process, show progress on stderr and print the results. "
                    "Running it again with the same --db continues the same experiments.")
    p.add_argument("file", metavar="FILE", help="YAML or JSON file with one or more Experiments")
    p.add_argument("--db", dest="run_db", metavar="PATH",
                   help=f"database file or URL (sqlite:///..., mysql://..., postgresql://...); default {DEFAULT_DB}")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table",
                   help="result format on stdout (default: table)")
    p.add_argument("--namespace", default="default", help="namespace for experiments without one")
    p.add_argument("--work-dir", metavar="DIR",
                   help="where trial processes run and keep their logs (default: next to the database)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")
    p.set_defaults(handler=run)


def db_location(args) -> tuple[str, Path]:
    """The DB URL and the work directory for trial processes."""
    db = getattr(args, "run_db", None) or getattr(args, "db", None) or DEFAULT_DB
    if "://" in db:
        work = Path(args.work_dir or "katib-work")
    else:
        work = Path(args.work_dir) if args.work_dir else Path(db).with_name(Path(db).name + ".d")
    return db, work


def load_experiments(path: str, namespace: str) -> tuple[list[dict], list[str]]:
    """The Experiments of FILE, and one line per problem that makes the input unusable."""
    from katib.cli.inputs import read_inputs

    inputs = read_inputs([path], default_namespace=namespace)
    problems = list(inputs.problems)
    experiments = []
    for doc in inputs.katib:
        if doc.kind != "Experiment":
            problems.append(f"{doc.where}: {doc.kind} {doc.ref()} is not an Experiment: run applies Experiments only")
        else:
            experiments.append(doc.obj)
    return experiments, problems


def apply(backend, exp: dict) -> str:
    """Create the experiment, or continue the stored one of the same name."""
    meta = exp["metadata"]
    try:
        backend.create(exp)
        return "created"
    except AlreadyExists:
        pass
    stored = backend.get("Experiment", meta["namespace"], meta["name"])
    stored["spec"] = exp["spec"]
    try:
        backend.update(stored)   # admission allows only the editable counts to differ
    except Invalid as err:
        raise Invalid(err.errors, kind="Experiment", name=f"{meta['namespace']}/{meta['name']} (already in the database)")
    return "continued"


def open_control_plane(args, paths: list[str]):
    """Read the Experiments of `paths` and open the local control plane: (plane, experiments),
    or (None, []) after printing one line per problem."""
    experiments: list[dict] = []
    for path in paths:
        found, problems = load_experiments(path, args.namespace)
        if problems:
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
            return None, []
        experiments += found
    db, work = db_location(args)
    from katib.runtime import FakeControlPlane
    try:
        return FakeControlPlane(db_url=db, work_dir=work), experiments
    except KatibError as err:
        print(f"error: {err}", file=sys.stderr)
        return None, []


def apply_all(plane, experiments: list[dict], *, source: str, quiet: bool) -> bool:
    """Apply every experiment; False (after printing every field error) if one is invalid."""
    for exp in experiments:
        ref = f"{exp['metadata']['namespace']}/{exp['metadata'].get('name', '')}"
        try:
            how = apply(plane.backend, exp)
        except Invalid as err:
            print(f"{source}: Experiment {ref} is invalid:", file=sys.stderr)
            for fe in err.errors:
                print(f"  {fe}", file=sys.stderr)
            return False
        if not quiet:
            print(f"[{ref}] {how} (db: {plane.db.url})", file=sys.stderr)
    return True


def run(args) -> int:
    if not getattr(args, "fake", False):
        print("error: run needs the local backend: use `katib.py --fake run FILE`", file=sys.stderr)
        return 2
    plane, experiments = open_control_plane(args, [args.file])
    if plane is None:
        return 2
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        if not apply_all(plane, experiments, source=args.file, quiet=args.quiet):
            return 2
        plane.start()
        keys = [(e["metadata"]["namespace"], e["metadata"]["name"]) for e in experiments]
        finished = wait_for(plane, keys, interrupted=interrupted, quiet=args.quiet)
        if not finished:
            print("\ninterrupted: trial processes stopped, state saved; run again to continue",
                  file=sys.stderr)
            return 130
        return print_results(plane, keys, args.output)
    finally:
        plane.stop(kill_jobs=True)
        signal.signal(signal.SIGINT, previous)


def is_done(exp: dict) -> bool:
    status = exp.get("status") or {}
    conds = status.get("conditions") or []
    completed = any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in conds)
    return completed and not status.get("trialsRunning") and not status.get("trialsPending")


def wait_for(plane, keys, *, interrupted: threading.Event, quiet: bool) -> bool:
    start = time.monotonic()
    tty = sys.stderr.isatty()
    last_line = ""
    while not interrupted.is_set():
        exps = []
        for ns, name in keys:
            try:
                exps.append(plane.backend.get("Experiment", ns, name))
            except NotFound:
                print(f"[{ns}/{name}] was deleted", file=sys.stderr)
                return True
        if not quiet:
            for exp in exps:
                line = report.progress_line(exp, elapsed=time.monotonic() - start)
                if tty:
                    sys.stderr.write("\r\033[K" + line)
                    sys.stderr.flush()
                elif line.split("|")[0] != last_line.split("|")[0]:
                    print(line, file=sys.stderr)
                last_line = line
        if all(is_done(e) for e in exps):
            if tty and not quiet:
                sys.stderr.write("\n")
            return True
        interrupted.wait(0.2 if tty else 0.1)
    return False


def print_results(plane, keys, output: str) -> int:
    results, code = [], 0
    for ns, name in keys:
        exp = plane.backend.get("Experiment", ns, name)
        trials = plane.backend.list("Trial", ns, labels={"experiment": name})
        if report.last_condition(exp).get("type") != "Succeeded":
            code = 1
        results.append((exp, trials))
    if output == "json":
        docs = [{"experiment": e, "trials": t} for e, t in results]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, sort_keys=False))
    else:
        tables = []
        for exp, trials in results:
            text = report.final_table(exp, trials)
            best = ((exp.get("status") or {}).get("currentOptimalTrial") or {}).get("bestTrialName")
            if best:
                path = plane.runner.output_path(f"{exp['metadata']['namespace']}/{best}")
                text += f"\n\nOutput of the best trial: {path}"
            tables.append(text)
        print("\n\n".join(tables))
    return code
