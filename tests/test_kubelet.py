"""Local kubelet: the start queue (pure), the metrics it collects (the trial's collector kind
and filters), File collector isolation and the concurrency cap with real processes, and a
kubelet thread that cannot go on (a full disk, a DB that refuses writes) reporting one line.

Nothing sleeps: the tests wait on backend events and on named pipes the jobs write to."""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from katib.backends import local_wrapper as lw
from katib.backends.fake import FakeBackend
from katib.backends.kubelet import LocalKubelet, complete_job
from katib.backends.local_collector import collect_metrics
from katib.backends.local_queue import Entry, StartQueue
from katib.backends.local_runner import LocalRunner
from tests.test_local_runner import Fifo, fifo, sh  # noqa: F401  (fifo is a fixture)


# ------------------------------------------------------------------------- start queue (pure)

def test_the_cap_starts_jobs_in_creation_order_as_slots_free():
    q = StartQueue(max_running=2)
    for key in "abcd":
        q.add(Entry(key=key))
    assert [e.key for e in q.take()[0]] == ["a", "b"]
    assert q.take() == ([], []) and q.waiting() == ["c", "d"]
    q.release("b")
    assert [e.key for e in q.take()[0]] == ["c"]
    q.discard("d")  # deleted while waiting: never starts
    q.release("a")
    assert q.take() == ([], []) and q.running() == ["c"]


def test_no_cap_starts_everything():
    q = StartQueue(max_running=None)
    for key in range(50):
        q.add(Entry(key=str(key)))
    assert len(q.take()[0]) == 50


def test_one_job_per_file_collector_path_and_others_pass_it():
    q = StartQueue(max_running=3)
    q.add(Entry(key="ns/a", path="/katib/m.log", owner="trial-a"))
    q.add(Entry(key="ns/b", path="/katib/m.log", owner="trial-b"))
    q.add(Entry(key="ns/c", path="/other.log"))
    q.add(Entry(key="ns/d"))
    ready, blocked = q.take()
    assert [e.key for e in ready] == ["ns/a", "ns/c", "ns/d"]
    assert [b.entry.key for b in blocked] == ["ns/b"]
    assert blocked[0].message() == ("File collector path /katib/m.log is in use by trial trial-a: "
                                    "trials that share it run one at a time")
    assert q.take() == ([], [])           # said once
    q.release("ns/c")                     # a free slot does not free the path
    assert q.take() == ([], [])
    q.release("ns/a")
    assert [e.key for e in q.take()[0]] == ["ns/b"]


def test_a_re_attached_job_holds_its_slot_and_path():
    q = StartQueue(max_running=2)
    q.add_running(Entry(key="a", path="/p"))
    q.add(Entry(key="b", path="/p"))
    q.add(Entry(key="c"))
    q.add(Entry(key="d"))
    ready, blocked = q.take()
    assert [e.key for e in ready] == ["c"] and [b.entry.key for b in blocked] == ["b"]


# --------------------------------------------------------------- metrics: kind and filters

class Store:
    """An observation store that keeps what it is given."""

    def __init__(self):
        self.logs: dict[str, list] = {}

    def replace(self, trial_name, logs):
        self.logs[trial_name] = [(log.name, log.value) for log in logs]
        return len(self.logs[trial_name])


def trial(*, collector: dict | None = None, metric: str = "accuracy") -> dict:
    spec = {"objective": {"type": "maximize", "objectiveMetricName": metric}}
    if collector is not None:
        spec["metricsCollector"] = collector
    return {"kind": "Trial", "metadata": {"name": "t1", "namespace": "default"}, "spec": spec}


def test_stdout_is_parsed_with_the_trials_filter(tmp_path):
    out = tmp_path / "output.log"
    out.write_text("accuracy=0.2\naccuracy: 0.7\n")
    store = Store()
    collect_metrics(store, trial(collector={"collector": {"kind": "StdOut"}, "source": {
        "filter": {"metricsFormat": [r"(\w+):\s*([\d.]+)"]}}}), output=out)
    assert store.logs == {"t1": [("accuracy", "0.7")]}   # the default filter would take 0.2
    collect_metrics(store, trial(), output=out)
    assert store.logs == {"t1": [("accuracy", "0.2")]}


def test_a_file_collector_reads_its_file_not_the_output(tmp_path):
    out, metrics = tmp_path / "output.log", tmp_path / "metrics.log"
    out.write_text("accuracy=0.1\n")
    metrics.write_text("accuracy=0.9\n")
    store = Store()
    collector = {"collector": {"kind": "File"},
                 "source": {"fileSystemPath": {"path": str(metrics), "kind": "File"}}}
    collect_metrics(store, trial(collector=collector), output=out)
    assert store.logs == {"t1": [("accuracy", "0.9")]}
    metrics.unlink()
    collect_metrics(store, trial(collector=collector), output=out)
    assert store.logs == {"t1": []}                       # no file: no metrics, not stdout's


