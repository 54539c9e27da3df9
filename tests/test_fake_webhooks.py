"""The fake API calls registered admission webhooks as kube-apiserver does (fake_webhooks):
real HTTPS webhook servers (katib.webhook.server) on loopback, the fake's HTTPS API in this
process, the real kubectl and the `kubernetes` client against it."""
from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from katib.backends.fake import FakeBackend
from katib.errors import Forbidden, Invalid, TemporaryError
from katib.webhook import review as rv
from katib.webhook.server import WebhookServer, certificates
from tests.apiserver_fixture import start_in_process

SVC, NS = "hooks", "hookns"
seen: list[dict] = []


def _record(body: bytes) -> tuple[str, dict]:
    version, request = rv.read_request(body)
    seen.append({"version": version, **request})
    return version, request


def label_it(body):
    version, request = _record(body)
    answer = rv.patch(version, request, [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
    answer["response"]["warnings"] = ["labelled by the test webhook"]
    return answer


def deny_it(body):
    version, request = _record(body)
    return rv.deny(version, request, {"code": 400, "reason": "BadRequest", "message": "no ConfigMaps named bad-*"})


def slow(body):
    _record(body)
    time.sleep(3)
    raise AssertionError("answered too late")


def allow_it(body):
    version, request = _record(body)
    return rv.allow(version, request)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hooks")
    certs = certificates(tmp / "certs", [f"{SVC}.{NS}.svc"])
    server = WebhookServer({"/label": label_it, "/deny": deny_it, "/slow": slow, "/allow": allow_it},
                           host="127.0.0.1", port=0, certs=certs)
    server.start()
    other = certificates(tmp / "other", [f"{SVC}.{NS}.svc"])   # a CA that did not sign the server
    yield server, base64.b64encode(certs.ca_bundle()).decode(), base64.b64encode(other.ca_bundle()).decode()
    server.stop()


@pytest.fixture
def api(tmp_path, hooks):
    server, _, _ = hooks
    backend = FakeBackend(webhooks=True)
    backend.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": SVC, "namespace": NS},
                    "spec": {"ports": [{"name": "https", "port": 443, "targetPort": "https"}]}})
    backend.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": SVC, "namespace": NS},
                    "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                                 "ports": [{"name": "https", "port": server.port}]}]})
    for name, labels in (("default", {}), ("injected", {"inject": "on"})):
        backend.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    seen.clear()
    api = start_in_process(tmp_path, backend=backend)
    yield api
    api.stop()


def register(backend, kind: str, *hooks: dict, name: str = "test") -> None:
    backend.create({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind + "WebhookConfiguration",
                    "metadata": {"name": name}, "webhooks": list(hooks)})


def hook(name: str, path: str, ca: str, *, resources=("configmaps",), operations=("CREATE",), **extra) -> dict:
    return {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"name": SVC, "namespace": NS, "path": path}, "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": list(operations),
                       "resources": list(resources)}], **extra}


def configmap(name: str, namespace: str = "default", **labels) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                  **({"labels": labels} if labels else {})}}


def kubectl_create(api, obj: dict, **kwargs):
    return api.kubectl("create", "-f", "-", input=json.dumps(obj), **kwargs)


def post(api, path: str, obj: dict) -> tuple[int, dict, list[str]]:
    req = urllib.request.Request(api.url + path, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=api.ssl_context(), timeout=30) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get_all("Warning") or []
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get_all("Warning") or []


def test_mutating_patch_is_applied_and_warnings_reach_the_client(api, hooks):
    _, ca, _ = hooks
    register(api.backend, "Mutating", hook("label.test.io", "/label", ca))
    code, obj, warnings = post(api, "/api/v1/namespaces/default/configmaps", configmap("a"))
    assert code == 201, obj
    assert obj["metadata"]["labels"] == {"mutated": "yes"}
    assert api.backend.get("ConfigMap", "default", "a")["metadata"]["labels"] == {"mutated": "yes"}
    assert warnings == ['299 - "labelled by the test webhook"']
    (request,) = seen
    assert request["version"] == "admission.k8s.io/v1" and request["operation"] == "CREATE"
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["namespace"] == "default" and request["object"]["metadata"]["name"] == "a"
    # kubectl prints the warning as kube-apiserver's clients do
    result = kubectl_create(api, configmap("b"))
    assert "Warning: labelled by the test webhook" in result.stderr


