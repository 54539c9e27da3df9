"""Structural OpenAPI v3 schemas of Experiment, Trial and Suggestion, built from katib.api.types,
and the CustomResourceDefinitions of config/crds/ generated from them.

One source for three readers: the CRD manifests a cluster installs (apiextensions.k8s.io/v1:
every node typed, free-form core/v1 objects marked x-kubernetes-preserve-unknown-fields,
`metadata` left to the server), the OpenAPI v3 documents our API server publishes for kubectl
(katib/apiserver/openapi.py) and the printer columns of its Table responses
(katib/apiserver/tables.py). Upstream's v1alpha3 CRDs carried no schema at all; the printer
columns are theirs, translated from apiextensions v1beta1 (`JSONPath`) to v1 (`jsonPath`).

`python -m katib.api.crd_schema DIR` writes the three manifests into DIR; tests compare the
checked-in ones with `manifests()` so they cannot drift from the types."""
from __future__ import annotations

import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from katib.api import types as t
from katib.errors import FieldError
from katib.serde import INT32, NUMBER_AS_STRING, Struct, abbreviated, camel
from katib.yamljson import yaml_dump

GROUP, VERSION = "kubeflow.org", "v1alpha3"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"Experiment": "experiments", "Trial": "trials", "Suggestion": "suggestions"}
CATEGORIES = ["all", "kubeflow", "katib"]
FREE_FORM = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# Upstream's additionalPrinterColumns (manifests/v1alpha3/katib-controller/crd-*.yaml), in v1 form.
PRINTER_COLUMNS: dict[str, list[dict[str, str]]] = {
    "Experiment": [{"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].type"}, _AGE],
    "Trial": [{"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
              {"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"}, _AGE],
    "Suggestion": [{"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
                   {"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"},
                   {"name": "Requested", "type": "string", "jsonPath": ".spec.requests"},
                   {"name": "Assigned", "type": "string", "jsonPath": ".status.suggestionCount"}, _AGE],
}

KIND_DESCRIPTIONS = {
    "Experiment": "Experiment is the Schema for the experiments API: a hyperparameter (or architecture) "
                  "search, run as trials suggested by an algorithm.",
    "Trial": "Trial is the Schema for the trials API: one set of parameter assignments, run as a job.",
    "Suggestion": "Suggestion is the Schema for the suggestions API: the parameter assignments an "
                  "algorithm produced for an Experiment of the same name.",
}

# (type name, JSON field) → what `kubectl explain` shows; the words of the shared spec (api-v1alpha3.md).
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("ExperimentSpec", "parameters"): "Hyperparameter search space. Exactly one of parameters and nasConfig "
                                      "must be given.",
    ("ExperimentSpec", "objective"): "What to optimise. Required. Copied verbatim into every Trial.",
    ("ExperimentSpec", "algorithm"): "Suggestion algorithm name and settings. Required.",
    ("ExperimentSpec", "trialTemplate"): "Go template that renders the job manifest of each trial.",
    ("ExperimentSpec", "parallelTrialCount"): "Max number of trials that may be pending or running at once. "
                                              "Default 3, must be greater than 0.",
    ("ExperimentSpec", "maxTrialCount"): "The experiment succeeds when this many trials have completed. "
                                         "Absent: unlimited.",
    ("ExperimentSpec", "maxFailedTrialCount"): "The experiment fails when more trials than this have failed. "
                                               "Absent: unlimited.",
    ("ExperimentSpec", "metricsCollectorSpec"): "How metrics are collected; copied into every Trial. "
                                                "Default: StdOut.",
    ("ExperimentSpec", "nasConfig"): "Neural-architecture-search space (enas, darts).",
    ("ExperimentSpec", "resumePolicy"): "Never or LongRunning (default): whether a succeeded experiment can "
                                        "be restarted by raising maxTrialCount.",
    ("ParameterSpec", "name"): "Parameter name, passed to the trial template as .Name.",
    ("ParameterSpec", "parameterType"): "One of double, int, discrete, categorical.",
    ("ParameterSpec", "feasibleSpace"): "Range (min, max, step) or list of values.",
    ("FeasibleSpace", "max"): "Upper bound for int and double parameters (a string).",
    ("FeasibleSpace", "min"): "Lower bound for int and double parameters (a string).",
    ("FeasibleSpace", "list"): "Values of discrete and categorical parameters (strings).",
    ("FeasibleSpace", "step"): "Step of int and double parameters (a string).",
    ("ObjectiveSpec", "type"): "Direction: minimize or maximize.",
    ("ObjectiveSpec", "goal"): "Stop with success when the best objective value reaches it.",
    ("ObjectiveSpec", "objectiveMetricName"): "Metric that is optimised.",
    ("ObjectiveSpec", "additionalMetricNames"): "Extra metrics the collector also records.",
    ("AlgorithmSpec", "algorithmName"): "A key of the suggestion section of katib-config, e.g. random, grid, tpe.",
    ("AlgorithmSpec", "algorithmSettings"): "Name/value pairs (values are strings) the algorithm understands.",
    ("AlgorithmSpec", "earlyStopping"): "Declared by v1alpha3, used by nothing.",
    ("TrialTemplate", "retain"): "Keep the job after the trial completes (copied to trial.spec.retainRun).",
    ("TrialTemplate", "goTemplate"): "Go text/template producing one Kubernetes object.",
    ("GoTemplate", "rawTemplate"): "Inline template source; takes precedence over templateSpec.",
    ("GoTemplate", "templateSpec"): "Reference to a template stored in a ConfigMap.",
    ("TemplateSpec", "configMapName"): "ConfigMap name.",
    ("TemplateSpec", "configMapNamespace"): "ConfigMap namespace.",
    ("TemplateSpec", "templatePath"): "Key inside the ConfigMap data.",
    ("MetricsCollectorSpec", "source"): "Where metrics come from.",
    ("MetricsCollectorSpec", "collector"): "Which collector kind.",
    ("SourceSpec", "httpGet"): "core/v1 HTTPGetAction, for PrometheusMetric.",
    ("SourceSpec", "fileSystemPath"): "File or directory, for File, TensorFlowEvent and Custom.",
    ("SourceSpec", "filter"): "Custom regexes used by the StdOut and File collectors.",
    ("FilterSpec", "metricsFormat"): "RE2 regexes with two capture groups: metric name, value.",
    ("FileSystemPath", "path"): "Absolute path.",
    ("FileSystemPath", "kind"): "Directory or File.",
    ("CollectorSpec", "kind"): "StdOut, File, TensorFlowEvent, PrometheusMetric, Custom or None.",
    ("CollectorSpec", "customCollector"): "core/v1 Container injected as the sidecar for Custom.",
    ("TrialSpec", "parameterAssignments"): "The hyperparameter values chosen by the algorithm.",
    ("TrialSpec", "runSpec"): "The rendered job manifest (YAML) the trial runs.",
    ("TrialSpec", "retainRun"): "Keep the job after the trial completes.",
    ("TrialSpec", "metricsCollector"): "Copy of the experiment's metricsCollectorSpec.",
    ("SuggestionSpec", "algorithmName"): "Copy of the experiment's algorithm name.",
    ("SuggestionSpec", "requests"): "Total number of assignments the experiment wants (cumulative).",
    ("SuggestionStatus", "suggestionCount"): "Number of entries in suggestions.",
    ("SuggestionStatus", "suggestions"): "Every assignment produced, in order.",
    ("ExperimentStatus", "currentOptimalTrial"): "Best trial so far.",
    ("ExperimentStatus", "trials"): "Total number of trials of the experiment.",
    ("Condition", "type"): "Condition type, e.g. Created, Running, Succeeded, Failed.",
    ("Condition", "status"): "True, False or Unknown.",
}


# ------------------------------------------------------------------------------------- schemas

def schema_of(cls: type[Struct]) -> dict[str, Any]:
    """The structural schema of a Struct dataclass: an object with one property per field."""
    hints = get_type_hints(cls, include_extras=True)
    properties = {}
    for f in fields(cls):
        if "serde" in f.metadata:
            continue
        key = f.metadata.get("json") or camel(f.name)
        node = _schema_of_type(hints[f.name], field_name=f.name)
        text = DESCRIPTIONS.get((cls.__name__, key))
        properties[key] = {"description": text, **node} if text else node
    return {"type": "object", "properties": properties}


def _schema_of_type(tp: Any, *, field_name: str = "") -> dict[str, Any]:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *marks = get_args(tp)
        if NUMBER_AS_STRING in marks:
            return {"type": "string"}
        if INT32 in marks:
            return {"type": "integer", "format": "int32"}
        return _schema_of_type(base, field_name=field_name)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _schema_of_type(inner, field_name=field_name)
    if origin is list:
        return {"type": "array", "items": _schema_of_type(get_args(tp)[0])}
    if origin is dict:
        return dict(FREE_FORM)  # the core/v1 objects (HTTPGetAction, Container) Katib passes through
    if isinstance(tp, type) and issubclass(tp, Struct):
        return schema_of(tp)
    if tp is str:
        return dict(_TIME) if field_name.endswith("_time") else {"type": "string"}
    return {int: {"type": "integer", "format": "int64"}, float: {"type": "number", "format": "double"},
            bool: {"type": "boolean"}}[tp]


def resource_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of one kind (Experiment, Trial, Suggestion)."""
    cls = t.KINDS[kind]
    hints = get_type_hints(cls)
    spec, status = schema_of(_inner(hints["spec"])), schema_of(_inner(hints["status"]))
    return {
        "description": KIND_DESCRIPTIONS[kind],
        "type": "object",
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation "
                                          "of an object.", "type": "string"},
            "kind": {"description": "Kind is a string value representing the REST resource this object "
                                    "represents.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": {"description": f"{kind}Spec: what the user asks for.", **spec},
            "status": {"description": f"{kind}Status: what the controllers observed.", **status},
        },
    }


def _inner(tp: Any) -> type:
    return next(a for a in get_args(tp) if a is not type(None))


def crd(kind: str) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    plural = PLURALS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower(), "categories": list(CATEGORIES)},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "additionalPrinterColumns": [dict(c) for c in PRINTER_COLUMNS[kind]],
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": resource_schema(kind)},
            }],
        },
    }


def manifests() -> dict[str, str]:
    """File name under config/crds/ → its YAML text."""
    header = "# Generated by `python -m katib.api.crd_schema config/crds` from katib/api/types.py: do not edit.\n"
    return {f"{PLURALS[kind]}.{GROUP}.yaml": header + yaml_dump(crd(kind)) for kind in PLURALS}


# ----------------------------------------------------------------------------------- validation

def validate(schema: dict[str, Any], value: Any, *, path: str = "") -> list[FieldError]:
    """What a structural schema refuses in `value`: wrong types and fields it does not declare
    (which an API server prunes; kubectl's strict field validation reports them as unknown)."""
    if value is None:
        return []
    errors = _type_errors(schema, value, path)
    if errors or schema.get("x-kubernetes-preserve-unknown-fields"):
        return errors
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in validate(schema["items"], v, path=f"{path}[{i}]")]
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        for key, v in value.items():
            where = f"{path}.{key}" if path else key
            if key in props:
                errors += validate(props[key], v, path=where)
            else:
                errors.append(FieldError(where, _UNDECLARED, kind=""))
    return errors


_UNDECLARED = "field not declared in schema"
_JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _type_errors(schema: dict[str, Any], value: Any, path: str) -> list[FieldError]:
    expected = schema.get("type")
    if expected is None or _JSON_TYPES[expected](value):
        return []
    return [FieldError(path or "<root>", f'must be of type {expected}', abbreviated(value))]


def validate_resource(obj: dict[str, Any]) -> list[FieldError]:
    """The schema errors of a Katib object (its kind read from the object itself)."""
    kind = obj.get("kind")
    if kind not in PLURALS:
        return [FieldError("kind", f"must be one of {', '.join(PLURALS)}", kind)]
    return validate(resource_schema(kind), obj)


def unknown_fields(obj: dict[str, Any]) -> list[str]:
    """Paths of the fields a Katib object's schema does not declare: what `fieldValidation=Strict`
    refuses (`strict decoding error: unknown field "spec.foo"`) and a cluster otherwise prunes."""
    return [e.path for e in validate_resource(obj) if e.message == _UNDECLARED] if obj.get("kind") in PLURALS else []


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m katib.api.crd_schema DIR", file=sys.stderr)
        return 2
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    for name, text in manifests().items():
        (target / name).write_text(text)
        print(target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