def test_metrics_are_stored_before_the_job_is_finished(tmp_path):
    backend = FakeBackend()
    backend.create({"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
                    "metadata": {"name": "t1", "namespace": "default"},
                    "spec": trial()["spec"]})
    owner = backend.get("Trial", "default", "t1")
    job = backend.create(make_job("t1", "true", owner=owner))
    out = tmp_path / "o.log"
    out.write_text("accuracy=0.4\n")
    store = Store()
    seen = []
    backend.subscribe(lambda e: seen.append(dict(store.logs)), kinds=("Job",))
    complete_job(backend, store, job, {"conditions": [{"type": "Complete", "status": "True"}]}, output=out)
    assert seen == [{"t1": [("accuracy", "0.4")]}]


# ---------------------------------------------------------------- kubelet with real processes

def make_job(name: str, script: str, *, owner: dict | None = None) -> dict:
    job = sh(script, name=name)
    if owner is not None:
        job["metadata"]["ownerReferences"] = [{"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
                                               "name": owner["metadata"]["name"],
                                               "uid": owner["metadata"]["uid"], "controller": True}]
    return job


class Kubelet:
    """A FakeBackend, a real runner and a LocalKubelet; `fatal` holds what on_fatal got."""

    def __init__(self, root: Path, **kw):
        self.backend = FakeBackend()
        self.runner = LocalRunner(root / "jobs")
        self.fatal: list[str] = []
        self.failed = threading.Event()
        self.kubelet = LocalKubelet(self.backend, self.runner, observations=Store(),
                                    on_fatal=self._on_fatal, **kw)
        self.kubelet.start()

    def _on_fatal(self, message: str) -> None:
        self.fatal.append(message)
        self.failed.set()

    def job(self, name: str) -> dict:
        return self.backend.get("Job", "default", name)

    def wait_job(self, name: str, predicate, timeout: float = 10.0) -> dict:
        """Wait (on backend events) until the Job satisfies `predicate`."""
        hit = threading.Event()
        unsubscribe = self.backend.subscribe(
            lambda e: predicate(e.object) and e.object["metadata"]["name"] == name and hit.set(),
            kinds=("Job",))
        try:
            if not predicate(self.job(name)):
                assert hit.wait(timeout), f"job {name} did not get there within {timeout}s"
        finally:
            unsubscribe()
        return self.job(name)

    def close(self):
        self.kubelet.close(kill=True)


def finished(job: dict) -> bool:
    return bool((job.get("status") or {}).get("conditions"))


@pytest.fixture
def kubelets(tmp_path):
    made = []

    def make(**kw) -> Kubelet:
        made.append(Kubelet(tmp_path, **kw))
        return made[-1]

    yield make
    for k in made:
        k.close()


def test_at_most_max_running_jobs_run_and_the_rest_wait_unstarted(kubelets, fifo):
    k = kubelets(max_running=1)
    started, gate = fifo("started"), fifo("gate")
    names = [f"job-{i}" for i in range(3)]
    for name in names:
        k.backend.create(make_job(name, f"echo {name} > {started.path}; read x < {gate.path}"))
    for i, name in enumerate(names):
        assert started.read() == f"{name}\n"          # creation order
        assert all(finished(k.job(n)) for n in names[:i])           # the one before had ended
        assert all(not k.job(n).get("status") for n in names[i + 1:])  # no startTime while waiting
        gate.write()
        k.wait_job(name, finished)
    assert [k.job(n)["status"]["succeeded"] for n in names] == [1, 1, 1]


def test_a_start_that_cannot_write_the_job_directory_fails_the_job_and_is_fatal(kubelets, monkeypatch):
    real = lw.write_file

    def full(path, data):
        if path.name == "job.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(lw, "write_file", full)
    k = kubelets()
    k.backend.create(make_job("job-0", "true"))
    assert k.failed.wait(10)
    path = k.runner.output_path("default/job-0").parent / "job.json"
    assert k.fatal == [f"local kubelet: cannot start job default/job-0: cannot write {path}: "
                       "No space left on device"]
    [condition] = k.wait_job("job-0", finished)["status"]["conditions"]
    assert (condition["type"], condition["reason"], condition["message"]) == \
        ("Failed", "StartError", f"cannot write {path}: No space left on device")
    assert not path.parent.exists()


def test_a_status_write_the_database_refuses_is_fatal(kubelets, fifo):
    from katib.db import DatabaseUnavailable

    k = kubelets()
    k.backend.inject("update_status", kind="Job", times=None, error=DatabaseUnavailable(
        "database error on sqlite:////data/katib.db: database or disk is full"))
    gate = fifo("gate")
    k.backend.create(make_job("job-0", f"read x < {gate.path}"))
    assert k.failed.wait(10)
    assert k.fatal == ["local kubelet: cannot record that job default/job-0 started: "
                       "database error on sqlite:////data/katib.db: database or disk is full"]
    k.kubelet._thread.join(5)
    assert not k.kubelet._thread.is_alive()   # stopped, not spinning


