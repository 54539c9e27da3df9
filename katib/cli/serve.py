"""`katib.py --fake [serve]`: the long-lived control plane on the local fake backend.

It continues every experiment stored in the database (trials that were running are
re-attached or recovered) and keeps reconciling until SIGINT/SIGTERM. `--apply FILE` creates
or updates experiments at start-up. SIGINT/SIGTERM stop it with exit 0 (trial processes keep
running and are re-attached on the next start); a worker thread that cannot go on (full disk...)
stops it with `error: <why>` and exit 2. (An HTTP API that kubectl can talk to comes later.)"""
from __future__ import annotations

import logging
import signal
import sys
import threading


def add_parser(subparsers) -> None:
    from katib.cli.run import add_plane_arguments

    p = subparsers.add_parser(
        "serve", help="run the control plane until stopped (the default with --fake)",
        description="Run the controllers and the local job runner on the fake backend until "
                    "SIGINT or SIGTERM (exit 0), continuing the experiments stored in the database. "
                    "Exit 2 on invalid input, an unusable database or a worker that cannot go on.")
    add_plane_arguments(p)
    p.add_argument("--apply", metavar="FILE", action="append", default=[],
                   help="create or update the Experiments of FILE at start-up (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every reconcile (DEBUG)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from katib.cli.run import EXIT_ERROR, apply_all, open_control_plane, parallel_cap, startup_sigint

    if not getattr(args, "fake", False):
        print("error: only the fake backend exists so far: use `katib.py --fake serve`", file=sys.stderr)
        return EXIT_ERROR
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    plane = None
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, startup_sigint(stop)),
                signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    try:
        # Start-up may block (a database server that does not answer): SIGINT interrupts it.
        plane, experiments = open_control_plane(args, args.apply)
        if plane is None:
            return EXIT_ERROR
        if not apply_all(plane, experiments, source=", ".join(args.apply), quiet=False,
                         parallel=parallel_cap(args)):
            return EXIT_ERROR
        plane.start()
        for sig in previous:   # a start-up Ctrl-C swallowed on the way has set `stop` already
            signal.signal(sig, lambda *_: stop.set())
        logging.getLogger("katib").info("control plane running on the fake backend (db %s); Ctrl-C stops",
                                        plane.db.url)
        while not stop.wait(0.2):
            if plane.failed.is_set():
                print(f"error: {plane.failure}", file=sys.stderr)
                return EXIT_ERROR
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted during start-up", file=sys.stderr)
        return 130
    finally:
        if plane is not None:
            plane.stop(kill_jobs=False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
