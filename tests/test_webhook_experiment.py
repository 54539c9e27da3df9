"""The experiment webhooks over real HTTPS: AdmissionReviews for every upstream example are
defaulted and validated as the in-process admission does; refusals carry every field error;
malformed reviews get HTTP 400."""
from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid

import jsonpatch
import pytest

from katib.api.defaults import set_defaults
from katib.config import KatibConfig, default_configmaps, get_configmap_from
from katib.webhook import experiment as wh
from katib.webhook.server import MAX_BODY, WebhookServer, certificates
from tests.corpus import EXAMPLES_DIR
from tests.test_validation import yaml_first_document

EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.yaml"))
CONFIG = KatibConfig.load(None)
GET_CONFIGMAP = get_configmap_from(default_configmaps())
GATE = "katib-metricscollector-injection"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    labels = {"default": {GATE: "enabled"}, "unlabelled": {}}

    def namespace_labels(ns):
        if ns == "unreadable":
            raise RuntimeError("namespaces \"unreadable\" is forbidden")
        return labels.get(ns)

    certs = certificates(tmp_path_factory.mktemp("certs"), ["127.0.0.1"])
    srv = WebhookServer(wh.experiment_handlers(config=CONFIG, get_configmap=GET_CONFIGMAP,
                                               namespace_labels=namespace_labels),
                        host="127.0.0.1", port=0, certs=certs)
    srv.start()
    yield srv
    srv.stop()


def post(server, path, body, *, raw: bytes | None = None) -> tuple[int, object]:
    ctx = ssl.create_default_context(cafile=str(server.certs.files.ca_cert))
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def review(obj, *, operation="CREATE", old=None, api_version="admission.k8s.io/v1"):
    meta = obj.get("metadata") or {}
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "operation": operation,
        "kind": {"group": "kubeflow.org", "version": "v1alpha3", "kind": "Experiment"},
        "resource": {"group": "kubeflow.org", "version": "v1alpha3", "resource": "experiments"},
        "name": meta.get("name", ""), "namespace": meta.get("namespace", "default"),
        "object": obj, "oldObject": old}}


def example(path) -> dict:
    exp = yaml_first_document(path.read_text())
    exp.setdefault("metadata", {})["namespace"] = "default"
    return exp


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_upstream_examples_are_defaulted_and_admitted(server, path):
    exp = example(path)
    body = review(exp)
    code, answer = post(server, "/mutate-experiments", body)
    assert code == 200 and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"] and response["allowed"] is True
    operations = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    assert response.get("patchType", "JSONPatch") == "JSONPatch"
    defaulted = jsonpatch.apply_patch(exp, operations)
    assert defaulted == set_defaults(exp)
    assert defaulted != exp  # every upstream example gets some default (e.g. the collector kind)

    code, answer = post(server, "/validate-experiments", review(defaulted))
    assert code == 200 and answer["response"]["allowed"] is True


def test_v1beta1_reviews_are_answered_in_v1beta1(server):
    exp = example(EXAMPLES[0])
    for path in ("/mutate-experiments", "/validate-experiments"):
        code, answer = post(server, path, review(exp, api_version="admission.k8s.io/v1beta1"))
        assert code == 200 and answer["apiVersion"] == "admission.k8s.io/v1beta1"
        assert answer["response"]["allowed"] is True


def test_invalid_experiment_is_refused_with_every_field_error(server):
    exp = example(EXAMPLES_DIR / "random-example.yaml")
    exp["spec"]["maxTrialCount"] = 0
    exp["spec"]["algorithm"]["algorithmName"] = "nope"
    exp["spec"]["parallelTrialCount"] = -1
    code, answer = post(server, "/validate-experiments", review(exp))
    assert code == 200
    response = answer["response"]
    assert response["allowed"] is False
    status = response["status"]
    assert (status["code"], status["reason"], status["status"]) == (422, "Invalid", "Failure")
    fields = [c["field"] for c in status["details"]["causes"]]
    assert "spec.maxTrialCount" in fields and "spec.parallelTrialCount" in fields
    assert "spec.algorithm.algorithmName" in fields
    assert status["message"].startswith('Experiment.kubeflow.org "random-example" is invalid: [')
    assert status["details"]["kind"] == "Experiment" and status["details"]["name"] == "random-example"