def test_an_outcome_that_cannot_be_recorded_on_disk_is_fatal(kubelets, monkeypatch):
    k = kubelets()
    where = "/jobs/default_job-0/outcome.json"

    def wait(timeout):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where)

    monkeypatch.setattr(k.runner, "wait", wait)
    assert k.failed.wait(10)
    assert k.fatal == [f"local kubelet: cannot write {where}: No space left on device"]


def test_a_job_interrupted_before_a_restart_is_started_again(tmp_path, fifo):
    """katib stopped (kill reason Interrupted) and died before the job was gone: the next
    kubelet finishes the kill and runs the job again instead of recording a failure."""
    from katib.clock import FakeClock

    first = Kubelet(tmp_path)
    ready, counter = fifo("ready"), tmp_path / "counter"
    script = (f"echo run >> {counter}; if [ $(wc -l < {counter}) -eq 1 ]; then "
              f"trap '' TERM; echo ready > {ready.path}; while :; do sleep 0.05; done; fi")
    first.backend.create(make_job("job-0", script))
    ready.read()
    first.runner.stop("default/job-0", reason="Interrupted")   # TERM is ignored...
    first.kubelet.close(kill=False)                           # ...and katib is gone before the KILL
    runner = LocalRunner(tmp_path / "jobs", clock=FakeClock(start=time.time() + 31))
    again = LocalKubelet(first.backend, runner, observations=Store())
    try:
        again.recover()
        again.start()
        job = first.wait_job("job-0", finished)
    finally:
        again.close(kill=True)
    assert job["status"].get("succeeded") == 1
    assert counter.read_text() == "run\nrun\n"


# ------------------------------------------------------------- whole control plane, real trials

def file_experiment(metrics: Path, *, name: str = "files", parallel: int = 3, trials: int = 3,
                    script: str | None = None) -> dict:
    """Trials write their own `lr` to one absolute File collector path, then linger: run at
    the same time, each would read the last writer's value."""
    script = script or f"echo accuracy={{{{.Lr}}}} > {metrics}; sleep 0.3"
    template = f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {{{{.Trial}}}}
  namespace: {{{{.NameSpace}}}}
spec:
  template:
    spec:
      containers:
      - name: training
        image: ignored
        command: ["sh", "-c", "{script.replace('{{.Lr}}', '{{range .HyperParameters}}{{.Value}}{{end}}')}"]
      restartPolicy: Never
