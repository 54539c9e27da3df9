"""Additional metrics (objective.additionalMetricNames) in `run`'s result: one column each after the
objective, their values on the best-trial line, and in `-o json` (the trial objects carry them).
The report functions alone, then the real `katib.py --fake run` of a trial printing two metrics."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from katib import report
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent


def trial(name: str, metrics: dict, state: str = "Succeeded") -> dict:
    return {"metadata": {"name": name}, "spec": {"parameterAssignments": [{"name": "x", "value": "3"}]},
            "status": {"conditions": [{"type": state, "status": "True"}],
                       "observation": {"metrics": [{"name": k, "value": v} for k, v in metrics.items()]}}}


SPEC = {"objective": {"objectiveMetricName": "accuracy", "additionalMetricNames": ["loss", "accuracy", "f1"]},
        "parameters": [{"name": "x"}]}


def test_one_column_per_additional_metric_after_the_objective():
    lines = report.table_lines(SPEC, [trial("t-1", {"accuracy": 0.9, "loss": 0.1, "f1": 0.25}),
                                      trial("t-2", {"accuracy": 0.5}, state="Running")], "accuracy")
    assert [line.split() for line in lines] == [
        ["TRIAL", "STATUS", "accuracy", "loss", "f1", "x", "REASON"],   # the objective is not repeated
        ["t-1", "Succeeded", "0.9", "0.1", "0.25", "3"],
        ["t-2", "Running", "0.5", "-", "-", "3"]]                         # not reported (yet): "-"


def test_no_additional_metrics_no_extra_columns():
    spec = {"objective": {"objectiveMetricName": "accuracy"}, "parameters": [{"name": "x"}]}
    assert report.table_lines(spec, [trial("t-1", {"accuracy": 0.9, "loss": 0.1})], "accuracy")[0].split() == \
        ["TRIAL", "STATUS", "accuracy", "x", "REASON"]


def test_best_trial_line_carries_the_additional_metrics_it_has():
    status = {"currentOptimalTrial": {"bestTrialName": "t-1", "parameterAssignments": [{"name": "x", "value": "3"}],
                                      "observation": {"metrics": [{"name": "loss", "value": 0.1},
                                                                  {"name": "accuracy", "value": "0.9"}]}}}
    assert report.best_lines(status, "accuracy", extra=["loss", "f1"]) == [
        "Best trial: t-1  accuracy=0.9  loss=0.1", "  x = 3"]
    assert report.best_lines(status, "accuracy")[0] == "Best trial: t-1  accuracy=0.9"


def test_run_shows_and_returns_the_additional_metric(tmp_path):
    exp = shell_experiment("extra", script="echo loss=0.1;", parallel=2, max_trials=2, x_max=20)
    exp["spec"]["objective"]["additionalMetricNames"] = ["loss"]
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(exp))
    base = [sys.executable, str(ROOT / "katib.py"), "--fake", "run", str(path), "--db", str(tmp_path / "k.db"), "-q"]
    table = subprocess.run(base, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("TRIAL"))
    assert header.split()[:4] == ["TRIAL", "STATUS", "accuracy", "loss"]
    rows = [line.split() for line in lines if line.startswith("extra-")]
    assert len(rows) == 2 and all(r[1] == "Succeeded" and r[2].startswith("0.1") and r[3] == "0.1" for r in rows)
    assert any(line.startswith("Best trial: extra-") and line.endswith("  loss=0.1") for line in lines)
    out = subprocess.run(base + ["-o", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    [result] = json.loads(out.stdout)
    for t in result["trials"]:
        metrics = {m["name"]: m["value"] for m in t["status"]["observation"]["metrics"]}
        assert metrics["loss"] == 0.1 and set(metrics) == {"accuracy", "loss"}
