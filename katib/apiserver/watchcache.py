"""The watch cache: a bounded history of the backend's changes, keyed by resourceVersion.

Fed from `Backend.subscribe` (on the writing thread, so it must stay quick), read by the
watch handlers on the server's event loop. Each entry keeps the object before the change too,
so a watch with a selector can turn "no longer matches" into DELETED and "now matches" into
ADDED, as kube-apiserver's cacher does. `floor` is the newest resourceVersion whose successors
are all still held: a watch from before it is told 410 Gone and relists."""
from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from katib.backends.base import DELETED, object_key

DEFAULT_CAPACITY = 20_000


@dataclass(frozen=True)
class Entry:
    rv: int
    type: str
    object: dict
    previous: dict | None


class Expired(Exception):
    """The history no longer reaches back to the requested resourceVersion."""

    def __init__(self, requested: int, floor: int):
        super().__init__(f"too old resource version: {requested} ({floor})")
        self.requested = requested
        self.floor = floor


def backend_resource_version(backend) -> int:
    """The backend's newest resourceVersion (every later change is delivered to subscribers)."""
    return int(backend.resource_version())


class WatchCache:
    def __init__(self, backend, *, capacity: int = DEFAULT_CAPACITY):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque()
        self._capacity = capacity
        self._latest: dict[tuple, dict] = {}
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._unsubscribe = backend.subscribe(self._on_event, readonly=True)
        self.floor = backend_resource_version(backend)
        self.latest_rv = self.floor

    def close(self) -> None:
        self._unsubscribe()
        self.wake_all()

    # ---- the writing thread -----------------------------------------------------------------
    def _on_event(self, event) -> None:
        obj = event.object
        rv = int(obj["metadata"]["resourceVersion"])
        key = object_key(obj)
        with self._lock:
            if rv <= self.latest_rv:   # delivered before our floor was read
                self._latest[key] = obj
                return
            previous = self._latest.get(key)
            if event.type == DELETED:
                self._latest.pop(key, None)
            else:
                self._latest[key] = obj
            self._entries.append(Entry(rv, event.type, obj, previous))
            self.latest_rv = rv
            while len(self._entries) > self._capacity:
                self.floor = self._entries.popleft().rv
            waiters = list(self._waiters)
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:   # that loop is closed: its watch is gone
                pass

    # ---- readers ----------------------------------------------------------------------------
    def since(self, rv: int, *, limit: int = 500) -> list[Entry]:
        """Up to `limit` entries newer than `rv`, oldest first; Expired if some were dropped."""
        with self._lock:
            if rv < self.floor:
                raise Expired(rv, self.floor)
            if rv >= self.latest_rv:
                return []
            entries = self._entries
            # entries are in rv order: skip from the left by bisecting on a snapshot
            lo, hi = 0, len(entries)
            while lo < hi:
                mid = (lo + hi) // 2
                if entries[mid].rv <= rv:
                    lo = mid + 1
                else:
                    hi = mid
            return [entries[i] for i in range(lo, min(lo + limit, len(entries)))]

    async def wait(self, rv: int, timeout: float) -> bool:
        """Wait until something newer than `rv` is held (True) or `timeout` passes (False)."""
        if self.latest_rv > rv:
            return True
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        waiter = (loop, flag)
        with self._lock:
            self._waiters.add(waiter)
        try:
            if self.latest_rv > rv:
                return True
            try:
                await asyncio.wait_for(flag.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            return self.latest_rv > rv
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    async def wait_until(self, rv: int, timeout: float) -> bool:
        """Wait until the cache holds everything up to `rv` (True), or `timeout` (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.latest_rv < rv:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await self.wait(self.latest_rv, left)
        return True

    def wake_all(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:
                pass
