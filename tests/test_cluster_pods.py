"""The cluster topology end to end: `katib.py --fake serve --api-only` with `kubectl apply -k
config/`, and `katib.py serve --kubeconfig --webhook-listen` as Katib. Each process has its own
database, so a trial's metrics reach the controller only through the metrics-collector sidecar
its pod webhook injected and the observation API (the fake's kubelet stores nothing); the
experiment succeeds with the best trial. A TFJob experiment too: the chief gets the sidecar."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.apiserver_fixture import start_api_server
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent
SIDECAR = "metrics-logger-and-collector"

TFJOB = """apiVersion: kubeflow.org/v1
kind: TFJob
metadata:
  name: {{.Trial}}
  namespace: {{.NameSpace}}
spec:
  tfReplicaSpecs:
    Chief:
      replicas: 1
      restartPolicy: Never
      template:
        spec:
          containers:
          - name: tensorflow
            image: none
            command: ["sh", "-c"]
            args: ["test -n \\"$TF_CONFIG\\" && echo accuracy=0.{{range .HyperParameters}}{{.Value}}{{end}}"]
    Worker:
      replicas: 1
      restartPolicy: Never
      template:
        spec:
          containers:
          - name: tensorflow
            image: none
            command: ["sh", "-c", "sleep 0.2"]
"""


def start_controller(server, tmp_path: Path) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "katib.py"), "serve", "--kubeconfig", str(server.kubeconfig),
                             "--db", str(tmp_path / "controller.db"), "--webhook-listen", "127.0.0.1:0",
                             "--advertise-address", "127.0.0.1", "--cert-dir", str(tmp_path / "certs")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    while not output or not output[-1].startswith(("webhooks: ", "error")):
        line = proc.stdout.readline()
        assert line, "".join(output)
        output.append(line)
    assert output[-1].startswith("webhooks: https://127.0.0.1:"), "".join(output)
    threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return proc, output


def wait_done(server, name: str, controller, output, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        exp = json.loads(server.kubectl("get", "experiment", name, "-o", "json").stdout)
        conds = (exp.get("status") or {}).get("conditions") or []
        if conds and conds[-1]["type"] in ("Succeeded", "Failed"):
            return exp
        assert controller.poll() is None, "".join(output)
        assert time.monotonic() < deadline, (exp.get("status"), "".join(output)[-3000:], server.output()[-3000:])
        time.sleep(0.2)


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def check(server, tmp_path, exp: dict, trials: list[dict], *, training: str) -> None:
    """Succeeded with the best trial; every trial's metric came through a report of its sidecar."""
    assert exp["status"]["conditions"][-1]["type"] == "Succeeded", exp["status"]
    values = {t["metadata"]["name"]: float(t["status"]["observation"]["metrics"][0]["value"]) for t in trials}
    for t in trials:   # accuracy=0.<x>: each trial's own value
        assert values[t["metadata"]["name"]] == float("0." + t["spec"]["parameterAssignments"][0]["value"])
    best = exp["status"]["currentOptimalTrial"]
    assert best["bestTrialName"] == max(values, key=values.get)
    assert best["observation"]["metrics"][0]["value"] == max(values.values())
    names = sorted(values)
    among = "(" + ",".join(f"'{n}'" for n in names) + ")"
    # the controller's rows came with report ids (the observation API); the fake stored none
    reported = rows(tmp_path / "controller.db", f"SELECT trial_name FROM observation_reports WHERE trial_name IN {among}")
    assert sorted(r[0] for r in reported) == names
    logged = rows(tmp_path / "controller.db", f"SELECT trial_name, value FROM observation_logs WHERE trial_name IN {among}")
    assert sorted((n, float(v)) for n, v in logged) == sorted(values.items())
    assert rows(tmp_path / "fake.db", "SELECT COUNT(*) FROM observation_logs") == [(0,)]
    for name in names:   # retained jobs: their pods carry the injected sidecar
        pods = json.loads(server.kubectl("get", "pods", "-l", f"job-name={name}", "-o", "json").stdout)["items"]
        [master] = [p for p in pods if any(c["name"] == SIDECAR for c in p["spec"]["containers"])]
        assert master["spec"]["shareProcessNamespace"] is True
        assert [c["name"] for c in master["spec"]["containers"]] == [training, SIDECAR]
        assert master["status"]["phase"] == "Succeeded"
        log = server.kubectl("logs", master["metadata"]["name"], "-c", SIDECAR).stdout
        assert f"reported 1 metric log(s) for trial {name}" in log, log


def test_metrics_reach_katib_only_through_the_injected_sidecar(tmp_path):
    server = start_api_server(tmp_path / "cluster", api_only=True, db=tmp_path / "fake.db")
    controller = None
    try:
        server.kubectl("apply", "-k", str(ROOT / "config"))
        server.kubectl("label", "namespace", "default", "katib-metricscollector-injection=enabled")
        controller, output = start_controller(server, tmp_path)
        exp = shell_experiment("e2e", script="", parallel=2, max_trials=3, x_max=20)
        exp["spec"]["trialTemplate"]["retain"] = True
        tf = shell_experiment("tf", script="", parallel=1, max_trials=2, x_max=20)
        tf["spec"]["trialTemplate"] = {"retain": True, "goTemplate": {"rawTemplate": TFJOB}}
        for obj in (exp, tf):
            server.kubectl("apply", "-f", "-", input=json.dumps(obj))
        for name, training in (("e2e", "main"), ("tf", "tensorflow")):
            done = wait_done(server, name, controller, output)
            trials = json.loads(server.kubectl("get", "trials", "-l", f"experiment={name}", "-o", "json").stdout)["items"]
            assert len(trials) == (3 if name == "e2e" else 2)
            check(server, tmp_path, done, trials, training=training)
    finally:
        if controller is not None:
            controller.terminate()
            controller.wait(15)
        server.stop()
