"""The whole control plane (durable fake API, controllers, local kubelet running real `sh`
processes) with the controllers' watches delivered asynchronously — late, cut mid-stream,
expired (410) — ends exactly as with prompt delivery: every experiment Succeeded with exactly
maxTrialCount trials, each a distinct assignment, each job run once."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from katib.backends.fake_flaky import FlakyWatches
from katib.runtime import FakeControlPlane
from tests.experiments import shell_experiment

WAIT = 60.0
MAX_TRIALS = 8


def finished(plane, name: str) -> dict | None:
    exp = plane.backend.get("Experiment", "default", name)
    status = exp.get("status") or {}
    done = any(c["type"] in ("Succeeded", "Failed") and c["status"] == "True" for c in status.get("conditions") or ())
    return exp if done and not status.get("trialsRunning") and not status.get("trialsPending") else None


def run_plane(tmp_path: Path, *, view=None, backend_options=None, names=("a", "b"),
              threads: bool = True) -> tuple[FakeControlPlane, dict]:
    plane = FakeControlPlane(db_url=str(tmp_path / "k.db"), work_dir=tmp_path, seed=5, status_interval=0.05,
                             backend_options=backend_options, controller_view=view, informer_threads=threads)
    for name in names:
        plane.backend.create(shell_experiment(name, script="", parallel=3, max_trials=MAX_TRIALS, x_max=40))
    plane.start()
    try:
        deadline = time.monotonic() + WAIT
        ends: dict[str, dict] = {}
        while len(ends) < len(names):
            assert time.monotonic() < deadline, f"not finished in {WAIT}s: {sorted(ends)} of {names}"
            assert plane.failure is None, plane.failure
            for name in names:
                if name not in ends and (exp := finished(plane, name)):
                    ends[name] = exp
            time.sleep(0.02)
        time.sleep(0.2)  # anything still in flight (a duplicate trial, a late job) shows up
        return plane, ends
    finally:
        plane.stop(kill_jobs=True)


def assert_ended_exactly(plane: FakeControlPlane, ends: dict[str, dict], tmp_path: Path) -> None:
    for name, exp in ends.items():
        status = exp["status"]
        assert status["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached", status["conditions"]
        trials = plane.backend.list("Trial", "default", labels={"experiment": name})
        assert len(trials) == MAX_TRIALS == status["trialsSucceeded"], [t["metadata"]["name"] for t in trials]
        xs = [t["spec"]["parameterAssignments"][0]["value"] for t in trials]
        assert len(set(xs)) == MAX_TRIALS, f"duplicate assignments: {sorted(xs)}"
        assert all(t["status"]["conditions"][-1]["type"] == "Succeeded" for t in trials)
    job_dirs = list((tmp_path / "jobs").iterdir())
    assert len(job_dirs) == MAX_TRIALS * len(ends), "a job ran twice (or one never ran)"


@pytest.mark.parametrize("case", ["polled", "prompt", "late", "dropped", "expired", "history-exceeded"])
def test_asynchronous_watches_reach_the_same_end_states(tmp_path, case):
    """`polled` is how `katib.py --fake` runs (informers on the controllers' thread, woken by
    the fake's writes); every other case has one informer thread per kind, as on a cluster."""
    options, view, flaky = None, None, {}

    def wrap(**kwargs):
        def make(backend):
            flaky["view"] = FlakyWatches(backend, seed=11, **kwargs)
            return flaky["view"]
        return make

    if case == "late":
        view = wrap(delay=0.004)
    elif case == "dropped":
        view = wrap(delay=0.001, drop_after=3)
    elif case == "expired":
        view = wrap(delay=0.001, expire_after=5)
    elif case == "history-exceeded":  # real 410s: a late watcher falls out of a tiny history
        view, options = wrap(delay=0.01), {"watch_history": 2}
    plane, ends = run_plane(tmp_path, view=view, backend_options=options, threads=case != "polled")
    assert_ended_exactly(plane, ends, tmp_path)
    informers = plane.manager.informers.informers
    assert plane.manager.informers.threads == [] or case != "polled"
    if case == "dropped":
        assert flaky["view"].dropped > 0 and sum(i.rewatches for i in informers.values()) >= flaky["view"].dropped
    if case == "expired":
        assert flaky["view"].expired > 0
        assert sum(i.expirations for i in informers.values()) == flaky["view"].expired
        assert sum(i.lists for i in informers.values()) > len(informers)
    if case == "history-exceeded":
        assert flaky["view"].expired == 0 and sum(i.expirations for i in informers.values()) > 0


def test_a_cluster_without_tfjob_and_pytorchjob_is_served(tmp_path, caplog):
    import logging

    served = ["Experiment", "Suggestion", "Trial", "Job", "ConfigMap", "Event", "Namespace", "Pod"]
    with caplog.at_level(logging.INFO, logger="katib.controllers.informer"):
        plane, ends = run_plane(tmp_path, backend_options={"served": served}, names=("a",))
    assert_ended_exactly(plane, ends, tmp_path)
    assert set(plane.manager.informers.informers) == {"Experiment", "Suggestion", "Trial", "Job"}
    assert sorted(r.getMessage().split()[0] for r in caplog.records if "not watched" in r.getMessage()) == \
        ["PyTorchJob", "TFJob"]


@pytest.mark.parametrize("threads", [True, False])
def test_the_controllers_wait_for_their_first_lists(tmp_path, threads):
    """Until every informer has listed, no reconcile runs: acting on a partial view would
    create trials that exist."""
    plane = FakeControlPlane(db_url=str(tmp_path / "k.db"), work_dir=tmp_path, seed=5, informer_threads=threads)
    informer = plane.manager.informers.informers["Trial"]
    real_relist, gate = informer.relist, __import__("threading").Event()

    def slow_relist():
        gate.wait(WAIT)
        real_relist()

    informer.relist = slow_relist
    plane.backend.create(shell_experiment("a", script="", parallel=2, max_trials=2, x_max=20))
    plane.start()
    try:
        time.sleep(0.3)
        assert not (plane.backend.get("Experiment", "default", "a").get("status") or {}), "reconciled before sync"
        gate.set()
        deadline = time.monotonic() + WAIT
        while not finished(plane, "a"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        gate.set()
        plane.stop(kill_jobs=True)
