"""A Backend whose watches behave like a cluster's network: late, cut, and expired.

`FlakyWatches(backend)` passes every call through, except that each watch stream
  * delivers each event after a random delay of up to `delay` seconds (on the consumer's
    thread: the controllers see every change late, and kinds in a different order than they
    were written);
  * ends by itself after a random number of events, up to `drop_after` (a dropped connection:
    the consumer must watch again from the last version it saw);
  * or raises Expired after up to `expire_after` events (410 Gone: the consumer must list again).
Tests use it to show the controllers reach the same end states as with prompt delivery."""
from __future__ import annotations

import random
import threading
import time
from typing import Iterator

from katib.backends.base import WatchEvent
from katib.errors import Expired


class FlakyWatches:
    def __init__(self, backend, *, delay: float = 0.0, drop_after: int | None = None,
                 expire_after: int | None = None, seed: int = 0):
        self.backend = backend
        self.delay = delay
        self.drop_after = drop_after
        self.expire_after = expire_after
        self.dropped = 0   # streams ended early so far
        self.expired = 0   # streams ended with Expired so far
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def watch(self, kind: str, resource_version: str, **kwargs) -> Iterator[WatchEvent]:
        inner = self.backend.watch(kind, resource_version, **kwargs)
        with self._lock:
            rng = random.Random(self._rng.random())
        drop = rng.randint(1, self.drop_after) if self.drop_after else None
        expire = rng.randint(1, self.expire_after) if self.expire_after else None
        return self._stream(inner, rng, drop, expire)

    def _stream(self, inner, rng: random.Random, drop: int | None, expire: int | None) -> Iterator[WatchEvent]:
        n = 0
        for event in inner:
            if self.delay:
                time.sleep(rng.uniform(0, self.delay))
            yield event
            n += 1
            if expire is not None and n >= expire:
                with self._lock:
                    self.expired += 1
                raise Expired("too old resource version (injected)")
            if drop is not None and n >= drop:
                with self._lock:
                    self.dropped += 1
                return
