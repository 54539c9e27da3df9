"""FakeBackend's watch: a bounded history of events per kind, as an API server's watch cache.

Each kind keeps its last `limit` events. `horizon` is the newest resourceVersion that left the
history (or the store's version when the backend started): a watch from any version at or
after it can be served completely, one from before it gets Expired (410 Gone) — so a watcher
that falls behind by more than `limit` changes of its kind must list again, as on a cluster.

Writers append under the store lock (so each history is in commit order); watchers read under
the history's own condition and yield outside it. The store lock is never taken while a
history's is held."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Iterator

from katib.backends.base import WatchEvent
from katib.errors import Expired

WAIT_SLICE = 0.25  # seconds: how often a blocked stream looks at its `stop` event
COALESCE = 0.001   # seconds a woken stream lets further changes gather before it delivers


class History:
    def __init__(self, kind: str, *, limit: int, horizon: int):
        self.kind = kind
        self.limit = limit
        self.horizon = horizon
        self.events: deque[tuple[int, WatchEvent]] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.dropped = 0   # bumped to end every open stream (a dropped connection)
        self.expired = 0   # bumped to end every open stream with Expired (a compaction)
        self.newest = 0    # version of the last event appended (read without the lock)

    def append(self, rv: int, event: WatchEvent) -> None:
        with self.cond:
            self.events.append((rv, event))
            self.newest = rv
            while len(self.events) > self.limit:
                self.horizon = self.events.popleft()[0]
            self.cond.notify_all()

    def drop_streams(self) -> None:
        with self.cond:
            self.dropped += 1
            self.cond.notify_all()

    def compact(self, rv: int) -> None:
        """Forget every event: only versions from `rv` on can be watched; open streams end
        with Expired."""
        with self.cond:
            self.events.clear()
            self.horizon = max(self.horizon, rv)
            self.expired += 1
            self.cond.notify_all()

    def _after(self, rv: int) -> list[tuple[int, WatchEvent]]:
        """Events newer than `rv` (lock held): usually a few at the tail."""
        out = []
        for item in reversed(self.events):
            if item[0] <= rv:
                break
            out.append(item)
        out.reverse()
        return out

    def quiet_since(self, since: int) -> bool:
        """Nothing happened after `since`, and it can still be watched from: a non-blocking
        watch has nothing to say (the informers poll every kind this way several times per
        trial)."""
        return self.newest <= since and since >= self.horizon

    def stream(self, since: int, namespace: str | None, stop: threading.Event | None,
               timeout: float | None) -> Iterator[WatchEvent]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            dropped, expired = self.dropped, self.expired
        last = since
        waited = False
        while True:
            if waited:
                # A writer usually commits several changes in a row (a reconcile's writes):
                # one wake-up for all of them instead of one per change, much less GIL traffic.
                time.sleep(COALESCE)
                waited = False
            with self.cond:
                while True:
                    if self.dropped != dropped:
                        return
                    if self.expired != expired or last < self.horizon:
                        raise Expired(f"too old resource version: {last} ({self.horizon})")
                    batch = self._after(last)
                    if batch or waited:
                        break
                    if stop is not None and stop.is_set():
                        return
                    wait = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
                    if wait <= 0:
                        return
                    waited = self.cond.wait(wait)
            if waited:
                continue  # woken by a change: gather, then deliver
            for rv, event in batch:
                last = rv
                if namespace is None or (event.object["metadata"].get("namespace") or "") == namespace:
                    yield event
            if stop is not None and stop.is_set():
                return