"""
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                     "algorithm": {"algorithmName": "random"},
                     "parallelTrialCount": parallel, "maxTrialCount": trials, "maxFailedTrialCount": trials,
                     "parameters": [{"name": "lr", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.1", "max": "0.9"}}],
                     "metricsCollectorSpec": {
                         "collector": {"kind": "File"},
                         "source": {"fileSystemPath": {"path": str(metrics), "kind": "File"}}},
                     "trialTemplate": {"goTemplate": {"rawTemplate": template}}}}


def run_to_end(plane, exp: dict, timeout: float = 60.0) -> dict:
    """Apply, start, and wait (on events) until the experiment has a terminal condition."""
    done = threading.Event()

    def on_event(event):
        conditions = (event.object.get("status") or {}).get("conditions") or []
        if any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in conditions):
            done.set()

    unsubscribe = plane.backend.subscribe(on_event, kinds=("Experiment",))
    try:
        plane.backend.create(exp)
        plane.start()
        assert done.wait(timeout), "experiment did not end"
    finally:
        unsubscribe()
    return plane.backend.get("Experiment", "default", exp["metadata"]["name"])


def plane_on(tmp_path: Path, **kw):
    from katib.runtime import FakeControlPlane

    return FakeControlPlane(db_url=str(tmp_path / "k.db"), work_dir=tmp_path / "work", **kw)


def test_parallel_trials_naming_one_file_collector_path_each_get_their_own_file(tmp_path):
    """The command names the path: each job's /katib is its own metrics volume. The trials
    meet at a rendezvous (each waits until all three have written), so they provably ran at
    the same time, and each still reports its own value."""
    metrics = tmp_path / "katib" / "mnist.log"
    metrics.parent.mkdir()
    metrics.write_text("accuracy=0.99\n")         # at the real path: never read, never moved
    meet = tmp_path / "meet"
    meet.mkdir()
    script = (f"echo accuracy={{{{.Lr}}}} > {metrics}; touch {meet}/{{{{.Lr}}}}; "
              f"until [ `ls {meet} | wc -l` -ge 3 ]; do sleep 0.01; done")
    plane = plane_on(tmp_path)
    try:
        exp = run_to_end(plane, file_experiment(metrics, script=script), timeout=30)
        trials = plane.backend.list("Trial", "default")
        events = [e for e in plane.backend.list("Event", "default") if e["reason"] == "FileCollectorPathInUse"]
    finally:
        plane.stop(kill_jobs=True)
    assert exp["status"]["trialsSucceeded"] == 3
    for t in trials:
        [assigned] = t["spec"]["parameterAssignments"]
        [observed] = t["status"]["observation"]["metrics"]
        assert float(observed["value"]) == pytest.approx(float(assigned["value"]))
        volume = tmp_path / "work" / "jobs" / f"default_{t['metadata']['name']}" / "metrics-volume"
        assert (volume / "mnist.log").read_text() == f"accuracy={assigned['value']}\n"
    assert metrics.read_text() == "accuracy=0.99\n"
    assert events == [] and not list((tmp_path / "work" / "jobs").glob("*/previous-*"))


def test_parallel_trials_whose_script_hard_codes_the_path_run_one_at_a_time(tmp_path):
    """The path is inside the script, not in command/args/env: it cannot be mapped, so the
    trials take turns on the real path (a leftover moved aside) and each reads its own value."""
    metrics = tmp_path / "katib" / "mnist.log"   # its directory does not exist yet
    metrics.parent.mkdir()
    metrics.write_text("accuracy=0.99\n")         # left by an earlier run: never read
    train = tmp_path / "train.sh"
    train.write_text(f"echo accuracy=$1 > {metrics}; sleep 0.3\n")
    plane = plane_on(tmp_path)
    try:
        exp = run_to_end(plane, file_experiment(metrics, script=f"sh {train} {{{{.Lr}}}}"))
        trials = plane.backend.list("Trial", "default")
        events = [e for e in plane.backend.list("Event", "default") if e["reason"] == "FileCollectorPathInUse"]
    finally:
        plane.stop(kill_jobs=True)
    assert exp["status"]["trialsSucceeded"] == 3
    for t in trials:
        [assigned] = t["spec"]["parameterAssignments"]
        [observed] = t["status"]["observation"]["metrics"]
        assert float(observed["value"]) == pytest.approx(float(assigned["value"]))
    kept = [p.read_text() for p in (tmp_path / "work" / "jobs").glob("*/previous-mnist.log")]
    assert len(kept) == 3                          # each trial started without a file...
    assert kept.count("accuracy=0.99\n") == 1      # ...the leftover was moved aside, not deleted
    assert events and all(e["message"].startswith(f"File collector path {metrics} is in use by trial ")
                          for e in events)
    assert len({e["involvedObject"]["name"] for e in events}) == len(events)   # said once per trial


def test_a_disk_that_fills_up_stops_the_run_with_one_line_and_a_rerun_continues(tmp_path, tmpfs):
    small_disk = tmpfs("256k")
    from katib.runtime import FakeControlPlane

    once = tmp_path / "filled-once"   # the first trial fills the disk, in the first run only
    fill = (f"if [ ! -e {once} ]; then touch {once}; head -c 1000000 /dev/zero > {small_disk}/fill; fi; "
            f"echo accuracy={{{{.Lr}}}} > {small_disk}/m.log")
    exp = file_experiment(small_disk / "m.log", name="full", parallel=2, trials=4, script=fill)
    plane = FakeControlPlane(db_url=str(tmp_path / "k.db"), work_dir=small_disk)
    try:
        plane.backend.create(exp)
        plane.start()
        assert plane.failed.wait(30), "the run did not stop on the full disk"
    finally:
        plane.stop(kill_jobs=True)
    assert "No space left on device" in plane.failure and str(small_disk) in plane.failure
    assert plane.failure.startswith("local kubelet: ")
    for leftover in small_disk.rglob("fill"):
        leftover.unlink()                     # the user frees space
    again = FakeControlPlane(db_url=str(tmp_path / "k.db"), work_dir=small_disk)
    done = threading.Event()
    unsubscribe = again.backend.subscribe(
        lambda e: any(c.get("type") == "Succeeded" and c.get("status") == "True"
                      for c in (e.object.get("status") or {}).get("conditions") or []) and done.set(),
        kinds=("Experiment",))
    try:
        again.start()
        assert done.wait(60) and not again.failed.is_set()
        trials = again.backend.list("Trial", "default")
    finally:
        unsubscribe()
        again.stop(kill_jobs=True)
    failed = [t for t in trials if any(c["type"] == "Failed" and c["status"] == "True"
                                       for c in t["status"].get("conditions") or [])]
    for t in failed:   # only ever for what the full disk did, and it says so
        assert "No space left on device" in t["status"]["conditions"][-1]["message"]
    assert "it was killed, or the machine restarted" not in str(trials)
