"""The Backend protocol: the slice of the Kubernetes API that the controllers use.

Objects are plain dicts in their JSON form (apiVersion, kind, metadata, spec, status).
Kinds are addressed by their `kind` string; `RESOURCES` says which apiVersion/plural goes
with each. Every implementation raises katib.errors (NotFound, AlreadyExists, Conflict,
Invalid) exactly where an API server answers 404, 409 (exists), 409 (conflict) and 422."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from katib.backends.resources import RESOURCES, Resource  # noqa: F401  (re-exported)

# The watch event types an API server sends.
ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
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

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None, *,
                  readonly: bool = False) -> Callable[[], None]:
        """Call `handler` for every later change of the given kinds; returns an unsubscribe.
        `readonly=True`: the handler will not modify the event's object."""

    def record_event(self, obj: dict, *, type: str, reason: str, message: str) -> None: ...
