"""PATCH bodies applied to a stored object: JSON merge patch (RFC 7386), JSON patch (RFC 6902,
by the `jsonpatch` library), strategic merge patch and server-side apply.

Strategic merge patch knows the merge keys of the built-in fields kubectl's patches touch
(containers, env, ports, volumes, volumeMounts, ownerReferences, conditions...; lists are
otherwise replaced) and its directives (`$patch`, `$setElementOrder/`, `$retainKeys`,
`$deleteFromPrimitiveList/`). Server-side apply merges the applied configuration into the live
object the same way and records the manager's fields in `metadata.managedFields`; fields the
manager applied before and no longer applies are removed. Divergence: apply conflicts between
managers are not detected (every apply behaves as `--force-conflicts`)."""
from __future__ import annotations

import copy
import datetime

import jsonpatch

# Built-in list fields merged element by element, with the key that identifies an element.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "env": ("name",), "volumes": ("name",), "volumeMounts": ("mountPath",), "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"), "imagePullSecrets": ("name",), "ownerReferences": ("uid",),
    "conditions": ("type",), "hostAliases": ("ip",), "topologySpreadConstraints": ("topologyKey",),
    "subsets": (), "secrets": ("name",),
}
PRIMITIVE_SETS = frozenset({"finalizers"})


class PatchError(ValueError):
    """The patch cannot be applied (bad shape, failed test op): a 422 or 400 for the client."""


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: dict, patch) -> dict:
    if not isinstance(patch, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(target, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError,
            IndexError) as err:
        raise PatchError(f"the JSON patch could not be applied: {err}") from None


def _merge_key(field: str, items: list) -> str | None:
    for key in MERGE_KEYS.get(field, ()):
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def strategic_merge(target, patch, field: str = ""):
    """`patch` (a strategic merge patch) applied to `target`; neither is modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(out.get(name), list) and isinstance(value, list):
                out[name] = [v for v in out[name] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list):
            out[key] = _merge_list(key, out.get(key), value)
        else:
            out[key] = strategic_merge(out.get(key), value, key)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(field: str, live, patch: list) -> list:
    live = live if isinstance(live, list) else []
    if field in PRIMITIVE_SETS:
        return live + [v for v in patch if v not in live]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch"))]
    key = _merge_key(field, [i for i in patch if isinstance(i, dict) and i.get("$patch") != "delete"] or patch)
    if key is None:
        return copy.deepcopy(patch)
    out = list(live)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{field}: every element of a merged list must be an object")
        index = next((i for i, e in enumerate(out) if isinstance(e, dict) and e.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append(strategic_merge({}, item, field))
        else:
            out[index] = strategic_merge(out[index], item, field)
    return out


# ---- server-side apply ------------------------------------------------------------------------
def fields_of(obj, field: str = "") -> dict:
    """The fieldsV1 set of an applied configuration: `f:<name>` for map keys, `k:{...}` for
    elements of merged lists; other lists are atomic (owned as a whole)."""
    if not isinstance(obj, dict):
        return {}
    out: dict = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out[f"f:{key}"] = fields_of(value, key)
        elif isinstance(value, list) and _merge_key(key, value):
            mk = _merge_key(key, value)
            out[f"f:{key}"] = {"k:" + _key_json(mk, item): {".": {}, **fields_of(item, key)} for item in value}
        else:
            out[f"f:{key}"] = {}
    return out


def _key_json(key: str, item: dict) -> str:
    import json
    return json.dumps({key: item.get(key)}, separators=(",", ":"))


def _remove_unowned(live, before: dict, after: dict):
    """Remove from `live` the map fields listed in `before` but not in `after`."""
    if not isinstance(live, dict):
        return live
    out = dict(live)
    for fkey, sub in before.items():
        if not fkey.startswith("f:"):
            continue
        name = fkey[2:]
        if fkey not in after:
            out.pop(name, None)
        elif isinstance(out.get(name), dict) and sub:
            out[name] = _remove_unowned(out[name], sub, after[fkey])
    return out


IDENTITY = ("apiVersion", "kind")
SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
               "deletionGracePeriodSeconds", "managedFields", "selfLink")


def apply_configuration(live: dict | None, applied: dict, *, manager: str, subresource: str = "") -> dict:
    """The object a server-side apply by `manager` stores (a create when `live` is None)."""
    applied = copy.deepcopy(applied)
    meta = applied.setdefault("metadata", {})
    for field in SERVER_META:
        meta.pop(field, None)
    owned = fields_of({k: v for k, v in applied.items() if k not in IDENTITY})
    if live is None:
        result = applied
        entries: list = []
    else:
        entries = [e for e in (live.get("metadata") or {}).get("managedFields") or ()
                   if not (e.get("manager") == manager and e.get("operation") == "Apply"
                           and e.get("subresource", "") == subresource)]
        previous = next((e for e in (live.get("metadata") or {}).get("managedFields") or ()
                         if e.get("manager") == manager and e.get("operation") == "Apply"
                         and e.get("subresource", "") == subresource), None)
        base = copy.deepcopy(live)
        if previous is not None:
            base = _remove_unowned(base, previous.get("fieldsV1") or {}, owned)
        result = strategic_merge(base, {k: v for k, v in applied.items() if k not in IDENTITY})
    entry = {"manager": manager, "operation": "Apply", "apiVersion": applied.get("apiVersion", ""),
             "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "fieldsType": "FieldsV1", "fieldsV1": owned}
    if subresource:
        entry["subresource"] = subresource
    result.setdefault("metadata", {})["managedFields"] = entries + [entry]
    return result
