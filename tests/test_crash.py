"""Crash safety: `katib.py --fake run` is killed with SIGKILL at chosen points of a running
experiment, restarted on the same database, and must still finish with exactly maxTrialCount
trials, no duplicate names or assignments, every observation kept, no trial stuck, and every
trial's command run exactly once (each run appends the trial's name to executions.log: the
observation log alone is replaced on each collection and would not show a second run).
After Ctrl-C, the trials it stopped run again on the next start; nothing else does."""
from __future__ import annotations

import copy
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent
MAX_TRIALS = 8

EXPERIMENT = shell_experiment("crashy", script="echo {{.Trial}} >> EXECUTIONS; sleep 0.3;", parallel=3,
                              max_trials=MAX_TRIALS, x_max=40)


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


def executions(tmp: Path) -> Counter:
    """How often each trial's command started."""
    log = tmp / "executions.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


def check_outcome(tmp: Path, *, reruns_allowed: int = 0) -> None:
    """The finished experiment is whole, and each trial ran once (at most `reruns_allowed`
    trials twice: those a Ctrl-C stopped)."""
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
    runs = executions(tmp)
    assert set(runs) == set(names), runs
    twice = [name for name, n in runs.items() if n > 1]
    assert all(runs[name] == 2 for name in twice) and len(twice) <= reruns_allowed, runs


@pytest.fixture
def tmp(tmp_path):
    exp = copy.deepcopy(EXPERIMENT)
    template = exp["spec"]["trialTemplate"]["goTemplate"]
    template["rawTemplate"] = template["rawTemplate"].replace("EXECUTIONS", shlex.quote(str(tmp_path / "executions.log")))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    return tmp_path


# Each point in the order a trial passes them: assignments recorded in the Suggestion (before
# any Trial), Trial created, Job created (before the trial's status), metrics stored (before the
# Job's status), the trial's completion stored (before its Job is deleted). (A run has no
# multi-object transaction: see the deletion test for persist-mid-transaction.)
@pytest.mark.parametrize("failpoint", ["assignments-recorded:1", "assignments-recorded:2",
                                       "trial-created:2", "job-created:4",
                                       "metrics-stored:1", "metrics-stored:4", "trial-completed:5"])
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
    leftover = subprocess.run(["pgrep", "-f", f"{tmp}.*sleep 0.3; echo accuracy"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""  # trial processes were stopped
    assert run_katib(tmp) == 0, run_katib.last
    check_outcome(tmp, reruns_allowed=EXPERIMENT["spec"]["parallelTrialCount"])


DELETE_EXPERIMENT = r"""
import sys, threading
from pathlib import Path
from katib.runtime import FakeControlPlane
from katib.errors import NotFound

KINDS = ("Experiment", "Suggestion", "Trial", "Job")
plane = FakeControlPlane(db_url=sys.argv[1], work_dir=Path(sys.argv[2]))
gone = threading.Event()

def check(_event=None):
    if not any(plane.backend.list(kind, "default") for kind in KINDS):
        gone.set()

plane.backend.subscribe(check, kinds=KINDS)
plane.start()
try:
    plane.backend.delete("Experiment", "default", "crashy")
except NotFound:  # deleted before the crash: the restarted controllers finish the cascade
    pass
check()
ok = gone.wait(30)
plane.stop()
sys.exit(0 if ok else "the experiment's objects were not all deleted")
"""


def delete_experiment(tmp: Path, *, failpoints: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, KATIB_FAILPOINTS=failpoints, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", DELETE_EXPERIMENT, str(tmp / "katib.db"), str(tmp / "katib.db.d")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=60)


def check_whole_writes(tmp: Path) -> None:
    """The stored objects are what whole transactions leave (a restart would hide a torn one:
    loading finishes deletions and collects orphans): an object whose owners are all gone was
    removed or marked for deletion with its owner's removal, and one marked without any
    finalizer left was removed in the same write."""
    from katib.db import ObjectTable, connect

    db = connect(str(tmp / "katib.db"))
    try:
        objects = ObjectTable(db).load_all()
    finally:
        db.close()
    uids = {o["metadata"]["uid"] for o in objects}
    assert any(o["kind"] == "Trial" for o in objects)  # the kill came before the last write
    for obj in objects:
        meta = obj["metadata"]
        owners = [ref["uid"] for ref in meta.get("ownerReferences") or ()]
        if owners and not set(owners) & uids:
            assert meta.get("deletionTimestamp"), (obj["kind"], meta["name"], "orphaned by a torn write")
        if meta.get("deletionTimestamp"):
            assert meta.get("finalizers"), (obj["kind"], meta["name"], "deleted, yet stored")


# Deleting a finished experiment removes it with its Suggestion and marks its 8 trials in one
# transaction of 10 statements (the point is passed before the 2nd to the 10th); each trial then
# goes alone (its Job went when it completed).
@pytest.mark.parametrize("failpoint", ["persist-mid-transaction:1", "persist-mid-transaction:9"])
def test_sigkill_inside_a_multi_object_transaction_then_restart(tmp, failpoint):
    from katib.db import ObjectTable, connect, get_observation_log

    assert run_katib(tmp) == 0, run_katib.last
    check_outcome(tmp)
    trials = list(executions(tmp))
    killed = delete_experiment(tmp, failpoints=failpoint)
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    check_whole_writes(tmp)
    done = delete_experiment(tmp)
    assert done.returncode == 0, (done.stdout, done.stderr)
    db = connect(str(tmp / "katib.db"))
    try:
        kinds = {o["kind"] for o in ObjectTable(db).load_all()}
        assert kinds <= {"ConfigMap"}, kinds  # nothing of the experiment came back
        assert not any(get_observation_log(db, name) for name in trials)  # the finalizers ran
    finally:
        db.close()
    assert all(n == 1 for n in executions(tmp).values())  # deleting ran nothing again


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
