"""examples/hyperband-example.yaml runs its whole schedule through `katib.py --fake run`, with
real trial processes training examples/mnist.py: as many trials per epoch budget as the bracket
arithmetic says, promoted configurations trained longer, and the end of the search ends it."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from katib.algorithms import hyperband
from tests.corpus import EXAMPLES_DIR

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hyperband-example.yaml"


def config(assignments: list[dict]) -> tuple:
    return tuple(sorted((a["name"], a["value"]) for a in assignments if a["name"] != "--num-epochs"))


def test_hyperband_example_runs_the_whole_schedule(tmp_path):
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    settings = {s["name"]: s["value"] for s in spec["algorithm"]["algorithmSettings"]}
    rungs = hyperband.schedule(float(settings["r_l"]), int(settings["eta"]))
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(EXAMPLE), "--db", str(tmp_path / "k.db"),
                           "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    exp, trials = result["experiment"], result["trials"]
    last = exp["status"]["conditions"][-1]
    assert (last["type"], last["status"], last["reason"]) == ("Succeeded", "True", "ExperimentSuggestionEndReached")
    assert len(trials) == sum(n for _, _, n, _ in rungs) == 23
    epochs = Counter(dict((a["name"], a["value"]) for a in t["spec"]["parameterAssignments"])["--num-epochs"]
                     for t in trials)
    expected = Counter()
    for _, _, n, r in rungs:
        expected[str(int(r))] += n
    assert epochs == expected == Counter({"1": 9, "3": 8, "9": 6})
    assert all(t["status"]["conditions"][-1]["type"] == "Succeeded" for t in trials)
    # promotions: 3 + 1 + 2 trials repeat a configuration with more epochs; 17 are new
    by_config = Counter(config(t["spec"]["parameterAssignments"]) for t in trials)
    assert len(by_config) == 9 + 5 + 3
    assert Counter(by_config.values()) == {3: 1, 2: 4, 1: 12}  # 1, 3, 9 epochs: once; two budgets: 4 times


def test_upstream_hyperband_example_validates():
    done = subprocess.run([sys.executable, "katib.py", "validate", str(EXAMPLES_DIR / "hyperband-example.yaml"),
                           str(EXAMPLE)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("OK ") == 2