def test_a_dry_run_is_reviewed_as_one_and_stores_nothing(api, hooks):
    _, ca, _ = hooks
    register(api.backend, "Mutating", hook("label.test.io", "/label", ca, operations=("CREATE", "DELETE")))
    register(api.backend, "Validating", hook("deny.test.io", "/deny", ca, namespaceSelector={
        "matchLabels": {"inject": "on"}}), name="deny")
    code, obj, warnings = post(api, "/api/v1/namespaces/default/configmaps?dryRun=All", configmap("a"))
    assert code == 201 and obj["metadata"]["labels"] == {"mutated": "yes"}, obj   # the webhook's patch
    assert warnings == ['299 - "labelled by the test webhook"']
    assert [r["dryRun"] for r in seen] == [True]
    assert api.backend.list("ConfigMap", "default") == []
    code, obj, _ = post(api, "/api/v1/namespaces/injected/configmaps?dryRun=All", configmap("b", "injected"))
    assert code == 400 and "no ConfigMaps named bad-*" in obj["message"], obj       # refused as for real
    seen.clear()
    assert post(api, "/api/v1/namespaces/default/configmaps", configmap("a"))[0] == 201
    assert [r["dryRun"] for r in seen] == [False]
    seen.clear()
    assert "(server dry run)" in api.kubectl("delete", "configmap", "a", "--dry-run=server").stdout
    assert [(r["operation"], r["dryRun"]) for r in seen] == [("DELETE", True)]
    assert api.backend.get("ConfigMap", "default", "a")["metadata"]["labels"] == {"mutated": "yes"}


def test_a_denial_is_the_webhooks_status_with_kube_apiservers_prefix(api, hooks):
    _, ca, _ = hooks
    register(api.backend, "Validating", hook("deny.test.io", "/deny", ca))
    code, status, _ = post(api, "/api/v1/namespaces/default/configmaps", configmap("bad-1"))
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"] == 'admission webhook "deny.test.io" denied the request: no ConfigMaps named bad-*'
    result = kubectl_create(api, configmap("bad-2"), check=False)
    assert result.returncode == 1
    assert 'admission webhook "deny.test.io" denied the request: no ConfigMaps named bad-*' in result.stderr
    with pytest.raises(Forbidden, match='admission webhook "deny.test.io" denied'):   # in-process writers too
        api.backend.create(configmap("bad-3"))
    assert [o["metadata"]["name"] for o in api.backend.list("ConfigMap", "default")] == []


def test_failure_policy_with_the_webhook_unreachable(api, hooks):
    _, ca, _ = hooks
    down = {"service": {"name": "nobody", "namespace": NS, "path": "/allow"}, "caBundle": ca}
    register(api.backend, "Validating",
             hook("ignored.test.io", "/allow", ca, failurePolicy="Ignore", clientConfig=down), name="a-ignore")
    api.backend.create(configmap("passes"))   # Ignore: admitted without it
    register(api.backend, "Validating", hook("required.test.io", "/allow", ca, failurePolicy="Fail",
                                             clientConfig={"url": "https://127.0.0.1:1/allow", "caBundle": ca}),
             name="b-fail")
    code, status, _ = post(api, "/api/v1/namespaces/default/configmaps", configmap("refused"))
    assert (code, status["reason"]) == (500, "InternalError")
    assert status["message"].startswith('Internal error occurred: failed calling webhook "required.test.io": '
                                        'failed to call webhook: Post "https://127.0.0.1:1/allow?timeout=10s": ')
    with pytest.raises(TemporaryError, match="failed calling webhook"):
        api.backend.create(configmap("refused"))


def test_no_endpoints_means_a_failed_call(api, hooks):
    _, ca, _ = hooks
    api.backend.delete("Endpoints", NS, SVC)
    register(api.backend, "Validating", hook("required.test.io", "/allow", ca))
    with pytest.raises(TemporaryError, match='no endpoints available for service "hooks"'):
        api.backend.create(configmap("x"))


