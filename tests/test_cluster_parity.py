"""The same experiment ends the same way run by `katib.py --fake run`, applied with kubectl to
`katib.py --fake serve` (the laptop's control plane), and applied to `katib.py --fake serve
--api-only` (the stand-in cluster) with `katib.py serve --kubeconfig` (KubeBackend, no leader
election) as its controller: the same final condition, counts, trial assignments with their
metrics, and optimal trial."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.apiserver_fixture import start_api_server
from tests.cluster_fixture import WEBHOOK_ARGS, install_admission
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent


def outcome(exp: dict, trials: list[dict]) -> dict:
    status = exp["status"]
    best = status["currentOptimalTrial"]
    return {
        "condition": [c["type"] for c in status["conditions"] if c.get("status") == "True"][-1],
        "counts": {k: status.get(k) for k in ("trialsSucceeded", "trialsFailed", "trialsRunning", "trials")},
        "trials": sorted((a["value"], *(float(m["value"]) for m in (t["status"]["observation"]["metrics"])))
                         for t in trials for a in t["spec"]["parameterAssignments"]),
        "best": (best["parameterAssignments"], [float(m["value"]) for m in best["observation"]["metrics"]]),
    }


@pytest.fixture(scope="module")
def ran_locally(tmp_path_factory) -> tuple[Path, dict]:
    """The experiment file and how `katib.py --fake run` ends it."""
    tmp_path = tmp_path_factory.mktemp("local")
    exp = shell_experiment("parity", script="", parallel=2, max_trials=4, x_max=20)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(exp))
    local = subprocess.run([sys.executable, str(ROOT / "katib.py"), "--fake", "--db", str(tmp_path / "local.db"),
                            "run", str(path), "-o", "json", "--quiet"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert local.returncode == 0, local.stderr
    [ran] = json.loads(local.stdout)
    expected = outcome(ran["experiment"], ran["trials"])
    assert expected["condition"] == "Succeeded" and expected["counts"]["trialsSucceeded"] == 4 and \
        len(expected["trials"]) == 4, expected
    return path, expected


def test_kubectl_apply_to_fake_serve_ends_as_fake_run(ran_locally, tmp_path):
    path, expected = ran_locally
    server = start_api_server(tmp_path, db=tmp_path / "serve.db")
    try:
        server.kubectl("apply", "-f", str(path))
        server.kubectl("wait", "--for=condition=Succeeded", "experiment/parity", "--timeout=90s", timeout=120)
        api = server.custom_objects()
        got = api.get_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "experiments", "parity")
        trials = api.list_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "trials",
                                                   label_selector="experiment=parity")["items"]
        assert outcome(got, trials) == expected
    finally:
        code = server.stop()
    assert code == 0, server.output()


def test_cluster_controller_ends_as_fake_run(ran_locally, tmp_path):
    path, expected = ran_locally
    server = start_api_server(tmp_path / "cluster", api_only=True, db=tmp_path / "cluster.db")
    install_admission(server)   # the experiment is admitted through the controller's webhooks only
    server.kubectl("label", "namespace", "default", "katib-metricscollector-injection=enabled")  # Katib's gate
    controller = subprocess.Popen([sys.executable, str(ROOT / "katib.py"), "serve", "--kubeconfig",
                                   str(server.kubeconfig), "--db", str(tmp_path / "cluster.db"),
                                   "--health-listen", "127.0.0.1:0", *WEBHOOK_ARGS,
                                   "--cert-dir", str(tmp_path / "certs")],
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        while not seen or not seen[-1].startswith(("webhooks: ", "error")) and seen[-1]:
            seen.append(controller.stdout.readline())   # log lines (caBundle set), then the address
        assert seen[-1].startswith("webhooks: https://127.0.0.1:"), seen
        health = controller.stdout.readline()
        assert health.startswith("health: http://127.0.0.1:"), health
        output: list[str] = []   # drained, so that the controller never blocks on a full pipe
        threading.Thread(target=lambda: output.extend(iter(controller.stdout.readline, "")), daemon=True).start()
        for probe in ("/healthz", "/readyz"):
            with urllib.request.urlopen(health.split(" ", 1)[1].strip().replace("/healthz", probe), timeout=5) as r:
                assert r.status == 200 and r.read() == b"ok"
        server.kubectl("apply", "-f", str(path))
        api = server.custom_objects()
        deadline = time.monotonic() + 90
        while True:
            got = api.get_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "experiments", "parity")
            conds = (got.get("status") or {}).get("conditions") or []
            if conds and conds[-1]["type"] in ("Succeeded", "Failed"):
                break
            assert controller.poll() is None, "".join(output)
            assert time.monotonic() < deadline, got.get("status")
            time.sleep(0.2)
        trials = api.list_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "trials",
                                                   label_selector="experiment=parity")["items"]
        assert outcome(got, trials) == expected
    finally:
        controller.terminate()
        controller.wait(15)
        server.stop()
    assert controller.returncode == 0
