"""The shipped examples run to Succeeded through `katib.py --fake run`, with real trial
processes training examples/mnist.py (the collector examples: examples/metrics_trainer.py), and
the reported best trial is the best observation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("example", ["random-example", "grid-example", "never-resume-example", "tpe-example",
                                     # a collector of each kind, locally (katib.backends.local_pod)
                                     "file-metricscollector-example", "custom-metricscollector-example",
                                     "tfevent-example", "prometheus-example"])
def test_example_runs_to_success(tmp_path, example):
    path = ROOT / "examples" / f"{example}.yaml"
    spec = yaml.safe_load(path.read_text())["spec"]
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db"),
                           "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)  # always a list, one entry per experiment
    exp, trials = result["experiment"], result["trials"]
    last = exp["status"]["conditions"][-1]
    assert (last["type"], last["status"]) == ("Succeeded", "True")
    assert len(trials) == spec["maxTrialCount"]
    metric = spec["objective"]["objectiveMetricName"]
    values = {t["metadata"]["name"]: next(m.get("value", 0.0) for m in t["status"]["observation"]["metrics"]
                                          if m["name"] == metric) for t in trials}
    best = max(values, key=values.get)
    assert values[exp["status"]["currentOptimalTrial"]["bestTrialName"]] == values[best]
    assert 0.05 < values[best] <= 1.0
    if example == "never-resume-example":
        assert "--lr" in {a["name"] for a in exp["status"]["currentOptimalTrial"]["parameterAssignments"]}
    if example == "grid-example":  # --lr varies fastest (9 values), then --num-epochs
        points = {tuple(sorted((a["name"], a["value"]) for a in t["spec"]["parameterAssignments"])) for t in trials}
        assert len(points) == 12
        epochs = sorted(int(dict(p)["--num-epochs"]) for p in points)
        assert epochs == [10] * 9 + [11] * 3
        assert {dict(p)["--lr"] for p in points} >= {"0.001", "0.002", "0.009000000000000001"}


def test_table_output_names_the_best_trial(tmp_path):
    path = ROOT / "examples" / "random-example.yaml"
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Experiment default/random-example: Succeeded (ExperimentMaxTrialsReached)" in done.stdout
    assert "Best trial: random-example-" in done.stdout
    log = Path(done.stdout.rstrip().splitlines()[-1].split(": ", 1)[1])
    assert "Validation-accuracy=" in log.read_text()  # the best trial's own output
    assert "[default/random-example]" in done.stderr  # progress
    again = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db"),
                            "-o", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert len(json.loads(again.stdout)[0]["trials"]) == 12  # continued, not started over


def test_invalid_experiment_exits_2_with_field_errors(tmp_path):
    exp = yaml.safe_load((ROOT / "examples" / "random-example.yaml").read_text())
    exp["spec"]["maxTrialCount"] = 0
    exp["spec"]["parameters"][0]["feasibleSpace"]["min"] = "0.5"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(exp))
    done = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(bad), "--db", str(tmp_path / "k.db")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "spec.maxTrialCount" in done.stderr and "spec.parameters[0]" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_without_fake_and_with_missing_file(tmp_path):
    no_fake = subprocess.run([sys.executable, "katib.py", "run", "examples/random-example.yaml"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert no_fake.returncode == 2 and "--fake" in no_fake.stderr
    missing = subprocess.run([sys.executable, "katib.py", "--fake", "run", str(tmp_path / "nope.yaml"),
                              "--db", str(tmp_path / "k.db")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr


def test_fake_alone_serves_until_interrupted_and_continues_stored_experiments(tmp_path):
    import signal
    import time

    from katib.db import ObjectTable, connect

    db = tmp_path / "k.db"
    log = tmp_path / "serve.log"
    with open(log, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "katib.py", "--fake", "--db", str(db), "--listen", "127.0.0.1:0"],
                                cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err_file, text=True)
    try:
        deadline = time.monotonic() + 60
        while "serving the Kubernetes API at" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()  # long-lived
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
    assert "(control plane; db " in log.read_text() and "kubeconfig: " in log.read_text()

    serve = subprocess.Popen([sys.executable, "katib.py", "--fake", "serve", "--db", str(db), "--listen", "127.0.0.1:0",
                              "--apply", "examples/never-resume-example.yaml"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        done = False
        while time.monotonic() < deadline and not done:
            time.sleep(0.5)
            table = ObjectTable(connect(str(db)))
            exp = next((o for o in table.load_all() if o["kind"] == "Experiment"), None)
            conds = ((exp or {}).get("status") or {}).get("conditions") or []
            done = bool(conds) and conds[-1]["type"] == "Succeeded"
        assert done
        serve.send_signal(signal.SIGINT)
        serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 0
