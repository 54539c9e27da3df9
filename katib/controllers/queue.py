"""A de-duplicating work queue with delays and per-key exponential back-off.

Like client-go's workqueue: a key waiting in the queue is not added twice; a key that changes
while it is being processed is processed once more afterwards; failures back off per key."""
from __future__ import annotations

import heapq
import threading
from collections import deque

from katib.clock import Clock

Key = tuple  # (controller, namespace, name)


class WorkQueue:
    def __init__(self, clock: Clock, *, base_delay: float = 0.05, max_delay: float = 60.0):
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        self._seq = 0
        self._failures: dict[Key, int] = {}
        self._poked = False
        self._cond = threading.Condition()

    def add(self, key: Key) -> None:
        with self._cond:
            self._enqueue(key)

    def _enqueue(self, key: Key) -> None:
        """Ready `key` (lock held): once, and after the current pass if it is being processed."""
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (self.clock.monotonic() + delay, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: Key) -> float:
        """Requeue after a failure; the delay doubles with each consecutive failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.base_delay * (2 ** n), self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def _promote_due(self) -> None:
        now = self.clock.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            self._enqueue(heapq.heappop(self._delayed)[2])

    def get(self, timeout: float | None = 0.0) -> Key | None:
        """Next ready key, waiting up to `timeout` seconds (None: forever) for one."""
        with self._cond:
            deadline = None if timeout is None else self.clock.monotonic() + timeout
            while True:
                self._promote_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if self._poked:  # someone asked the consumer to look elsewhere first
                    self._poked = False
                    return None
                wait = None if deadline is None else deadline - self.clock.monotonic()
                if self._delayed:
                    due = self._delayed[0][0] - self.clock.monotonic()
                    wait = due if wait is None else min(wait, due)
                if wait is not None and wait <= 0:
                    if deadline is not None and self.clock.monotonic() >= deadline:
                        return None
                    continue
                self._cond.wait(wait)

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._enqueue(key)

    def wake(self) -> None:
        """Make a waiting (or the next) `get` return, with None if no key is ready."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()
