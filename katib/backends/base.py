"""The Backend protocol: the slice of the Kubernetes API that the controllers use.

Objects are plain dicts in their JSON form (apiVersion, kind, metadata, spec, status).
Kinds are addressed by their `kind` string; `RESOURCES` says which apiVersion/plural goes
with each. Every implementation raises katib.errors (NotFound, AlreadyExists, Conflict,
Invalid) exactly where an API server answers 404, 409 (exists), 409 (conflict) and 422."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from katib.backends.resources import RESOURCES, Resource  # noqa: F401  (re-exported)

# The watch event types an API server sends. A BOOKMARK carries no change, only a newer
# resourceVersion: {"kind": kind, "metadata": {"resourceVersion": "..."}}.
ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: dict


Handler = Callable[[WatchEvent], None]


def object_key(obj: dict) -> tuple[str, str, str]:
    """(kind, namespace, name) of an object dict."""
    meta = obj.get("metadata") or {}
    return obj.get("kind", ""), meta.get("namespace") or "", meta.get("name") or ""


def matches_labels(obj: dict, selector: dict[str, str] | str | None) -> bool:
    """Equality-based label selection: a dict, or the text form `a=b,c!=d,e`."""
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, dict):
        return all(labels.get(k) == v for k, v in selector.items())
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = (s.strip() for s in term.split("!=", 1))
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


class Backend(Protocol):
    """What controllers, the runner and the CLI may ask of the object store."""

    def get(self, kind: str, namespace: str, name: str, *, readonly: bool = False) -> dict:
        """`readonly=True`: the caller will not modify the result (an implementation may then
        skip copying it)."""

    def list(self, kind: str, namespace: str | None = None, *,
             labels: dict[str, str] | str | None = None) -> list[dict]: ...

    def create(self, obj: dict) -> dict: ...

    def update(self, obj: dict) -> dict:
        """Write metadata+spec; `status` in `obj` is ignored. Conflict on a stale resourceVersion."""

    def update_status(self, obj: dict) -> dict:
        """Write only `status` (the status subresource); no admission."""

    def delete(self, kind: str, namespace: str, name: str, *,
               propagation: str = "Background") -> None: ...

    # ---- list + watch: what informers are built on (katib/controllers/informer.py) ----------
    def served_kinds(self) -> frozenset[str]:
        """The kinds this backend can list and watch now: a cluster without the TFJob CRD does
        not serve TFJob (discovery), the fake serves every kind of RESOURCES. Asking another
        kind anything is NotFound."""

    def list_with_version(self, kind: str, namespace: str | None = None, *,
                          labels: dict[str, str] | str | None = None) -> tuple[list[dict], str]:
        """`list` plus the resourceVersion the list is consistent with (a list's
        `metadata.resourceVersion`): watching from it delivers exactly the changes made
        after the list, none twice, none missed."""

    def watch(self, kind: str, resource_version: str, *, namespace: str | None = None,
              stop: threading.Event | None = None, timeout: float | None = None) -> Iterator[WatchEvent]:
        """The changes of `kind` (in `namespace`, all namespaces if None) committed after
        `resource_version`, as they happen.

        * `resource_version`: one this backend handed out, from `list_with_version` or from
          the `metadata.resourceVersion` of an object (or BOOKMARK) a watch delivered. It is an
          opaque string to the caller: compare versions only for equality. "" means "from now".
        * Order: one stream delivers every change after `resource_version` exactly once, in
          commit order (resourceVersions increase along the stream); separate streams (other
          kinds) are not ordered with each other. ADDED/MODIFIED carry the object as stored,
          DELETED its final state with the deletion's resourceVersion. BOOKMARK events may
          come at any time and only move the version on. Objects are the caller's to read,
          not to modify (the fake shares them with its store).
        * The stream ends (the iterator returns) when `stop` is set (seen within about a
          second), after `timeout` seconds (0: deliver what has already happened, then end —
          a non-blocking poll; None: no limit), or when the server closes it (a dropped
          connection, a server-side timeout). None of these loses anything: watch again from
          the last version seen.
        * `katib.errors.Expired` (HTTP 410 Gone) — raised by the first `next()` or in the
          middle of a stream — means the backend no longer holds the changes since that
          version (its history is bounded). Nothing after the last delivered event can be
          resumed: list again (`list_with_version`) and watch from the new version.
        * A version newer than any the backend handed out: TemporaryError (Kubernetes: 504
          "Too large resource version"). A malformed one: Invalid. A kind not served:
          NotFound. Connection failures: TemporaryError (retry the watch after its delay)."""

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None, *,
                  readonly: bool = False) -> Callable[[], None]:
        """Call `handler` for every later change of the given kinds; returns an unsubscribe.
        `readonly=True`: the handler will not modify the event's object. The fake calls it
        on the writing thread before the write returns; the controllers do not use it (they
        list and watch), in-process components of the fake cluster (the local kubelet, the
        API server's watch cache) do."""

    def record_event(self, obj: dict, *, type: str, reason: str, message: str) -> None: ...
