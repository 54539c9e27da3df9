"""`katib.py --fake run FILE`: apply experiments to the local control plane, run them to the
end with live progress on stderr, then print the result table (or JSON) on stdout. On a
database that a `katib.py --fake serve` holds, the same through that server's API
(katib.cli.remote): applied there, followed until the end, the same output and exit codes.

Exit codes: 0 every experiment Succeeded with at least one succeeded trial; 1 an experiment
Failed or no trial of one succeeded; 2 invalid input, an unusable database, or a worker that
cannot go on (full disk...: the state is saved, a rerun continues); 130 interrupted (Ctrl-C,
also during start-up)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from katib import report
from katib.errors import AlreadyExists, Invalid, KatibError, NotFound, StorageError

logger = logging.getLogger(__name__)

DEFAULT_DB = "katib.db"
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
HEARTBEAT_SECONDS = 30.0   # without a terminal, a progress line at least this often
INTERRUPTED = "interrupted: trial processes stopped, state saved; run again to continue"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def add_plane_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the local control plane, shared by `run` and `serve`."""
    p.add_argument("--db", dest="run_db", metavar="PATH",
                   help=f"database file or URL (sqlite:///..., mysql://..., postgresql://...); default "
                        f"{DEFAULT_DB}; missing parent directories of a file are created")
    p.add_argument("--work-dir", metavar="DIR",
                   help="where the job directories and trial output logs are kept (default: DB.d next to "
                        "a database file, katib-work for a server URL); trial processes run in the "
                        "current directory")
    p.add_argument("--namespace", default="default", help="namespace for experiments without one")
    p.add_argument("--seed", type=int, metavar="N",
                   help="seed the algorithms and trial names: the same seed on a new database gives "
                        "the same search")
    p.add_argument("--parallel", type=positive_int, metavar="N", default=None,
                   help="at most N trial processes run at once, whatever parallelTrialCount says "
                        f"(default: the CPU count, {os.cpu_count() or 1} here)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run experiments to completion on the local fake backend",
        description="Apply the Experiment(s) in FILE to a local control plane (requires --fake), run "
                    "every trial as a local process, show progress on stderr and print the results. "
                    "Running it again with the same --db continues the same experiments. Exit codes: "
                    "0 succeeded, 1 an experiment failed or no trial succeeded, 2 invalid input or a "
                    "fatal error, 130 interrupted.")
    p.add_argument("file", metavar="FILE", help="YAML or JSON file with one or more Experiments, and the "
                   "ConfigMaps and Secrets they use (stored first, created or replaced)")
    add_plane_arguments(p)
    p.add_argument("-o", "--output", choices=("table", "json"), default="table",
                   help='result format on stdout (default: table); json is always a list of '
                        '{"experiment": ..., "trials": [...]}, one per experiment')
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="when a `katib.py --fake serve` holds the database: the kubeconfig of its API "
                        "(default DB.d/kubeconfig, where serve writes it); run then applies and follows "
                        "the experiments through that API")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also log the controllers' and the local kubelet's messages on stderr (what "
                        "they say about trials is in the result table either way)")
    p.set_defaults(handler=run)


def parallel_cap(args) -> int:
    return getattr(args, "parallel", None) or os.cpu_count() or 1


def db_location(args) -> tuple[str, Path]:
    """The DB URL and the work directory (job directories and output logs)."""
    from katib.db import sqlite_path

    db = getattr(args, "run_db", None) or getattr(args, "db", None) or DEFAULT_DB
    path = sqlite_path(db)
    file = Path(path).expanduser() if path else None
    if args.work_dir:
        work = Path(args.work_dir)
    elif file is None:
        work = Path("katib-work")
    else:
        work = file.with_name(file.name + ".d")
    return db, work


def load_experiments(path: str, namespace: str) -> tuple[list[dict], list[dict], list[str]]:
    """The Experiments of FILE, its ConfigMaps and Secrets (stored first: trial templates and
    what the trials' env refers to), and one line per problem that makes the input unusable."""
    from katib.cli.inputs import read_inputs

    inputs = read_inputs([path], default_namespace=namespace)
    problems = list(inputs.problems)
    experiments = []
    for doc in inputs.katib:
        if doc.kind != "Experiment":
            problems.append(f"{doc.where}: {doc.kind} {doc.ref()} is not an Experiment: run applies Experiments "
                            f"(and the ConfigMaps and Secrets beside them) only")
        else:
            experiments.append(doc.obj)
    return experiments, [*inputs.configmaps, *inputs.secrets], problems


