"""Crash points for the crash tests: `KATIB_FAILPOINTS=name[:n],...` kills this process with
SIGKILL the n-th time (default 1st) execution passes `hit(name)`. Unset in normal use: then
`hit` is one dict lookup."""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _armed() -> dict[str, int]:
    spec = os.environ.get("KATIB_FAILPOINTS", "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, n = item.partition(":")
        out[name] = int(n or 1)
    return out


_ARMED = _armed()


def hit(name: str) -> None:
    if not _ARMED or name not in _ARMED:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)
