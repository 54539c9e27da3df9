"""CRD schemas: generated from katib.api.types, checked in under config/crds/, structural,
upstream's printer columns, and accepting every upstream and local example."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from katib.api import crd_schema
from katib.errors import FieldError
from tests.corpus import EXAMPLES_DIR, UPSTREAM

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "config" / "crds"
UPSTREAM_CRDS = UPSTREAM / "manifests" / "v1alpha3" / "katib-controller"
EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))


def test_checked_in_crds_are_the_generated_ones():
    generated = crd_schema.manifests()
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(generated)
    for name, text in generated.items():
        assert (CRDS / name).read_text() == text, f"{name} drifted: run python -m katib.api.crd_schema config/crds"


@pytest.mark.parametrize("kind", ["Experiment", "Trial", "Suggestion"])
def test_printer_columns_are_upstreams(kind):
    upstream = yaml.safe_load((UPSTREAM_CRDS / f"crd-{kind.lower()}.yaml").read_text())["spec"]
    ours = yaml.safe_load((CRDS / f"{kind.lower()}s.kubeflow.org.yaml").read_text())["spec"]
    (version,) = ours["versions"]
    translated = [{"name": c["name"], "type": c["type"], "jsonPath": c["JSONPath"],
                   **({"priority": c["priority"]} if "priority" in c else {})}
                  for c in upstream["additionalPrinterColumns"]]
    assert version["additionalPrinterColumns"] == translated
    assert (version["name"], ours["group"], ours["scope"]) == (upstream["version"], upstream["group"], upstream["scope"])
    assert version["served"] and version["storage"] and version["subresources"] == {"status": {}}
    assert {k: v for k, v in ours["names"].items() if k != "listKind"} == upstream["names"]


def _nodes(schema: dict, path: str = ""):
    yield path, schema
    for key, child in (schema.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{key}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")


@pytest.mark.parametrize("kind", ["Experiment", "Trial", "Suggestion"])
def test_schemas_are_structural(kind):
    schema = crd_schema.resource_schema(kind)
    for path, node in _nodes(schema):
        assert node.get("type") in ("object", "array", "string", "integer", "number", "boolean"), path
        assert not {"allOf", "anyOf", "oneOf", "not", "$ref"} & set(node), path
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert node["type"] == "object", path
    assert schema["properties"]["metadata"] == {"type": "object"}  # left to the server


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_accepted(path):
    for doc in yaml.safe_load_all(path.read_text()):
        assert crd_schema.validate_resource(doc) == []


def test_objects_the_controllers_write_are_accepted():
    trial = {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial", "metadata": {"name": "t"},
             "spec": {"objective": {"type": "maximize", "goal": 0.99, "objectiveMetricName": "acc"},
                      "parameterAssignments": [{"name": "--lr", "value": "0.1"}], "runSpec": "kind: Job\n",
                      "metricsCollector": {"collector": {"kind": "StdOut"}}},
             "status": {"startTime": "2026-01-01T00:00:00Z", "completionTime": None,
                        "conditions": [{"type": "Created", "status": "True", "reason": "TrialCreated",
                                        "lastUpdateTime": "2026-01-01T00:00:00Z"}],
                        "observation": {"metrics": [{"name": "acc", "value": 0.5}]}}}
    suggestion = {"kind": "Suggestion", "spec": {"algorithmName": "random", "requests": 3},
                  "status": {"suggestionCount": 1, "suggestions": [{"name": "s-1", "parameterAssignments": []}],
                             "algorithmSettings": [{"name": "seed", "value": "1"}]}}
    assert crd_schema.validate_resource(trial) == []
    assert crd_schema.validate_resource(suggestion) == []


def test_wrong_types_and_undeclared_fields_are_reported_with_their_path():
    errors = crd_schema.validate_resource({
        "kind": "Experiment", "metadata": {"name": "x", "anything": 1},
        "spec": {"maxTrialCount": "12", "bogus": 1, "parameters": [{"feasibleSpace": {"min": 0.1}}],
                 "metricsCollectorSpec": {"collector": {"kind": "Custom", "customCollector": {"name": "c", "x": 1}}}}})
    assert [str(e) for e in errors] == [
        'spec.maxTrialCount: Invalid value: "12": must be of type integer',
        "spec.bogus: field not declared in schema",
        "spec.parameters[0].feasibleSpace.min: Invalid value: 0.1: must be of type string",
    ]


def test_unknown_kind_is_one_error():
    assert crd_schema.validate_resource({"kind": "Job"}) == [
        FieldError("kind", "must be one of Experiment, Trial, Suggestion", "Job")]


def test_free_form_core_objects_keep_their_fields():
    source = crd_schema.resource_schema("Experiment")["properties"]["spec"]["properties"]["metricsCollectorSpec"]
    http_get = source["properties"]["source"]["properties"]["httpGet"]
    assert http_get == {"description": "core/v1 HTTPGetAction, for PrometheusMetric.", "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True}


def test_generator_writes_the_files(tmp_path):
    assert crd_schema.main([str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == crd_schema.manifests()


def test_unknown_fields_are_the_paths_strict_field_validation_refuses():
    obj = {"kind": "Trial", "spec": {"runSpec": "x", "extra": {"a": 1}, "parameterAssignments": [{"nme": "a"}]},
           "status": {"observation": {"metrics": [{"name": "m", "value": 1, "unit": "s"}]}}, "bogus": True}
    assert crd_schema.unknown_fields(obj) == ["spec.extra", "spec.parameterAssignments[0].nme",
                                              "status.observation.metrics[0].unit", "bogus"]
    assert crd_schema.unknown_fields({"kind": "Job", "spec": {"anything": 1}}) == []
