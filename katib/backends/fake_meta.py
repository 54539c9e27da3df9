"""Object-metadata rules of FakeBackend: kind resolution, API-server error texts, validation of
what a client may send, and the merge an update performs (client metadata+spec, server status).

Pure functions over plain dicts; FakeBackend calls them before it touches the store."""
from __future__ import annotations

import re

from katib.backends.base import RESOURCES, Resource
from katib.errors import AlreadyExists, Conflict, FieldError, Invalid, NotFound

# Metadata a client may write through `update`; everything else in metadata is the server's.
WRITABLE_META = ("labels", "annotations", "finalizers", "ownerReferences")
# Top-level keys that are not part of the object's "spec" content (what bumps generation).
_NOT_SPEC = frozenset(("apiVersion", "kind", "metadata"))
_NOT_SPEC_WITH_STATUS = _NOT_SPEC | {"status"}

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


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


def validate_create(res: Resource, obj: dict) -> None:
    """What the API server refuses on create before admission (names, server-owned fields, metadata)."""
    meta = obj["metadata"]
    errors: list[FieldError] = []
    if meta.get("resourceVersion"):
        errors.append(FieldError("metadata.resourceVersion", "may not be set on objects to be created",
                                 kind="Forbidden"))
    name = meta.get("name")
    if not name:
        errors.append(FieldError("metadata.name", "name or generateName is required", kind="Required value"))
    elif len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        errors.append(FieldError("metadata.name", "must be a lowercase RFC 1123 subdomain: lower case "
                                 "alphanumerics, '-' or '.', starting and ending with an alphanumeric", name))
    ns = meta.get("namespace")
    if ns and (len(ns) > 63 or not _LABEL.fullmatch(ns)):
        errors.append(FieldError("metadata.namespace", "must be a lowercase RFC 1123 label", ns))
    errors += metadata_errors(meta)
    if errors:
        raise Invalid(errors, kind=res.kind, name=name or meta.get("generateName", ""))


def metadata_errors(meta: dict) -> list[FieldError]:
    """Type checks of the client-writable metadata, and owner-reference completeness."""
    errors = []
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not (isinstance(value, dict)
                                      and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            errors.append(FieldError(f"metadata.{field}", "must be a map of strings to strings", value,
                                     kind="Invalid value"))
    finalizers = meta.get("finalizers")
    if finalizers is not None and not (isinstance(finalizers, list) and all(isinstance(f, str) and f
                                                                           for f in finalizers)):
        errors.append(FieldError("metadata.finalizers", "must be a list of non-empty strings", finalizers))
    refs = meta.get("ownerReferences")
    if refs is None:
        return errors
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        return errors + [FieldError("metadata.ownerReferences", "must be a list of objects", refs)]
    for i, ref in enumerate(refs):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errors.append(FieldError(f"metadata.ownerReferences[{i}].{key}", f"{key} must not be empty",
                                         kind="Required value"))
    if sum(1 for r in refs if r.get("controller")) > 1:
        errors.append(FieldError("metadata.ownerReferences", "Only one reference can have Controller set to true",
                                 refs))
    return errors


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
    return (obj.get("metadata") or {}).get("name") or ""
