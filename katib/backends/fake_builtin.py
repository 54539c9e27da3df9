"""What kube-apiserver itself does to a few core kinds before storing them, for the fake. Pure.

* Secret: `stringData` is merged into `data` (base64, its keys winning) and never stored, as
  the v1 → internal conversion does; `type` defaults to Opaque; every key must be a valid
  config key and every `data` value base64, every `stringData` value a string.
* ConfigMap: keys valid config keys, `data` values strings, `binaryData` values base64, no key
  in both.
* Namespace, on create: `status.phase` Active, `spec.finalizers` [kubernetes] and the label
  `kubernetes.io/metadata.name` set to the name (kube-apiserver ≥ 1.21 adds it, and
  namespaceSelectors match on it); on update the label is kept.

Messages are kube-apiserver's. Other kinds pass unchanged."""
from __future__ import annotations

import base64
import binascii
import re

from katib.errors import FieldError, Invalid

NAME_LABEL = "kubernetes.io/metadata.name"
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_KEY_MESSAGE = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', " \
               "or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
MAX_DATA = 1024 * 1024


def prepare(kind: str, new: dict, old: dict | None) -> dict:
    """`new` as kube-apiserver would store it (changed in place and returned); Invalid naming
    every bad field. `old` is the stored object on an update, None on a create."""
    fn = _PREPARE.get(kind)
    return new if fn is None else fn(new, old)


def _name(obj: dict) -> str:
    name = (obj.get("metadata") or {}).get("name")
    return name if isinstance(name, str) else ""


def _key_errors(field: str, key) -> list[FieldError]:
    if not isinstance(key, str) or not _CONFIG_KEY.match(key) or key in (".", ".."):
        return [FieldError(f"{field}[{key}]" if isinstance(key, str) else field, _KEY_MESSAGE, key)]
    return []


def _secret(new: dict, old: dict | None) -> dict:
    errors: list[FieldError] = []
    data = new.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid([FieldError("data", "must be an object of base64-encoded values", data)],
                      kind="Secret", name=_name(new))
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        errors += _key_errors("data", key)
        raw = _base64(value)
        if raw is None:
            errors.append(FieldError(f"data[{key}]", "must be a base64-encoded string", value))
        else:
            decoded[key] = raw
    strings = new.pop("stringData", None)
    if strings is not None:
        if not isinstance(strings, dict):
            errors.append(FieldError("stringData", "must be an object of strings", strings))
        else:
            for key, value in strings.items():
                errors += _key_errors("stringData", key)
                if not isinstance(value, str):
                    errors.append(FieldError(f"stringData[{key}]", "must be a string", value))
                else:
                    decoded[key] = value.encode()
    if sum(len(v) for v in decoded.values()) > MAX_DATA:
        errors.append(FieldError("data", f"Too long: may not be more than {MAX_DATA} bytes", kind=""))
    kind = new.get("type")
    if kind in (None, ""):
        new["type"] = kind = "Opaque"
    if not isinstance(kind, str):
        errors.append(FieldError("type", "must be a string", kind))
    elif old is not None and kind != (old.get("type") or "Opaque"):
        errors.append(FieldError("type", "field is immutable", kind))
    if errors:
        raise Invalid(errors, kind="Secret", name=_name(new))
    if decoded or "data" in new:
        new["data"] = {k: base64.b64encode(v).decode() for k, v in decoded.items()}
    return new


def _configmap(new: dict, old: dict | None) -> dict:
    errors: list[FieldError] = []
    data, binary = new.get("data"), new.get("binaryData")
    for field, values in (("data", data), ("binaryData", binary)):
        if values is None:
            continue
        if not isinstance(values, dict):
            errors.append(FieldError(field, "must be an object", values))
            continue
        for key, value in values.items():
            errors += _key_errors(field, key)
            if field == "data" and not isinstance(value, str):
                errors.append(FieldError(f"data[{key}]", "must be a string", value))
            if field == "binaryData" and _base64(value) is None:
                errors.append(FieldError(f"binaryData[{key}]", "must be a base64-encoded string", value))
    if isinstance(data, dict) and isinstance(binary, dict):
        errors += [FieldError(f"data[{key}]", "duplicate of key present in binaryData", key)
                   for key in data if key in binary]
    if errors:
        raise Invalid(errors, kind="ConfigMap", name=_name(new))
    return new


def _namespace(new: dict, old: dict | None) -> dict:
    name = _name(new)
    labels = new.setdefault("metadata", {}).get("labels")
    if not isinstance(labels, dict):
        labels = new["metadata"]["labels"] = {}
    labels[NAME_LABEL] = name
    if old is None:
        spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
        spec.setdefault("finalizers", ["kubernetes"])
        new["spec"] = spec
        new["status"] = {"phase": "Active"}
    return new


def _base64(value) -> bytes | None:
    """The bytes of a base64 string; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


_PREPARE = {"Secret": _secret, "ConfigMap": _configmap, "Namespace": _namespace}
