"""The Experiment webhooks: defaulting (mutating) and validation (validating), with the same
pure admission functions the fake API applies in process (katib.api.validation).

`mutate` answers with the JSON patch from the received object to the defaulted one (RFC 6902,
computed by `jsonpatch`). `validate` refuses an invalid experiment with every field error:
a 422 `Invalid` Status with one cause per error, as kube-apiserver's own validation would
answer, so `kubectl apply` prints each of them. (Upstream answered 403 with the errors joined in
one message; docs/divergences.md.) The namespace-label gate is one of those errors when the
caller passes the namespace's labels."""
from __future__ import annotations

from typing import Callable

import jsonpatch

from katib.api.defaults import set_defaults
from katib.api.validation import validate_experiment
from katib.apiserver.status import invalid
from katib.backends.resources import RESOURCES
from katib.webhook import review as rv

EXPERIMENT = RESOURCES["Experiment"]


def _is_experiment(request: dict) -> bool:
    kind = request.get("kind") or {}
    resource = request.get("resource") or {}
    obj = request.get("object") or {}
    return (kind.get("kind") == "Experiment" or resource.get("resource") == "experiments"
            or obj.get("kind") == "Experiment")


def mutate(body, *, katib_namespace: str = "kubeflow") -> dict:
    """The answer to a mutating review of an Experiment (MalformedReview when malformed)."""
    api_version, request = rv.read_request(body)
    if request["operation"] not in ("CREATE", "UPDATE") or not _is_experiment(request):
        return rv.allow(api_version, request)
    obj = request["object"]
    defaulted = set_defaults(obj, katib_namespace=katib_namespace)
    return rv.patch(api_version, request, jsonpatch.make_patch(obj, defaulted).patch)


def validate(body, *, config, get_configmap: Callable[[str, str], dict | None],
             namespace_labels: Callable[[str], dict | None] | None = None,
             katib_namespace: str = "kubeflow") -> dict:
    """The answer to a validating review of an Experiment. `namespace_labels(ns)` gives the
    labels of the request's Namespace (None: no namespace gate, as on the fake backend)."""
    api_version, request = rv.read_request(body)
    if request["operation"] not in ("CREATE", "UPDATE") or not _is_experiment(request):
        return rv.allow(api_version, request)
    obj = request["object"]
    namespace = request.get("namespace") or (obj.get("metadata") or {}).get("namespace") or ""
    labels = namespace_labels(namespace) if namespace_labels is not None else None
    if namespace_labels is not None and labels is None:
        labels = {}
    errors = validate_experiment(obj, old=request.get("oldObject") if request["operation"] == "UPDATE" else None,
                                 config=config, get_configmap=get_configmap, namespace_labels=labels,
                                 katib_namespace=katib_namespace)
    if not errors:
        return rv.allow(api_version, request)
    name = request.get("name") or (obj.get("metadata") or {}).get("name") or ""
    err = invalid(EXPERIMENT, name, errors)
    return rv.deny(api_version, request, err.status())


def experiment_handlers(*, config, get_configmap: Callable[[str, str], dict | None],
                        namespace_labels: Callable[[str], dict | None] | None = None,
                        katib_namespace: str = "kubeflow") -> dict:
    """The server's routes for the two experiment webhooks (upstream's paths)."""
    return {
        "/mutate-experiments": lambda body: mutate(body, katib_namespace=katib_namespace),
        "/validate-experiments": lambda body: validate(body, config=config, get_configmap=get_configmap,
                                                       namespace_labels=namespace_labels,
                                                       katib_namespace=katib_namespace),
    }
