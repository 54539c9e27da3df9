"""Crash safety: `katib.py --fake run` is killed with SIGKILL at chosen points of a running
experiment, restarted on the same database, and must still finish with exactly maxTrialCount
trials, no duplicate names or assignments, every observation kept and no trial stuck."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MAX_TRIALS = 8

EXPERIMENT = {
    "apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
    "metadata": {"name": "crashy", "namespace": "default"},
    "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
        "algorithm": {"algorithmName": "grid"},
        "parallelTrialCount": 3, "maxTrialCount": MAX_TRIALS, "maxFailedTrialCount": 0,
        "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "10", "max": "40"}}],
        "trialTemplate": {"goTemplate": {"rawTemplate": """apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Trial}}
  namespace: {{.NameSpace}}
spec:
  template:
    spec:
      containers:
      - name: main
        image: none
        command: ["sh", "-c"]
        args: ["sleep 0.3; echo accuracy=0.{{range .HyperParameters}}{{.Value}}{{end}}"]
      restartPolicy: Never
"""}},
    },
}


def wait_for_running_trials(tmp: Path, proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    jobs = tmp / "katib.db.d" / "jobs"
    while time.monotonic() < deadline and proc.poll() is None:
        if jobs.is_dir() and any((d / "pid").exists() and not (d / "exit").exists() for d in jobs.iterdir()):
            return
        time.sleep(0.01)
    if proc.poll() is None:
        raise AssertionError("no trial process started")


def run_katib(tmp: Path, *, failpoints: str = "", kill_when_running: float | None = None,
              sigint_when_running: bool = False) -> int:
    env = dict(os.environ, KATIB_FAILPOINTS=failpoints)
    proc = subprocess.Popen([sys.executable, str(ROOT / "katib.py"), "--fake", "run", str(tmp / "exp.yaml"),
                             "--db", str(tmp / "katib.db"), "-q"],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if kill_when_running is not None:  # SIGKILL `kill_when_running` s after a trial runs
            wait_for_running_trials(tmp, proc)
            time.sleep(kill_when_running)
            proc.send_signal(signal.SIGKILL)
        if sigint_when_running:
            wait_for_running_trials(tmp, proc)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_katib.last = (out, err)
    return proc.returncode


def check_outcome(tmp: Path) -> None:
    from katib.db import ObjectTable, connect, get_observation_log

    db = connect(str(tmp / "katib.db"))
    try:
        objects = ObjectTable(db).load_all()
        trials = [o for o in objects if o["kind"] == "Trial"]
        exp = next(o for o in objects if o["kind"] == "Experiment")
        sug = next(o for o in objects if o["kind"] == "Suggestion")
        names = [t["metadata"]["name"] for t in trials]
        points = [tuple((a["name"], a["value"]) for a in t["spec"]["parameterAssignments"]) for t in trials]
        assert len(trials) == MAX_TRIALS, names
        assert len(set(names)) == MAX_TRIALS
        assert len(set(points)) == MAX_TRIALS, points
        assert sug["status"]["suggestionCount"] == MAX_TRIALS
        assert exp["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
        assert exp["status"]["trialsSucceeded"] == MAX_TRIALS
        for t in trials:
            last = t["status"]["conditions"][-1]
            assert (last["type"], last["status"]) == ("Succeeded", "True"), (t["metadata"]["name"], last)
            x = dict(points[names.index(t["metadata"]["name"])])["x"]
            assert t["status"]["observation"]["metrics"] == [{"name": "accuracy", "value": float(f"0.{x}")}]
            logs = get_observation_log(db, t["metadata"]["name"], "accuracy")
            assert [log.value for log in logs] == [f"0.{x}"]  # kept, and never duplicated
    finally:
        db.close()


@pytest.fixture
def tmp(tmp_path):
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    return tmp_path


@pytest.mark.parametrize("failpoint", ["assignments-recorded:1", "assignments-recorded:2",
                                       "trial-created:2", "metrics-stored:1", "metrics-stored:4"])
def test_sigkill_at_a_crash_point_then_restart(tmp, failpoint):
    code = run_katib(tmp, failpoints=failpoint)
    assert code == -signal.SIGKILL, run_katib.last
    code = run_katib(tmp)
    assert code == 0, run_katib.last
    check_outcome(tmp)


def test_sigkill_repeatedly_while_trials_run(tmp):
    """Killed three times while trial processes run (they outlive it), then run to the end."""
    kills = 0
    for extra in (0.0, 0.25, 0.5):
        code = run_katib(tmp, kill_when_running=extra)
        if code == 0:  # finished before the kill came
            break
        assert code == -signal.SIGKILL, run_katib.last
        kills += 1
    else:
        assert run_katib(tmp) == 0, run_katib.last
    assert kills >= 2
    check_outcome(tmp)


def test_ctrl_c_stops_trials_and_rerun_continues(tmp):
    code = run_katib(tmp, sigint_when_running=True)
    assert code == 130, run_katib.last
    assert "interrupted" in run_katib.last[1]
    time.sleep(0.1)
    leftover = subprocess.run(["pgrep", "-f", "sleep 0.3; echo accuracy"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""  # trial processes were stopped
    assert run_katib(tmp) == 0, run_katib.last
    check_outcome(tmp)


def test_persistence_writes_at_the_end_of_a_transaction(tmp_path):
    from katib.db import ObjectTable, connect
    from katib.runtime import SelectivePersistence

    table = ObjectTable(connect(str(tmp_path / "k.db")))
    opened = []
    real = table.transaction
    table.transaction = lambda: (opened.append(1), real())[1]
    persistence = SelectivePersistence(table)

    def trial(name, rv):
        return {"kind": "Trial", "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}

    with persistence.transaction():  # an event only: no database write at all
        persistence.put({"kind": "Event", "metadata": {"name": "e", "namespace": "ns", "resourceVersion": "1"}})
    with persistence.transaction():  # one object: one autocommitted statement
        persistence.put(trial("t", 2))
        assert table.load_all() == []  # written when the transaction ends
    assert opened == []
    with persistence.transaction():  # several: one database transaction
        persistence.put(trial("u", 3))
        persistence.remove("Trial", "ns", "t", resource_version=4)
    assert opened == [1]
    assert [o["metadata"]["name"] for o in table.load_all()] == ["u"]
    try:
        with persistence.transaction():
            persistence.put(trial("v", 5))
            raise RuntimeError("the backend rolls back")
    except RuntimeError:
        pass
    assert [o["metadata"]["name"] for o in table.load_all()] == ["u"]
    assert table.max_resource_version() == 4
