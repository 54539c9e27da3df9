"""Time sources: the real one and a fake one that tests move by hand."""
from __future__ import annotations

import datetime as _dt
import time


def rfc3339(ts: float) -> str:
    """Kubernetes' metav1.Time text: second precision, UTC, trailing Z."""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc).timestamp()


class Clock:
    """Wall clock for stamps and a monotonic clock for deadlines."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def stamp(self) -> str:
        return rfc3339(self.now())


class FakeClock(Clock):
    """A clock that only moves when told to: `advance(seconds)` or `set(t)`."""

    def __init__(self, start: float = 1_600_000_000.0):
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def set(self, t: float) -> None:
        self._t = max(self._t, t)
