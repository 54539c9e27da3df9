"""Deletion and owner-reference garbage collection for FakeBackend, run synchronously inside the
operation that triggered it (a delete, or an update that removed a last finalizer).

The rules follow the Kubernetes garbage collector, simplified to one pass that runs to a fixed
point: an object whose owners are all gone is deleted (its finalizers respected); an object with
a live owner loses only its dangling references; an owner deleted in the foreground keeps the
`foregroundDeletion` finalizer until no dependent with `blockOwnerDeletion` is left.

A Namespace is deleted as kube-apiserver and the namespace controller do: it is marked
(phase Terminating, `spec.finalizers: [kubernetes]`), everything in it is deleted (their
finalizers respected), and it goes when the last of them has gone."""
from __future__ import annotations

from katib.backends.base import object_key
from katib.backends.fake_store import FOREGROUND, Key, Txn, is_waiting, spec_finalizers

NAMESPACE_FINALIZER = "kubernetes"

PROPAGATIONS = ("Background", "Foreground", "Orphan")


def with_meta(obj: dict, **changes) -> dict:
    """A new object with metadata fields replaced; a falsy value removes the field."""
    meta = {**obj["metadata"], **changes}
    for field, value in changes.items():
        if not value and value != 0:
            del meta[field]
    return {**obj, "metadata": meta}


def delete_object(txn: Txn, obj: dict, propagation: str) -> None:
    """Start deleting `obj`: gone now if nothing holds it, else marked with deletionTimestamp.
    Deleting an object that is already being deleted changes nothing."""
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        return
    uid = meta["uid"]
    if propagation == "Orphan":
        for dep in txn.store.dependents(uid):
            refs = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
            txn.commit(with_meta(dep, ownerReferences=refs))
    finalizers = list(meta.get("finalizers") or ())
    dependents = txn.store.dependent_keys(uid) if propagation == "Foreground" else []
    if dependents and FOREGROUND not in finalizers:
        finalizers.append(FOREGROUND)
    marked = with_meta(obj, deletionTimestamp=txn.stamp(), deletionGracePeriodSeconds=0,
                       finalizers=finalizers)
    if obj.get("kind") == "Namespace":
        _delete_namespace(txn, marked)
        return
    txn.commit(marked)  # without finalizers this removes it
    txn.gc_queue.extend(dependents)
    if dependents:
        txn.gc_queue.append(object_key(obj))


def _delete_namespace(txn: Txn, marked: dict) -> None:
    spec = dict(marked.get("spec") or {}) if isinstance(marked.get("spec"), dict) else {}
    if NAMESPACE_FINALIZER not in (spec.get("finalizers") or ()):
        spec["finalizers"] = [*(spec.get("finalizers") or ()), NAMESPACE_FINALIZER]
    status = {**(marked.get("status") or {}), "phase": "Terminating"}
    stored = txn.commit({**marked, "spec": spec, "status": status})
    for key in txn.store.keys_in_namespace(stored["metadata"]["name"]):
        content = txn.store.get(key)
        if content is not None:
            delete_object(txn, content, "Background")
    txn.gc_queue.append(object_key(stored))


def collect(txn: Txn) -> None:
    """Process the queued keys (and whatever they queue in turn) until nothing is left to do."""
    while txn.gc_queue:
        _attempt(txn, txn.gc_queue.popleft())


def queue_everything(txn: Txn) -> None:
    """Start-up: re-examine every object, so a cascade interrupted by a crash completes."""
    txn.gc_queue.extend(txn.store.keys())


def _attempt(txn: Txn, key: Key) -> None:
    obj = txn.store.get(key)
    if obj is None:
        return
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        _finish_deletion(txn, obj)
        return
    refs = meta.get("ownerReferences")
    if not refs:
        return
    solid, waiting = [], False
    for ref in refs:
        owner = txn.store.by_uid(ref.get("uid"))
        if owner is not None and not is_waiting(owner):
            solid.append(ref)
        waiting = waiting or (owner is not None and is_waiting(owner))
    if solid:
        if len(solid) < len(refs):
            txn.commit(with_meta(obj, ownerReferences=solid))  # drop dangling and waiting owners
        return
    delete_object(txn, obj, "Foreground" if waiting else "Background")


def _finish_deletion(txn: Txn, obj: dict) -> None:
    """An object already being deleted: gone once it has no finalizers; a foreground owner
    drops its `foregroundDeletion` finalizer when no blocking dependent is left."""
    meta = obj["metadata"]
    finalizers = meta.get("finalizers") or []
    if NAMESPACE_FINALIZER in spec_finalizers(obj) and not txn.store.keys_in_namespace(meta["name"]):
        spec = {**obj["spec"], "finalizers": [f for f in obj["spec"]["finalizers"] if f != NAMESPACE_FINALIZER]}
        txn.commit({**obj, "spec": spec})   # emptied: gone unless other finalizers hold it
    elif not finalizers and not spec_finalizers(obj):
        txn.remove(obj)
    elif FOREGROUND in finalizers and not _has_blocking_dependents(txn, meta["uid"]):
        txn.commit(with_meta(obj, finalizers=[f for f in finalizers if f != FOREGROUND]))


def _has_blocking_dependents(txn: Txn, uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("blockOwnerDeletion")
               for dep in txn.store.dependents(uid) for ref in dep["metadata"]["ownerReferences"])
