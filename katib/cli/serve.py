"""`katib.py --fake [serve]`: the long-lived control plane on the local fake backend.

It continues every experiment stored in the database (trials that were running are
re-attached or recovered) and keeps reconciling until SIGINT/SIGTERM. `--apply FILE` creates
or updates experiments at start-up. (An HTTP API that kubectl can talk to comes later.)"""
from __future__ import annotations

import logging
import signal
import sys
import threading



def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="run the control plane until stopped (the default with --fake)",
        description="Run the controllers and the local job runner on the fake backend until "
                    "SIGINT or SIGTERM, continuing the experiments stored in the database.")
    p.add_argument("--db", dest="run_db", metavar="PATH", help="database file or URL (default katib.db)")
    p.add_argument("--apply", metavar="FILE", action="append", default=[],
                   help="create or update the Experiments of FILE at start-up (repeatable)")
    p.add_argument("--work-dir", metavar="DIR", help="where trial processes run (default: next to the database)")
    p.add_argument("--namespace", default="default", help="namespace for experiments without one")
    p.add_argument("-v", "--verbose", action="store_true", help="log every reconcile (DEBUG)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from katib.cli.run import apply_all, open_control_plane

    if not getattr(args, "fake", False):
        print("error: only the fake backend exists so far: use `katib.py --fake serve`", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plane, experiments = open_control_plane(args, args.apply)
    if plane is None:
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if not apply_all(plane, experiments, source=", ".join(args.apply), quiet=False):
            return 2
        plane.start()
        logging.getLogger("katib").info("control plane running on the fake backend (db %s); Ctrl-C stops",
                                        plane.db.url)
        stop.wait()
        return 0
    finally:
        plane.stop(kill_jobs=False)
