"""The order of persisted writes: what a restarted process reads from a real SQLite file is
exactly the last state of every object. SelectivePersistence (katib.runtime) collects the
writes of one backend operation and writes them at its end; written in another order, a
later version could be overwritten by an earlier one (a stale object after restart) or a
deleted object written back (resurrected)."""
from __future__ import annotations

import pytest

from katib.backends.fake import FakeBackend
from katib.clock import FakeClock
from katib.db import ObjectTable, connect
from katib.runtime import SelectivePersistence
from tests.backend_contract import make, owner


def obj(kind: str, name: str, rv: int, **spec) -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)},
            "spec": spec}


def stored(path) -> dict[tuple[str, str], tuple[str, dict]]:
    """What a new process finds in the file: (kind, name) -> (resourceVersion, spec)."""
    db = connect(str(path))
    try:
        return {(o["kind"], o["metadata"]["name"]): (o["metadata"]["resourceVersion"], o.get("spec"))
                for o in ObjectTable(db).load_all()}
    finally:
        db.close()


@pytest.fixture
def persistence(tmp_path):
    db = connect(str(tmp_path / "k.db"))
    yield SelectivePersistence(ObjectTable(db))
    db.close()


def test_one_transaction_persists_the_last_version_and_no_deleted_object(tmp_path, persistence):
    with persistence.transaction():
        persistence.put(obj("Trial", "a", 1, v="first"))
        persistence.put(obj("Trial", "a", 2, v="second"))      # update after update
        persistence.put(obj("Trial", "gone", 3))
        persistence.remove("Trial", "ns", "gone", resource_version=4)   # created, then deleted
        persistence.put(obj("Trial", "back", 5, v="old"))
        persistence.remove("Trial", "ns", "back", resource_version=6)
        persistence.put(obj("Trial", "back", 7, v="new"))      # deleted, then created again
    assert stored(tmp_path / "k.db") == {("Trial", "a"): ("2", {"v": "second"}),
                                         ("Trial", "back"): ("7", {"v": "new"})}
    assert persistence.max_resource_version() == 7


def test_writes_of_successive_transactions_keep_their_order(tmp_path, persistence):
    for rv, v in ((1, "one"), (2, "two"), (3, "three")):
        with persistence.transaction():
            persistence.put(obj("Trial", "t", rv, v=v))
    with persistence.transaction():
        persistence.put(obj("Trial", "u", 4))
        persistence.put(obj("Trial", "t", 5, v="four"))    # last update, then deletion
        persistence.remove("Trial", "ns", "t", resource_version=6)
    assert stored(tmp_path / "k.db") == {("Trial", "u"): ("4", {})}


def everything(backend: FakeBackend) -> list[dict]:
    return [o for kind in ("Experiment", "Suggestion", "Trial", "Job", "ConfigMap") for o in backend.list(kind)]


def test_a_restarted_fake_backend_finds_exactly_the_live_state(tmp_path):
    """Cascading and foreground deletions change several objects in one operation (owner and
    dependents marked, then removed): the file holds exactly the live objects, at their live
    versions. (A reopened backend finishes half-done deletions itself, so the rows are checked
    before it could hide a resurrected object.)"""
    clock = FakeClock()
    db = connect(str(tmp_path / "k.db"))
    live = FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(db)))
    versions: list[int] = []
    live.subscribe(lambda event: versions.append(int(event.object["metadata"]["resourceVersion"])))
    exp = live.create(make("Experiment", "ns", "e"))
    trial = live.create(make("Trial", "ns", "t", owners=[owner(exp)]))
    job = live.create(make("Job", "ns", "t", owners=[owner(trial)]))
    live.create(make("Job", "ns", "other", owners=[owner(trial)]))
    for i in range(3):  # update after update
        live.update_status({**live.get("Trial", "ns", "t"), "status": {"round": i}})
    live.delete("Job", "ns", job["metadata"]["name"], propagation="Foreground")
    kept = live.create(make("Experiment", "ns", "kept"))
    live.create(make("Trial", "ns", "k1", owners=[owner(kept)]))
    live.update({**live.get("Experiment", "ns", "kept"), "spec": {"v": 2}})
    live.delete("Experiment", "ns", "e", propagation="Foreground")   # owner, trial, job: one operation
    assert [o["metadata"]["name"] for o in everything(live)] == ["kept", "k1"]
    db.close()

    assert stored(tmp_path / "k.db") == {(o["kind"], o["metadata"]["name"]): (
        o["metadata"]["resourceVersion"], o.get("spec")) for o in everything(live)}
    db = connect(str(tmp_path / "k.db"))
    try:
        reopened = FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(db)))
        assert everything(reopened) == everything(live)
        fresh = reopened.create(make("Trial", "ns", "after"))  # versions continue past the deletions
        assert int(fresh["metadata"]["resourceVersion"]) > max(versions)
    finally:
        db.close()
