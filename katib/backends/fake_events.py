"""core/v1 Events for FakeBackend: what a client-go event recorder would write, with identical
repeats folded into `count`, and a bound on how many are kept."""
from __future__ import annotations

import uuid

from katib.backends.fake_store import Txn, event_keys

EVENT_TYPES = ("Normal", "Warning")


def record(txn: Txn, obj: dict, *, type: str, reason: str, message: str, source: str,
           per_object: int, total: int) -> None:
    """Write the Event for `obj` (or bump the count of its identical predecessor), then drop the
    oldest Events beyond `per_object` for this object and `total` overall. `type` is checked
    by the caller (one of EVENT_TYPES)."""
    stamp = txn.stamp()
    event = _build(obj, type=type, reason=reason, message=message, source=source, stamp=stamp)
    agg, involved = event_keys(event)
    store = txn.store
    previous = store.event_like(agg)
    if previous is not None:
        txn.commit({**previous, "count": int(previous.get("count") or 1) + 1, "lastTimestamp": stamp})
        return
    event["metadata"].update(name=_unique_name(txn, event), uid=str(uuid.uuid4()), creationTimestamp=stamp,
                             generation=1)
    txn.commit(event)
    for key in store.events_of(involved)[:-per_object or None]:
        txn.remove(store.get(key))
    while store.event_count() > total:
        txn.remove(store.get(store.oldest_event()))


def _build(obj: dict, *, type: str, reason: str, message: str, source: str, stamp: str) -> dict:
    meta = obj.get("metadata") or {}
    involved = {"kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                "uid": meta.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
                "resourceVersion": meta.get("resourceVersion", "")}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": meta.get("namespace") or "default"},
        "involvedObject": {k: v for k, v in involved.items() if v},
        "reason": reason,
        "message": message,
        "type": type,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": source},
    }


def _unique_name(txn: Txn, event: dict) -> str:
    """`<object>.<hex nanoseconds>` as client-go names them, nudged past names already taken
    (a fake clock stands still)."""
    base = event["involvedObject"].get("name") or "event"
    ns = event["metadata"]["namespace"]
    n = int(txn.store.clock.now() * 1e9)
    while txn.store.get(("Event", ns, f"{base}.{n:x}")) is not None:
        n += 1
    return f"{base}.{n:x}"
