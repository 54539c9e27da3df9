"""FakeBackend's memory: indexed objects, the resourceVersion counter, and `Txn`, the only way
to change them (write-through to persistence, undo on failure, watch events, GC triggers).

A stored dict is never modified after it is stored: a write builds a new dict that shares
unchanged sub-trees with the previous version. Watch events and undo records therefore hold
references, not copies, and callers only ever receive `clone`s. The caller holds the lock."""
from __future__ import annotations

import contextlib
import copy
import logging
from collections import deque
from typing import ContextManager, Iterable, Protocol

from katib.backends.base import ADDED, DELETED, MODIFIED, RESOURCES, WatchEvent, object_key
from katib.clock import Clock, rfc3339
from katib.errors import Forbidden

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
FOREGROUND = "foregroundDeletion"
_SCALARS = frozenset((str, int, float, bool, type(None)))


class Persistence(Protocol):
    """Where FakeBackend writes every committed change (implemented in katib/db/).

    `put` upserts by (kind, namespace, name) and must not modify the dict it is given."""

    def load_all(self) -> list[dict]: ...

    def put(self, obj: dict) -> None: ...

    def remove(self, kind: str, namespace: str, name: str, *, resource_version: int) -> None:
        """Forget the object; `resource_version` (the deletion's) must never be handed out again."""

    def max_resource_version(self) -> int: ...

    def transaction(self) -> ContextManager: ...


