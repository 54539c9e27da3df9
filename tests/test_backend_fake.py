"""FakeBackend: the Backend contract (in memory, and write-through to a stub persistence that is
closed and reopened after every test), plus what only the fake has: error injection, restart
recovery, clock-driven timestamps, bounded Events, rollback and the cost of a status write."""
from __future__ import annotations

import contextlib
import json
import logging
import threading

import pytest

from tests.backend_contract import *  # noqa: F401,F403  (the contract tests run here)
from tests.backend_contract import Recorder, exists, make, names, owner, rv, without_finalizers
from katib.backends import fake, fake_store
from katib.backends.base import ADDED, DELETED, RESOURCES, object_key
from katib.backends.fake import FakeBackend
from katib.clock import FakeClock, rfc3339
from katib.errors import Conflict, Expired, Invalid, NotFound, TemporaryError

NS = "ns-a"


class MemoryPersistence:
    """The persistence interface over a dict of JSON rows (so objects must survive json).
    Transactions are all-or-nothing unless `atomic=False`; `fail_at=n` makes the n-th write
    from now raise, to play a database that goes away."""

    def __init__(self, rows: dict | None = None, *, max_rv: int = 0, atomic: bool = True):
        self.rows: dict[tuple[str, str, str], str] = rows if rows is not None else {}
        self.max_rv = max_rv
        self.atomic = atomic
        self.fail_at: int | None = None

    def load_all(self) -> list[dict]:
        return [json.loads(text) for text in self.rows.values()]

    def put(self, obj: dict) -> None:
        self._tick()
        meta = obj["metadata"]
        self.rows[(obj["kind"], meta.get("namespace", ""), meta["name"])] = json.dumps(obj)
        self.max_rv = max(self.max_rv, int(meta["resourceVersion"]))

    def remove(self, kind: str, namespace: str, name: str, *, resource_version: int) -> None:
        self._tick()
        self.max_rv = max(self.max_rv, resource_version)
        self.rows.pop((kind, namespace, name), None)

    def max_resource_version(self) -> int:
        return self.max_rv

    @contextlib.contextmanager
    def transaction(self):
        saved = dict(self.rows), self.max_rv
        try:
            yield
        except BaseException:
            if self.atomic:
                self.rows, self.max_rv = saved
            raise

    def reopen(self) -> MemoryPersistence:
        """What a new process finds: the committed rows only."""
        return MemoryPersistence(dict(self.rows), max_rv=self.max_rv)

    def row(self, kind: str, ns: str, name: str) -> dict | None:
        text = self.rows.get((kind, ns, name))
        return json.loads(text) if text else None

    def _tick(self) -> None:
        if self.fail_at is not None:
            self.fail_at -= 1
            if self.fail_at == 0:
                self.fail_at = None
                raise TemporaryError("database went away", delay=1.0)


def everything(backend: FakeBackend) -> list[dict]:
    return [obj for kind in RESOURCES for obj in backend.list(kind)]


# ---- fixtures for the contract ----------------------------------------------------------------
@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(params=["memory", "persistent"])
def backend(request, clock):
    if request.param == "memory":
        yield FakeBackend(clock=clock)
        return
    storage = MemoryPersistence()
    live = FakeBackend(clock=clock, persistence=storage)
    yield live
    reopened = FakeBackend(clock=clock, persistence=storage.reopen())
    assert everything(reopened) == everything(live), "state after restart differs from the live state"


@pytest.fixture
def backend_factory(clock):
    return lambda *, admit: FakeBackend(clock=clock, admit=admit)


@pytest.fixture
def namespace():
    return NS


@pytest.fixture
def other_namespace():
    return "ns-b"


@pytest.fixture
def settle():
    return lambda: None  # the fake delivers events and collects garbage before a write returns


@pytest.fixture
def mem(clock):
    return FakeBackend(clock=clock)


# ---- ordering and clock ---------------------------------------------------------------------------
def test_lists_are_in_creation_order_within_and_across_namespaces(mem):
    for ns, name in (("ns-b", "z"), (NS, "y"), ("ns-b", "a"), (NS, "x")):
        mem.create(make("Trial", ns, name))
    mem.delete("Trial", "ns-b", "z")
    mem.create(make("Trial", "ns-b", "z"))
    assert [o["metadata"]["name"] for o in mem.list("Trial")] == ["y", "a", "x", "z"]
    assert names(mem, "Trial", "ns-b") == ["a", "z"]


