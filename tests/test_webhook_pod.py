"""Sidecar injection into trial pods (metrics-collection.md §2), field by field for each
collector kind and job kind; the answer over real HTTPS is the JSON patch to exactly that."""
from __future__ import annotations

import base64
import copy
import json
import ssl
import urllib.error
import urllib.request
import uuid

import jsonpatch
import pytest

from katib.config import KatibConfig
from katib.webhook import pod as wp
from katib.webhook.server import WebhookServer, certificates

CONFIG = KatibConfig.load(None)
# A katib-config whose sidecars lack a kind (upstream's had no PrometheusMetric entry).
NO_PROMETHEUS = KatibConfig({"metrics-collector-sidecar": json.dumps({"StdOut": {"image": "collector:1"}})})
COLLECTOR = {"image": "katib:latest", "command": ["python", "-m", "collector"]}  # ours: config/katib-config.yaml
ADDR = "katib.kubeflow.svc:443"
RANDOM_ARGS = ["--batch-size=64", "--lr=0.0274", "--num-layers=4", "--optimizer=sgd"]


def trial(name="random-example-fm2g6jpj", *, kind="StdOut", source=None, custom=None, additional=("Train-accuracy",)):
    collector = {"kind": kind}
    if custom is not None:
        collector["customCollector"] = custom
    mc = {"collector": collector}
    if source is not None:
        mc["source"] = source
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "Validation-accuracy",
                                   "additionalMetricNames": list(additional)},
                     "metricsCollector": mc}}


def job_pod(owner_kind="Job", *, labels=None, containers=None, owner_name="random-example-fm2g6jpj"):
    api = "batch/v1" if owner_kind == "Job" else "kubeflow.org/v1"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": owner_name + "-", "namespace": "default", "labels": labels or {},
                         "ownerReferences": [{"apiVersion": api, "kind": owner_kind, "name": owner_name,
                                              "uid": "u", "controller": True}]},
            "spec": {"restartPolicy": "Never", "containers": containers or [{
                "name": "training-container", "image": "docker.io/kubeflowkatib/mxnet-mnist",
                "command": ["python3", "/opt/mxnet-mnist/mnist.py"], "args": list(RANDOM_ARGS)}]}}


def inject(pod, tr, **kw):
    return wp.inject(pod, tr, config=CONFIG, report_address=ADDR, job_kind=wp.owner(pod)["kind"], **kw)


def test_stdout_job_pod_exactly_as_upstream():
    pod = job_pod()
    out = inject(pod, trial())
    training, side = out["spec"]["containers"]
    assert training["command"] == ["sh", "-c"]
    assert training["args"] == ["python3 /opt/mxnet-mnist/mnist.py --batch-size=64 --lr=0.0274 --num-layers=4 "
                                "--optimizer=sgd 1>/var/log/katib/metrics.log 2>&1 && "
                                "echo completed > /var/log/katib/$$$$.pid"]
    assert training["volumeMounts"] == [{"name": "metrics-volume", "mountPath": "/var/log/katib"}]
    assert side == {
        "name": "metrics-logger-and-collector",
        **COLLECTOR,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-t", "random-example-fm2g6jpj", "-m", "Validation-accuracy;Train-accuracy", "-s", ADDR,
                 "-path", "/var/log/katib/metrics.log"],
        "resources": {"requests": {"cpu": "50m", "memory": "10Mi", "ephemeral-storage": "500Mi"},
                      "limits": {"cpu": "500m", "memory": "100Mi", "ephemeral-storage": "5Gi"}},
        "volumeMounts": [{"name": "metrics-volume", "mountPath": "/var/log/katib"}],
    }
    assert out["spec"]["shareProcessNamespace"] is True
    assert out["spec"]["volumes"] == [{"name": "metrics-volume", "emptyDir": {}}]
    assert pod == job_pod()  # the input is not modified
    assert {k: v for k, v in out.items() if k != "spec"} == {k: v for k, v in pod.items() if k != "spec"}


