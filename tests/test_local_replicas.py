"""TFJob and PyTorchJob trials locally: every replica is a process with its operator's
environment, so a script that rendezvouses over TF_CONFIG or MASTER_ADDR/PORT/RANK runs as it
would in a cluster; the master's status and output are the job's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from katib.backends import local_process as lp
from katib.backends.local_replicas import operator_env

ROOT = Path(__file__).resolve().parent.parent

# A PyTorch-style rendezvous without torch: rank 0 listens on MASTER_ADDR:MASTER_PORT, every
# other rank connects and sends its rank; the master prints the metric once all have joined.
RENDEZVOUS = r"""
import os, socket, sys, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
lr = float(sys.argv[1])
if rank == 0:
    server = socket.create_server(addr)
    seen = []
    while len(seen) < world - 1:
        conn, _ = server.accept()
        seen.append(int(conn.recv(16)))
        conn.close()
    print(f"ranks {sorted(seen)} joined")
    print(f"accuracy={1 - abs(lr - 0.3):.4f}")
else:
    for _ in range(200):
        try:
            with socket.create_connection(addr, timeout=1) as conn:
                conn.sendall(str(rank).encode())
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit(9)
"""

TF_SCRIPT = r"""
import json, os, sys
config = json.loads(os.environ["TF_CONFIG"])
task = config["task"]
if task["type"] == "chief":
    print(json.dumps(config["cluster"], sort_keys=True))
    print(f"accuracy={0.5 + 0.1 * len(config['cluster']['worker'])}")
elif task["type"] == "ps":
    import time
    time.sleep(60)  # parameter servers run until the job ends
"""


def test_operator_environments():
    replicas = [{"type": "Chief", "index": 0}, {"type": "Worker", "index": 0}, {"type": "Worker", "index": 1},
                {"type": "PS", "index": 0}, {"type": "Evaluator", "index": 0}]
    envs = operator_env("TFJob", replicas, [1, 2, 3, 4, 5])
    config = json.loads(envs[2]["TF_CONFIG"])
    assert config == {"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"],
                                  "ps": ["127.0.0.1:4"]},
                      "task": {"type": "worker", "index": 1}, "environment": "cloud"}
    assert json.loads(envs[4]["TF_CONFIG"])["task"] == {"type": "evaluator", "index": 0}
    envs = operator_env("PyTorchJob", [{"type": "Master", "index": 0}, {"type": "Worker", "index": 0},
                                       {"type": "Worker", "index": 1}], [7, 8, 9])
    assert [e["RANK"] for e in envs] == ["0", "1", "2"]
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"], e["WORLD_SIZE"]) for e in envs} == {("127.0.0.1", "7", "3")}


def test_replica_counts_are_checked():
    job = {"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"replicas": "two", "template": {"spec": {"containers": [{"name": "pytorch", "command": ["x"]}]}}}}}}
    with pytest.raises(lp.StartError, match="replicas must be a non-negative integer"):
        lp.plan_launch(job)
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 40
    with pytest.raises(lp.StartError, match="at most 32 run on one machine"):
        lp.plan_launch(job)


def pytorch_template(script: Path, workers: int) -> dict:
    container = {"name": "pytorch", "image": "none",
                 "command": ["python3", str(script), "{{range .HyperParameters}}{{.Value}}{{end}}"]}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": "{{.Trial}}", "namespace": "{{.NameSpace}}"},
            "spec": {"pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}},
                "Worker": {"replicas": workers, "restartPolicy": "OnFailure",
                           "template": {"spec": {"containers": [container]}}}}}}


def tf_template(script: Path) -> dict:
    container = {"name": "tensorflow", "image": "none", "command": ["python3", str(script)]}
    spec = {"template": {"spec": {"containers": [container]}}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
            "metadata": {"name": "{{.Trial}}", "namespace": "{{.NameSpace}}"},
            "spec": {"tfReplicaSpecs": {"Chief": {"replicas": 1, **spec}, "Worker": {"replicas": 2, **spec},
                                        "PS": {"replicas": 1, **spec}}}}


def experiment(name: str, template: dict, *, trials: int = 2) -> dict:
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                     "algorithm": {"algorithmName": "grid"},
                     "parallelTrialCount": 2, "maxTrialCount": trials, "maxFailedTrialCount": 0,
                     "parameters": [{"name": "lr", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.1", "max": "0.5", "step": "0.2"}}],
                     "trialTemplate": {"goTemplate": {"rawTemplate": yaml.safe_dump(json.loads(json.dumps(template)))}}}}


def run(tmp_path: Path, exp: dict) -> tuple[int, dict, str]:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db"),
                           "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    return done.returncode, (json.loads(done.stdout)[0] if done.stdout.strip() else {}), done.stderr


def accuracy(trial: dict) -> float:
    return float(next(m["value"] for m in trial["status"]["observation"]["metrics"] if m["name"] == "accuracy"))


def test_pytorchjob_replicas_rendezvous(tmp_path):
    script = tmp_path / "rendezvous.py"
    script.write_text(RENDEZVOUS)
    code, result, err = run(tmp_path, experiment("ptj", pytorch_template(script, workers=2)))
    assert code == 0, err
    assert sorted(accuracy(t) for t in result["trials"]) == [pytest.approx(0.8), pytest.approx(1.0)]
    job_dirs = sorted((tmp_path / "k.db.d" / "jobs").iterdir())
    assert len(job_dirs) == 2
    for job_dir in job_dirs:
        assert "ranks [1, 2] joined" in (job_dir / "output.log").read_text()  # the master's output
        assert sorted(p.name for p in (job_dir / "replicas").iterdir()) == ["worker-0.log", "worker-1.log"]


def test_tfjob_replicas_get_tf_config_and_ps_is_stopped(tmp_path):
    script = tmp_path / "tf.py"
    script.write_text(TF_SCRIPT)
    code, result, err = run(tmp_path, experiment("tfj", tf_template(script)))
    assert code == 0, err
    assert [accuracy(t) for t in result["trials"]] == [pytest.approx(0.7)] * 2
    out = (next((tmp_path / "k.db.d" / "jobs").iterdir()) / "output.log").read_text()
    cluster = json.loads(out.splitlines()[0])
    assert sorted(cluster) == ["chief", "ps", "worker"] and len(cluster["worker"]) == 2


def test_a_failing_worker_fails_the_trial_with_its_reason(tmp_path):
    script = tmp_path / "rendezvous.py"
    script.write_text(RENDEZVOUS.replace("else:\n    for _ in range(200):", "elif rank == 2:\n    sys.exit(4)\n"
                                                                            "else:\n    for _ in range(200):"))
    exp = experiment("ptj-fail", pytorch_template(script, workers=2), trials=1)
    exp["spec"]["parallelTrialCount"] = 1
    code, result, err = run(tmp_path, exp)
    assert code == 1
    [trial] = result["trials"]
    failed = [c for c in trial["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and "replica worker-1 failed with exit code 4" in failed[0]["message"]
