"""Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
decoded to the JSON form the rest of the API works on.

kubectl's typed commands (`kubectl create namespace|configmap|secret|serviceaccount|role|
rolebinding|clusterrole|clusterrolebinding`) send built-in objects this way and do not retry
with JSON. The envelope is the four bytes `k8s\\0`, then a runtime.Unknown message
(typeMeta, raw, contentEncoding, contentType) whose `raw` is the object's own message. Field
numbers below are those of k8s.io/api and k8s.io/apimachinery's generated.proto files; only
the kinds those commands create are described. Fields this table does not know are skipped,
as the Go decoder skips them. Responses stay JSON: kubectl lists it in Accept beside protobuf."""
from __future__ import annotations

import base64
import datetime
import json

from collector.wire import BYTES as _BYTES, VARINT as _VARINT, WireError, fields as _fields
from katib.apiserver.status import ApiError, bad_request

MEDIA = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# message name -> {field number: (JSON name, type)}. A type is a scalar ("string", "bytes",
# "int", "bool"), "time" (meta/v1 Time, as RFC 3339 in JSON), "fields" (FieldsV1: raw JSON),
# another message's name, "[]T" (repeated T) or "{}string" / "{}bytes" (a map with string keys).
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "raw"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"),
                   7: ("generation", "int"), 8: ("creationTimestamp", "time"),
                   9: ("deletionTimestamp", "time"), 10: ("deletionGracePeriodSeconds", "int"),
                   11: ("labels", "{}string"), 12: ("annotations", "{}string"),
                   13: ("ownerReferences", "[]OwnerReference"), 14: ("finalizers", "[]string"),
                   17: ("managedFields", "[]ManagedFieldsEntry")},
    "OwnerReference": {5: ("apiVersion", "string"), 1: ("kind", "string"), 3: ("name", "string"),
                       4: ("uid", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ManagedFieldsEntry": {1: ("manager", "string"), 2: ("operation", "string"), 3: ("apiVersion", "string"),
                           4: ("time", "time"), 6: ("fieldsType", "string"), 7: ("fieldsV1", "fields"),
                           8: ("subresource", "string")},
    "LabelSelector": {1: ("matchLabels", "{}string"), 2: ("matchExpressions", "[]LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "[]string")},
    # core/v1
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "NamespaceStatus": {1: ("phase", "string"), 2: ("conditions", "[]NamespaceCondition")},
    "NamespaceCondition": {1: ("type", "string"), 2: ("status", "string"), 4: ("lastTransitionTime", "time"),
                           5: ("reason", "string"), 6: ("message", "string")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 4: ("immutable", "bool"), 2: ("data", "{}string"),
                  3: ("binaryData", "{}bytes")},
    "Secret": {1: ("metadata", "ObjectMeta"), 5: ("immutable", "bool"), 2: ("data", "{}bytes"),
               4: ("stringData", "{}string"), 3: ("type", "string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "[]ObjectReference"),
                       3: ("imagePullSecrets", "[]LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                        4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("resourceVersion", "string"),
                        7: ("fieldPath", "string")},
    "LocalObjectReference": {1: ("name", "string")},
    # rbac.authorization.k8s.io/v1
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule"),
                    3: ("aggregationRule", "AggregationRule")},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "PolicyRule": {1: ("verbs", "[]string"), 2: ("apiGroups", "[]string"), 3: ("resources", "[]string"),
                   4: ("resourceNames", "[]string"), 5: ("nonResourceURLs", "[]string")},
    "Subject": {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"), 4: ("namespace", "string")},
    "RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
    "AggregationRule": {1: ("clusterRoleSelectors", "[]LabelSelector")},
}

# (apiVersion, kind) of the objects decoded: the kinds kubectl's typed create commands send.
KINDS = {("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"),
         ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
         ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")}

class Malformed(WireError):
    """The bytes are not a well-formed protobuf message of the expected shape."""


def decode(raw: bytes, *, what: str = "the request body") -> dict:
    """The object in `raw` (envelope included) as JSON data. 400 when the bytes are malformed,
    415 when the object is of a kind not described here (the client can send it as JSON)."""
    if not raw.startswith(MAGIC):
        raise bad_request(f"{what} is not Kubernetes protobuf: it does not start with the bytes k8s\\x00")
    try:
        envelope = _message(memoryview(raw)[len(MAGIC):], "Unknown")
    except WireError as err:
        raise bad_request(f"{what} is not valid protobuf: {err}") from None
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if envelope.get("contentEncoding"):
        raise ApiError(415, "UnsupportedMediaType",
                       f'{what}: protobuf content encoding "{envelope["contentEncoding"]}" is not supported')
    if not kind:
        raise bad_request(f"{what} is protobuf without the object's kind (runtime.Unknown.typeMeta)")
    if (api_version, kind) not in KINDS:
        shown = f"{api_version} {kind}".strip()
        raise ApiError(415, "UnsupportedMediaType",
                       f"protobuf request bodies are decoded for {', '.join(sorted(k for _, k in KINDS))} "
                       f"only; send {shown} as application/json (for example: kubectl create ... "
                       f"--dry-run=client -o yaml | kubectl apply -f -)")
    try:
        obj = _message(envelope.get("raw", memoryview(b"")), kind)
    except WireError as err:
        raise bad_request(f"{what} is not a valid {kind} in protobuf: {err}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}


def _message(buf: memoryview, name: str) -> dict:
    schema = MESSAGES[name]
    out: dict = {}
    for number, wire, value in _fields(buf):
        if number not in schema:
            continue
        key, kind = schema[number]
        if kind.startswith("[]"):
            out.setdefault(key, []).append(_value(value, wire, kind[2:], key))
        elif kind.startswith("{}"):
            entry_key, entry_value = _map_entry(_bytes(value, wire, key), kind[2:], key)
            out.setdefault(key, {})[entry_key] = entry_value
        else:
            out[key] = _value(value, wire, kind, key)
    return {k: v for k, v in out.items() if not _empty(v)}


def _map_entry(buf: memoryview, kind: str, key: str) -> tuple[str, object]:
    entry = {1: "", 2: ""}
    for number, wire, value in _fields(buf):
        if number in (1, 2):
            entry[number] = _value(value, wire, "string" if number == 1 else kind, key)
    return entry[1], entry[2]


def _bytes(value, wire: int, key: str) -> memoryview:
    if wire != _BYTES:
        raise Malformed(f"{key}: expected a length-delimited field, found wire type {wire}")
    return value


def _value(value, wire: int, kind: str, key: str):
    if kind in ("int", "bool"):
        if wire != _VARINT:
            raise Malformed(f"{key}: expected a varint, found wire type {wire}")
        if kind == "bool":
            return value != 0
        return value - (1 << 64) if value >= 1 << 63 else value   # int64 two's complement
    raw = _bytes(value, wire, key)
    if kind == "raw":
        return raw
    if kind == "string":
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"{key}: a string is not UTF-8") from None
    if kind == "bytes":
        return base64.b64encode(raw).decode("ascii")
    if kind == "time":
        return _time(_message(raw, "Time"))
    if kind == "fields":               # FieldsV1: its one field holds the JSON text itself
        text = b"".join(bytes(v) for n, w, v in _fields(raw) if n == 1 and w == _BYTES)
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise Malformed(f"{key}: not JSON") from None
    return _message(raw, kind)


def _time(parts: dict) -> str | None:
    seconds = parts.get("seconds", 0)
    if not seconds and not parts.get("nanos"):
        return None                      # the zero Time: JSON null, dropped as empty
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"a time of {seconds} seconds is out of range") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _empty(value) -> bool:
    """Go's omitempty: "", 0, nil and empty maps and lists are left out of the JSON, and so are
    empty structs here. A bool that was sent is kept: those fields are pointers in the Go types."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, str, dict, list)):
        return not value
    return value is None
