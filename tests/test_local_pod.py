"""Trial jobs run locally as their pods would (katib.backends.local_pod): the collector's mount
directory mapped onto each job's own directory, PrometheusMetric scraped by a sidecar on a port
of the job's own, and a Custom collector as a process beside the trial that reports over HTTPS
to the observation API with the trial's token. Pure planning first, then real processes."""
from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from katib.backends import local_pod
from katib.backends import local_process as lp
from tests.test_kubelet import plane_on, run_to_end

ROOT = Path(__file__).resolve().parent.parent


def trial(collector: dict, name: str = "t1") -> dict:
    return {"kind": "Trial", "metadata": {"name": name, "namespace": "default"},
            "spec": {"objective": {"objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"]},
                     "metricsCollector": collector}}


def job(command: list[str], *, env: list[dict] | None = None, name: str = "t1") -> dict:
    container = {"name": "training", "image": "x", "command": command}
    if env is not None:
        container["env"] = env
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"containers": [container]}}}}


FILE = {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/katib/mnist.log", "kind": "File"}}}


def containers(planned: local_pod.Plan) -> list[dict]:
    return planned.job["spec"]["template"]["spec"]["containers"]


# --------------------------------------------------------------------------- planning (pure)

@pytest.mark.parametrize("text, found", [
    ("/katib/mnist.log", True), ("--log-path=/katib/mnist.log", True), ("/katib", True),
    ("a:/katib/x", True), ("/katibx/m.log", False), ("/opt/katib/m.log", False), ("/katib.old", False),
    ("//katib/m", False)])
def test_the_mount_directory_is_matched_as_a_whole_path(text, found):
    assert bool(local_pod.path_pattern("/katib").search(text)) is found


def test_a_named_mount_directory_is_rewritten_in_command_args_and_env():
    j = job(["python3", "train.py", "--log=/katib/mnist.log"], env=[{"name": "LOG_DIR", "value": "/katib"}])
    j["spec"]["template"]["spec"]["containers"][0]["args"] = ["/katib/other", "/katibx"]
    planned = local_pod.plan(trial(FILE), j, job_dir="/jobs/d")
    [training] = containers(planned)
    assert training["command"] == ["python3", "train.py", "--log=/jobs/d/metrics-volume/mnist.log"]
    assert training["args"] == ["/jobs/d/metrics-volume/other", "/katibx"]
    assert training["env"] == [{"name": "LOG_DIR", "value": "/jobs/d/metrics-volume"}]
    assert planned.mapped and planned.resource is None and planned.real_path is None
    assert json.loads(planned.job["metadata"]["annotations"][local_pod.POD_ANNOTATION])["volume"] == \
        "/jobs/d/metrics-volume"
    assert j["spec"]["template"]["spec"]["containers"][0]["command"][2] == "--log=/katib/mnist.log"  # a copy
    assert lp.plan_launch(planned.job).volume == "/jobs/d/metrics-volume"


def test_a_path_the_command_does_not_name_is_shared_and_serialised():
    planned = local_pod.plan(trial(FILE), job(["python3", "train.py"]), job_dir="/jobs/d")
    assert not planned.mapped
    assert (planned.resource, planned.real_path) == ("path /katib/mnist.log", "/katib/mnist.log")
    assert planned.resource_text == "File collector path /katib/mnist.log"
    root = trial({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m.log", "kind": "File"}}})
    assert not local_pod.plan(root, job(["sh", "-c", "echo > /m.log"]), job_dir="/d").mapped  # never "/"


def test_stdout_jobs_are_left_as_they_are():
    j = job(["echo", "/var/log/katib"])
    assert local_pod.plan(trial({"collector": {"kind": "StdOut"}}), j, job_dir="/d").job is j


def test_prometheus_gets_a_port_of_its_own_when_the_command_names_it():
    prom = {"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": 9100, "path": "/m"}}}
    planned = local_pod.plan(trial(prom), job(["serve", "--port=$(KATIB_METRICS_PORT)"]), job_dir="/d",
                             free_port=lambda: 40001)
    training, sidecar = containers(planned)
    assert training["env"][0] == {"name": "KATIB_METRICS_PORT", "value": "40001"}
    assert lp.plan_launch(planned.job).argv[0] == sys.executable
    assert planned.resource is None
    assert sidecar["args"][sidecar["args"].index("-url") + 1] == "http://127.0.0.1:40001/m"
    literal = local_pod.plan(trial(prom), job(["serve", "--port=9100"]), job_dir="/d", free_port=lambda: 40001)
    assert containers(literal)[0]["env"][0] == {"name": "KATIB_METRICS_PORT", "value": "9100"}
    assert (literal.resource, literal.resource_text) == ("port 9100", "PrometheusMetric port 9100")


def custom(collector_container: dict) -> dict:
    return {"collector": {"kind": "Custom", "customCollector": collector_container},
            "source": {"fileSystemPath": {"path": "/katib/mnist.log", "kind": "File"}}}


def test_a_custom_collector_is_a_sidecar_with_the_pods_name_and_the_api_env():
    side = {"name": "c", "image": "x", "command": ["collect"], "args": ["-path", "/katib/mnist.log", "-t",
                                                                        "$(TrialNamePrefix)"],
            "env": [{"name": "TrialNamePrefix", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
    planned = local_pod.plan(trial(custom(side)), job(["train", "--log=/katib/mnist.log"]), job_dir="/d",
                             observation_env={"KATIB_COLLECTOR_TOKEN": "tok"})
    _training, sidecar = containers(planned)
    pod_name = local_pod.pod_name(planned.job)
    assert pod_name.startswith("t1-") and len(pod_name) == len("t1-") + 5
    assert sidecar["env"][:2] == [{"name": "KATIB_TRIAL_NAME", "value": "t1"},
                                  {"name": "KATIB_COLLECTOR_TOKEN", "value": "tok"}]
    assert sidecar["env"][2] == {"name": "TrialNamePrefix", "value": pod_name}
    spec = json.loads(lp.plan_launch(planned.job).argv[2])
    assert spec["sidecar"]["argv"] == ["collect", "-path", "/d/metrics-volume/mnist.log", "-t", pod_name]
    assert spec["markerDir"] == "/d/metrics-volume"


def test_a_custom_collector_without_a_command_cannot_start_and_the_field_is_named():
    planned = local_pod.plan(trial(custom({"name": "c", "image": "kubeflowkatib/custom-metrics-collector",
                                           "args": ["-m", "accuracy"]})), job(["true"]), job_dir="/d")
    with pytest.raises(lp.StartError, match=r"^spec\.metricsCollectorSpec\.collector\.customCollector\.command: "
                                            r"not set; the entrypoint of image kubeflowkatib/custom-metrics"):
        lp.plan_launch(planned.job)


# ------------------------------------------------------------------------------ real processes

TRAINER = [sys.executable, str(ROOT / "examples" / "metrics_trainer.py"), "--epochs=2"]


def experiment(name: str, collector: dict, command: list[str], *, parallel: int = 2, trials: int = 2) -> dict:
    args = "\n".join(f"        - {json.dumps(a)}" for a in command)
    template = f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {{{{.Trial}}}}
  namespace: {{{{.NameSpace}}}}
spec:
  template:
    spec:
      containers:
      - name: training
        image: ignored
        command:
{args}
        {{{{- range .HyperParameters}}}}
        - "{{{{.Name}}}}={{{{.Value}}}}"
        {{{{- end}}}}
      restartPolicy: Never
"""
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                     "algorithm": {"algorithmName": "random"},
                     "parallelTrialCount": parallel, "maxTrialCount": trials, "maxFailedTrialCount": trials,
                     "parameters": [{"name": "--lr", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.01", "max": "0.03"}}],
                     "metricsCollectorSpec": collector,
                     "trialTemplate": {"goTemplate": {"rawTemplate": template}}}}


def run(tmp_path: Path, exp: dict):
    plane = plane_on(tmp_path)
    try:
        done = run_to_end(plane, exp, timeout=60)
        trials = plane.backend.list("Trial", "default")
        jobs = {t["metadata"]["name"]: tmp_path / "work" / "jobs" / f"default_{t['metadata']['name']}"
                for t in trials}
        logs = {name: plane.observations.get(name) for name in jobs}
        events = plane.backend.list("Event", "default")
    finally:
        plane.stop(kill_jobs=True)
    return done, trials, jobs, logs, events


def printed(output: Path) -> list[float]:
    """The accuracies the trainer printed, in order (`epoch 2: accuracy=0.7750 loss=...`)."""
    return [float(x.split("accuracy=")[1].split()[0]) for x in output.read_text().splitlines() if "accuracy=" in x]


def scraped_as_printed(t: dict, output: Path, logs: list) -> None:
    """A scrape sees a subset of the values (one may change between two scrapes), always the
    last; the trial's value is the best of those scraped (maximize)."""
    values = [float(log.value) for log in logs]
    assert values and set(values) <= set(printed(output)) and values[-1] == printed(output)[-1]
    assert observed(t) == pytest.approx(max(values))


def observed(t: dict) -> float:
    return next(m["value"] for m in t["status"]["observation"]["metrics"] if m["name"] == "accuracy")


def failed(t: dict) -> dict:
    last = t["status"]["conditions"][-1]
    assert (last["type"], last["status"]) == ("Failed", "True"), last
    return last


def test_prometheus_endpoints_of_parallel_trials_are_scraped_on_their_own_ports(tmp_path):
    collector = {"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": 8080}}}
    exp = experiment("prom", collector, TRAINER + ["--prometheus-port=$(KATIB_METRICS_PORT)"])
    done, trials, jobs, logs, _events = run(tmp_path, exp)
    assert done["status"]["trialsSucceeded"] == 2
    ports = set()
    for t in trials:
        name = t["metadata"]["name"]
        scraped_as_printed(t, jobs[name] / "output.log", logs[name])
        assert {log.name for log in logs[name]} == {"accuracy"}
        ports.add(json.loads((jobs[name] / "job.json").read_text())["spec"]["template"]["spec"]
                  ["containers"][0]["env"][0]["value"])
    assert len(ports) == 2 and "8080" not in ports


def test_a_literal_prometheus_port_makes_trials_take_turns(tmp_path):
    port = local_pod_free_port()
    collector = {"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {"port": port}}}
    done, trials, jobs, logs, events = run(tmp_path, experiment("lit", collector, TRAINER + [
        f"--prometheus-port={port}"]))
    assert done["status"]["trialsSucceeded"] == 2
    for t in trials:
        name = t["metadata"]["name"]
        scraped_as_printed(t, jobs[name] / "output.log", logs[name])
    waits = [e for e in events if e["reason"] == "MetricsPortInUse"]
    assert len(waits) == 1 and waits[0]["message"].startswith(f"PrometheusMetric port {port} is in use by trial ")


def local_pod_free_port() -> int:
    from katib.backends.ports import free_port
    return free_port()


COLLECT = [sys.executable, "-m", "collector"]
FILTER = "{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}"


def custom_collector(*, command=COLLECT, args=None, env=None) -> dict:
    side = {"name": "my-collector", "image": "ignored", "command": command,
            "args": args if args is not None else ["-t", "$(KATIB_TRIAL_NAME)", "-m", "accuracy", "-s",
                                                   "$(KATIB_OBSERVATIONS_ADDRESS)", "-path", "/katib/mnist.log",
                                                   "-f", FILTER, "-p", "0.05", "-deadline", "5"],
            "env": [{"name": "PYTHONPATH", "value": str(ROOT)}] + (env or [])}
    if command is None:
        del side["command"]
    return {"collector": {"kind": "Custom", "customCollector": side},
            "source": {"fileSystemPath": {"path": "/katib/mnist.log", "kind": "File"}}}


def test_our_collector_as_a_custom_collector_reports_over_the_https_observation_api(tmp_path):
    done, trials, jobs, logs, _events = run(tmp_path, experiment(
        "custom", custom_collector(), TRAINER + ["--log-path=/katib/mnist.log"]))
    assert done["status"]["trialsSucceeded"] == 2
    for t in trials:
        name = t["metadata"]["name"]
        assert observed(t) == pytest.approx(max(printed(jobs[name] / "output.log")))   # maximize
        assert [float(log.value) for log in logs[name]] == printed(jobs[name] / "output.log")  # each once
        assert "reported 2 metric log(s) for trial " + name in (jobs[name] / "sidecar.log").read_text()
        assert (jobs[name] / "metrics-volume" / "mnist.log").exists()


@pytest.mark.parametrize("collector, reason, said", [
    (custom_collector(env=[{"name": "KATIB_COLLECTOR_TOKEN", "value": "not-the-token"}]), "MetricsCollectorFailed",
     "metrics collector container my-collector failed: exit code 1: collector: katib refused the report "
     "(HTTP 403: "),
    (custom_collector(command=["sh", "-c"], args=["echo cannot parse anything >&2; exit 3"]),
     "MetricsCollectorFailed", "metrics collector container my-collector failed: exit code 3: cannot parse anything"),
    (custom_collector(command=None), "StartError",
     "spec.metricsCollectorSpec.collector.customCollector.command: not set"),
])
def test_a_custom_collector_that_fails_fails_its_trial_saying_why(tmp_path, collector, reason, said):
    done, trials, _jobs, logs, _events = run(tmp_path, experiment(
        "bad", collector, TRAINER + ["--log-path=/katib/mnist.log"], parallel=1, trials=1))
    [t] = trials
    last = failed(t)
    assert last["reason"] == "TrialFailed" and f"Trial has failed: {reason}: {said}" in last["message"], last
    assert logs[t["metadata"]["name"]] == []


def test_the_observation_api_refuses_a_token_of_another_trial(tmp_path):
    from katib.backends.local_observations import LocalObservationAPI

    class Store:
        def report(self, *args, **kwargs):
            return 1

    api = LocalObservationAPI(tmp_path, Store())
    try:
        env = api.env("t1")
        context = ssl.create_default_context(cadata=env["KATIB_CA_PEM"])
        body = json.dumps({"trial_name": "t1", "observation_log": {"metric_logs": []}}).encode()

        def post(token: str) -> int:
            request = urllib.request.Request(f"https://{env['KATIB_OBSERVATIONS_ADDRESS']}/observations/v1alpha3/report",
                                             data=body, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, context=context, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as err:
                return err.code

        assert post(env["KATIB_COLLECTOR_TOKEN"]) == 200
        assert post(api.env("t2")["KATIB_COLLECTOR_TOKEN"]) == 403
    finally:
        api.stop()
