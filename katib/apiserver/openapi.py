"""OpenAPI v3 documents (`GET /openapi/v3`, `/openapi/v3/<api|apis/group>/<version>`) for kubectl.

What kubectl 1.37 reads from them, found by running it (tests/test_openapi.py):
* `apply`/`create`/`replace` look for the PATCH operation of the object's kind (its
  `x-kubernetes-group-version-kind`) and its `fieldValidation` parameter; finding it, kubectl
  leaves field validation to the server (`?fieldValidation=Strict`) and never fetches the
  OpenAPI v2 document for client-side validation.
* `explain` finds the schema tagged with the kind's group-version-kind in components.schemas and
  follows `$ref`s: Katib's kinds carry their full schema (katib.api.crd_schema, descriptions
  included) and the real ObjectMeta (openapi_meta.json: the descriptions of the Kubernetes API,
  as the `kubernetes` client's models carry them); built-in kinds are objects that keep any field.
Pure functions, cached: the documents only change with the code."""
from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from katib.api import crd_schema
from katib.backends.resources import RESOURCES, Resource

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_REF = "#/components/schemas/"
KUBERNETES_VERSION = "v1.37.0"


def group_versions() -> list[tuple[str, str]]:
    """(group, version) of every kind we serve; group "" is the core API."""
    return sorted({(r.group, r.version) for r in RESOURCES.values()})


def path_of(group: str, version: str) -> str:
    """`api/v1` or `apis/<group>/<version>`, as the index and the document URL name them."""
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


def v3_index() -> dict[str, Any]:
    """GET /openapi/v3: where each group-version's document is, with its content hash."""
    return {"paths": {path_of(g, v): {"serverRelativeURL": f"/openapi/v3/{path_of(g, v)}?hash={document_hash(g, v)}"}
                      for g, v in group_versions()}}


@functools.cache
def document_hash(group: str, version: str) -> str:
    text = json.dumps(v3_document(group, version), sort_keys=True).encode()
    return hashlib.sha512(text).hexdigest().upper()


