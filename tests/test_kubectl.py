"""The pinned real kubectl against a real `katib.py --fake serve` process (tests/apiserver_fixture):
apply (create, then update), get with Katib's columns, get -w, describe, wait, delete with its
cascade, apply --server-side, explain, a rejected experiment listing every field error, and the
credentials (token, CA, kubeconfig mode) kept across restarts."""
from __future__ import annotations

import json
import re
import sqlite3
import stat
import subprocess
import threading
import time

import pytest
import yaml

from tests.apiserver_fixture import api_server, kubectl_path, start_api_server  # noqa: F401 (fixture)
from tests.experiments import shell_experiment


def write_experiment(tmp_path, name="kx", *, max_trials=3, parallel=2, x_max=14, file="exp.yaml") -> str:
    exp = shell_experiment(name, script="", parallel=parallel, max_trials=max_trials, x_max=x_max)
    path = tmp_path / file
    path.write_text(yaml.safe_dump(exp))
    return str(path)


def observation_rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from observation_logs").fetchone()[0]


def names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip()]


def test_apply_get_describe_wait_update_delete(api_server, tmp_path):
    path = write_experiment(tmp_path)
    assert "experiment.kubeflow.org/kx created" in api_server.kubectl("apply", "-f", path).stdout
    api_server.kubectl("wait", "--for=condition=Succeeded", "experiment/kx", "--timeout=60s")

    out = api_server.kubectl("get", "experiments,trials,suggestions").stdout
    header_lines = [line for line in out.splitlines() if line.startswith("NAME")]
    assert header_lines[0].split() == ["NAME", "STATUS", "AGE"]
    assert header_lines[1].split() == ["NAME", "TYPE", "STATUS", "AGE"]
    assert header_lines[2].split() == ["NAME", "TYPE", "STATUS", "REQUESTED", "ASSIGNED", "AGE"]
    assert "experiment.kubeflow.org/kx   Succeeded" in out
    assert out.count("trial.kubeflow.org/kx-") == 3
    assert "suggestion.kubeflow.org/kx" in out

    described = api_server.kubectl("describe", "experiment", "kx").stdout
    assert re.search(r"Max Trial Count: +3\n", described) and "ExperimentCreated" in described

    # apply again with a label added: configured, the label lands, the spec (generation) is unchanged
    exp = yaml.safe_load(open(path))
    exp["metadata"]["labels"] = {"team": "tuning"}
    open(path, "w").write(yaml.safe_dump(exp))
    assert "experiment.kubeflow.org/kx configured" in api_server.kubectl("apply", "-f", path).stdout
    stored = json.loads(api_server.kubectl("get", "experiment", "kx", "-o", "json").stdout)
    assert stored["metadata"]["labels"] == {"team": "tuning"}
    assert stored["metadata"]["generation"] == 1
    assert names(api_server.kubectl("get", "experiments", "-l", "team in (tuning,other)").stdout) == ["kx"]
    assert observation_rows(api_server.db) >= 3

    assert 'experiment.kubeflow.org "kx" deleted' in api_server.kubectl("delete", "experiment", "kx").stdout
    for kind in ("experiments", "trials", "suggestions", "jobs"):
        result = api_server.kubectl("get", kind)
        assert result.stdout == "" and "No resources found" in result.stderr, kind
    assert observation_rows(api_server.db) == 0   # the trials' finalizer removed their logs


