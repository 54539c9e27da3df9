"""Informers over the Backend protocol: list then watch, cache, initial sync, relist on
Expired, re-watch after a dropped stream, predicates, kinds the backend does not serve."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from katib.backends.base import ADDED, DELETED, MODIFIED
from katib.backends.fake import FakeBackend
from katib.backends.fake_flaky import FlakyWatches
from katib.clock import FakeClock
from katib.controllers.informer import (
    Change, For, Informer, InformerSet, Owns, all_of, generation_or_status_changed, not_deleted)
from tests.backend_contract import make, owner

NS = "default"
WAIT = 10.0


class Seen:
    def __init__(self):
        self.changes: list[Change] = []

    def __call__(self, change: Change) -> None:
        self.changes.append(change)

    def log(self) -> list[tuple[str, str]]:
        return [(c.type, c.object["metadata"]["name"]) for c in self.changes]


def until(condition, what: str, wait: float = WAIT) -> None:
    deadline = time.monotonic() + wait
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def backend():
    return FakeBackend(clock=FakeClock())


def test_first_poll_lists_then_later_polls_watch(backend):
    backend.create(make("Trial", NS, "old"))
    informer, seen = Informer(backend, "Trial"), Seen()
    informer.add_handler(seen)
    assert not informer.has_synced()
    InformerSet(backend, {"Trial": informer}).poll()
    assert informer.has_synced() and seen.log() == [(ADDED, "old")] and seen.changes[0].relist
    t = backend.create(make("Trial", NS, "new"))
    backend.update_status({**t, "status": {"s": 1}})
    backend.delete("Trial", NS, "old")
    InformerSet(backend, {"Trial": informer}).poll()
    assert seen.log() == [(ADDED, "old"), (ADDED, "new"), (MODIFIED, "new"), (DELETED, "old")]
    assert seen.changes[2].old["metadata"]["resourceVersion"] == t["metadata"]["resourceVersion"]
    assert sorted(informer.cache) == [(NS, "new")] and informer.get(NS, "new")["status"] == {"s": 1}
    assert informer.lists == 1


def test_expired_watch_relists_and_reports_only_the_differences(backend):
    keep = backend.create(make("Trial", NS, "keep"))
    backend.create(make("Trial", NS, "change"))
    backend.create(make("Trial", NS, "gone"))
    informer, seen = Informer(backend, "Trial"), Seen()
    informer.add_handler(seen)
    informers = InformerSet(backend, {"Trial": informer})
    informers.poll()
    seen.changes.clear()
    backend.update_status({**backend.get("Trial", NS, "change"), "status": {"s": 2}})
    backend.delete("Trial", NS, "gone")
    backend.create(make("Trial", NS, "born"))
    backend.expire_watches()  # the history is gone: the next watch gets 410
    informers.poll()
    assert informer.expirations == 1 and informer.lists == 2
    assert sorted(seen.log()) == [(ADDED, "born"), (DELETED, "gone"), (MODIFIED, "change")]
    assert all(c.relist for c in seen.changes)
    assert informer.get(NS, "keep") == keep and set(informer.cache) == {(NS, "keep"), (NS, "change"), (NS, "born")}


def test_a_watcher_that_falls_behind_the_history_relists_for_real():
    backend = FakeBackend(clock=FakeClock(), watch_history=3)
    informer, seen = Informer(backend, "Trial"), Seen()
    informer.add_handler(seen)
    informers = InformerSet(backend, {"Trial": informer})
    informers.poll()
    for i in range(5):  # more changes than the history holds
        backend.create(make("Trial", NS, f"t{i}"))
    informers.poll()
    assert informer.expirations == 1
    assert sorted(seen.log()) == [(ADDED, f"t{i}") for i in range(5)]


def test_poll_merges_kinds_in_commit_order(backend):
    informers = InformerSet(backend)
    seen = Seen()
    for kind in ("Trial", "Job"):
        informers.informer(kind).add_handler(seen)
    informers.poll()
    backend.create(make("Job", NS, "j1"))
    backend.create(make("Trial", NS, "t1"))
    backend.create(make("Job", NS, "j2"))
    informers.poll()
    assert seen.log() == [(ADDED, "j1"), (ADDED, "t1"), (ADDED, "j2")]


def test_kinds_the_backend_does_not_serve_are_skipped_with_one_line(caplog):
    backend = FakeBackend(clock=FakeClock(), served=["Trial", "Job"])
    informers = InformerSet(backend)
    with caplog.at_level(logging.INFO, logger="katib.controllers.informer"):
        assert informers.informer("TFJob") is None
        assert informers.informer("TFJob") is None
        assert informers.informer("Trial") is not None
    assert [r.getMessage() for r in caplog.records] == [
        "TFJob is not served by the cluster (its CRD is not installed?): not watched"]
    informers.poll()
    assert informers.has_synced()


def test_predicates_choose_which_handlers_see_a_change(backend):
    informer = Informer(backend, "Job")
    everything, changed, alive = Seen(), Seen(), Seen()
    informer.add_handler(everything)
    informer.add_handler(changed, predicate=generation_or_status_changed)
    informer.add_handler(alive, predicate=all_of(not_deleted, None))
    informers = InformerSet(backend, {"Job": informer})
    informers.poll()
    job = backend.create(make("Job", NS, "j"))
    job = backend.update({**job, "metadata": {**job["metadata"], "labels": {"a": "b"}}})  # metadata only
    backend.update_status({**job, "status": {"active": 1}})
    backend.delete("Job", NS, "j")
    informers.poll()
    assert everything.log() == [(ADDED, "j"), (MODIFIED, "j"), (MODIFIED, "j"), (DELETED, "j")]
    assert changed.log() == [(ADDED, "j"), (MODIFIED, "j"), (DELETED, "j")]
    assert alive.log() == [(ADDED, "j"), (MODIFIED, "j"), (MODIFIED, "j")]


def test_a_failing_handler_does_not_stop_the_others(backend):
    informer, seen = Informer(backend, "Trial"), Seen()

    def explode(change):
        raise RuntimeError("handler bug")

    informer.add_handler(explode)
    informer.add_handler(seen)
    backend.create(make("Trial", NS, "a"))
    InformerSet(backend, {"Trial": informer}).poll()
    assert seen.log() == [(ADDED, "a")]


def test_for_and_owns_map_changes_to_keys(backend):
    exp = backend.create(make("Experiment", NS, "e"))
    trial = backend.create(make("Trial", NS, "t", owners=[owner(exp)]))
    stray = backend.create(make("Trial", NS, "s", owners=[owner(exp, controller=False)]))
    assert list(For("Trial").map(trial)) == [(NS, "t")]
    assert list(Owns("Trial", "Experiment").map(trial)) == [(NS, "e")]
    assert list(Owns("Trial", "Experiment").map(stray)) == []
    assert list(Owns("Trial", "Suggestion").map(trial)) == []


# ---- on their own threads --------------------------------------------------------------------
def test_threads_sync_then_deliver_every_change_despite_drops_and_expiry(backend):
    for i in range(20):
        backend.create(make("Trial", NS, f"pre{i}"))
    flaky = FlakyWatches(backend, delay=0.001, drop_after=4, expire_after=15, seed=3)
    informers, seen, lock = InformerSet(flaky), Seen(), threading.Lock()
    informer = informers.informer("Trial")
    informer.add_handler(seen)
    stop = threading.Event()
    informers.start(stop)
    try:
        assert informers.wait_for_sync(stop)
        assert len(informer.cache) == 20
        writer_names = [f"w{i}" for i in range(60)]
        for name in writer_names:
            t = backend.create(make("Trial", NS, name))
            backend.update_status({**t, "status": {"done": True}})
        for name in writer_names[:10]:
            backend.delete("Trial", NS, name)
        expected = {(NS, f"pre{i}") for i in range(20)} | {(NS, n) for n in writer_names[10:]}
        until(lambda: set(informer.cache) == expected
              and all(o.get("status") == {"done": True} for k, o in informer.cache.items() if k[1][0] == "w"),
              "the cache to catch up")
    finally:
        stop.set()
        informers.join()
    with lock:
        assert flaky.dropped > 0 and flaky.expired > 0 and informer.expirations == flaky.expired
        assert informer.rewatches >= flaky.dropped
    # Whatever was cut, every object's last change reached the handler, in order per object.
    last: dict[str, str] = {}
    for change in seen.changes:
        last[change.object["metadata"]["name"]] = change.type
    assert {n for n, t in last.items() if t != DELETED} == {k[1] for k in expected}


# ---- own writes ------------------------------------------------------------------------------
def test_own_writes_are_recognised_by_the_version_written():
    from katib.controllers.context import Context

    ctx = Context(backend=None, db=None, clock=FakeClock(), config=None, get_configmap=lambda ns, n: None)
    t = {"kind": "Trial", "metadata": {"namespace": NS, "name": "t", "resourceVersion": "5"}}
    later = {"kind": "Trial", "metadata": {"namespace": NS, "name": "t", "resourceVersion": "6"}}
    ctx.wrote("trial", t)
    assert not ctx.is_own_change("experiment", Change(MODIFIED, t))   # another controller's view
    assert ctx.is_own_change("trial", Change(MODIFIED, t))
    assert not ctx.is_own_change("trial", Change(MODIFIED, t))        # once
    ctx.wrote("trial", t)
    assert not ctx.is_own_change("trial", Change(MODIFIED, later))    # someone else's newer write
    job = {"kind": "Job", "metadata": {"namespace": NS, "name": "j", "resourceVersion": "7"}}
    marked = {"kind": "Job", "metadata": {**job["metadata"], "resourceVersion": "8", "deletionTimestamp": "x"}}
    ctx.deleting("trial", "Job", NS, "j")
    assert ctx.is_own_change("trial", Change(MODIFIED, marked))
    assert ctx.is_own_change("trial", Change(DELETED, marked))
    assert not ctx.is_own_change("trial", Change(DELETED, marked))


def test_the_trial_controller_is_not_woken_by_its_own_writes():
    from katib.controllers.manager import Manager
    from tests.world import World, make_experiment

    world = World()
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    keys: list[tuple] = []
    real = Manager.process
    world.manager.process = lambda key: (keys.append(key), real(world.manager, key))
    world.jobs.finish_all(stdout="accuracy=0.5\n")
    world.run_until_idle()
    # The job's completion wakes the trial once; its status write, the job's deletion (mark,
    # then gone) are its own and wake it no more.
    assert [k for k in keys if k[0] == "trial"] == [("trial", "default", world.trials()[0]["metadata"]["name"])]
