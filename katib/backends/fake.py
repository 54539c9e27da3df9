"""FakeBackend: an in-process API server for the controllers (STYLE §5).

Objects live in memory (`fake_store`), optionally written through to the DB (`persistence`, see
`fake_store.Persistence`); deletion and owner-reference GC are in `fake_gc`, Events in
`fake_events`, error injection in `fake_faults`. Where this differs from a real API server:
  * GC, foreground deletion and finalizer completion run synchronously inside the write that
    triggers them; Pods have no grace period; no namespace lifecycle (any namespace name works);
  * a create or update that leaves every owner reference dangling deletes the object at once;
  * deleting an object that is already being deleted changes nothing (no policy switch);
  * lists are in creation order, not key order; no field selectors, no set-based label selectors;
  * admission sees the object after generateName but before uid/creationTimestamp; server-side
    changes (deletionTimestamp, GC's ownerReference and finalizer edits) skip admission;
  * with `webhooks=True` the registered admission webhooks are called (fake_webhooks), outside
    the lock: mutating ones before `admit` (they see no generated name yet, as on a cluster),
    validating ones after it; an update is written only if the object did not change while
    they answered (else admitted again); deletions by GC skip them;
  * Events are bounded per object and overall instead of by a one-hour TTL;
  * the watch history is a fixed number of events per kind (`watch_history`), not a time
    window; every kind of RESOURCES is served (no discovery of installed CRDs)."""
from __future__ import annotations

import contextlib
import logging
import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from katib.backends import fake_builtin, fake_events, fake_gc, fake_webhooks
from katib.backends.base import RESOURCES, Handler, Resource, WatchEvent, matches_labels, object_key
from katib.backends.fake_faults import Faults, Injection
from katib.backends.fake_meta import (
    added_finalizers_error, address, already_exists, check_preconditions, drop_empty_meta, merge_update,
    metadata_errors, namespace_of, not_found, resolve, resource_of, resource_text, spec_of, create_errors)
from katib.backends.fake_store import Persistence, Store, Txn, clone
from katib.backends.fake_watch import History
from katib.clock import Clock
from katib.errors import Conflict, FieldError, Forbidden, Invalid, NotFound, TemporaryError

logger = logging.getLogger(__name__)

Admit = Callable[[str, dict, "dict | None"], dict]
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_WEBHOOK_ROUNDS = 5   # admissions of one update that lost the race to another writer


class _RolledBack(Exception):
    """Raised by _writing at the end of a dry run's body to undo it (caught there)."""