def apply_object(backend, obj: dict) -> str:
    """Create a ConfigMap or Secret of the input, or replace the stored one of that name."""
    try:
        backend.create(obj)
        return "created"
    except AlreadyExists:
        pass
    meta = obj["metadata"]
    stored = backend.get(obj["kind"], meta["namespace"], meta["name"])
    new = {**obj, "metadata": {**meta, "resourceVersion": stored["metadata"]["resourceVersion"]}}
    backend.update(new)
    return "replaced"


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


def open_control_plane(args, paths: list[str], *, read_only_ok: bool = False):
    """Read the Experiments of `paths` and open the local control plane: (plane, experiments,
    the ConfigMaps and Secrets beside them), or (None, [], []) after printing one line per
    problem. `read_only_ok`: on a database another
    process controls, a read-only view (plane.read_only) if these experiments are finished there,
    else the API of the serve holding it (katib.cli.remote.ApiPlane) if it answers."""
    experiments: list[dict] = []
    objects: list[dict] = []
    for path in paths:
        found, more, problems = load_experiments(path, args.namespace)
        if problems:
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
            return None, [], []
        experiments += found
        objects += more
    db, work = db_location(args)
    from katib.db import DatabaseLocked
    from katib.runtime import FakeControlPlane, open_read_only
    try:
        try:
            plane = FakeControlPlane(db_url=db, work_dir=work, seed=getattr(args, "seed", None),
                                     max_parallel=parallel_cap(args), api_only=getattr(args, "api_only", False))
        except DatabaseLocked as locked:
            plane = read_only_ok and open_read_only(db_url=db, work_dir=work, experiments=experiments, locked=locked)
            if not plane and read_only_ok:   # held by a serve: through its API
                from katib.cli.remote import open_api_plane
                plane = open_api_plane(args, db=db, work_dir=work)
            if not plane:
                raise
    except (KatibError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return None, [], []
    return plane, experiments, objects


def shared_metrics_file(exp: dict) -> str | None:
    """The File collector path every local trial of `exp` writes, None when there is none or
    when the trial template names its directory (then each job gets its own, see local_pod)."""
    from katib.backends import local_pod

    trial = {"spec": {"metricsCollector": exp["spec"].get("metricsCollectorSpec") or {}}}
    mount = local_pod.mount_of(trial)
    if mount is None:
        return None
    raw = ((exp["spec"].get("trialTemplate") or {}).get("goTemplate") or {}).get("rawTemplate")
    if isinstance(raw, str) and mount.dir != "/" and local_pod.path_pattern(mount.dir).search(raw):
        return None
    return mount.path


def _applied(apply_fn, backend, obj: dict, *, source: str, what: str) -> str | None:
    """apply_fn's word for what it did, or None after printing why it could not (every field
    error of an invalid object; one line for a full or read-only disk, or a refusing API)."""
    try:
        return apply_fn(backend, obj)
    except Invalid as err:
        print(f"{source}: {what} is invalid:", file=sys.stderr)
        for fe in err.errors:
            print(f"  {fe}", file=sys.stderr)
    except StorageError as err:
        print(f"error: {err}", file=sys.stderr)
    except KatibError as err:
        print(f"error: {source}: {what}: {err}", file=sys.stderr)
    return None


def apply_all(plane, experiments: list[dict], *, source: str, quiet: bool, parallel: int | None = None,
              objects: list[dict] = ()) -> bool:
    """Store the ConfigMaps and Secrets, then apply every experiment; False (after printing
    every field error) if one is invalid. Prints admission warnings, and one line when
    parallelTrialCount exceeds the `parallel` cap."""
    from katib.api.validation import experiment_warnings

    for obj in objects:
        ref = f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata'].get('name', '')}"
        how = _applied(apply_object, plane.backend, obj, source=source, what=ref)
        if how is None:
            return False
        if not quiet:
            print(f"[{ref}] {how}", file=sys.stderr)
    for exp in experiments:
        ref = f"{exp['metadata']['namespace']}/{exp['metadata'].get('name', '')}"
        how = _applied(apply, plane.backend, exp, source=source, what=f"Experiment {ref}")
        if how is None:
            return False
        stored = plane.backend.get("Experiment", *ref.split("/", 1))
        for text in experiment_warnings(stored):
            print(f"warning: {source}: Experiment {ref}: {text}", file=sys.stderr)
        count = stored["spec"].get("parallelTrialCount") or 0
        if parallel is not None and count > parallel:
            print(f"[{ref}] parallelTrialCount {count} > --parallel {parallel}: "
                  f"at most {parallel} trials run at once", file=sys.stderr)
        shared = shared_metrics_file(stored)
        if shared and min(count, parallel or count) > 1:
            print(f"[{ref}] trials run one at a time: they all write the File collector's "
                  f"{shared} (a pod would have its own; here it is one file unless the trial's "
                  f"command, args or env name its directory)", file=sys.stderr)
        if not quiet:
            print(f"[{ref}] {how} (db: {plane.db.url})", file=sys.stderr)
    return True


def run(args) -> int:
    if not getattr(args, "fake", False):
        print("error: run needs the local backend: use `katib.py --fake run FILE`", file=sys.stderr)
        return EXIT_ERROR
    plane = None
    interrupted = threading.Event()
    restore_logs = route_logs(verbose=getattr(args, "verbose", False))
    previous = signal.signal(signal.SIGINT, startup_sigint(interrupted))
    try:
        # Start-up (opening the DB, applying, recovering) may block, e.g. on a database server
        # that does not answer: Ctrl-C interrupts it at once and is caught here.
        plane, experiments, objects = open_control_plane(args, [args.file], read_only_ok=True)
        if plane is None:
            return EXIT_ERROR
        if plane.read_only:  # another process controls the DB; these experiments are finished
            return print_results(plane, [(e["metadata"]["namespace"], e["metadata"]["name"]) for e in experiments],
                                 args.output)
        remote = getattr(plane, "remote", False)
        if remote and (args.seed is not None or args.parallel is not None):
            print("warning: --seed and --parallel are the serve's to set: ignored when running through its API",
                  file=sys.stderr)
        if not apply_all(plane, experiments, source=args.file, quiet=args.quiet,
                         parallel=None if remote else parallel_cap(args), objects=objects):
            return EXIT_ERROR
        plane.start()
        # From here Ctrl-C only sets the flag: the wait loop stops the plane in order (and
        # stops at once if a start-up Ctrl-C was swallowed on the way).
        signal.signal(signal.SIGINT, lambda *_: interrupted.set())
        keys = [(e["metadata"]["namespace"], e["metadata"]["name"]) for e in experiments]
        code = wait_for(plane, keys, interrupted=interrupted, quiet=args.quiet, said=interrupted_text(plane))
        if code is not None:
            return code
        return print_results(plane, keys, args.output)
    except KeyboardInterrupt:
        return stop_interrupted(interrupted_text(plane))
    except KatibError as err:   # through a serve's API: the server went away or refused
        if not getattr(plane, "remote", False):
            raise
        print(f"error: the API at {plane.url}: {err}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if plane is not None:
            plane.stop(kill_jobs=True)
        signal.signal(signal.SIGINT, previous)
        restore_logs()


def route_logs(*, verbose: bool):
    """`run` speaks through its progress line, its table and one `error:` line; the log lines
    of the threads behind it (Python prints warnings on stderr when nothing is configured)
    would repeat those, so they are shown only with --verbose. Returns the undo."""
    katib_logger = logging.getLogger("katib")
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return lambda: None
    handler, propagate = logging.NullHandler(), katib_logger.propagate
    katib_logger.addHandler(handler)
    katib_logger.propagate = False

    def undo() -> None:
        katib_logger.removeHandler(handler)
        katib_logger.propagate = propagate
    return undo


def startup_sigint(interrupted: threading.Event):
    """SIGINT during start-up: interrupt whatever blocks (as Python's default handler does)
    and remember it, so that one swallowed on the way (a KeyboardInterrupt raised inside a
    finalizer is only printed) still stops the run once start-up is over."""
    def handler(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt
    return handler


def interrupted_text(plane) -> str:
    """What Ctrl-C did: stopped the trials (ours), or only the following (a serve's)."""
    if getattr(plane, "remote", False):
        from katib.cli.remote import FOLLOW_STOPPED
        return FOLLOW_STOPPED.format(db=plane.db_arg)
    return INTERRUPTED


def stop_interrupted(said: str = INTERRUPTED) -> int:
    print(f"\n{said}", file=sys.stderr)
    return EXIT_INTERRUPTED


def is_done(exp: dict) -> bool:
    status = exp.get("status") or {}
    conds = status.get("conditions") or []
    completed = any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in conds)
    return completed and not status.get("trialsRunning") and not status.get("trialsPending")


def running_ages(plane, exp: dict) -> list[float]:
    """Seconds since each running trial process of `exp` started."""
    started = plane.runner.running()
    now = plane.clock.now()
    ns = exp["metadata"]["namespace"]
    return [now - started[key] for key in (f"{ns}/{t}" for t in (exp.get("status") or {}).get("runningTrialList") or ())
            if key in started]


def wait_for(plane, keys, *, interrupted: threading.Event, quiet: bool, stream=None,
             heartbeat: float = HEARTBEAT_SECONDS, poll: float = 0.2, said: str = INTERRUPTED) -> int | None:
    """Show progress until every experiment is done (None), Ctrl-C (130) or a worker thread of
    the plane failed (2, after `error: <why>`). On a terminal the line is rewritten in place;
    otherwise a line is printed when something changes, and at least every `heartbeat` s."""
    stream = stream or sys.stderr
    start = time.monotonic()
    tty = stream.isatty()
    printed: dict[tuple[str, str], tuple[str, float]] = {}   # key → (state shown, when)
    while not interrupted.is_set():
        if plane.failed.is_set():
            print(f"{chr(10) if tty else ''}error: {plane.failure}", file=stream)
            return EXIT_ERROR
        exps = []
        for ns, name in keys:
            try:
                exps.append(plane.backend.get("Experiment", ns, name))
            except NotFound:
                print(f"[{ns}/{name}] was deleted", file=stream)
                return None
        if not quiet:
            show_progress(plane, exps, stream=stream, tty=tty, printed=printed,
                          elapsed=time.monotonic() - start, heartbeat=heartbeat)
        if all(is_done(e) for e in exps):
            if tty and not quiet:
                stream.write("\n")
            return None
        interrupted.wait(poll)
    print(f"\n{said}", file=stream)
    return EXIT_INTERRUPTED


def show_progress(plane, exps: list[dict], *, stream, tty: bool, printed: dict, elapsed: float,
                  heartbeat: float) -> None:
    now = time.monotonic()
    lines = []
    for exp in exps:
        key = (exp["metadata"]["namespace"], exp["metadata"]["name"])
        progress = report.progress(exp, elapsed=elapsed, running_ages=running_ages(plane, exp))
        if tty:
            lines.append(progress.line())
            continue
        shown, when = printed.get(key, ("", -heartbeat))
        if progress.state != shown or now - when >= heartbeat:
            print(progress.line(), file=stream)
            printed[key] = (progress.state, now)
    if tty:   # one line, rewritten in place: the first experiment still going, else the last
        line = next((l for l, e in zip(lines, exps) if not is_done(e)), lines[-1] if lines else "")
        stream.write("\r\033[K" + line)
        stream.flush()


def print_results(plane, keys, output: str) -> int:
    results, code = [], EXIT_OK
    for ns, name in keys:
        exp = plane.backend.get("Experiment", ns, name)
        trials = plane.backend.list("Trial", ns, labels={"experiment": name})
        if report.last_condition(exp).get("type") != "Succeeded" or not any(
                report.trial_state(t) == "Succeeded" for t in trials):
            code = EXIT_FAILED
        results.append((exp, trials))
    if output == "json":  # one shape whatever the count: a list
        print(json.dumps([{"experiment": e, "trials": t} for e, t in results], indent=2))
        return code
    print("\n\n".join(result_text(plane, exp, trials) for exp, trials in results))
    return code


def result_text(plane, exp: dict, trials: list[dict]) -> str:
    ns = exp["metadata"]["namespace"]

    def log_path(trial: str) -> str | None:
        path = plane.runner.output_path(f"{ns}/{trial}")
        return str(path) if path.exists() else None

    try:
        suggestion = plane.backend.get("Suggestion", ns, exp["metadata"]["name"])
    except NotFound:
        suggestion = None
    text = report.final_table(exp, trials, suggestion=suggestion, log_path=log_path)
    best = ((exp.get("status") or {}).get("currentOptimalTrial") or {}).get("bestTrialName")
    if best:
        text += f"\n\nOutput of the best trial: {plane.runner.output_path(f'{ns}/{best}')}"
    return text