def test_timestamps_come_from_the_injected_clock(mem, clock):
    t = mem.create(make("Trial", NS, "t", finalizers=["f"]))
    assert t["metadata"]["creationTimestamp"] == rfc3339(clock.now())
    clock.advance(90)
    mem.delete("Trial", NS, "t")
    assert mem.get("Trial", NS, "t")["metadata"]["deletionTimestamp"] == rfc3339(clock.now())
    mem.record_event(t, type="Normal", reason="R", message="m")
    clock.advance(30)
    mem.record_event(t, type="Normal", reason="R", message="m")
    (event,) = mem.list("Event", NS)
    assert (event["firstTimestamp"], event["lastTimestamp"]) == (rfc3339(clock.now() - 30), rfc3339(clock.now()))


# ---- server-side checks only the fake promises ----------------------------------------------------
def test_create_with_resource_version_is_invalid(mem):
    obj = make("Trial", NS, "t")
    obj["metadata"]["resourceVersion"] = "7"
    with pytest.raises(Invalid, match="metadata.resourceVersion: Forbidden"):
        mem.create(obj)


def test_owner_reference_without_uid_is_invalid(mem):
    with pytest.raises(Invalid, match=r"ownerReferences\[0\].uid: Required value"):
        mem.create(make("Job", NS, "j", owners=[{"apiVersion": "v1", "kind": "Trial", "name": "t"}]))


def test_object_created_with_only_dangling_owners_is_collected(mem):
    rec = Recorder(mem)
    mem.create(make("Job", NS, "j", owners=[{"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
                                              "name": "gone", "uid": "no-such-uid"}]))
    assert not exists(mem, "Job", NS, "j")
    assert rec.seen == [(ADDED, "Job", "j"), (DELETED, "Job", "j")]


def test_invalid_propagation_is_refused(mem):
    mem.create(make("Job", NS, "j"))
    with pytest.raises(Invalid, match="propagationPolicy"):
        mem.delete("Job", NS, "j", propagation="Sideways")


def test_unknown_kind_cannot_be_watched_and_bad_event_type_is_a_bug(mem):
    with pytest.raises(NotFound):
        mem.subscribe(lambda ev: None, kinds=["NoSuchKind"])
    with pytest.raises(ValueError):
        mem.record_event(make("Trial", NS, "t"), type="Info", reason="R", message="m")


# ---- error injection ------------------------------------------------------------------------------
def test_injected_conflict_fails_the_matching_writes_only(mem):
    trial = mem.create(make("Trial", NS, "t"))
    mem.create(make("Job", NS, "j"))
    injected = mem.inject(op="update", kind="Trial", error=Conflict("injected"), times=2)
    for _ in range(2):
        with pytest.raises(Conflict, match="injected"):
            mem.update({**trial, "spec": {"v": 1}})
    assert mem.update(make("Job", NS, "j", spec={"v": 1}))["spec"] == {"v": 1}
    assert mem.update({**trial, "spec": {"v": 1}})["spec"] == {"v": 1}
    assert (injected.hits, injected.remaining) == (2, 0)


@pytest.mark.parametrize("op, call", [
    ("get", lambda b: b.get("Trial", NS, "t")),
    ("list", lambda b: b.list("Trial", NS)),
    ("create", lambda b: b.create(make("Trial", NS, "t2"))),
    ("update_status", lambda b: b.update_status(make("Trial", NS, "t", status={"a": 1}))),
    ("delete", lambda b: b.delete("Trial", NS, "t")),
])
def test_every_operation_can_be_made_to_fail_before_it_changes_anything(mem, op, call):
    mem.create(make("Trial", NS, "t"))
    before = everything(mem)
    rec = Recorder(mem)
    mem.inject(op, kind="Trial", error=TemporaryError("injected"))
    with pytest.raises(TemporaryError):
        call(mem)
    assert everything(mem) == before and rec.seen == []
    call(mem)  # used up


def test_injection_after_commit_keeps_the_write_and_its_events(mem):
    rec = Recorder(mem)
    mem.inject("create", kind="Trial", name="t", error=TimeoutError("reply lost"), after=True)
    with pytest.raises(TimeoutError):
        mem.create(make("Trial", NS, "t"))
    assert exists(mem, "Trial", NS, "t") and rec.seen == [(ADDED, "Trial", "t")]


def test_unlimited_injection_lasts_until_cancelled(mem):
    mem.create(make("Trial", NS, "a"))
    mem.create(make("Trial", NS, "b"))
    injected = mem.inject("get", name="a", error=NotFound("injected"), times=None)
    for _ in range(3):
        with pytest.raises(NotFound):
            mem.get("Trial", NS, "a")
    assert mem.get("Trial", NS, "b")
    injected.cancel()
    assert mem.get("Trial", NS, "a") and injected.hits == 3
    mem.inject("get", error=NotFound("again"), times=None)
    mem.clear_injections()
    assert mem.get("Trial", NS, "a")


