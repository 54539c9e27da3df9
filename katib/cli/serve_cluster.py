"""`katib.py serve` without `--fake`: the controllers against a Kubernetes cluster.

Not built yet; `serve.py` dispatches here so that the cluster mode can grow in its own module."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    """Flags of the cluster mode only (none yet)."""


def run(args) -> int:
    from katib.cli.run import EXIT_ERROR

    print("error: only the fake backend exists so far: use `katib.py --fake serve`", file=sys.stderr)
    return EXIT_ERROR
