"""Informers: the controllers' view of the objects, as client-go's shared informers give it.

Per kind: list, then watch from the list's resourceVersion; a local cache of what was seen;
`has_synced` once the first list is in; a relist when the watch answers Expired (410 Gone);
a re-watch from the last version seen when the stream ends (a dropped connection). Changes go
to handlers, each behind a predicate. A controller declares what it watches, as
controller-runtime's builder does: `For(kind)` (its own objects), `Owns(kind, owner)` (children
whose controller ownerReference is an `owner`), `Watches(kind, map)` (anything else).

Two ways to drive them:
  * `InformerSet.start(stop)`: one thread per kind, delivering as the watch streams do (a real
    cluster, `katib.py --fake`);
  * `InformerSet.poll()`: deliver what has happened so far, on the caller's thread, merged
    across kinds in resourceVersion order (tests on a fake clock: deterministic).
Only the Backend protocol is used (served_kinds, list_with_version, watch)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable

from katib.backends.base import ADDED, BOOKMARK, DELETED, MODIFIED, WatchEvent
from katib.errors import Expired

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between failed list/watch attempts


@dataclass(frozen=True)
class Change:
    """One change as a handler sees it: the new state (DELETED: the last one), the state the
    cache held before (None when new) and whether it came from a (re)list."""
    type: str
    object: dict
    old: dict | None = None
    relist: bool = False

    @property
    def key(self) -> Key:
        meta = self.object["metadata"]
        return meta.get("namespace") or "", meta["name"]


Predicate = Callable[[Change], bool]
Callback = Callable[[Change], None]


def key_of(obj: dict) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def version_of(obj: dict) -> str:
    return str(obj["metadata"].get("resourceVersion") or "")


# ---- predicates ---------------------------------------------------------------------------------
def not_deleted(change: Change) -> bool:
    return change.type != DELETED


def generation_or_status_changed(change: Change) -> bool:
    """Creations, deletions, and updates that changed the spec (generation), the status or the
    deletion mark; not metadata-only updates (labels, finalizers, ownerReferences)."""
    if change.type != MODIFIED or change.old is None:
        return True
    old, new = change.old, change.object
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return (om.get("generation") != nm.get("generation") or old.get("status") != new.get("status")
            or om.get("deletionTimestamp") != nm.get("deletionTimestamp"))


def all_of(*predicates: Predicate | None) -> Predicate | None:
    chosen = [p for p in predicates if p is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]
    return lambda change: all(p(change) for p in chosen)


# ---- what a controller watches --------------------------------------------------------------------
@dataclass(frozen=True)
class Watch:
    """Changes of `kind` that pass `predicate` enqueue the keys `map` returns."""
    kind: str
    map: Callable[[dict], Iterable[Key]]
    predicate: Predicate | None = None


def For(kind: str, *, predicate: Predicate | None = None) -> Watch:  # noqa: N802 - controller-runtime's name
    return Watch(kind, lambda obj: (key_of(obj),), predicate)


def Owns(kind: str, owner: str, *, predicate: Predicate | None = None) -> Watch:  # noqa: N802
    def owners(obj: dict) -> list[Key]:
        meta = obj["metadata"]
        return [(meta.get("namespace") or "", ref.get("name", "")) for ref in meta.get("ownerReferences") or ()
                if ref.get("kind") == owner and ref.get("controller")]
    return Watch(kind, owners, predicate)


def Watches(kind: str, map: Callable[[dict], Iterable[Key]], *,  # noqa: N802,A002
            predicate: Predicate | None = None) -> Watch:
    return Watch(kind, map, predicate)


# ---- one kind ---------------------------------------------------------------------------------------
class Informer:
    """List-then-watch of one kind, with a cache. The cache and the handlers are only touched by
    the thread that drives the informer (its own, or poll's caller); `get`/`list` may be called
    from any thread."""

    def __init__(self, backend, kind: str, *, namespace: str | None = None):
        self.backend = backend
        self.kind = kind
        self.namespace = namespace
        self.cache: dict[Key, dict] = {}
        self.version: str | None = None   # where the next watch starts; None: list first
        self.lists = 0                    # how many (re)lists so far
        self.expirations = 0              # how many of them an Expired caused
        self.rewatches = 0                # how many watch streams ended and were reopened
        self._handlers: list[tuple[Predicate | None, Callback]] = []
        self._synced = threading.Event()

    def add_handler(self, callback: Callback, *, predicate: Predicate | None = None) -> None:
        self._handlers.append((predicate, callback))

    def has_synced(self) -> bool:
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def get(self, namespace: str, name: str) -> dict | None:
        return self.cache.get((namespace, name))

    def list(self) -> list[dict]:
        return list(self.cache.values())

    # -- list ---------------------------------------------------------------------------------
    def relist(self) -> None:
        """List, then tell the handlers what differs from the cache: new objects ADDED, changed
        ones MODIFIED, vanished ones DELETED (their last known state)."""
        items, version = self.backend.list_with_version(self.kind, self.namespace)
        self.lists += 1
        changes = []
        fresh: dict[Key, dict] = {}
        for obj in items:
            key = key_of(obj)
            fresh[key] = obj
            old = self.cache.get(key)
            if old is None:
                changes.append(Change(ADDED, obj, None, relist=True))
            elif version_of(old) != version_of(obj):
                changes.append(Change(MODIFIED, obj, old, relist=True))
        changes += [Change(DELETED, old, old, relist=True) for key, old in self.cache.items() if key not in fresh]
        self.cache = fresh
        self.version = version
        for change in changes:
            self._dispatch(change)
        self._synced.set()

    # -- watch --------------------------------------------------------------------------------
    def apply(self, event: WatchEvent) -> None:
        """One watch event: move the version on, update the cache, call the handlers."""
        obj = event.object
        self.version = version_of(obj) or self.version
        if event.type == BOOKMARK:
            return
        key = key_of(obj)
        if event.type == DELETED:
            old = self.cache.pop(key, None)
        else:
            old = self.cache.get(key)
            self.cache[key] = obj
        self._dispatch(Change(event.type, obj, old))

    def fetch(self) -> list[WatchEvent]:
        """What happened since the last version (a non-blocking watch); relists first when
        there is no version yet or it expired (the relist's changes are dispatched at once)."""
        if self.version is None:
            self.relist()
        try:
            return list(self.backend.watch(self.kind, self.version, namespace=self.namespace, timeout=0))
        except Expired:
            self.expirations += 1
            logger.info("%s watch expired at version %s: listing again", self.kind, self.version)
            self.relist()
            return list(self.backend.watch(self.kind, self.version, namespace=self.namespace, timeout=0))

    def run(self, stop: threading.Event) -> None:
        """The informer's thread: list, watch, relist on Expired, re-watch when a stream ends,
        back off on errors; until `stop` is set."""
        failures = 0
        while not stop.is_set():
            try:
                if self.version is None:
                    self.relist()
                for event in self.backend.watch(self.kind, self.version, namespace=self.namespace, stop=stop):
                    self.apply(event)
                    failures = 0
                self.rewatches += 1
            except Expired:
                self.expirations += 1
                logger.info("%s watch expired at version %s: listing again", self.kind, self.version)
                self.version = None
            except Exception as err:  # noqa: BLE001 - a watch thread must outlive a bad connection
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                (logger.warning if failures in (1, 10) else logger.debug)(
                    "%s list/watch failed (retry in %.1fs): %s", self.kind, delay, err)
                stop.wait(delay)

    def _dispatch(self, change: Change) -> None:
        for predicate, callback in self._handlers:
            try:
                if predicate is None or predicate(change):
                    callback(change)
            except Exception:
                logger.exception("[%s/%s] %s handler %r failed on %s", *change.key, self.kind, callback, change.type)


# ---- all kinds ---------------------------------------------------------------------------------------
@dataclass
class InformerSet:
    """One informer per kind, shared by every controller (controller-runtime's cache)."""
    backend: object
    informers: dict[str, Informer] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    threads: list[threading.Thread] = field(default_factory=list)

    def informer(self, kind: str) -> Informer | None:
        """The informer of `kind`, or None (one log line) when the backend does not serve it:
        a cluster without the TFJob CRD has no TFJobs to watch."""
        if kind in self.informers:
            return self.informers[kind]
        if kind in self.skipped:
            return None
        if kind not in self.backend.served_kinds():
            self.skipped.add(kind)
            logger.info("%s is not served by the cluster (its CRD is not installed?): not watched", kind)
            return None
        self.informers[kind] = informer = Informer(self.backend, kind)
        return informer

    def has_synced(self) -> bool:
        return all(i.has_synced() for i in self.informers.values())

    def wait_for_sync(self, stop: threading.Event, *, poll: float = 0.1) -> bool:
        """Block until every informer listed once (True) or `stop` is set (False)."""
        for informer in list(self.informers.values()):
            while not informer.wait_for_sync(poll):
                if stop.is_set():
                    return False
        return True

    def start(self, stop: threading.Event) -> None:
        for kind, informer in self.informers.items():
            thread = threading.Thread(target=informer.run, args=(stop,), name=f"informer-{kind}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self, timeout: float = 2.0) -> None:
        for thread in self.threads:
            thread.join(timeout)
        self.threads.clear()

    def poll(self) -> int:
        """Deliver, on this thread, everything that happened so far, merged across kinds in
        resourceVersion order (the fake's versions are one counter). Returns how many changes."""
        events = [event for informer in self.informers.values() for event in
                  ((informer, e) for e in informer.fetch())]
        if len(self.informers) > 1:
            events.sort(key=lambda ie: int(version_of(ie[1].object) or 0))
        for informer, event in events:
            informer.apply(event)
        return len(events)