@pytest.mark.parametrize("command,args", [(["python main.py"], []), (["sh", "-c", "python main.py"], []),
                                          (["sh", "-c"], ["python main.py"])])
def test_command_rewriting_upstream_cases(command, args):
    container = {"name": "c", "command": command, "args": args}
    wp.wrap_command(container, kind="StdOut", path="testfile", fs_kind="File")
    assert container["command"] == ["sh", "-c"]
    assert container["args"] == ["python main.py 1>testfile 2>&1 && echo completed > $$$$.pid"]


def test_bash_c_is_kept_and_file_kind_only_adds_the_marker():
    container = {"name": "c", "command": ["bash", "-c", "python train.py --lr=0.1"]}
    wp.wrap_command(container, kind="File", path="/var/log/m/metrics.log", fs_kind="File")
    assert container == {"name": "c", "command": ["bash", "-c"],
                         "args": ["python train.py --lr=0.1 && echo completed > /var/log/m/$$$$.pid"]}


def test_file_collector_with_filters():
    tr = trial(kind="File", source={"fileSystemPath": {"kind": "File", "path": "/var/log/m/metrics.log"},
                                    "filter": {"metricsFormat": [r"(\w+):(\d+)", r"(\w+)=(\d+)"]}})
    out = inject(job_pod(), tr)
    training, side = out["spec"]["containers"]
    assert side["name"] == "metrics-logger-and-collector"
    assert side["args"] == ["-t", "random-example-fm2g6jpj", "-m", "Validation-accuracy;Train-accuracy", "-s", ADDR,
                            "-path", "/var/log/m/metrics.log", "-f", r"(\w+):(\d+);(\w+)=(\d+)"]
    assert side["volumeMounts"] == training["volumeMounts"] == [{"name": "metrics-volume", "mountPath": "/var/log/m"}]
    assert training["args"][0].endswith("--optimizer=sgd && echo completed > /var/log/m/$$$$.pid")
    assert "1>" not in training["args"][0]