def v3_document(group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version, None for one we do not serve.
    A fresh copy each call (callers may add to it)."""
    doc = _document(group, version)
    return None if doc is None else copy.deepcopy(doc)


@functools.cache
def _document(group: str, version: str) -> dict[str, Any] | None:
    kinds = [r for r in RESOURCES.values() if (r.group, r.version) == (group, version)]
    if not kinds:
        return None
    schemas: dict[str, Any] = dict(meta_schemas())
    paths: dict[str, Any] = {}
    for resource in sorted(kinds, key=lambda r: r.kind):
        name = schema_name(resource)
        schemas[name] = _kind_schema(resource)
        schemas[name + "List"] = _list_schema(resource, name)
        paths.update(_paths(resource, name))
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": paths,
            "components": {"schemas": schemas,
                           "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token "
                                               "authentication", "name": "authorization", "in": "header"}}},
            "security": [{"BearerToken": []}]}


@functools.cache
def meta_schemas() -> dict[str, Any]:
    """ObjectMeta, ListMeta, Status, DeleteOptions and what they reference."""
    return json.loads((Path(__file__).with_name("openapi_meta.json")).read_text())


def schema_name(resource: Resource) -> str:
    """The name kube-apiserver gives the kind's schema: reversed group domain, version, kind
    (`org.kubeflow.v1alpha3.Experiment`, `io.k8s.api.batch.v1.Job`)."""
    if resource.group == "" or "." not in resource.group or resource.group.endswith(".k8s.io"):
        group = resource.group.removesuffix(".k8s.io").split(".")[0] if resource.group else "core"
        return f"io.k8s.api.{group}.{resource.version}.{resource.kind}"
    return ".".join(reversed(resource.group.split("."))) + f".{resource.version}.{resource.kind}"


def _gvk(resource: Resource, kind: str | None = None) -> dict[str, str]:
    return {"group": resource.group, "kind": kind or resource.kind, "version": resource.version}


def _kind_schema(resource: Resource) -> dict[str, Any]:
    if resource.kind in crd_schema.PLURALS:
        schema = crd_schema.resource_schema(resource.kind)
        schema["properties"]["metadata"] = {
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/"
                           "devel/sig-architecture/api-conventions.md#metadata",
            "allOf": [{"$ref": _REF + META + "ObjectMeta"}]}
    else:
        schema = {"description": f"{resource.kind} ({resource.api_version}): accepted as given; "
                                 "this server does not publish its fields.",
                  "type": "object", "x-kubernetes-preserve-unknown-fields": True,
                  "properties": {
                      "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                      "metadata": {"allOf": [{"$ref": _REF + META + "ObjectMeta"}]}}}
    schema["x-kubernetes-group-version-kind"] = [_gvk(resource)]
    return schema


def _list_schema(resource: Resource, name: str) -> dict[str, Any]:
    return {"description": f"{resource.kind}List is a list of {resource.kind}.",
            "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "items": {"type": "array", "items": {"allOf": [{"$ref": _REF + name}]}},
                           "metadata": {"allOf": [{"$ref": _REF + META + "ListMeta"}]}},
            "x-kubernetes-group-version-kind": [_gvk(resource, resource.kind + "List")]}


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _query("fieldManager", "A name associated with the actor or entity that is making these changes.")
_FIELD_VALIDATION = _query("fieldValidation", "How the server handles unknown or duplicate fields in the "
                           "request: Ignore, Warn or Strict.")
_FORCE = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
_WRITE = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
# No strategic-merge-patch+json: that would send kubectl's apply to these schemas for patch metadata
# (list merge keys), which they do not carry; kubectl then uses its compiled-in types (built-in
# kinds) or a JSON merge patch (Katib's, as for any custom resource).
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")


def _operation(resource: Resource, action: str, name: str, *, body: str | None = None,
               params: list[dict] | None = None, response: str | None = None) -> dict[str, Any]:
    ref = {"$ref": _REF + (response or name)}
    op: dict[str, Any] = {
        "description": f"{action} {resource.kind}",
        "operationId": f"{action}{resource.kind}",
        "tags": [path_of(resource.group, resource.version).replace("/", "_")],
        "parameters": params or [],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource),
    }
    if body is not None:
        types = _PATCH_TYPES if action == "patch" else ("*/*",)
        schema = {"type": "object"} if action == "patch" else {"$ref": _REF + body}
        op["requestBody"] = {"content": {t: {"schema": schema} for t in types}, "required": True}
    return op


def _paths(resource: Resource, name: str) -> dict[str, Any]:
    base = "/" + path_of(resource.group, resource.version)
    collection = f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced \
        else f"{base}/{resource.plural}"
    scope = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}] \
        if resource.namespaced else []
    named = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    item_ops = {
        "get": _operation(resource, "get", name),
        "put": _operation(resource, "put", name, body=name, params=_WRITE),
        "patch": _operation(resource, "patch", name, body=name, params=[*_WRITE, _FORCE]),
        "delete": _operation(resource, "delete", name, body=META + "DeleteOptions", params=[_DRY_RUN],
                             response=META + "Status"),
    }
    paths = {
        collection: {"get": _operation(resource, "list", name, response=name + "List"),
                     "post": _operation(resource, "post", name, body=name, params=_WRITE),
                     "parameters": scope},
        f"{collection}/{{name}}": {**item_ops, "parameters": scope + named},
    }
    if resource.namespaced:
        paths[f"{base}/{resource.plural}"] = {"get": _operation(resource, "list", name, response=name + "List")}
    if resource.has_status:
        paths[f"{collection}/{{name}}/status"] = {
            "get": _operation(resource, "get", name),
            "put": _operation(resource, "put", name, body=name, params=_WRITE),
            "patch": _operation(resource, "patch", name, body=name, params=[*_WRITE, _FORCE]),
            "parameters": scope + named}
    return paths