def test_injection_rejects_unknown_operations(mem):
    with pytest.raises(ValueError):
        mem.inject("patch", error=Conflict("x"))


# ---- admission details ------------------------------------------------------------------------------
def test_admission_is_limited_to_its_kinds_and_may_not_rename(clock):
    seen = []

    def rename(op, new, old):
        seen.append(new["kind"])
        new["metadata"]["name"] = "other"
        return new

    backend = FakeBackend(clock=clock, admit=rename, admit_kinds=["Experiment"])
    backend.create(make("Trial", NS, "t"))
    with pytest.raises(Invalid, match="admission may not change"):
        backend.create(make("Experiment", NS, "e"))
    assert seen == ["Experiment"] and names(backend, "Experiment", NS) == []


# ---- watch delivery ------------------------------------------------------------------------------------
def test_writes_from_a_handler_are_delivered_after_the_current_event(mem):
    def make_job(event):
        if event.type == ADDED and event.object["kind"] == "Trial":
            mem.create(make("Job", NS, event.object["metadata"]["name"]))

    first = Recorder(mem)
    mem.subscribe(make_job)
    last = Recorder(mem)
    mem.create(make("Trial", NS, "t"))
    assert first.seen == last.seen == [(ADDED, "Trial", "t"), (ADDED, "Job", "t")]


def test_subscribing_from_a_handler_skips_changes_already_committed(mem):
    late: list[Recorder] = []

    def on_trial(event):
        if event.type == ADDED and not late:
            mem.create(make("Job", NS, "committed-before-subscribe"))
            late.append(Recorder(mem))

    stop = mem.subscribe(on_trial, kinds=["Trial"])
    mem.create(make("Trial", NS, "t"))
    stop()
    mem.create(make("Job", NS, "after"))
    assert late[0].seen == [(ADDED, "Job", "after")]


def test_events_are_written_through_before_they_are_delivered(clock):
    storage = MemoryPersistence()
    backend = FakeBackend(clock=clock, persistence=storage)
    stored_when_seen = []
    backend.subscribe(lambda ev: stored_when_seen.append(
        storage.row(*object_key(ev.object))))
    trial = backend.create(make("Trial", NS, "t"))
    backend.update_status({**trial, "status": {"a": 1}})
    backend.delete("Trial", NS, "t")
    assert [r and rv(r) for r in stored_when_seen[:2]] == [rv(trial), rv(trial) + 1]
    assert stored_when_seen[2] is None