def test_tensorflow_event_collector():
    tr = trial(kind="TensorFlowEvent", additional=(),
               source={"fileSystemPath": {"kind": "Directory", "path": "/train"}})
    out = inject(job_pod(), tr)
    training, side = out["spec"]["containers"]
    assert side["name"] == "metrics-collector"
    assert (side["image"], side["command"]) == (COLLECTOR["image"], COLLECTOR["command"])
    assert side["args"] == ["-t", "random-example-fm2g6jpj", "-m", "Validation-accuracy", "-s", ADDR, "-path", "/train"]
    assert side["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "5Gi"}
    assert side["volumeMounts"] == training["volumeMounts"] == [{"name": "metrics-volume", "mountPath": "/train"}]
    assert training["args"][0].endswith("&& echo completed > /train/$$$$.pid")


def test_custom_collector_is_added_verbatim_and_nothing_rewritten():
    custom = {"name": "custom-metrics-logger-and-collector", "image": "me/collector:1",
              "args": ["-m", "accuracy"], "env": [{"name": "X", "value": "1"}]}
    tr = trial(kind="Custom", custom=custom,
               source={"fileSystemPath": {"kind": "File", "path": "/var/log/katib/metrics.log"}})
    out = inject(job_pod(), tr)
    training, side = out["spec"]["containers"]
    assert side == {**custom, "volumeMounts": [{"name": "metrics-volume", "mountPath": "/var/log/katib"}]}
    assert training["command"] == ["python3", "/opt/mxnet-mnist/mnist.py"] and training["args"] == RANDOM_ARGS
    no_source = inject(job_pod(), trial(kind="Custom", custom=custom))
    assert no_source["spec"]["containers"][1] == custom
    assert "volumes" not in no_source["spec"] and no_source["spec"]["shareProcessNamespace"] is True


def test_security_context_is_copied_only_when_asked():
    pod = job_pod()
    pod["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1000}
    assert "securityContext" not in inject(pod, trial())["spec"]["containers"][1]
    side = inject(pod, trial(), inject_security_context=True)["spec"]["containers"][1]
    assert side["securityContext"] == {"runAsUser": 1000}


def distributed_containers(kind):
    main = "tensorflow" if kind == "TFJob" else "pytorch"
    return [{"name": "helper", "image": "x", "command": ["sleep", "1"]},
            {"name": main, "image": "y", "command": ["python", "dist.py"], "args": ["--lr=0.1"]}]


@pytest.mark.parametrize("kind,label", [("TFJob", "tf-job-role"), ("TFJob", "job-role"),
                                        ("PyTorchJob", "pytorch-job-role"), ("PyTorchJob", "job-role")])
def test_distributed_masters_are_mutated_with_their_framework_container(kind, label):
    tr = trial()
    get = {("default", "random-example-fm2g6jpj"): tr}.get
    master = job_pod(kind, labels={label: "master"}, containers=distributed_containers(kind))
    assert wp.trial_of(master, "default", get_trial=lambda ns, n: get((ns, n))) is tr
    out = inject(master, tr)
    helper, main, side = out["spec"]["containers"]
    assert helper == distributed_containers(kind)[0]
    assert main["args"] == ["python dist.py --lr=0.1 1>/var/log/katib/metrics.log 2>&1 && "
                            "echo completed > /var/log/katib/$$$$.pid"]
    assert side["name"] == "metrics-logger-and-collector"
    worker = job_pod(kind, labels={label: "worker"}, containers=distributed_containers(kind))
    assert wp.trial_of(worker, "default", get_trial=lambda ns, n: get((ns, n))) is None


@pytest.mark.parametrize("pod_change,trial_kind,expected", [
    (lambda p: p["metadata"].pop("ownerReferences"), "StdOut", None),
    (lambda p: p["metadata"]["ownerReferences"][0].update(apiVersion="batch/v2"), "StdOut", None),
    (lambda p: p["metadata"]["ownerReferences"][0].update(name="other-trial"), "StdOut", None),
    (lambda p: None, "None", None),
    (lambda p: None, "StdOut", "trial"),
])
def test_which_pods_are_mutated(pod_change, trial_kind, expected):
    pod = job_pod()
    pod_change(pod)
    tr = trial(kind=trial_kind)
    got = wp.trial_of(pod, "default", get_trial=lambda ns, n: tr if (ns, n) == ("default", tr["metadata"]["name"])
                      else None)
    assert got is (tr if expected else None)


def test_prometheus_sidecar_scrapes_the_trainers_endpoint():
    config = KatibConfig({"metrics-collector-sidecar": json.dumps({"PrometheusMetric": {"image": "katib:1"}})})
    tr = trial(kind="PrometheusMetric", source={"httpGet": {"port": 9090, "path": "metrics/x"}})
    out = wp.inject(job_pod(), tr, config=config, report_address=ADDR, job_kind="Job")
    training, side = out["spec"]["containers"]
    assert side["name"] == "metrics-collector" and side["image"] == "katib:1"
    assert side["args"] == ["-t", "random-example-fm2g6jpj", "-m", "Validation-accuracy;Train-accuracy", "-s", ADDR,
                            "-kind", "PrometheusMetric", "-url", "http://localhost:9090/metrics/x"]
    assert training == job_pod()["spec"]["containers"][0]  # nothing to rewrite, nothing mounted
    assert "volumes" not in out["spec"] and out["spec"]["shareProcessNamespace"] is True


@pytest.mark.parametrize("tr,pod,message", [
    (trial(kind="PrometheusMetric"), job_pod(), "Cannot support metricsCollector injection for kind PrometheusMetric"),
    (trial(), job_pod(containers=[{"name": "t", "image": "x", "args": ["--lr=1"]}]), "container 't' has no command"),
])
def test_refusals(tr, pod, message):
    with pytest.raises(wp.InjectionError, match=message):
        wp.inject(pod, tr, config=NO_PROMETHEUS, report_address=ADDR, job_kind="Job")


# -- over HTTPS -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    trials = {"random-example-fm2g6jpj": trial(), "prom": trial("prom", kind="PrometheusMetric")}

    def get_trial(ns, name):
        if name == "boom":
            raise RuntimeError("trials.kubeflow.org is forbidden")
        return trials.get(name) if ns == "default" else None

    srv = WebhookServer({"/mutate-pods": lambda body: wp.mutate(body, get_trial=get_trial, config=NO_PROMETHEUS,
                                                                report_address=ADDR)},
                        host="127.0.0.1", port=0, certs=certificates(tmp_path_factory.mktemp("c"), ["127.0.0.1"]))
    srv.start()
    yield srv
    srv.stop()


def post(server, body):
    ctx = ssl.create_default_context(cafile=str(server.certs.files.ca_cert))
    req = urllib.request.Request(server.url + "/mutate-pods", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def pod_review(pod, operation="CREATE"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": str(uuid.uuid4()), "operation": operation, "namespace": "default",
                        "kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": pod}}


def test_the_review_answer_is_the_patch_to_the_injected_pod(server):
    pod = job_pod()
    code, answer = post(server, pod_review(pod))
    assert code == 200 and answer["response"]["allowed"] is True and answer["response"]["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(copy.deepcopy(pod), json.loads(base64.b64decode(answer["response"]["patch"])))
    assert patched == wp.inject(pod, trial(), config=NO_PROMETHEUS, report_address=ADDR, job_kind="Job")
    assert patched["spec"]["containers"][1]["image"] == "collector:1"


def test_other_pods_pass_unchanged_and_refusals_and_errors(server):
    for pod in (job_pod(owner_name="unknown"), job_pod("TFJob", labels={"tf-job-role": "worker"})):
        body = pod_review(pod)
        code, answer = post(server, body)
        assert answer["response"] == {"uid": body["request"]["uid"], "allowed": True}
    code, answer = post(server, pod_review(job_pod(owner_name="prom")))
    assert code == 200 and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 400
    assert answer["response"]["status"]["message"] == "Cannot support metricsCollector injection for kind PrometheusMetric"
    code, text = post(server, pod_review(job_pod(owner_name="boom")))
    assert code == 500 and "forbidden" in text
    code, text = post(server, {"kind": "AdmissionReview"})
    assert code == 400


def test_a_store_that_is_elsewhere_is_a_503_in_one_log_line(tmp_path, caplog):
    """A standby replica's observation API answers 503 (the collector retries elsewhere) and logs
    one line; an unexpected store failure is also a 503, logged with its traceback."""
    from katib.errors import TemporaryError

    def elsewhere(body, token):
        raise TemporaryError("this replica is not the leader")

    def broken(body, token):
        raise RuntimeError("disk on fire")

    srv = WebhookServer({}, api={"/elsewhere": elsewhere, "/broken": broken}, host="127.0.0.1", port=0,
                        certs=certificates(tmp_path, ["127.0.0.1"]))
    srv.start()
    ctx = ssl.create_default_context(cafile=str(srv.certs.files.ca_cert))
    try:
        for path, message in (("/elsewhere", "TemporaryError: this replica is not the leader"),
                              ("/broken", "RuntimeError: disk on fire")):
            caplog.clear()
            with caplog.at_level("INFO", logger="katib.webhook.server"):
                req = urllib.request.Request(srv.url + path, data=b"{}", method="POST")
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(req, context=ctx, timeout=10)
            assert err.value.code == 503 and json.loads(err.value.read()) == {"error": message}
            [record] = [r for r in caplog.records if r.name == "katib.webhook.server"]
            assert (record.levelname, record.exc_info is not None) == (
                ("INFO", False) if path == "/elsewhere" else ("ERROR", True))
    finally:
        srv.stop()
