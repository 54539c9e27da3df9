"""Object-metadata rules of FakeBackend: kind resolution, API-server error texts, validation of
what a client may send, and the merge an update performs (client metadata+spec, server status).

Pure functions over plain dicts; FakeBackend calls them before it touches the store. The metadata
rules themselves are katib/api/meta.py's, shared with Experiment admission."""
from __future__ import annotations

from katib.api import meta as meta_rules
from katib.api.meta import metadata_errors  # noqa: F401  (the update path checks these)
from katib.backends.base import RESOURCES, Resource
from katib.serde import abbreviated
from katib.errors import AlreadyExists, Conflict, FieldError, Invalid, NotFound

# Metadata a client may write through `update`; everything else in metadata is the server's.
WRITABLE_META = ("labels", "annotations", "finalizers", "ownerReferences")
# Top-level keys that are not part of the object's "spec" content (what bumps generation).
_NOT_SPEC = frozenset(("apiVersion", "kind", "metadata"))
_NOT_SPEC_WITH_STATUS = _NOT_SPEC | {"status"}



def resource_of(kind: str) -> Resource:
    """The Resource for `kind`; an unknown kind is what an API server answers with 404."""
    res = RESOURCES.get(kind)
    if res is None:
        raise NotFound(f'the server could not find the requested resource (kind "{kind}")')
    return res


def resource_text(res: Resource) -> str:
    """`experiments.kubeflow.org`, `jobs.batch`, `pods`: how the API server names a resource."""
    return f"{res.plural}.{res.group}" if res.group else res.plural


def not_found(res: Resource, name: str) -> NotFound:
    return NotFound(f'{resource_text(res)} "{name}" not found')


def already_exists(res: Resource, name: str) -> AlreadyExists:
    return AlreadyExists(f'{resource_text(res)} "{name}" already exists')


def conflict(res: Resource, name: str) -> Conflict:
    return Conflict(f'Operation cannot be fulfilled on {resource_text(res)} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again")


def check_preconditions(res: Resource, stored: dict, incoming: dict) -> None:
    """uid and resourceVersion in `incoming`, when set, must match the stored object (else 409)."""
    meta, have = incoming.get("metadata") or {}, stored["metadata"]
    uid = meta.get("uid")
    if uid and uid != have["uid"]:
        raise Conflict(f"Precondition failed: UID in precondition: {uid}, UID in object meta: {have['uid']}")
    rv = meta.get("resourceVersion")
    if rv and str(rv) != have["resourceVersion"]:
        raise conflict(res, have["name"])


def resolve(obj: dict) -> Resource:
    """Resource of `obj` (a missing apiVersion means the served one; a different one is Invalid)."""
    kind = obj.get("kind")
    if not kind:
        raise Invalid([FieldError("kind", "kind must be set", kind="Required value")])
    if not isinstance(kind, str):
        raise Invalid([FieldError("kind", "must be a string", abbreviated(kind))])
    res = resource_of(kind)
    api_version = obj.get("apiVersion")
    if api_version and api_version != res.api_version:
        raise Invalid([FieldError("apiVersion", f"{kind} is served as {res.api_version}", api_version,
                                  kind="Unsupported value")], kind=kind, name=_name(obj))
    return res


def namespace_of(res: Resource, namespace: str | None, *, name: str = "") -> str:
    """The namespace a request addresses: "" for cluster-scoped kinds; required otherwise."""
    if not res.namespaced:
        return ""
    if not namespace:
        raise Invalid([FieldError("metadata.namespace", f"namespace is required for namespaced kind {res.kind} "
                                  "(this backend does not default it)", kind="Required value")],
                      kind=res.kind, name=name)
    return namespace


def address(res: Resource, obj: dict) -> tuple[str, str]:
    """(namespace, name) an update addresses; both required (namespace only for namespaced kinds)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise Invalid([FieldError("metadata.name", "name is required", kind="Required value")], kind=res.kind)
    return namespace_of(res, meta.get("namespace"), name=name), name


def create_errors(res: Resource, obj: dict) -> list[FieldError]:
    """What the API server refuses on create before admission (names, server-owned fields,
    metadata); FakeBackend.create reports these together with admission's problems."""
    return meta_rules.create_errors(obj.get("metadata"), namespaced=res.namespaced)


def drop_empty_meta(meta: dict) -> dict:
    """JSON omit-empty for the writable metadata, so `labels: {}` and no labels compare equal."""
    for field in WRITABLE_META:
        if field in meta and not meta[field]:
            del meta[field]
    return meta


def merge_update(stored: dict, incoming: dict, *, has_status: bool) -> dict:
    """The object an update stores: the client's spec and writable metadata over the server's
    identity, server-owned metadata and (with a status subresource) status. `incoming` must be
    the caller's own copy; its sub-trees are taken over, `stored` is not modified."""
    meta = {k: v for k, v in stored["metadata"].items() if k not in WRITABLE_META}
    sent = incoming.get("metadata") or {}
    for field in WRITABLE_META:
        if sent.get(field):
            meta[field] = sent[field]
    if isinstance(sent.get("managedFields"), list) and sent["managedFields"]:
        # Server-side apply's record: replaced when sent, kept when omitted (as the API server does);
        # `[{}]` clears it.
        kept = [e for e in sent["managedFields"] if isinstance(e, dict) and e]
        if kept:
            meta["managedFields"] = kept
        else:
            meta.pop("managedFields", None)
    skip = _NOT_SPEC_WITH_STATUS if has_status else _NOT_SPEC
    new = {"apiVersion": stored["apiVersion"], "kind": stored["kind"], "metadata": meta}
    new.update((k, v) for k, v in incoming.items() if k not in skip)
    if has_status and "status" in stored:
        new["status"] = stored["status"]
    return new


def spec_of(obj: dict, *, has_status: bool) -> dict:
    """Everything a change of which bumps `generation` (all but identity, metadata and status)."""
    skip = _NOT_SPEC_WITH_STATUS if has_status else _NOT_SPEC
    return {k: v for k, v in obj.items() if k not in skip}


def added_finalizers_error(stored: dict, new: dict) -> Invalid | None:
    """An object being deleted may lose finalizers but not gain them (as the API server insists)."""
    if not stored["metadata"].get("deletionTimestamp"):
        return None
    added = set(new["metadata"].get("finalizers") or ()) - set(stored["metadata"].get("finalizers") or ())
    if not added:
        return None
    return Invalid([FieldError("metadata.finalizers", "no new finalizers can be added if the object is being "
                               "deleted", sorted(added), kind="Forbidden")],
                   kind=stored["kind"], name=stored["metadata"]["name"])


def _name(obj: dict) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""