def test_update_rules_see_the_old_object(server):
    old = set_defaults(example(EXAMPLES_DIR / "random-example.yaml"))
    new = json.loads(json.dumps(old))
    new["spec"]["objective"]["objectiveMetricName"] = "other"
    code, answer = post(server, "/validate-experiments", review(new, operation="UPDATE", old=old))
    assert code == 200 and answer["response"]["allowed"] is False
    assert any(c["field"].startswith("spec.objective") for c in answer["response"]["status"]["details"]["causes"])
    code, answer = post(server, "/validate-experiments", review(old, operation="UPDATE", old=old))
    assert answer["response"]["allowed"] is True


def test_namespace_gate(server):
    exp = example(EXAMPLES_DIR / "random-example.yaml")
    exp["metadata"]["namespace"] = "unlabelled"
    code, answer = post(server, "/validate-experiments", review(exp))
    assert code == 200 and answer["response"]["allowed"] is False
    assert ('Cannot create the Experiment "random-example" in namespace "unlabelled": the namespace lacks label '
            '"katib-metricscollector-injection: enabled"') in answer["response"]["status"]["message"]
    exp["metadata"]["namespace"] = "unreadable"
    code, text = post(server, "/validate-experiments", review(exp))
    assert code == 500 and "forbidden" in text


def test_other_operations_and_kinds_pass(server):
    exp = example(EXAMPLES[0])
    body = review(exp, operation="DELETE")
    code, answer = post(server, "/validate-experiments", body)
    assert code == 200 and answer["response"] == {"uid": body["request"]["uid"], "allowed": True}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    body = review(pod)
    body["request"]["kind"] = {"group": "", "version": "v1", "kind": "Pod"}
    body["request"]["resource"] = {"group": "", "version": "v1", "resource": "pods"}
    code, answer = post(server, "/mutate-experiments", body)
    assert answer["response"] == {"uid": body["request"]["uid"], "allowed": True}


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "expected kind AdmissionReview"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request: required"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"operation": "CREATE", "object": {}}}).encode(), "request.uid: required"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "u", "operation": "PATCH", "object": {}}}).encode(), "request.operation"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "u", "operation": "CREATE", "object": []}}).encode(), "request.object"),
])
@pytest.mark.parametrize("path", ["/mutate-experiments", "/validate-experiments"])
def test_malformed_reviews_get_400(server, path, raw, reason):
    code, text = post(server, path, None, raw=raw)
    assert code == 400 and reason in text


def test_oversized_body_gets_413(server):
    code, _ = post(server, "/validate-experiments", None, raw=b" " * (MAX_BODY + 1))
    assert code == 413


def test_health_endpoints(server):
    ctx = ssl.create_default_context(cafile=str(server.certs.files.ca_cert))
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(server.url + path, context=ctx, timeout=5) as resp:
            assert resp.status == 200


def test_generated_certificates_are_reused_and_given_ones_used_as_is(tmp_path):
    first = certificates(tmp_path / "gen", ["127.0.0.1"])
    assert first.generated and {p.name for p in (tmp_path / "gen").iterdir()} >= {"ca.crt", "tls.crt", "tls.key"}
    again = certificates(tmp_path / "gen", ["127.0.0.1"])
    assert not again.generated  # tls.crt/tls.key exist now: used as they are
    assert again.files.cert.read_bytes() == first.files.cert.read_bytes()
    assert again.ca_bundle() == first.ca_bundle()

    given = tmp_path / "given"
    given.mkdir()
    for name in ("tls.crt", "tls.key"):
        (given / name).write_bytes((tmp_path / "gen" / name).read_bytes())
    certs = certificates(given, ["127.0.0.1"])
    assert not certs.generated and certs.ca_bundle() is None
    assert sorted(p.name for p in given.iterdir()) == ["tls.crt", "tls.key"]  # nothing written

    half = tmp_path / "half"
    half.mkdir()
    (half / "tls.crt").write_bytes(b"x")
    with pytest.raises(ValueError, match="tls.key is missing beside tls.crt"):
        certificates(half, ["127.0.0.1"])
