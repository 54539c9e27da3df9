"""The local versions of upstream's bayesianoptimization and cmaes examples, and the auto
example, run to Succeeded through `katib.py --fake run` (real trial processes training
examples/mnist.py); auto names its choice in the Suggestion's status."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT.parent / "shared" / "upstream" / "v1alpha3" / "examples" / "v1alpha3"


def run(tmp_path: Path, example: str) -> tuple[dict, list[dict], dict]:
    path = ROOT / "examples" / f"{example}.yaml"
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db"),
                           "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    return result["experiment"], result["trials"], yaml.safe_load(path.read_text())["spec"]


@pytest.mark.parametrize("example", ["bayesianoptimization-example", "cmaes-example", "auto-example"])
def test_example_runs_to_success_with_distinct_trials(tmp_path, example):
    exp, trials, spec = run(tmp_path, example)
    last = exp["status"]["conditions"][-1]
    assert (last["type"], last["status"]) == ("Succeeded", "True")
    assert len(trials) == spec["maxTrialCount"]
    points = {tuple(sorted((a["name"], a["value"]) for a in t["spec"]["parameterAssignments"])) for t in trials}
    assert len(points) == len(trials)
    metric = spec["objective"]["objectiveMetricName"]
    best = max(next(m["value"] for m in t["status"]["observation"]["metrics"] if m["name"] == metric)
               for t in trials)
    assert 0.05 < float(best) <= 1.0


@pytest.mark.parametrize("example", ["bayesianoptimization-example", "cmaes-example"])
def test_local_example_keeps_upstreams_search(example):
    ours = yaml.safe_load((ROOT / "examples" / f"{example}.yaml").read_text())["spec"]
    upstream = yaml.safe_load((UPSTREAM / f"{example}.yaml").read_text())["spec"]
    for key in ("objective", "algorithm", "parameters", "parallelTrialCount"):
        assert ours[key] == upstream[key], key


def test_auto_example_names_its_choice_in_the_suggestion_status(tmp_path):
    exp, _, _ = run(tmp_path, "auto-example")
    done = subprocess.run([sys.executable, "katib.py", "--fake", "get", "suggestions", exp["metadata"]["name"],
                           "--db", str(tmp_path / "k.db"), "-o", "json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    settings = {s["name"]: s["value"] for s in json.loads(done.stdout)["status"]["algorithmSettings"]}
    assert settings["auto_algorithm"] == "bayesianoptimization"  # --lr, --num-layers and one categorical; 12 trials
    assert "categorical" in settings["auto_reason"]
