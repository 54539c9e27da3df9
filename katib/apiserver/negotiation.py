"""Media types in and out: request bodies (JSON, YAML, the four patch types) and the response
form a client asks for (plain JSON, or a meta.k8s.io/v1 Table for `kubectl get`)."""
from __future__ import annotations

import datetime

import yaml

from katib.apiserver import protobuf
from katib.apiserver.status import ApiError, bad_request
from katib.yamljson import InputRefused, json_document, yaml_error_text, yaml_first_document

JSON = "application/json"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
APPLY_CBOR = "application/apply-patch+cbor"
BODY_TYPES = (JSON, YAML, protobuf.MEDIA)
PATCH_TYPES = (MERGE, STRATEGIC, JSON_PATCH, APPLY)
TABLE_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _media(text: str) -> tuple[str, dict[str, str]]:
    base, *params = [p.strip() for p in text.split(";")]
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip()
    return base.lower(), out


def wants_table(accept: str | None) -> bool:
    """True when the first acceptable form the client lists is a meta.k8s.io Table in JSON."""
    for item in (accept or "").split(","):
        base, params = _media(item)
        if not base:
            continue
        if params.get("as") == "Table":
            if base == JSON and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                return True
            continue
        if params.get("as"):   # another transformation (PartialObjectMetadata...): not served
            continue
        if base in (JSON, "*/*", "application/*"):
            return False
    if not accept or not accept.strip():
        return False
    for item in accept.split(","):
        base, params = _media(item)
        if base in (JSON, "*/*", "application/*") and not params.get("as"):
            return False
    raise ApiError(406, "NotAcceptable", f"only the following media types are accepted: {JSON}, "
                                         f"{TABLE_TYPE}")


def content_type(header: str | None) -> str:
    return _media(header or JSON)[0] or JSON


def decode_body(raw: bytes, media: str, *, what: str = "the request body"):
    """The body as plain JSON data; 400 BadRequest when it is not JSON/YAML (or protobuf of a kind
    kubectl's typed commands send, see katib.apiserver.protobuf), 415 for other types."""
    if media == protobuf.MEDIA:
        return protobuf.decode(raw, what=what)
    if media in (JSON, MERGE, STRATEGIC, JSON_PATCH):
        try:
            return json_document(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request(f"{what} is not UTF-8 text") from None
        except (ValueError, InputRefused) as err:
            raise bad_request(f"{what} is not valid JSON: {_one_line(err)}") from None
    if media in (YAML, APPLY, "application/x-yaml", "text/yaml"):
        try:
            return yaml_first_document(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request(f"{what} is not UTF-8 text") from None
        except yaml.YAMLError as err:
            raise bad_request(f"{what} is not valid YAML: {yaml_error_text(err)}") from None
    raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted '
                                                f'media types include: {", ".join(BODY_TYPES + PATCH_TYPES)}')


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ---- a minimal Table, until (or where) katib.apiserver.tables is not there ----------------------
def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<unknown>"
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def minimal_table(kind: str, items: list[dict], *, include_object: str = "Metadata",
                  list_meta: dict | None = None) -> dict:
    rows = []
    for obj in items:
        row = {"cells": [obj["metadata"].get("name", ""), age(obj["metadata"].get("creationTimestamp"))]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": dict(list_meta or {}),
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}],
            "rows": rows}