def test_concurrent_read_modify_write_loses_nothing(mem):
    mem.create(make("ConfigMap", NS, "counter", data={"n": "0"}))
    versions: list[int] = []
    mem.subscribe(lambda ev: versions.append(rv(ev.object)))

    def bump(times: int) -> None:
        for _ in range(times):
            while True:
                cm = mem.get("ConfigMap", NS, "counter")
                cm["data"]["n"] = str(int(cm["data"]["n"]) + 1)
                try:
                    mem.update(cm)
                    break
                except Conflict:
                    continue

    threads = [threading.Thread(target=bump, args=(50,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mem.get("ConfigMap", NS, "counter")["data"]["n"] == "400"
    assert len(versions) == 400 and versions == sorted(versions)


# ---- durability ---------------------------------------------------------------------------------------
def test_restart_restores_objects_and_continues_resource_versions(clock):
    storage = MemoryPersistence()
    backend = FakeBackend(clock=clock, persistence=storage)
    exp = backend.create(make("Experiment", NS, "e", labels={"a": "b"}, finalizers=["f"]))
    backend.create(make("Trial", NS, "t", owners=[owner(exp)]))
    backend.create(make("Trial", NS, "gone"))
    backend.delete("Trial", NS, "gone")
    last = storage.max_rv
    again = FakeBackend(clock=clock, persistence=storage.reopen())
    assert everything(again) == everything(backend)
    assert rv(again.create(make("Trial", NS, "new"))) > last
    again.delete("Experiment", NS, "e")
    without_finalizers(again, "Experiment", NS, "e")
    assert not exists(again, "Trial", NS, "t")


def test_failed_write_through_rolls_back_memory_and_fires_nothing(clock):
    storage = MemoryPersistence()
    backend = FakeBackend(clock=clock, persistence=storage)
    exp = backend.create(make("Experiment", NS, "e"))
    for name in ("a", "b", "c"):
        backend.create(make("Trial", NS, name, owners=[owner(exp)]))
    backend.create(make("Trial", NS, "z"))
    before, rows = everything(backend), dict(storage.rows)
    rec = Recorder(backend)
    storage.fail_at = 3  # the owner and one trial go, then the database fails
    with pytest.raises(TemporaryError):
        backend.delete("Experiment", NS, "e")
    assert everything(backend) == before and storage.rows == rows and rec.seen == []
    assert names(backend, "Trial", NS) == ["a", "b", "c", "z"]  # undone removals keep their place
    backend.delete("Experiment", NS, "e")
    assert names(backend, "Trial", NS) == ["z"] and len(rec.seen) == 4


def test_restart_finishes_a_cascade_a_crash_interrupted(clock):
    storage = MemoryPersistence(atomic=False)  # a store without transactions keeps half the cascade
    backend = FakeBackend(clock=clock, persistence=storage)
    exp = backend.create(make("Experiment", NS, "e"))
    trial = backend.create(make("Trial", NS, "t", owners=[owner(exp)]))
    backend.create(make("Job", NS, "t", owners=[owner(trial)]))
    backend.create(make("Trial", NS, "keep", owners=[owner(backend.create(make("Experiment", NS, "live")))]))
    storage.fail_at = 2  # the experiment's removal is written, the trial's is not
    with pytest.raises(TemporaryError):
        backend.delete("Experiment", NS, "e")
    assert storage.row("Trial", NS, "t") is not None  # the crash left the cascade half done
    again = FakeBackend(clock=clock, persistence=storage.reopen())
    assert names(again, "Trial", NS) == ["keep"] and names(again, "Job", NS) == []
    assert names(again, "Experiment", NS) == ["live"]


def test_restart_completes_deletions_whose_finalizers_are_gone(clock):
    storage = MemoryPersistence()
    backend = FakeBackend(clock=clock, persistence=storage)
    job = backend.create(make("Job", NS, "j"))
    backend.create(make("Pod", NS, "p", owners=[owner(job)], finalizers=["hold"]))
    backend.create(make("Trial", NS, "t", finalizers=["clean-metrics-in-db"]))
    backend.delete("Job", NS, "j", propagation="Foreground")
    backend.delete("Trial", NS, "t")
    # What a crash between writes can leave: finalizers removed, the removals not yet done.
    for kind, name in (("Pod", "p"), ("Trial", "t")):
        row = storage.row(kind, NS, name)
        del row["metadata"]["finalizers"]
        storage.rows[(kind, NS, name)] = json.dumps(row)
    again = FakeBackend(clock=clock, persistence=storage.reopen())
    assert [names(again, k, NS) for k in ("Job", "Pod", "Trial")] == [[], [], []]


# ---- events ------------------------------------------------------------------------------------------
def test_events_are_bounded_per_object_and_overall(clock):
    backend = FakeBackend(clock=clock, max_events_per_object=3, max_events=5)
    a, b = make("Trial", NS, "a"), make("Trial", NS, "b")
    rec = Recorder(backend, kinds=["Event"])
    for i in range(5):
        backend.record_event(a, type="Normal", reason="R", message=f"a{i}")
    assert [e["message"] for e in backend.list("Event", NS)] == ["a2", "a3", "a4"]
    for i in range(3):
        backend.record_event(b, type="Warning", reason="R", message=f"b{i}")
    assert [e["message"] for e in backend.list("Event", NS)] == ["a3", "a4", "b0", "b1", "b2"]
    assert [t for t, _, _ in rec.seen].count(DELETED) == 3


def test_event_that_cannot_be_stored_is_logged_not_raised(clock, caplog):
    storage = MemoryPersistence()
    backend = FakeBackend(clock=clock, persistence=storage)
    trial = backend.create(make("Trial", NS, "t"))
    storage.fail_at = 1
    with caplog.at_level(logging.WARNING, logger="katib.backends.fake"):
        backend.record_event(trial, type="Normal", reason="JobCreated", message="m")
    assert backend.list("Event", NS) == [] and "JobCreated not recorded" in caplog.text


# ---- cost of a write -----------------------------------------------------------------------------------
def test_status_write_costs_one_object_not_the_store(mem, monkeypatch):
    for i in range(10_000):
        mem.create(make("Trial", NS, f"t{i}", labels={"experiment": "e"}, spec={"p": [i, {"q": i}]}))
    target = mem.get("Trial", NS, "t5000")
    copied = []
    real_clone = fake_store.clone

    def counting_clone(value):
        copied.append(1)
        return real_clone(value)

    def no_scan(*args, **kwargs):
        raise AssertionError("update_status scanned the store")

    monkeypatch.setattr(fake_store, "clone", counting_clone)
    monkeypatch.setattr(fake, "clone", counting_clone)
    monkeypatch.setattr(fake_store.Store, "objects", no_scan)
    monkeypatch.setattr(fake_store.Store, "keys", no_scan)
    written = mem.update_status({**target, "status": {"conditions": [{"type": "Running"}]}})
    assert written["status"] == {"conditions": [{"type": "Running"}]}
    assert len(copied) < 60  # the status in, the written object out; 10,000 trials would be far more


def test_resource_versions_never_go_back_after_deleting_the_newest():
    saved = MemoryPersistence()
    backend = FakeBackend(persistence=saved)
    backend.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}})
    newest = backend.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "ns"}})
    backend.delete("ConfigMap", "ns", "b")
    again = FakeBackend(persistence=saved.reopen())
    created = again.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}})
    assert int(created["metadata"]["resourceVersion"]) > int(newest["metadata"]["resourceVersion"]) + 1