def test_timeout_seconds_bounds_the_call(api, hooks):
    _, ca, _ = hooks
    register(api.backend, "Validating", hook("slow.test.io", "/slow", ca, timeoutSeconds=1, failurePolicy="Ignore"))
    started = time.monotonic()
    api.backend.create(configmap("late"))
    assert time.monotonic() - started < 2.5
    api.backend.delete("ValidatingWebhookConfiguration", "", "test")
    register(api.backend, "Validating", hook("slow.test.io", "/slow", ca, timeoutSeconds=1))
    started = time.monotonic()
    with pytest.raises(TemporaryError, match="deadline exceeded|timed out"):
        api.backend.create(configmap("later"))
    assert time.monotonic() - started < 2.5


def test_the_server_must_be_verified_against_ca_bundle(api, hooks):
    _, _, wrong = hooks
    register(api.backend, "Validating", hook("wrongca.test.io", "/allow", wrong))
    code, status, _ = post(api, "/api/v1/namespaces/default/configmaps", configmap("x"))
    assert code == 500 and "CERTIFICATE_VERIFY_FAILED" in status["message"], status
    assert seen == []


def test_the_certificate_must_name_the_service(api, hooks):
    """The same server behind a Service whose DNS name its certificate does not carry: refused."""
    server, ca, _ = hooks
    api.backend.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other", "namespace": NS},
                        "spec": {"ports": [{"port": 443}]}})
    api.backend.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "other", "namespace": NS},
                        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": server.port}]}]})
    other = {"service": {"name": "other", "namespace": NS, "path": "/allow"}, "caBundle": ca}
    register(api.backend, "Validating", hook("host.test.io", "/allow", ca, clientConfig=other))
    with pytest.raises(TemporaryError, match="other.hookns.svc.*(CERTIFICATE_VERIFY_FAILED|match)"):
        api.backend.create(configmap("x"))
    assert seen == []


def test_url_client_config_and_v1beta1_reviews(api, hooks):
    server, ca, _ = hooks
    spec = hook("url.test.io", "/allow", ca, clientConfig={"url": f"https://localhost:{server.port}/label",
                                                          "caBundle": ca}, admissionReviewVersions=["v2", "v1beta1"])
    register(api.backend, "Mutating", spec)
    assert api.backend.create(configmap("u"))["metadata"]["labels"] == {"mutated": "yes"}
    assert [r["version"] for r in seen] == ["admission.k8s.io/v1beta1"]


def test_namespace_and_object_selectors(api, hooks):
    _, ca, _ = hooks
    register(api.backend, "Mutating",
             hook("ns.test.io", "/label", ca, namespaceSelector={"matchLabels": {"inject": "on"}}),
             hook("obj.test.io", "/deny", ca, objectSelector={"matchExpressions": [
                 {"key": "tier", "operator": "In", "values": ["frontend"]}]}))
    assert "labels" not in api.backend.create(configmap("plain", "default"))["metadata"]
    assert api.backend.create(configmap("plain", "injected"))["metadata"]["labels"] == {"mutated": "yes"}
    assert api.backend.create(configmap("backend", "default", tier="backend"))
    with pytest.raises(Forbidden, match="obj.test.io"):
        api.backend.create(configmap("front", "default", tier="frontend"))
    assert [r["object"]["metadata"]["name"] for r in seen] == ["plain", "front"]


def test_rules_name_operations_resources_and_subresources(api, hooks):
    _, ca, _ = hooks
    register(api.backend, "Validating", hook("upd.test.io", "/deny", ca, resources=("pods/status",),
                                             operations=("UPDATE",)),
             hook("del.test.io", "/deny", ca, operations=("DELETE",)))
    pod = api.backend.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}})
    pod["metadata"]["labels"] = {"a": "b"}
    pod = api.backend.update(pod)          # the main resource: not covered by pods/status
    pod["status"] = {"phase": "Running"}
    with pytest.raises(Forbidden, match="upd.test.io"):
        api.backend.update_status(pod)
    api.backend.create(configmap("keep"))
    with pytest.raises(Forbidden, match="del.test.io"):
        api.backend.delete("ConfigMap", "default", "keep")
    assert api.backend.get("ConfigMap", "default", "keep")
    assert [(r["operation"], r.get("subResource"), r["oldObject"]["metadata"]["name"]) for r in seen] == [
        ("UPDATE", "status", "p"), ("DELETE", None, "keep")]