def _as_dry_update(result: dict, stored: dict) -> dict:
    """A dry run's update result: what would be stored, under the stored resourceVersion."""
    out = clone(result)
    out["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
    return out


@dataclass(eq=False)
class _Subscription:
    handler: Handler
    kinds: frozenset[str] | None
    since: int  # resourceVersion at subscribe time: earlier changes are not delivered
    active: bool = True
    readonly: bool = False  # the handler promises not to modify the object: no copy is made


class FakeBackend:
    """The Backend protocol over an in-memory store; every method may be called from any thread."""

    def __init__(self, *, clock: Clock | None = None, admit: Admit | None = None,
                 admit_kinds: Iterable[str] | None = None, persistence: Persistence | None = None,
                 max_events_per_object: int = 100, max_events: int = 10_000,
                 event_source: str = "katib-controller", watch_history: int = 1000,
                 served: Iterable[str] | None = None, webhooks: bool = False):
        """`watch_history`: changes kept per kind for watches to resume from (older versions
        get Expired). `served`: the kinds to serve (default all of RESOURCES), to play a
        cluster on which some CRDs are not installed. `webhooks`: call the admission webhooks
        registered in it as kube-apiserver does (fake_webhooks): mutating ones before `admit`,
        validating ones after it; webhook configurations are then validated as it does."""
        if max_events_per_object < 1 or max_events < 1:
            raise ValueError("event limits must be at least 1")
        if watch_history < 1:
            raise ValueError("watch_history must be at least 1")
        self._served = frozenset(RESOURCES) if served is None else frozenset(resource_of(k).kind for k in served)
        self._admit_fn = admit
        self._admit_kinds = None if admit_kinds is None else frozenset(admit_kinds)
        self._event_limits = (max_events_per_object, max_events)
        self._event_source = event_source
        self._lock = threading.RLock()
        self._store = Store(clock=clock or Clock(), persistence=persistence)
        self._faults = Faults()
        self._subs: tuple[_Subscription, ...] = ()
        self._outbox: deque[WatchEvent] = deque()
        self._deliver_lock = threading.RLock()
        self._tls = threading.local()
        self._rng = random.Random()
        if persistence is not None:
            with self._lock:
                self._store.load()
        self._histories = {kind: History(kind, limit=watch_history, horizon=self._store.rv) for kind in RESOURCES}
        if persistence is not None:
            self.collect_garbage()  # finish cascades a crash interrupted
        self._webhooks = None
        if webhooks:
            self._webhooks = fake_webhooks.Webhooks(self)
            self._admit_fn = fake_webhooks.checking_configurations(self._admit_fn, self._admit_kinds)
            self._admit_kinds = None

    # ---- reads ------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str, *, readonly: bool = False) -> dict:
        """A copy of the object; with `readonly=True` the stored object itself, which the caller
        must not modify (stored objects are replaced on write, never changed in place)."""
        res = resource_of(kind)
        ns = namespace_of(res, namespace, name=name)
        self._faults.check("get", kind, ns, name)
        with self._lock:
            obj = self._stored(res, ns, name)
        return obj if readonly else clone(obj)  # copying outside the lock is safe

    def list(self, kind: str, namespace: str | None = None, *,
             labels: dict[str, str] | str | None = None) -> list[dict]:
        """Objects of `kind` in `namespace` (all namespaces if None or ""), in creation order."""
        res = resource_of(kind)
        ns = (namespace or None) if res.namespaced else ""
        self._faults.check("list", kind, ns)
        with self._lock:
            objs = self._store.objects(kind, ns)
        return [clone(o) for o in objs if matches_labels(o, labels)]

    # ---- writes -----------------------------------------------------------------------------
    def create(self, obj: dict, *, dry_run: bool = False) -> dict:
        """Store a new object. Metadata problems and admission's are reported together (one
        Invalid listing both), as a client needs every problem at once. A dry run admits and
        checks as a create does and returns the object it would store (no resourceVersion),
        storing nothing."""
        res = resolve(obj)
        new = {"apiVersion": "", **clone(obj)}  # apiVersion first, as objects are written out
        new["apiVersion"] = res.api_version
        if not isinstance(new.get("metadata") or {}, dict):
            raise Invalid(create_errors(res, new), kind=res.kind)
        meta = new["metadata"] = drop_empty_meta(new.get("metadata") or {})
        if res.namespaced:
            meta["namespace"] = namespace_of(res, meta.get("namespace"), name=str(meta.get("name") or ""))
        else:
            meta.pop("namespace", None)
        self._faults.check("create", res.kind, str(meta.get("namespace", "")), str(meta.get("name")))
        hooks = self._hooks("CREATE", res)
        if hooks:   # outside the lock: a webhook may read this API while it answers
            with fake_webhooks.dry_run_reviews(dry_run):
                new = self._webhooks.mutate(hooks, "CREATE", res, new, None)
                with self._lock:
                    new = self._named_and_admitted(res, new)
                self._webhooks.validate(hooks, "CREATE", res, new, None)
        stored = self._create_stored(res, new, hooks, dry_run)
        if dry_run:
            meta = {k: v for k, v in stored["metadata"].items() if k != "resourceVersion"}
            return {**clone(stored), "metadata": clone(meta)}
        self._faults.check("create", res.kind, stored["metadata"].get("namespace", ""), stored["metadata"]["name"],
                           after=True)
        return clone(stored)

    def _create_stored(self, res: Resource, new: dict, hooks, dry_run: bool) -> dict:
        with self._writing(dry_run=dry_run) as txn:
            if not hooks:
                new = self._named_and_admitted(res, new)
            if self._store.get(object_key(new)) is not None:
                raise already_exists(res, new["metadata"]["name"])
            if res.has_status:
                new.pop("status", None)  # status is written through the status subresource only
            new = fake_builtin.prepare(res.kind, new, None)
            meta = new["metadata"]
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(field, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=txn.stamp(), generation=1)
            stored = txn.commit(new)
        return stored

    def _named_and_admitted(self, res: Resource, new: dict) -> dict:
        meta = new["metadata"]
        errors = create_errors(res, new)   # before a name is generated from generateName
        if not errors and not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(res, meta)
        return self._admit_with(errors, res, new)

    def _admit_with(self, errors: list[FieldError], res: Resource, new: dict) -> dict:
        """CREATE admission of `new`; raises Invalid with `errors` (the metadata's) followed by
        admission's own (those it shares with the metadata checks listed once)."""
        try:
            admitted = self._admit("CREATE", res, new, None)
        except Invalid as err:
            errors = errors + [e for e in err.errors if e not in errors]
        if errors:
            meta = new["metadata"]
            name = meta.get("name") or meta.get("generateName")
            raise Invalid(errors, kind=res.kind, name=name if isinstance(name, str) else "")
        return admitted

    def update(self, obj: dict, *, dry_run: bool = False) -> dict:
        """Write metadata (labels, annotations, finalizers, ownerReferences) and spec; `status` in
        `obj` is ignored for kinds with a status subresource. A no-op changes nothing. A dry run
        returns what would be stored, under the stored resourceVersion, storing nothing."""
        incoming = clone(obj)
        res = resolve(incoming)
        ns, name = address(res, incoming)
        self._faults.check("update", res.kind, ns, name)
        hooks = self._hooks("UPDATE", res)
        if hooks:
            result, stored = self._update_through_webhooks(res, ns, name, incoming, hooks, dry_run=dry_run)
        else:
            with self._writing(dry_run=dry_run) as txn:
                stored = self._stored(res, ns, name)
                new = self._admitted_update(res, stored, self._merged(res, stored, incoming))
                result = stored if new == stored else self._commit_update(txn, res, stored, new)
        if dry_run:
            return _as_dry_update(result, stored)
        self._faults.check("update", res.kind, ns, name, after=True)
        return clone(result)

    def _merged(self, res: Resource, stored: dict, incoming: dict) -> dict:
        check_preconditions(res, stored, incoming)
        errors = metadata_errors(incoming.get("metadata") or {})
        if errors:
            raise Invalid(errors, kind=res.kind, name=stored["metadata"]["name"])
        return merge_update(stored, incoming, has_status=res.has_status)

    def _admitted_update(self, res: Resource, stored: dict, new: dict) -> dict:
        if self._admits(res):
            admitted = self._admit("UPDATE", res, clone(new), clone(stored))
            new = merge_update(stored, admitted, has_status=res.has_status)
        refused = added_finalizers_error(stored, new)
        if refused:
            raise refused
        return fake_builtin.prepare(res.kind, new, stored)

    def _update_through_webhooks(self, res: Resource, ns: str, name: str, incoming: dict, hooks,
                                 subresource: str = "", *, dry_run: bool = False) -> dict:
        """An update whose webhooks are called outside the lock; written only if the object did
        not change meanwhile (else, without a resourceVersion in `incoming`, admitted again).
        Returns what was written and what it replaced (a dry run writes nothing)."""
        with fake_webhooks.dry_run_reviews(dry_run):
            return self._update_admitted_by_webhooks(res, ns, name, incoming, hooks, subresource, dry_run)

    def _update_admitted_by_webhooks(self, res: Resource, ns: str, name: str, incoming: dict, hooks,
                                     subresource: str, dry_run: bool) -> tuple[dict, dict]:
        for _ in range(_WEBHOOK_ROUNDS):
            with self._lock:
                stored = self._stored(res, ns, name)
                if subresource:
                    check_preconditions(res, stored, incoming)
                    new = self._with_status(stored, incoming)
                else:
                    new = self._merged(res, stored, incoming)
            new = self._webhooks.mutate(hooks, "UPDATE", res, new, clone(stored), subresource=subresource)
            if subresource:
                new = self._with_status(stored, new)
            else:
                with self._lock:
                    new = self._admitted_update(res, stored, merge_update(stored, new, has_status=res.has_status))
            self._webhooks.validate(hooks, "UPDATE", res, new, clone(stored), subresource=subresource)
            with self._writing(dry_run=dry_run) as txn:
                current = self._stored(res, ns, name)
                if current is stored:
                    if new == stored:
                        result = stored
                    else:
                        result = txn.commit(new) if subresource else self._commit_update(txn, res, stored, new)
                else:
                    check_preconditions(res, current, incoming)
                    continue
            return result, stored
        raise Conflict(f"Operation cannot be fulfilled on {resource_text(res)} \"{name}\": the object kept "
                       f"changing while its admission webhooks were called; please apply your changes to the "
                       f"latest version and try again")

    @staticmethod
    def _with_status(stored: dict, incoming: dict) -> dict:
        new = {k: v for k, v in stored.items() if k != "status"}
        if incoming.get("status") is not None:
            new["status"] = clone(incoming["status"])
        return new

    def _hooks(self, operation: str, res: Resource, subresource: str = "") -> tuple:
        return self._webhooks.covering(operation, res, subresource) if self._webhooks is not None else ()

    def update_status(self, obj: dict, *, dry_run: bool = False) -> dict:
        """Write only `status` (the status subresource): no admission, no generation bump. A dry
        run returns what would be stored, storing nothing."""
        res = resolve(obj)
        if not res.has_status:
            raise NotFound(f"the server could not find the requested resource ({resource_text(res)}/status)")
        ns, name = address(res, obj)
        self._faults.check("update_status", res.kind, ns, name)
        status = clone(obj.get("status"))
        hooks = self._hooks("UPDATE", res, "status")
        if hooks:
            result, stored = self._update_through_webhooks(res, ns, name, clone(obj), hooks, subresource="status",
                                                           dry_run=dry_run)
        else:
            with self._writing(dry_run=dry_run) as txn:
                stored = self._stored(res, ns, name)
                check_preconditions(res, stored, obj)
                if stored.get("status") == status:
                    result = stored
                else:
                    new = {k: v for k, v in stored.items() if k != "status"}
                    if status is not None:
                        new["status"] = status
                    result = txn.commit(new)
        if dry_run:
            return _as_dry_update(result, stored)
        self._faults.check("update_status", res.kind, ns, name, after=True)
        return clone(result)

    def delete(self, kind: str, namespace: str, name: str, *, propagation: str = "Background",
               dry_run: bool = False) -> dict | None:
        """Background: dependents go after the owner; Foreground: the owner stays (with the
        foregroundDeletion finalizer) until its blocking dependents are gone; Orphan: dependents
        lose the owner reference and stay. Finalizers hold the object with a deletionTimestamp.
        A dry run deletes nothing and returns the object as the deletion would leave it (None:
        it would be gone); a real deletion returns None."""
        res = resource_of(kind)
        ns = namespace_of(res, namespace, name=name)
        if propagation not in fake_gc.PROPAGATIONS:
            raise Invalid([FieldError("propagationPolicy", f"supported values: {', '.join(fake_gc.PROPAGATIONS)}",
                                      propagation, kind="Unsupported value")], kind=kind, name=name)
        self._faults.check("delete", kind, ns, name)
        hooks = self._hooks("DELETE", res)
        if hooks:
            old = self.get(kind, ns, name)
            with fake_webhooks.dry_run_reviews(dry_run):
                self._webhooks.mutate(hooks, "DELETE", res, None, old)
                self._webhooks.validate(hooks, "DELETE", res, None, old)
        with self._writing(dry_run=dry_run) as txn:
            fake_gc.delete_object(txn, self._stored(res, ns, name), propagation)
            after = self._store.get((res.kind, ns, name))
        if dry_run:
            return None if after is None else clone(after)
        self._faults.check("delete", kind, ns, name, after=True)
        return None

    def record_event(self, obj: dict, *, type: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about `obj`. Best effort, like client-go's recorder: a failure to
        store it is logged, not raised. An unknown `type` is a programming error (ValueError)."""
        if type not in fake_events.EVENT_TYPES:
            raise ValueError(f"event type must be one of {fake_events.EVENT_TYPES}, not {type!r}")
        per_object, total = self._event_limits
        try:
            with self._writing() as txn:
                fake_events.record(txn, obj, type=type, reason=reason, message=message,
                                   source=self._event_source, per_object=per_object, total=total)
        except Forbidden as err:   # its namespace is being deleted: nothing to tell there
            logger.debug("event %s not recorded: %s", reason, err)
        except Exception:
            meta = obj.get("metadata") or {}
            logger.warning("[%s/%s] event %s not recorded", meta.get("namespace"), meta.get("name"), reason,
                           exc_info=True)

    # ---- list + watch -----------------------------------------------------------------------
    def served_kinds(self) -> frozenset[str]:
        return self._served

    def list_with_version(self, kind: str, namespace: str | None = None, *,
                          labels: dict[str, str] | str | None = None) -> tuple[list[dict], str]:
        res = self._served_resource(kind)
        ns = (namespace or None) if res.namespaced else ""
        self._faults.check("list", res.kind, ns)
        with self._lock:
            objs, rv = self._store.objects(res.kind, ns), self._store.rv
        return [clone(o) for o in objs if matches_labels(o, labels)], str(rv)

    def watch(self, kind: str, resource_version: str, *, namespace: str | None = None,
              stop: threading.Event | None = None, timeout: float | None = None) -> Iterator[WatchEvent]:
        """See Backend.watch. Events carry the stored objects themselves (read-only)."""
        res = self._served_resource(kind)
        ns = (namespace or None) if res.namespaced else None
        text = str(resource_version or "")
        if text and not text.isdigit():
            raise Invalid([FieldError("resourceVersion", "must be a resourceVersion this server handed out",
                                      text)], kind=res.kind)
        current = self._store.rv  # one int read: no need to wait for the store's lock
        since = int(text) if text else current
        if since > current:
            raise TemporaryError(f"too large resource version: {since}, current: {current}", delay=1.0)
        history = self._histories[res.kind]
        if timeout == 0 and history.quiet_since(since):
            return iter(())
        return history.stream(since, ns, stop, timeout)

    def drop_watches(self, kind: str | None = None) -> None:
        """Tests: end every open watch stream (of `kind`), as a dropped connection would."""
        for history in self._histories_of(kind):
            history.drop_streams()

    def expire_watches(self, kind: str | None = None) -> None:
        """Tests: forget the watch history (of `kind`), as a compaction would: open streams and
        any watch from an earlier version get Expired."""
        with self._lock:
            rv = self._store.rv
        for history in self._histories_of(kind):
            history.compact(rv)

    def _histories_of(self, kind: str | None) -> list[History]:
        return list(self._histories.values()) if kind is None else [self._histories[resource_of(kind).kind]]

    def _served_resource(self, kind: str) -> Resource:
        res = resource_of(kind)
        if res.kind not in self._served:
            raise NotFound(f"the server doesn't have a resource type \"{res.plural}\"")
        return res

    def resource_version(self) -> int:
        """The newest resourceVersion: every later change reaches subscribers and watches."""
        with self._lock:
            return int(self._store.rv)

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None, *,
                  readonly: bool = False) -> Callable[[], None]:
        """Deliver every later change of `kinds` (all if None) to `handler`, in commit order, on
        the writing thread before the write returns. Handlers should be quick (enqueue a key).
        A `readonly` handler gets the stored object itself and must not modify it."""
        if isinstance(kinds, str):
            kinds = (kinds,)
        wanted = None if kinds is None else frozenset(resource_of(k).kind for k in kinds)
        with self._lock:
            sub = _Subscription(handler, wanted, since=self._store.rv, readonly=readonly)
            self._subs += (sub,)

        def unsubscribe() -> None:
            with self._lock:
                sub.active = False
                self._subs = tuple(s for s in self._subs if s is not sub)

        return unsubscribe

    # ---- test and maintenance hooks ---------------------------------------------------------
    def inject(self, op: str, *, error: BaseException, kind: str | None = None, namespace: str | None = None,
               name: str | None = None, times: int | None = 1, after: bool = False) -> Injection:
        """Make the next `times` (None: all) matching `op` calls raise `error`: before changing
        anything, or with `after=True` once the write has committed and its events fired."""
        return self._faults.add(Injection(op=op, error=error, kind=kind, namespace=namespace, name=name,
                                          times=times, after=after))

    def clear_injections(self) -> None:
        self._faults.clear()

    def collect_garbage(self) -> None:
        """Re-examine every object: remove dangling dependents and finished deletions."""
        with self._writing() as txn:
            fake_gc.queue_everything(txn)

    # ---- internals --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self, *, dry_run: bool = False) -> Iterator[Txn]:
        """One atomic write: memory and persistence change together or not at all (GC included);
        the watch events fire after the lock is released, in commit order. A dry run's write is
        undone when its body ends (the body's results stay with the caller)."""
        with self._lock:
            self._tls.depth = getattr(self._tls, "depth", 0) + 1
            txn = self._store.begin()
            try:
                with self._store.transaction():
                    yield txn
                    if dry_run:
                        raise _RolledBack   # through the persistence transaction: it writes nothing
                    fake_gc.collect(txn)
            except _RolledBack:
                txn.rollback()
                return
            except BaseException:
                txn.rollback()
                raise
            finally:
                self._tls.depth -= 1
            self._outbox.extend(txn.events)
            histories = self._histories
            for event in txn.events:
                obj = event.object
                histories[obj["kind"]].append(int(obj["metadata"]["resourceVersion"]), event)
        self._deliver()

    def _deliver(self) -> None:
        # A write made by a handler (or inside another write) is delivered by the outer loop,
        # after the current event has reached every subscriber.
        if getattr(self._tls, "depth", 0) or getattr(self._tls, "delivering", False):
            return
        with self._deliver_lock:
            self._tls.delivering = True
            try:
                while self._outbox:
                    self._fan_out(self._outbox.popleft())
            finally:
                self._tls.delivering = False

    def _fan_out(self, event: WatchEvent) -> None:
        obj = event.object
        rv = int(obj["metadata"]["resourceVersion"])
        for sub in self._subs:
            if not sub.active or rv <= sub.since or (sub.kinds is not None and obj["kind"] not in sub.kinds):
                continue
            try:
                sub.handler(WatchEvent(event.type, obj if sub.readonly else clone(obj)))
            except Exception:
                meta = obj["metadata"]
                logger.exception("[%s/%s] watch handler %r failed on %s %s", meta.get("namespace"),
                                 meta.get("name"), sub.handler, event.type, obj["kind"])

    def _stored(self, res: Resource, ns: str, name: str) -> dict:
        obj = self._store.get((res.kind, ns, name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def _commit_update(self, txn: Txn, res: Resource, stored: dict, new: dict) -> dict:
        if spec_of(new, has_status=res.has_status) != spec_of(stored, has_status=res.has_status):
            new["metadata"]["generation"] = int(stored["metadata"].get("generation") or 0) + 1
        return txn.commit(new)

    def _admits(self, res: Resource) -> bool:
        return self._admit_fn is not None and (self._admit_kinds is None or res.kind in self._admit_kinds)

    def _admit(self, op: str, res: Resource, new: dict, old: dict | None) -> dict:
        """Run admission (defaulting + validation) if it covers this kind; it returns the object
        to store or raises Invalid. It may not change which object this is."""
        if not self._admits(res):
            return new
        identity = object_key(new)
        out = self._admit_fn(op, new, old)
        if not isinstance(out, dict):
            raise TypeError(f"admission returned {type(out).__name__}, not the object to store")
        out.setdefault("apiVersion", res.api_version)
        if object_key(out) != identity or out["apiVersion"] != res.api_version:
            raise Invalid([FieldError("metadata", "admission may not change kind, namespace or name",
                                      kind="Forbidden")], kind=res.kind, name=identity[2])
        errors = metadata_errors(drop_empty_meta(out.setdefault("metadata", {})))
        if errors:
            raise Invalid(errors, kind=res.kind, name=identity[2])
        return out

    def _generate_name(self, res: Resource, meta: dict) -> str:
        prefix = meta["generateName"][:58]
        for _ in range(16):
            name = prefix + "".join(self._rng.choice(_NAME_CHARS) for _ in range(5))
            if self._store.get((res.kind, meta.get("namespace", ""), name)) is None:
                return name
        raise already_exists(res, name)