# ---- watch history ------------------------------------------------------------------------------
def test_a_watcher_further_behind_than_the_history_gets_expired(clock):
    from tests.backend_contract import take

    small = FakeBackend(clock=clock, watch_history=3)
    _, version = small.list_with_version("Trial", NS)
    for i in range(3):
        small.create(make("Trial", NS, f"t{i}"))
    assert len(take(small.watch("Trial", version, timeout=0), 3)) == 3  # exactly the history: servable
    small.create(make("Trial", NS, "t3"))
    with pytest.raises(Expired):
        next(iter(small.watch("Trial", version, timeout=0)))
    small.create(make("ConfigMap", NS, "c"))  # other kinds have their own history
    assert [e.object["metadata"]["name"] for e in small.watch("ConfigMap", version, timeout=0)] == ["c"]


def test_an_open_stream_that_falls_behind_the_history_gets_expired(clock):
    small = FakeBackend(clock=clock, watch_history=2)
    _, version = small.list_with_version("Trial", NS)
    small.create(make("Trial", NS, "a"))
    stream = small.watch("Trial", version, timeout=0)
    assert next(stream).object["metadata"]["name"] == "a"
    for name in ("b", "c", "d"):
        small.create(make("Trial", NS, name))
    with pytest.raises(Expired):
        list(stream)


def test_a_kind_not_served_cannot_be_listed_or_watched(clock):
    cluster = FakeBackend(clock=clock, served=["Experiment", "Trial", "Job"])
    assert cluster.served_kinds() == {"Experiment", "Trial", "Job"}
    with pytest.raises(NotFound, match='resource type "tfjobs"'):
        cluster.list_with_version("TFJob")
    with pytest.raises(NotFound):
        cluster.watch("TFJob", "")


def test_watch_history_survives_a_restart_only_from_the_restart_on(clock):
    storage = MemoryPersistence()
    live = FakeBackend(clock=clock, persistence=storage)
    _, old = live.list_with_version("Trial", NS)
    live.create(make("Trial", NS, "a"))
    again = FakeBackend(clock=clock, persistence=storage.reopen())
    with pytest.raises(Expired):
        next(iter(again.watch("Trial", old, timeout=0)))
    _, version = again.list_with_version("Trial", NS)
    again.create(make("Trial", NS, "b"))
    assert [e.object["metadata"]["name"] for e in again.watch("Trial", version, timeout=0)] == ["b"]


def test_a_non_blocking_watch_answers_without_waiting_and_still_expires():
    """The informers' poll (timeout=0) of a kind nothing happened to returns at once, and
    one from a version a compaction passed is Expired even when the kind has no events."""
    backend = FakeBackend(clock=FakeClock())
    _, old = backend.list_with_version("Suggestion", NS)
    backend.create(make("Trial", NS, "a"))
    _, now = backend.list_with_version("Suggestion", NS)
    assert list(backend.watch("Suggestion", now, namespace=NS, timeout=0)) == []
    assert [e.object["metadata"]["name"] for e in backend.watch("Trial", old, namespace=NS, timeout=0)] == ["a"]
    assert list(backend.watch("Trial", now, namespace=NS, timeout=0)) == []
    backend.expire_watches()
    with pytest.raises(Expired):
        list(backend.watch("Suggestion", old, namespace=NS, timeout=0))
    with pytest.raises(Expired):
        list(backend.watch("Trial", old, namespace=NS, timeout=0))
