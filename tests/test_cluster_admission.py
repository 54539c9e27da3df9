"""Admission in the cluster topology: `kubectl apply -k config/` against `katib.py --fake serve
--api-only`, then `katib.py serve --kubeconfig --webhook-listen --advertise-address`: the fake
reaches Katib's webhooks over HTTPS through the Service's Endpoints, verified against the
caBundle the controller patched in — and only through them (no in-process admission)."""
from __future__ import annotations

import json

import yaml

from tests.apiserver_fixture import start_api_server
from tests.cluster_fixture import ROOT, WEBHOOK_ARGS
from tests.experiments import shell_experiment
from tests.test_cluster_webhooks import start_controller


def wait_for(read, pick, timeout: float = 60):
    import time
    deadline = time.monotonic() + timeout
    while True:
        found = pick(read())
        if found is not None:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def apply(server, obj, **kwargs):
    return server.kubectl("apply", "-f", "-", input=json.dumps(obj), **kwargs)


def test_experiments_are_admitted_by_the_controllers_webhooks_only(tmp_path):
    server = start_api_server(tmp_path / "cluster", api_only=True, db=tmp_path / "cluster.db")
    controller = None
    try:
        server.kubectl("apply", "-k", str(ROOT / "config"))
        bad = shell_experiment("bad", script="", parallel=1, max_trials=1, x_max=10)
        bad["spec"].update(maxTrialCount=-1, algorithm={"algorithmName": "no-such"})
        bad["spec"]["objective"]["type"] = "sideways"
        # Katib is not running: its webhooks (failurePolicy Fail) cannot be called
        down = apply(server, bad, check=False)
        assert down.returncode == 1
        assert ('failed calling webhook "mutating.experiment.katib.kubeflow.org": '
                'no endpoints available for service "katib"') in down.stderr, down.stderr

        controller, _, out = start_controller(server, tmp_path, "certs", *WEBHOOK_ARGS)
        endpoints = json.loads(server.kubectl("get", "endpoints", "-n", "kubeflow", "katib", "-o", "json").stdout)
        assert [a["ip"] for s in endpoints["subsets"] for a in s["addresses"]] == ["127.0.0.1"]

        refused = apply(server, bad, check=False)
        assert refused.returncode == 1, refused.stdout
        for field in ("spec.maxTrialCount", "spec.algorithm.algorithmName", "spec.objective.type"):
            assert field in refused.stderr, refused.stderr
        assert "No resources found" in server.kubectl("get", "experiments").stderr

        server.kubectl("label", "namespace", "default", "katib-metricscollector-injection=enabled")
        good = shell_experiment("good", script="", parallel=1, max_trials=1, x_max=20)
        apply(server, good)
        got = json.loads(server.kubectl("get", "experiment", "good", "-o", "json").stdout)
        assert got["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}   # the mutating webhook's
        assert got["spec"]["resumePolicy"] == "LongRunning"

        # upstream's trap: the namespace loses its label while the experiment runs, so the next job's
        # pod (created by the fake's job controller) gets no collector and no metrics ever come: that
        # trial fails at once, naming the pod and the cause
        silent = shell_experiment("silent", script="sleep 2;", parallel=1, max_trials=2, x_max=20)
        silent["spec"]["trialTemplate"]["retain"] = True   # keep the jobs and their pods to look at
        apply(server, silent)
        wait_for(lambda: server.kubectl("get", "trials", "-l", "experiment=silent", "-o", "name"),
                 lambda out: out.stdout.strip())
        server.kubectl("label", "namespace", "default", "katib-metricscollector-injection-")
        trial = wait_for(lambda: server.kubectl("get", "trials", "-l", "experiment=silent", "-o", "json"),
                         lambda out: next((t for t in json.loads(out.stdout)["items"]   # a new one has no status
                                           if any(c["type"] == "Failed"
                                                  for c in (t.get("status") or {}).get("conditions") or ())), None))
        [pod] = json.loads(server.kubectl("get", "pods", "-l", f"job-name={trial['metadata']['name']}",
                                          "-o", "json").stdout)["items"]
        assert [c["name"] for c in pod["spec"]["containers"]] == ["main"]
        failed = next(c for c in trial["status"]["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "MetricsUnavailable"
        assert failed["message"].startswith(f"Metrics are not available: no metrics collector was injected into pod "
                                            f"{pod['metadata']['name']}: namespace default lacks label "
                                            f"katib-metricscollector-injection=enabled"), failed
        server.kubectl("label", "namespace", "default", "katib-metricscollector-injection=enabled")

        controller.terminate()
        assert controller.wait(15) == 0, "".join(out)
        endpoints = json.loads(server.kubectl("get", "endpoints", "-n", "kubeflow", "katib", "-o", "json").stdout)
        assert not endpoints.get("subsets"), endpoints   # withdrawn at stop
        # the pod webhook is failurePolicy Ignore: pods are created (uninjected) while Katib is down
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "main", "image": "none", "command": ["true"]}]}}
        apply(server, pod)
        assert [c["name"] for c in yaml.safe_load(server.kubectl("get", "pod", "p", "-o", "yaml").stdout)
                ["spec"]["containers"]] == ["main"]
    finally:
        if controller is not None and controller.poll() is None:
            controller.terminate()
            controller.wait(15)
        server.stop()


def test_advertise_address_needs_webhook_listen(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, str(ROOT / "katib.py"), "serve", "--kubeconfig", str(tmp_path / "none"),
                             "--advertise-address", "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (2, "error: --advertise-address needs --webhook-listen\n")