def test_delete_of_a_running_experiment_cascades_to_its_jobs(api_server, tmp_path):
    exp = shell_experiment("slow", script="sleep 60;", parallel=2, max_trials=2, x_max=14)
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(exp))
    api_server.kubectl("apply", "-f", str(path))
    deadline = time.monotonic() + 30
    while len(names(api_server.kubectl("get", "jobs").stdout)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    api_server.kubectl("delete", "experiment", "slow", "--timeout=30s")
    for kind in ("trials", "suggestions", "jobs"):
        assert "No resources found" in api_server.kubectl("get", kind).stderr, kind


def test_get_trials_watch_streams_new_trials(api_server, tmp_path):
    watcher = subprocess.Popen([str(kubectl_path()), "--kubeconfig", str(api_server.kubeconfig), "--cache-dir",
                                str(api_server.cache_dir), "get", "trials", "-w"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(iter(watcher.stdout.readline, "")), daemon=True).start()
    try:
        time.sleep(0.5)   # the watch is open before anything exists
        api_server.kubectl("apply", "-f", write_experiment(tmp_path, max_trials=3))
        deadline = time.monotonic() + 60
        while len({line.split()[0] for line in seen if line.startswith("kx-")}) < 3 or not any(
                "Succeeded" in line for line in seen):
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
    finally:
        watcher.kill()
        watcher.wait()
    assert seen[0].split() == ["NAME", "TYPE", "STATUS", "AGE"]


def test_invalid_experiment_prints_every_field_error(api_server, tmp_path):
    exp = shell_experiment("bad", script="", parallel=-1, max_trials=0, x_max=14)
    exp["spec"]["algorithm"]["algorithmName"] = "nope"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(exp))
    result = api_server.kubectl("apply", "-f", str(path), check=False)
    assert result.returncode == 1
    assert 'The Experiment "bad" is invalid:' in result.stderr
    for text in ("* spec.maxTrialCount: Invalid value: 0: must be greater than 0",
                 "* spec.parallelTrialCount: Invalid value: -1: must be greater than 0",
                 "* spec.algorithm.algorithmName:"):
        assert text in result.stderr
    assert "No resources found" in api_server.kubectl("get", "experiments").stderr


def test_server_side_apply_creates_then_updates(api_server, tmp_path):
    path = write_experiment(tmp_path, "ssa", max_trials=2, parallel=1)
    assert "serverside-applied" in api_server.kubectl("apply", "--server-side", "-f", path).stdout
    write_experiment(tmp_path, "ssa", max_trials=3, parallel=1)
    assert "serverside-applied" in api_server.kubectl("apply", "--server-side", "-f", path).stdout
    exp = json.loads(api_server.kubectl("get", "experiment", "ssa", "-o", "json",
                                        "--show-managed-fields").stdout)
    assert exp["spec"]["maxTrialCount"] == 3
    managers = {(m["manager"], m["operation"]) for m in exp["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    api_server.kubectl("wait", "--for=condition=Succeeded", "experiment/ssa", "--timeout=60s")
    api_server.kubectl("delete", "experiment", "ssa")


def test_explain_shows_the_experiment_fields(api_server):
    out = api_server.kubectl("explain", "experiment.spec").stdout
    assert "KIND:       Experiment" in out and "VERSION:    v1alpha3" in out
    for field in ("maxTrialCount", "parallelTrialCount", "objective", "trialTemplate"):
        assert field in out


def test_credentials_are_private_and_reused_across_restarts(tmp_path):
    first = start_api_server(tmp_path)
    try:
        assert stat.S_IMODE(first.kubeconfig.stat().st_mode) == 0o600
        assert first.kubeconfig == first.work_dir / "kubeconfig"
        assert first.url.startswith("https://127.0.0.1:") and not first.url.endswith(":0")
        assert first.url in first.output()
        ca, token = first.ca_file.read_bytes(), first.token
        no_token = subprocess.run([str(kubectl_path()), "--server", first.url, "--certificate-authority",
                                   str(first.ca_file), "--token", "wrong", "--cache-dir", str(first.cache_dir), "get",
                                   "experiments"],
                                  capture_output=True, text=True, timeout=30)
        assert no_token.returncode == 1 and "You must be logged in to the server" in no_token.stderr
    finally:
        assert first.stop() == 0
    second = start_api_server(tmp_path)
    try:
        assert second.ca_file.read_bytes() == ca and second.token == token
        assert "No resources found" in second.kubectl("get", "experiments").stderr
    finally:
        second.stop()


@pytest.mark.parametrize("args", [["--listen", "nonsense"], ["--listen", "127.0.0.1:99999"]])
def test_bad_listen_address_is_one_line(tmp_path, args):
    import sys
    from tests.apiserver_fixture import ROOT
    result = subprocess.run([sys.executable, str(ROOT / "katib.py"), "--fake", "--db", str(tmp_path / "k.db"),
                             "serve", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --listen") and result.stderr.count("\n") == 1


def test_api_only_serves_the_api_without_katib_controllers(tmp_path):
    server = start_api_server(tmp_path, api_only=True)
    try:
        assert "API only" in server.output()
        server.kubectl("apply", "-f", write_experiment(tmp_path, "idle"))
        time.sleep(1.5)   # with controllers, a Suggestion and trials appear within this time
        exp = json.loads(server.kubectl("get", "experiment", "idle", "-o", "json").stdout)
        # no Katib admission either: a cluster before Katib is installed has none (only registered webhooks)
        assert "metricsCollectorSpec" not in exp["spec"]
        assert "status" not in exp
        assert "No resources found" in server.kubectl("get", "suggestions,trials").stderr
    finally:
        assert server.stop() == 0
