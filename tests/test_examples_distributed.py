"""The local versions of upstream's pytorchjob and tfjob examples run to Succeeded with
`katib.py --fake run`: every replica a process, the data-parallel trainer examples/dist_mnist.py
rendezvousing through the operators' environment, metrics from the master's output (PyTorchJob)
and from TensorBoard event files (TFJob, TensorFlowEvent collector)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("example", ["pytorchjob-example", "tfjob-example"])
def test_distributed_example_runs_to_success(tmp_path, example):
    path = ROOT / "examples" / f"{example}.yaml"
    spec = yaml.safe_load(path.read_text())["spec"]
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db"),
                           "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    exp, trials = result["experiment"], result["trials"]
    assert exp["status"]["conditions"][-1]["type"] == "Succeeded"
    assert len(trials) == spec["maxTrialCount"]
    metric = spec["objective"]["objectiveMetricName"]
    for trial in trials:
        [value] = [float(m["value"]) for m in trial["status"]["observation"]["metrics"] if m["name"] == metric]
        assert 0.1 < value <= 1.0
    for job_dir in (tmp_path / "k.db.d" / "jobs").iterdir():  # the workers ran beside the master
        assert sorted(p.name for p in (job_dir / "replicas").iterdir()) == ["worker-0.log", "worker-1.log"]