def test_a_webhook_may_read_the_api_while_it_answers(api, hooks, tmp_path):
    """Webhooks are called outside the fake's lock: one that reads the API does not deadlock."""
    _, ca, _ = hooks
    context = ssl.create_default_context(cafile=str(api.ca_file))
    reads = []

    def read_namespace(body):
        version, request = rv.read_request(body)
        req = urllib.request.Request(f"{api.url}/api/v1/namespaces/{request['namespace']}",
                                     headers={"Authorization": f"Bearer {api.token}"})
        with urllib.request.urlopen(req, context=context, timeout=5) as resp:
            reads.append(json.loads(resp.read())["metadata"]["name"])
        return rv.allow(version, request)

    certs = certificates(tmp_path / "c", [f"{SVC}.{NS}.svc"])
    server = WebhookServer({"/read": read_namespace}, host="127.0.0.1", port=0, certs=certs)
    server.start()
    try:
        url = {"url": f"https://localhost:{server.port}/read", "caBundle": base64.b64encode(certs.ca_bundle()).decode()}
        register(api.backend, "Validating", hook("reader.test.io", "/read", ca, clientConfig=url, timeoutSeconds=5))
        done = []
        worker = threading.Thread(target=lambda: done.append(kubectl_create(api, configmap("r"))))
        worker.start()
        worker.join(20)
        assert done and reads == ["default"]
        # many at once: the writes waiting for the webhook do not starve its calls back into the API
        answers = []
        posts = [threading.Thread(target=lambda i=i: answers.append(
            post(api, "/api/v1/namespaces/default/configmaps", configmap(f"many-{i}"))[0])) for i in range(12)]
        for t in posts:
            t.start()
        for t in posts:
            t.join(30)
        assert answers == [201] * 12
    finally:
        server.stop()


def test_in_process_admission_still_applies_without_webhooks():
    from katib.runtime import experiment_admission
    from katib.config import KatibConfig
    backend = FakeBackend(webhooks=True, admit=experiment_admission(KatibConfig.load(None), lambda ns, n: None))
    with pytest.raises(Invalid, match="spec"):
        backend.create({"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
                        "metadata": {"name": "e", "namespace": "default"}, "spec": {"maxTrialCount": 0}})


def test_unusable_webhook_configurations_are_refused_as_kube_apiserver_does(api, hooks):
    _, ca, _ = hooks
    bad = [hook("a.test.io", "/allow", ca, failurePolicy="Sometimes", timeoutSeconds=60),
           {**hook("a.test.io", "/allow", ca), "sideEffects": None, "admissionReviewVersions": ["v9"]},
           {**hook("short", "/allow", ca), "clientConfig": {"url": "http://localhost/x"}}]
    result = kubectl_create(api, {"apiVersion": "admissionregistration.k8s.io/v1",
                                  "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "bad"},
                                  "webhooks": bad}, check=False)
    assert result.returncode == 1
    for text in ('webhooks[0].failurePolicy: Unsupported value: "Sometimes": supported values: "Fail", "Ignore"',
                 "webhooks[0].timeoutSeconds: Invalid value: 60: the timeout value must be between 1 and 30 seconds",
                 'webhooks[1].name: Duplicate value: "a.test.io"',
                 "webhooks[1].sideEffects: Required value: must specify one of None, NoneOnDryRun",
                 "webhooks[1].admissionReviewVersions: Invalid value",
                 'webhooks[2].name: Invalid value: "short"',
                 "webhooks[2].clientConfig.url: Invalid value: \"http://localhost/x\": 'https' is the only allowed"):
        assert text in result.stderr, result.stderr


def test_an_endpoint_nobody_listens_on_is_passed_over(api, hooks):
    """A replica that died without withdrawing its address (SIGKILL): the call goes to another."""
    server, ca, _ = hooks
    endpoints = api.backend.get("Endpoints", NS, SVC)
    endpoints["subsets"].insert(0, {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 1}]})
    api.backend.update(endpoints)
    register(api.backend, "Mutating", hook("label.test.io", "/label", ca))
    for i in range(8):   # the dead address comes first in about half of them
        assert api.backend.create(configmap(f"c{i}"))["metadata"]["labels"] == {"mutated": "yes"}
