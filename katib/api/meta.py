"""Kubernetes' object-metadata rules, as pure functions over the JSON form.

One implementation for both places that need it: the fake API server refuses what a real one
would (katib/backends/fake_meta.py), and Experiment admission reports the same problems together
with the spec's (katib/api/validation.py), so `validate` and `run` agree. Every function returns
a list of FieldError and never raises, whatever the input holds (a name may be a number)."""
from __future__ import annotations

import re
from typing import Any

from katib.errors import FieldError
from katib.serde import abbreviated as _shape

MAX_NAME = 253           # DNS-1123 subdomain
MAX_LABEL = 63           # DNS-1123 label; also label values and the name part of label keys
GENERATED_SUFFIX = 5     # characters an API server appends to generateName
GENERATE_PREFIX = MAX_LABEL - GENERATED_SUFFIX

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
SUBDOMAIN_TEXT = ("must be a lowercase RFC 1123 subdomain: lower case alphanumerics, '-' or '.', "
                  "starting and ending with an alphanumeric")
_LABEL_VALUE_TEXT = ("a label value must be empty or consist of alphanumerics, '-', '_' or '.', "
                     "starting and ending with an alphanumeric")


def is_subdomain(name: str) -> bool:
    return len(name) <= MAX_NAME and _SUBDOMAIN.fullmatch(name) is not None


def create_errors(meta: Any, *, namespaced: bool = True) -> list[FieldError]:
    """What an API server refuses in the metadata of an object to create."""
    if not isinstance(meta, dict):
        return [FieldError("metadata", "must be an object", _shape(meta))]
    errors = []
    if meta.get("resourceVersion"):
        errors.append(FieldError("metadata.resourceVersion", "may not be set on objects to be created",
                                 kind="Forbidden"))
    return errors + identity_errors(meta, namespaced=namespaced) + metadata_errors(meta)


def identity_errors(meta: dict, *, namespaced: bool = True) -> list[FieldError]:
    """name (or generateName) and namespace: types, presence, DNS-1123 syntax."""
    errors = [FieldError(f"metadata.{key}", "must be a string", _shape(meta[key]))
              for key in ("name", "generateName", "namespace")
              if meta.get(key) is not None and not isinstance(meta[key], str)]
    if errors:
        return errors
    name, prefix, ns = meta.get("name"), meta.get("generateName"), meta.get("namespace")
    if name:
        errors += name_errors(name)
    elif prefix:
        # The generated name is the prefix (cut to fit) plus random lowercase alphanumerics.
        if not _SUBDOMAIN.fullmatch(prefix[:GENERATE_PREFIX] + "a"):
            errors.append(FieldError("metadata.generateName", SUBDOMAIN_TEXT, prefix))
    else:
        errors.append(FieldError("metadata.name", "name or generateName is required", kind="Required value"))
    if namespaced and ns and (len(ns) > MAX_LABEL or not _LABEL.fullmatch(ns)):
        errors.append(FieldError("metadata.namespace", "must be a lowercase RFC 1123 label", ns))
    return errors


def name_errors(name: str, *, path: str = "metadata.name") -> list[FieldError]:
    if len(name) > MAX_NAME:
        return [FieldError(path, f"must be no more than {MAX_NAME} characters", name)]
    if not _SUBDOMAIN.fullmatch(name):
        return [FieldError(path, SUBDOMAIN_TEXT, name)]
    return []


def metadata_errors(meta: dict) -> list[FieldError]:
    """The client-writable metadata: labels, annotations, finalizers, ownerReferences."""
    errors = _label_errors(meta.get("labels")) + _annotation_errors(meta.get("annotations"))
    finalizers = meta.get("finalizers")
    if finalizers is not None and not (isinstance(finalizers, list) and all(isinstance(f, str) and f
                                                                           for f in finalizers)):
        errors.append(FieldError("metadata.finalizers", "must be a list of non-empty strings", _shape(finalizers)))
    return errors + _owner_errors(meta.get("ownerReferences"))


def _string_map_errors(value: Any, field: str) -> list[FieldError]:
    if value is None:
        return []
    if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        return [FieldError(f"metadata.{field}", "must be a map of strings to strings", _shape(value))]
    return []


def _label_errors(labels: Any) -> list[FieldError]:
    errors = _string_map_errors(labels, "labels")
    if errors or not labels:
        return errors
    for key, value in labels.items():
        errors += qualified_name_errors(key, path="metadata.labels")
        if len(value) > MAX_LABEL:
            errors.append(FieldError(f"metadata.labels[{key}]", f"must be no more than {MAX_LABEL} characters",
                                     value))
        elif value and not _QUALIFIED.fullmatch(value):
            errors.append(FieldError(f"metadata.labels[{key}]", _LABEL_VALUE_TEXT, value))
    return errors


def _annotation_errors(annotations: Any) -> list[FieldError]:
    errors = _string_map_errors(annotations, "annotations")
    if errors or not annotations:
        return errors
    for key in annotations:
        errors += qualified_name_errors(key, path="metadata.annotations")
    return errors


def qualified_name_errors(key: str, *, path: str) -> list[FieldError]:
    """A label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not (prefix and is_subdomain(prefix)):
        return [FieldError(path, "prefix part " + SUBDOMAIN_TEXT, key)]
    if not name or len(name) > MAX_LABEL or not _QUALIFIED.fullmatch(name):
        return [FieldError(path, "name part must consist of at most 63 alphanumerics, '-', '_' or '.', "
                                 "starting and ending with an alphanumeric", key)]
    return []


def _owner_errors(refs: Any) -> list[FieldError]:
    if refs is None:
        return []
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        return [FieldError("metadata.ownerReferences", "must be a list of objects", _shape(refs))]
    errors = []
    for i, ref in enumerate(refs):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errors.append(FieldError(f"metadata.ownerReferences[{i}].{key}", f"{key} must not be empty",
                                         kind="Required value"))
    if sum(1 for r in refs if r.get("controller")) > 1:
        errors.append(FieldError("metadata.ownerReferences", "Only one reference can have Controller set to true",
                                 _shape(refs)))
    return errors
