"""A container's environment from Secrets and ConfigMaps, as the kubelet fills it in before the
container starts: `envFrom` (configMapRef, secretRef, with `prefix` and `optional`) and `env`
entries with `valueFrom.secretKeyRef` or `valueFrom.configMapKeyRef`. Pure: objects come from
`lookup(kind, namespace, name)` (None when there is none).

The result is the container with literal `env` only for those: the envFrom variables first
(sources in order, a later one winning), then the container's own entries, which win over
them (an optional reference that finds nothing leaves an envFrom value as it is), as the
kubelet orders them; a key that cannot be a variable name (empty, or with `=`) is
left out. Secret values are decoded from base64 (bytes that are not UTF-8 kept as they are).
A missing object or key that is not `optional` raises StartError with the kubelet's words
(`secret "db" not found`, `couldn't find key url in Secret default/db`); on a cluster the pod
would wait in CreateContainerConfigError, here the container does not start and says why.
Other `valueFrom` kinds (fieldRef, resourceFieldRef) are left for the caller."""
from __future__ import annotations

import base64
import binascii
from typing import Callable

from katib.backends.local_process import StartError
from katib.errors import NotFound

Lookup = Callable[[str, str, str], "dict | None"]
_REFS = (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap"))
_SOURCES = (("secretRef", "Secret"), ("configMapRef", "ConfigMap"))


def backend_lookup(backend) -> Lookup:
    """The lookup of a backend's stored objects (None for one that does not exist)."""
    def lookup(kind: str, namespace: str, name: str) -> dict | None:
        try:
            return backend.get(kind, namespace, name)
        except NotFound:
            return None
    return lookup


def needs_lookup(container: dict) -> bool:
    if container.get("envFrom"):
        return True
    return any(isinstance(e, dict) and isinstance(e.get("valueFrom"), dict)
               and any(ref in e["valueFrom"] for ref, _ in _REFS) for e in container.get("env") or ())


def resolve(container: dict, namespace: str, lookup: Lookup) -> dict:
    """`container` with its Secret and ConfigMap references filled in (a new dict; the input
    is not changed). Containers that reference none come back as they are."""
    if not needs_lookup(container):
        return container
    name = container.get("name") or "(unnamed)"
    out = dict(container)
    env: list[dict] = []
    sources = container.get("envFrom") or []
    if not isinstance(sources, list):
        raise StartError(f"container {name}: envFrom must be a list")
    from_sources: dict[str, str] = {}
    for i, source in enumerate(sources):
        from_sources.update(_source_values(name, i, source, namespace, lookup))
    env += [{"name": k, "value": v} for k, v in from_sources.items()]
    own = container.get("env") or []
    if not isinstance(own, list):
        raise StartError(f"container {name}: env must be a list")
    for item in own:
        ref = _reference(item)
        if ref is None:
            env.append(item)
            continue
        field, kind, spec = ref
        value = _key_value(name, item.get("name"), field, kind, spec, namespace, lookup)
        if value is not None:
            env.append({"name": item["name"], "value": value})
    out.pop("envFrom", None)
    out["env"] = env
    return out


def _reference(item) -> tuple[str, str, dict] | None:
    if not isinstance(item, dict) or not isinstance(item.get("valueFrom"), dict):
        return None
    for field, kind in _REFS:
        spec = item["valueFrom"].get(field)
        if spec is not None:
            return field, kind, spec if isinstance(spec, dict) else {}
    return None


def _source_values(container: str, index: int, source, namespace: str, lookup: Lookup) -> dict[str, str]:
    if not isinstance(source, dict):
        raise StartError(f"container {container}: envFrom[{index}] must be an object")
    for field, kind in _SOURCES:
        spec = source.get(field)
        if spec is None:
            continue
        spec = spec if isinstance(spec, dict) else {}
        obj = _object(container, f"envFrom[{index}].{field}", kind, spec, namespace, lookup)
        if obj is None:
            return {}
        prefix = str(source.get("prefix") or "")
        values = _values(kind, obj)
        return {prefix + k: v for k, v in values.items() if k and "=" not in prefix + k and "\0" not in k}
    raise StartError(f"container {container}: envFrom[{index}]: one of configMapRef or secretRef is required")


def _key_value(container: str, var, field: str, kind: str, spec: dict, namespace: str,
               lookup: Lookup) -> str | None:
    key = spec.get("key")
    if not isinstance(key, str) or not key:
        raise StartError(f"container {container}: env {var}: valueFrom.{field}.key is required")
    obj = _object(container, f"env {var}", kind, spec, namespace, lookup)
    if obj is None:
        return None
    values = _values(kind, obj)
    if key not in values:
        if spec.get("optional"):
            return None
        raise StartError(f"container {container}: env {var}: couldn't find key {key} in {kind} "
                         f"{namespace}/{spec.get('name')}")
    return values[key]


def _object(container: str, where: str, kind: str, spec: dict, namespace: str, lookup: Lookup) -> dict | None:
    ref = spec.get("name")
    if not isinstance(ref, str) or not ref:
        raise StartError(f"container {container}: {where}: the {kind}'s name is required")
    obj = lookup(kind, namespace, ref)
    if obj is None and not spec.get("optional"):
        raise StartError(f'container {container}: {where}: {kind.lower()} "{ref}" not found')
    return obj


def _values(kind: str, obj: dict) -> dict[str, str]:
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        return {}
    if kind == "ConfigMap":
        return {k: v for k, v in data.items() if isinstance(v, str)}
    out = {}
    for k, v in data.items():
        try:
            out[k] = base64.b64decode(str(v), validate=True).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            continue
    return out