def clone(value):
    """Deep copy of JSON-shaped data; several times faster than copy.deepcopy on such trees."""
    t = type(value)
    if t is dict:
        return {k: v if type(v) in _SCALARS else clone(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _SCALARS else clone(v) for v in value]
    if t in _SCALARS:
        return value
    return copy.deepcopy(value)


def is_waiting(obj: dict) -> bool:
    """Being deleted in the foreground: stays until its blocking dependents are gone."""
    meta = obj["metadata"]
    return bool(meta.get("deletionTimestamp")) and FOREGROUND in (meta.get("finalizers") or ())


def event_keys(ev: dict) -> tuple[tuple, tuple]:
    """(aggregation key, involved-object key) of a core/v1 Event: identical repeats share the first."""
    inv = ev.get("involvedObject") or {}
    involved = (inv.get("kind"), inv.get("namespace"), inv.get("name"), inv.get("uid"))
    meta = ev["metadata"]
    source = (ev.get("source") or {}).get("component")
    return (meta.get("namespace"), involved, source, ev.get("type"), ev.get("reason"), ev.get("message")), involved


def spec_finalizers(obj: dict) -> list:
    """A Namespace's `spec.finalizers` (`kubernetes`: its content is still being deleted),
    which hold it as metadata finalizers hold any object."""
    if obj.get("kind") != "Namespace":
        return []
    spec = obj.get("spec")
    return list(spec.get("finalizers") or ()) if isinstance(spec, dict) else []


class Store:
    def __init__(self, *, clock: Clock, persistence: Persistence | None):
        self.clock = clock
        self.persistence = persistence
        self.rv = 0
        self._by_ns: dict[tuple[str, str], dict[str, dict]] = {}
        self._by_kind: dict[str, dict[tuple[str, str], dict]] = {}  # creation order across namespaces
        self._seq: dict[Key, int] = {}
        self._next_seq = 0
        self._uids: dict[str, Key] = {}
        self._dependents: dict[str, dict[Key, None]] = {}  # owner uid -> ordered set of dependents
        self._event_agg: dict[tuple, Key] = {}
        self._events_of: dict[tuple, dict[Key, None]] = {}

    # ---- reads ----------------------------------------------------------------------------
    def get(self, key: Key) -> dict | None:
        return self._by_ns.get(key[:2], {}).get(key[2])

    def by_uid(self, uid: str | None) -> dict | None:
        key = self._uids.get(uid) if uid else None
        return self.get(key) if key else None

    def dependent_keys(self, uid: str) -> list[Key]:
        return list(self._dependents.get(uid, ()))

    def dependents(self, uid: str) -> list[dict]:
        return [self.get(k) for k in self._dependents.get(uid, ())]

    def objects(self, kind: str, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self._by_kind.get(kind, {}).values())
        return list(self._by_ns.get((kind, namespace), {}).values())

    def keys(self) -> list[Key]:
        return sorted(self._seq, key=self._seq.__getitem__)

    def keys_in_namespace(self, namespace: str) -> list[Key]:
        """Every object of the namespace, of any kind, in creation order."""
        found = [(kind, ns, name) for (kind, ns), objs in self._by_ns.items() if ns == namespace for name in objs]
        return sorted(found, key=self._seq.__getitem__)

    def event_like(self, agg: tuple) -> dict | None:
        key = self._event_agg.get(agg)
        return self.get(key) if key else None

    def events_of(self, involved: tuple) -> list[Key]:
        return list(self._events_of.get(involved, ()))

    def event_count(self) -> int:
        return len(self._by_kind.get("Event", ()))

    def oldest_event(self) -> Key | None:
        first = next(iter(self._by_kind.get("Event", {})), None)
        return ("Event", *first) if first else None

    # ---- index primitives (no persistence, no events) -------------------------------------
    def put(self, key: Key, obj: dict, seq: int | None = None) -> dict | None:
        """Store `obj` under `key`; a new key gets the next creation number (or `seq`, when an
        undo puts a removed object back). Returns the object it replaced."""
        kind, ns, name = key
        old = self.get(key)
        if old is not None:
            self._unindex(key, old)
        else:
            if seq is None:
                seq, self._next_seq = self._next_seq, self._next_seq + 1
            self._seq[key] = seq
        self._by_ns.setdefault((kind, ns), {})[name] = obj
        by_kind = self._by_kind.setdefault(kind, {})
        by_kind[(ns, name)] = obj
        if old is None and seq < self._next_seq - 1 and len(by_kind) > 1:
            self._resort(kind)  # an undone removal goes back to its creation position
        self._index(key, obj)
        return old

    def pop(self, key: Key) -> tuple[dict | None, int | None]:
        kind, ns, name = key
        old = self._by_ns.get((kind, ns), {}).pop(name, None)
        if old is None:
            return None, None
        del self._by_kind[kind][(ns, name)]
        self._unindex(key, old)
        return old, self._seq.pop(key)

    def _resort(self, kind: str) -> None:
        seq = self._seq
        self._by_kind[kind] = dict(sorted(self._by_kind[kind].items(), key=lambda kv: seq[(kind, *kv[0])]))
        for (k, ns), rows in self._by_ns.items():
            if k == kind:
                self._by_ns[(k, ns)] = dict(sorted(rows.items(), key=lambda kv: seq[(k, ns, kv[0])]))

    def _index(self, key: Key, obj: dict) -> None:
        meta = obj["metadata"]
        self._uids[meta["uid"]] = key
        for ref in meta.get("ownerReferences") or ():
            self._dependents.setdefault(ref["uid"], {})[key] = None
        if key[0] == "Event":
            agg, involved = event_keys(obj)
            self._event_agg[agg] = key
            self._events_of.setdefault(involved, {})[key] = None

    def _unindex(self, key: Key, obj: dict) -> None:
        meta = obj["metadata"]
        self._uids.pop(meta["uid"], None)
        for ref in meta.get("ownerReferences") or ():
            deps = self._dependents.get(ref["uid"])
            if deps is not None:
                deps.pop(key, None)
                if not deps:
                    del self._dependents[ref["uid"]]
        if key[0] == "Event":
            agg, involved = event_keys(obj)
            if self._event_agg.get(agg) == key:
                del self._event_agg[agg]
            events = self._events_of.get(involved)
            if events is not None:
                events.pop(key, None)
                if not events:
                    del self._events_of[involved]

    # ---- lifecycle --------------------------------------------------------------------------
    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def transaction(self) -> ContextManager:
        return self.persistence.transaction() if self.persistence else contextlib.nullcontext()

    def begin(self) -> Txn:
        return Txn(self)

    def load(self) -> None:
        """Read everything back from persistence, in creation order, and continue the resourceVersions."""
        rows = self.persistence.load_all()
        ordered = sorted(enumerate(rows), key=lambda io: ((io[1].get("metadata") or {}).get("creationTimestamp")
                                                          or "", io[0]))
        top = 0
        for _, obj in ordered:
            if obj.get("kind") not in RESOURCES:
                logger.warning("ignoring stored object of unknown kind %r", obj.get("kind"))
                continue
            self.put(object_key(obj), obj)
            top = max(top, int(obj["metadata"].get("resourceVersion") or 0))
        self.rv = max(top, int(self.persistence.max_resource_version() or 0))


class Txn:
    """One public operation's changes: each write goes to persistence, then to the index, and is
    remembered for undo (if anything later fails) and as a watch event (fired after commit)."""

    def __init__(self, store: Store):
        self.store = store
        self.events: list[WatchEvent] = []
        self.gc_queue: deque[Key] = deque()
        self._undo: list[tuple[Key, dict | None, int | None]] = []

    def stamp(self) -> str:
        return rfc3339(self.store.clock.now())

    def commit(self, obj: dict) -> dict:
        """Store `obj` (a new dict) under a new resourceVersion; an object being deleted whose
        last finalizer is gone is removed instead. Returns what was stored (or finally seen)."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not spec_finalizers(obj):
            return self.remove(obj)
        store, key = self.store, object_key(obj)
        if key[1] and store.get(key) is None:
            namespace = store.get(("Namespace", "", key[1]))
            if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
                plural = RESOURCES[key[0]].plural if key[0] in RESOURCES else key[0].lower()
                raise Forbidden(f'{plural} "{key[2]}" is forbidden: unable to create new content in namespace '
                                f'{key[1]} because it is being terminated')
        obj = {**obj, "metadata": {**meta, "resourceVersion": str(store.next_rv())}}
        if store.persistence:
            store.persistence.put(obj)
        old = store.put(key, obj)
        self._undo.append((key, old, None))
        self.events.append(WatchEvent(ADDED if old is None else MODIFIED, obj))
        self._queue_owner_change(key, old, obj)
        return obj

    def remove(self, obj: dict) -> dict:
        """Remove the object stored under obj's key; `obj` is its final state (the DELETED event)."""
        store, key = self.store, object_key(obj)
        final = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(store.next_rv())}}
        if store.persistence:
            store.persistence.remove(*key, resource_version=int(final["metadata"]["resourceVersion"]))
        old, seq = store.pop(key)
        self._undo.append((key, old, seq))
        self.events.append(WatchEvent(DELETED, final))
        self.gc_queue.extend(store.dependent_keys(final["metadata"]["uid"]))
        self._queue_waiting_owners(final["metadata"].get("ownerReferences"))
        namespace = store.get(("Namespace", "", key[1])) if key[1] else None
        if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
            self.gc_queue.append(object_key(namespace))   # it may be empty now
        return final

    def rollback(self) -> None:
        for key, old, seq in reversed(self._undo):
            if old is None:
                self.store.pop(key)
            else:
                self.store.put(key, old, seq)
        self._undo.clear()
        self.events.clear()
        self.gc_queue.clear()

    def _queue_owner_change(self, key: Key, old: dict | None, new: dict) -> None:
        """New or changed owner references: the object itself may now be garbage, and an owner
        waiting in foreground deletion may have lost a blocking dependent."""
        refs = new["metadata"].get("ownerReferences")
        old_refs = old["metadata"].get("ownerReferences") if old is not None else None
        if old is not None and refs == old_refs:
            return
        if refs:
            self.gc_queue.append(key)
        self._queue_waiting_owners(old_refs)

    def _queue_waiting_owners(self, refs: Iterable[dict] | None) -> None:
        for ref in refs or ():
            owner = self.store.by_uid(ref.get("uid"))
            if owner is not None and is_waiting(owner):
                self.gc_queue.append(object_key(owner))
