"""The Backend contract: what controllers may rely on from any object store (STYLE §5).

A reusable suite. A test module runs it against one backend with `from tests.backend_contract import *`
and by providing these fixtures:
  backend          a Backend with no objects in `namespace`
  namespace        a namespace that exists (`other_namespace`: a second one)
  settle           a callable: returns once watch deliveries and garbage collection caught up
                   (a no-op for FakeBackend, which does both before a write returns)
  backend_factory  `factory(admit=...)` -> a fresh Backend that runs that admission function;
                   skip where admission cannot be swapped.
  compact          a callable: the backend forgets its watch history (as an etcd compaction),
                   so a watch from any earlier version gets Expired
  drop_watches     a callable: the server ends every open watch stream (a dropped connection)
                   (these two default to FakeBackend's expire_watches / drop_watches)
Nothing here depends on a fake clock or on how a backend stores objects."""
from __future__ import annotations

import pytest

import threading
import time

from katib.backends.base import ADDED, BOOKMARK, DELETED, MODIFIED
from katib.errors import AlreadyExists, Conflict, Expired, FieldError, Invalid, NotFound, TemporaryError


# ---- default fixtures (a module overrides them for a backend that is not a FakeBackend) -------
@pytest.fixture
def compact(backend):
    return backend.expire_watches


@pytest.fixture
def drop_watches(backend):
    return backend.drop_watches


# ---- helpers ------------------------------------------------------------------------------
def make(kind: str, ns: str, name: str, *, labels=None, owners=(), finalizers=None, **body) -> dict:
    meta = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = dict(labels)
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = list(finalizers)
    obj = {"kind": kind, "metadata": meta}
    obj.update(body if body else ({"data": {}} if kind == "ConfigMap" else {"spec": {}}))
    return obj


def owner(obj: dict, *, block: bool = True, controller: bool = True) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": block}


def names(backend, kind: str, ns: str) -> list[str]:
    return [o["metadata"]["name"] for o in backend.list(kind, ns)]


def exists(backend, kind: str, ns: str, name: str) -> bool:
    try:
        backend.get(kind, ns, name)
        return True
    except NotFound:
        return False


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def without_finalizers(backend, kind: str, ns: str, name: str, *drop: str) -> dict:
    """Remove the finalizers named in `drop` (all of them when none is named)."""
    obj = backend.get(kind, ns, name)
    kept = [f for f in obj["metadata"].get("finalizers", []) if drop and f not in drop]
    obj["metadata"]["finalizers"] = kept
    return backend.update(obj)


class Recorder:
    """Collects (type, kind, name) of watch events, plus the objects as delivered."""

    def __init__(self, backend, kinds=None):
        self.seen: list[tuple[str, str, str]] = []
        self.objects: list[dict] = []
        self.stop = backend.subscribe(self, kinds)

    def __call__(self, event) -> None:
        self.seen.append((event.type, event.object["kind"], event.object["metadata"]["name"]))
        self.objects.append(event.object)


# ---- create ---------------------------------------------------------------------------------
def test_create_assigns_server_fields_and_api_version(backend, namespace):
    trial = backend.create(make("Trial", namespace, "t1"))
    meta = trial["metadata"]
    assert trial["apiVersion"] == "kubeflow.org/v1alpha3"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and rv(trial) > 0
    assert backend.get("Trial", namespace, "t1") == trial


def test_resource_versions_increase_across_objects(backend, namespace):
    a = backend.create(make("Trial", namespace, "a"))
    b = backend.create(make("ConfigMap", namespace, "b"))
    a2 = backend.update_status({**a, "status": {"x": 1}})
    assert rv(a) < rv(b) < rv(a2)


@pytest.mark.parametrize("change, error", [
    ({"apiVersion": "kubeflow.org/v1beta1"}, Invalid),
    ({"kind": "NoSuchKind"}, NotFound),
    ({"metadata": {"name": "x"}}, Invalid),  # no namespace
    ({"metadata": {"namespace": "n"}}, Invalid),  # no name
    ({"metadata": {"name": "Not_A_Name", "namespace": "n"}}, Invalid),
])
def test_create_refuses_bad_objects(backend, namespace, change, error):
    with pytest.raises(error):
        backend.create({**make("Trial", namespace, "x"), **change})


def test_unknown_kind_is_not_found_everywhere(backend, namespace):
    for call in (lambda: backend.get("NoSuchKind", namespace, "x"), lambda: backend.list("NoSuchKind"),
                 lambda: backend.delete("NoSuchKind", namespace, "x")):
        with pytest.raises(NotFound):
            call()


def test_create_existing_name_is_already_exists(backend, namespace):
    backend.create(make("Trial", namespace, "t"))
    with pytest.raises(AlreadyExists, match='trials.kubeflow.org "t" already exists'):
        backend.create(make("Trial", namespace, "t"))


def test_generate_name_gives_distinct_names_with_the_prefix(backend, namespace):
    objs = [backend.create({"kind": "Trial", "metadata": {"generateName": "exp-", "namespace": namespace},
                            "spec": {}}) for _ in range(5)]
    got = {o["metadata"]["name"] for o in objs}
    assert len(got) == 5 and all(n.startswith("exp-") and len(n) > 4 for n in got)


def test_create_drops_status_of_kinds_with_status_subresource(backend, namespace):
    job = backend.create(make("Job", namespace, "j", spec={"x": 1}, status={"succeeded": 1}))
    assert "status" not in job and "status" not in backend.get("Job", namespace, "j")


# ---- get / list ---------------------------------------------------------------------------
def test_get_missing_is_not_found(backend, namespace):
    with pytest.raises(NotFound, match='jobs.batch "nope" not found'):
        backend.get("Job", namespace, "nope")


def test_returned_objects_are_independent_copies(backend, namespace):
    created = backend.create(make("Trial", namespace, "t", labels={"a": "1"}, spec={"p": [1, 2]}))
    created["spec"]["p"].append(3)
    got = backend.get("Trial", namespace, "t")
    got["metadata"]["labels"]["a"] = "changed"
    backend.list("Trial", namespace)[0]["spec"]["p"].clear()
    assert backend.get("Trial", namespace, "t")["spec"] == {"p": [1, 2]}
    assert backend.get("Trial", namespace, "t")["metadata"]["labels"] == {"a": "1"}


def test_list_by_namespace_and_across_namespaces(backend, namespace, other_namespace):
    backend.create(make("Trial", namespace, "a"))
    backend.create(make("Trial", other_namespace, "b"))
    assert names(backend, "Trial", namespace) == ["a"]
    assert {"a", "b"} <= {o["metadata"]["name"] for o in backend.list("Trial")}


@pytest.mark.parametrize("selector, expected", [
    ({"experiment": "e1"}, ["t1", "t2"]),
    ({"experiment": "e1", "role": "x"}, ["t1"]),
    ("experiment=e1", ["t1", "t2"]),
    ("experiment==e2", ["t3"]),
    ("experiment!=e1", ["t3", "t4"]),
    ("role", ["t1"]),
    ("!role", ["t2", "t3", "t4"]),
    ("experiment=e1,!role", ["t2"]),
])
def test_list_label_selectors(backend, namespace, selector, expected):
    for name, labels in (("t1", {"experiment": "e1", "role": "x"}), ("t2", {"experiment": "e1"}),
                         ("t3", {"experiment": "e2"}), ("t4", None)):
        backend.create(make("Trial", namespace, name, labels=labels))
    got = [o["metadata"]["name"] for o in backend.list("Trial", namespace, labels=selector)]
    assert sorted(got) == expected


def test_list_is_in_creation_order(backend, namespace, other_namespace):
    """The order FakeBackend documents (not a Kubernetes API server's key order): updates keep
    an object's place, a deleted and re-created object comes last; one order across namespaces."""
    for ns, name in ((namespace, "c"), (other_namespace, "z"), (namespace, "a"), (namespace, "b")):
        backend.create(make("Trial", ns, name))
    backend.update_status({**backend.get("Trial", namespace, "a"), "status": {"x": 1}})
    backend.update({**backend.get("Trial", namespace, "c"), "spec": {"v": 2}})
    backend.delete("Trial", namespace, "b")
    backend.create(make("Trial", namespace, "b"))
    backend.update_status({**backend.get("Trial", namespace, "c"), "status": {"x": 2}})
    assert names(backend, "Trial", namespace) == ["c", "a", "b"]
    assert [o["metadata"]["name"] for o in backend.list("Trial")] == ["c", "z", "a", "b"]
    assert [o["metadata"]["name"] for o in backend.list("Trial", namespace, labels={})] == ["c", "a", "b"]


# ---- update -------------------------------------------------------------------------------
def test_update_with_stale_resource_version_conflicts(backend, namespace):
    stale = backend.create(make("Experiment", namespace, "x"))
    fresh = backend.get("Experiment", namespace, "x")
    fresh["spec"] = {"maxTrialCount": 3}
    backend.update(fresh)
    stale["spec"] = {"maxTrialCount": 5}
    with pytest.raises(Conflict, match='Operation cannot be fulfilled on experiments.kubeflow.org "x": '
                                       'the object has been modified'):
        backend.update(stale)
    assert backend.get("Experiment", namespace, "x")["spec"] == {"maxTrialCount": 3}


def test_update_without_resource_version_is_unconditional(backend, namespace):
    backend.create(make("Trial", namespace, "t"))
    blind = make("Trial", namespace, "t", spec={"v": 2})
    assert backend.update(blind)["spec"] == {"v": 2}


def test_generation_bumps_on_spec_changes_only(backend, namespace):
    t = backend.create(make("Trial", namespace, "t", spec={"v": 1}))
    t["metadata"]["labels"] = {"a": "b"}
    t["metadata"]["annotations"] = {"note": "x"}
    labelled = backend.update(t)
    assert labelled["metadata"]["generation"] == 1 and rv(labelled) > rv(t)
    status = backend.update_status({**labelled, "status": {"phase": "x"}})
    assert status["metadata"]["generation"] == 1
    status["spec"] = {"v": 2}
    assert backend.update(status)["metadata"]["generation"] == 2


def test_noop_update_changes_nothing_and_is_not_watched(backend, namespace, settle):
    t = backend.create(make("Trial", namespace, "t", labels={"a": "b"}, spec={"v": 1}))
    rec = Recorder(backend)
    again = backend.update(t)
    also = backend.update_status(t)
    settle()
    assert again == t and also == t and rec.seen == []


def test_update_keeps_stored_status(backend, namespace):
    t = backend.create(make("Trial", namespace, "t"))
    t = backend.update_status({**t, "status": {"phase": "Running"}})
    t["spec"] = {"v": 9}
    t["status"] = {"phase": "Forged"}
    updated = backend.update(t)
    assert updated["status"] == {"phase": "Running"} and updated["spec"] == {"v": 9}


def test_update_of_kind_without_status_writes_the_whole_object(backend, namespace):
    cm = backend.create(make("ConfigMap", namespace, "c", data={"a": "1"}))
    cm["data"] = {"b": "2"}
    assert backend.update(cm)["data"] == {"b": "2"}
    assert backend.get("ConfigMap", namespace, "c")["data"] == {"b": "2"}


def test_update_replaces_writable_metadata_and_keeps_server_fields(backend, namespace):
    t = backend.create(make("Trial", namespace, "t", labels={"a": "1"}, finalizers=["f"]))
    sent = make("Trial", namespace, "t")
    sent["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    sent["metadata"]["generation"] = 42
    updated = backend.update(sent)
    assert "labels" not in updated["metadata"] and "finalizers" not in updated["metadata"]
    for field in ("uid", "creationTimestamp", "generation"):
        assert updated["metadata"][field] == t["metadata"][field]


def test_update_with_another_uid_conflicts(backend, namespace):
    old = backend.create(make("Trial", namespace, "t"))
    backend.delete("Trial", namespace, "t")
    backend.create(make("Trial", namespace, "t"))
    old["metadata"].pop("resourceVersion")
    with pytest.raises(Conflict, match="UID"):
        backend.update(old)


def test_update_missing_is_not_found(backend, namespace):
    with pytest.raises(NotFound):
        backend.update(make("Trial", namespace, "ghost"))
    with pytest.raises(NotFound):
        backend.update_status(make("Trial", namespace, "ghost", status={}))


# ---- status subresource ---------------------------------------------------------------------
def test_update_status_writes_only_status(backend, namespace):
    t = backend.create(make("Trial", namespace, "t", labels={"a": "1"}, spec={"v": 1}))
    t["status"] = {"conditions": [{"type": "Running"}]}
    t["spec"] = {"v": 666}
    t["metadata"]["labels"] = {"a": "forged"}
    t["metadata"]["finalizers"] = ["forged"]
    got = backend.update_status(t)
    assert got["status"] == {"conditions": [{"type": "Running"}]}
    assert got["spec"] == {"v": 1} and got["metadata"]["labels"] == {"a": "1"}
    assert "finalizers" not in got["metadata"] and got["metadata"]["generation"] == 1


def test_update_status_with_stale_resource_version_conflicts(backend, namespace):
    stale = backend.create(make("Trial", namespace, "t"))
    backend.update_status({**backend.get("Trial", namespace, "t"), "status": {"n": 1}})
    with pytest.raises(Conflict):
        backend.update_status({**stale, "status": {"n": 2}})
    assert backend.get("Trial", namespace, "t")["status"] == {"n": 1}


def test_status_subresource_of_kind_without_one_is_not_found(backend, namespace):
    cm = backend.create(make("ConfigMap", namespace, "c"))
    with pytest.raises(NotFound):
        backend.update_status({**cm, "status": {"x": 1}})


# ---- watch --------------------------------------------------------------------------------
def test_watch_reports_each_change_in_commit_order(backend, namespace, settle):
    rec = Recorder(backend)
    t = backend.create(make("Trial", namespace, "t"))
    t["spec"] = {"v": 2}
    t = backend.update(t)
    backend.update_status({**t, "status": {"s": 1}})
    backend.delete("Trial", namespace, "t")
    settle()
    assert rec.seen == [(ADDED, "Trial", "t"), (MODIFIED, "Trial", "t"), (MODIFIED, "Trial", "t"),
                        (DELETED, "Trial", "t")]
    versions = [rv(o) for o in rec.objects]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert rec.objects[2]["status"] == {"s": 1}


def test_watch_filters_by_kind(backend, namespace, settle):
    rec = Recorder(backend, kinds=["Job"])
    backend.create(make("Trial", namespace, "t"))
    backend.create(make("Job", namespace, "j"))
    settle()
    assert rec.seen == [(ADDED, "Job", "j")]


def test_subscribers_see_the_same_order_and_own_copies(backend, namespace, settle):
    first, second = Recorder(backend), Recorder(backend)
    backend.subscribe(lambda ev: ev.object["metadata"].update(name="mangled"))
    for name in ("a", "b", "c"):
        backend.create(make("ConfigMap", namespace, name))
    backend.delete("ConfigMap", namespace, "b")
    settle()
    assert first.seen == second.seen == [(ADDED, "ConfigMap", "a"), (ADDED, "ConfigMap", "b"),
                                         (ADDED, "ConfigMap", "c"), (DELETED, "ConfigMap", "b")]
    assert names(backend, "ConfigMap", namespace) == ["a", "c"]


def test_unsubscribe_stops_delivery(backend, namespace, settle):
    rec = Recorder(backend)
    backend.create(make("Trial", namespace, "a"))
    settle()
    rec.stop()
    rec.stop()  # idempotent
    backend.create(make("Trial", namespace, "b"))
    settle()
    assert rec.seen == [(ADDED, "Trial", "a")]


def test_failing_handler_breaks_neither_writes_nor_other_subscribers(backend, namespace, settle):
    def explode(event):
        raise RuntimeError("handler bug")

    backend.subscribe(explode)
    rec = Recorder(backend)
    backend.create(make("Trial", namespace, "a"))
    backend.create(make("Trial", namespace, "b"))
    settle()
    assert rec.seen == [(ADDED, "Trial", "a"), (ADDED, "Trial", "b")]
    assert names(backend, "Trial", namespace) == ["a", "b"]


def test_subscriber_gets_no_earlier_changes(backend, namespace, settle):
    backend.create(make("Trial", namespace, "before"))
    settle()
    rec = Recorder(backend)
    backend.create(make("Trial", namespace, "after"))
    settle()
    assert rec.seen == [(ADDED, "Trial", "after")]


# ---- list + watch (what informers are built on) ------------------------------------------------
WATCH_WAIT = 10.0  # seconds a contract test waits for events that must come


def take(stream, n: int, *, wait: float = WATCH_WAIT) -> list:
    """The first `n` change events of `stream` (bookmarks skipped), failing after `wait` s."""
    out: list = []
    deadline = time.monotonic() + wait
    for event in stream:
        if event.type != BOOKMARK:
            out.append(event)
        if len(out) == n or time.monotonic() > deadline:
            break
    assert len(out) == n, f"{len(out)} of {n} events in {wait}s: {[(e.type, e.object['metadata']) for e in out]}"
    return out


def seen(events) -> list[tuple[str, str]]:
    return [(e.type, e.object["metadata"]["name"]) for e in events]


def test_served_kinds_include_what_the_controllers_need(backend):
    assert {"Experiment", "Suggestion", "Trial", "Job", "ConfigMap", "Event"} <= set(backend.served_kinds())


def test_list_with_version_then_watch_delivers_exactly_the_later_changes(backend, namespace):
    backend.create(make("Trial", namespace, "before"))
    items, version = backend.list_with_version("Trial", namespace)
    assert [o["metadata"]["name"] for o in items] == ["before"] and isinstance(version, str)
    t = backend.create(make("Trial", namespace, "after"))
    backend.create(make("ConfigMap", namespace, "other-kind"))
    backend.update_status({**t, "status": {"s": 1}})
    backend.delete("Trial", namespace, "before")
    events = take(backend.watch("Trial", version, namespace=namespace, timeout=WATCH_WAIT), 3)
    assert seen(events) == [(ADDED, "after"), (MODIFIED, "after"), (DELETED, "before")]
    versions = [rv(e.object) for e in events]
    assert versions == sorted(versions) and rv(events[0].object) > int(version)
    assert events[1].object["status"] == {"s": 1}


def test_watch_resumes_from_the_last_version_seen_without_loss_or_repeat(backend, namespace):
    _, version = backend.list_with_version("Trial", namespace)
    for name in ("a", "b", "c"):
        backend.create(make("Trial", namespace, name))
    stream = backend.watch("Trial", version, namespace=namespace, timeout=WATCH_WAIT)
    first = take(stream, 2)
    stream.close()  # the client goes away in the middle
    backend.create(make("Trial", namespace, "d"))
    rest = take(backend.watch("Trial", first[-1].object["metadata"]["resourceVersion"], namespace=namespace,
                              timeout=WATCH_WAIT), 2)
    assert seen(first + rest) == [(ADDED, "a"), (ADDED, "b"), (ADDED, "c"), (ADDED, "d")]


def test_watch_resumes_after_the_server_drops_the_stream(backend, namespace, drop_watches):
    _, version = backend.list_with_version("Trial", namespace)
    got: list = []
    ended = threading.Event()

    def consume():
        for event in backend.watch("Trial", version, namespace=namespace, timeout=WATCH_WAIT):
            if event.type != BOOKMARK:
                got.append(event)
        ended.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    backend.create(make("Trial", namespace, "a"))
    deadline = time.monotonic() + WATCH_WAIT
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    drop_watches()
    assert ended.wait(WATCH_WAIT), "the stream did not end when the server dropped it"
    backend.create(make("Trial", namespace, "b"))
    rest = take(backend.watch("Trial", got[-1].object["metadata"]["resourceVersion"], namespace=namespace,
                              timeout=WATCH_WAIT), 1)
    assert seen(got + rest) == [(ADDED, "a"), (ADDED, "b")]


def test_watch_from_a_compacted_version_is_expired_and_a_relist_recovers(backend, namespace, compact):
    _, version = backend.list_with_version("Trial", namespace)
    backend.create(make("Trial", namespace, "a"))
    compact()
    with pytest.raises(Expired):
        take(backend.watch("Trial", version, namespace=namespace, timeout=WATCH_WAIT), 1)
    items, fresh = backend.list_with_version("Trial", namespace)
    assert [o["metadata"]["name"] for o in items] == ["a"]
    backend.create(make("Trial", namespace, "b"))
    assert seen(take(backend.watch("Trial", fresh, namespace=namespace, timeout=WATCH_WAIT), 1)) == [(ADDED, "b")]


def test_watch_filters_by_namespace(backend, namespace, other_namespace):
    _, version = backend.list_with_version("ConfigMap")
    backend.create(make("ConfigMap", other_namespace, "elsewhere"))
    backend.create(make("ConfigMap", namespace, "here"))
    assert seen(take(backend.watch("ConfigMap", version, namespace=namespace, timeout=WATCH_WAIT), 1)) == \
        [(ADDED, "here")]
    everywhere = take(backend.watch("ConfigMap", version, timeout=WATCH_WAIT), 2)
    assert {e.object["metadata"]["name"] for e in everywhere} == {"elsewhere", "here"}


def test_watch_with_zero_timeout_returns_what_happened_and_ends(backend, namespace):
    _, version = backend.list_with_version("Trial", namespace)
    backend.create(make("Trial", namespace, "a"))
    t0 = time.monotonic()
    events = [e for e in backend.watch("Trial", version, namespace=namespace, timeout=0) if e.type != BOOKMARK]
    assert seen(events) == [(ADDED, "a")] and time.monotonic() - t0 < 5


def test_stop_ends_a_waiting_watch(backend, namespace):
    _, version = backend.list_with_version("Trial", namespace)
    stop = threading.Event()
    done = threading.Event()

    def consume():
        for _ in backend.watch("Trial", version, namespace=namespace, stop=stop):
            pass
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.05)
    stop.set()
    assert done.wait(5), "a stopped watch kept waiting"


def test_watch_from_a_bad_or_future_version_is_refused(backend, namespace):
    _, version = backend.list_with_version("Trial", namespace)
    with pytest.raises(Invalid):
        take(backend.watch("Trial", "not-a-version", namespace=namespace, timeout=1), 1)
    with pytest.raises(TemporaryError):
        take(backend.watch("Trial", str(int(version) + 1_000_000), namespace=namespace, timeout=1), 1)


# ---- finalizers -----------------------------------------------------------------------------
def test_delete_with_finalizers_marks_the_object_once(backend, namespace, settle):
    backend.create(make("Experiment", namespace, "e", finalizers=["update-prometheus-metrics"]))
    rec = Recorder(backend)
    backend.delete("Experiment", namespace, "e")
    marked = backend.get("Experiment", namespace, "e")
    backend.delete("Experiment", namespace, "e")
    settle()
    assert marked["metadata"]["deletionTimestamp"]
    assert backend.get("Experiment", namespace, "e")["metadata"]["deletionTimestamp"] == \
        marked["metadata"]["deletionTimestamp"]
    assert rec.seen[0] == (MODIFIED, "Experiment", "e") and DELETED not in {t for t, _, _ in rec.seen}


def test_removing_the_last_finalizer_completes_deletion(backend, namespace, settle):
    backend.create(make("Trial", namespace, "t", finalizers=["clean-metrics-in-db", "other"]))
    backend.delete("Trial", namespace, "t")
    rec = Recorder(backend)
    without_finalizers(backend, "Trial", namespace, "t", "other")
    assert backend.get("Trial", namespace, "t")["metadata"]["finalizers"] == ["clean-metrics-in-db"]
    without_finalizers(backend, "Trial", namespace, "t")
    settle()
    assert not exists(backend, "Trial", namespace, "t")
    assert rec.seen == [(MODIFIED, "Trial", "t"), (DELETED, "Trial", "t")]


def test_no_finalizer_may_be_added_while_deleting(backend, namespace):
    backend.create(make("Trial", namespace, "t", finalizers=["a"]))
    backend.delete("Trial", namespace, "t")
    t = backend.get("Trial", namespace, "t")
    t["metadata"]["finalizers"].append("b")
    with pytest.raises(Invalid, match="no new finalizers"):
        backend.update(t)


def test_delete_missing_is_not_found(backend, namespace):
    backend.create(make("Trial", namespace, "t"))
    backend.delete("Trial", namespace, "t")
    with pytest.raises(NotFound):
        backend.delete("Trial", namespace, "t")


# ---- owner references and cascading deletion ------------------------------------------------
def chain(backend, ns: str, *, trial_finalizers=None) -> tuple[dict, dict, dict, dict]:
    """Experiment → Trial → Job → Pod, each owned (controller, blocking) by the one before."""
    exp = backend.create(make("Experiment", ns, "e"))
    trial = backend.create(make("Trial", ns, "e-t", owners=[owner(exp)], finalizers=trial_finalizers))
    job = backend.create(make("Job", ns, "e-t", owners=[owner(trial)]))
    pod = backend.create(make("Pod", ns, "e-t-pod", owners=[owner(job)]))
    return exp, trial, job, pod


def test_background_deletion_cascades_through_every_level(backend, namespace, settle):
    chain(backend, namespace)
    backend.create(make("Trial", namespace, "unrelated"))
    backend.delete("Experiment", namespace, "e")
    settle()
    assert [names(backend, k, namespace) for k in ("Experiment", "Trial", "Job", "Pod")] == \
        [[], ["unrelated"], [], []]


def test_cascade_waits_for_a_finalizer_blocked_child(backend, namespace, settle):
    chain(backend, namespace, trial_finalizers=["clean-metrics-in-db"])
    backend.delete("Experiment", namespace, "e")
    settle()
    assert not exists(backend, "Experiment", namespace, "e")
    assert backend.get("Trial", namespace, "e-t")["metadata"]["deletionTimestamp"]
    assert exists(backend, "Job", namespace, "e-t") and exists(backend, "Pod", namespace, "e-t-pod")
    without_finalizers(backend, "Trial", namespace, "e-t")
    settle()
    assert [names(backend, k, namespace) for k in ("Trial", "Job", "Pod")] == [[], [], []]


def test_owner_with_finalizer_keeps_its_dependents_until_it_is_gone(backend, namespace, settle):
    exp = backend.create(make("Experiment", namespace, "e", finalizers=["update-prometheus-metrics"]))
    backend.create(make("Trial", namespace, "t", owners=[owner(exp)]))
    backend.delete("Experiment", namespace, "e")
    settle()
    assert exists(backend, "Trial", namespace, "t")
    without_finalizers(backend, "Experiment", namespace, "e")
    settle()
    assert not exists(backend, "Trial", namespace, "t")


def test_dependent_with_a_remaining_owner_survives(backend, namespace, settle):
    a = backend.create(make("ConfigMap", namespace, "a"))
    b = backend.create(make("ConfigMap", namespace, "b"))
    backend.create(make("Job", namespace, "shared", owners=[owner(a, controller=False), owner(b)]))
    backend.delete("ConfigMap", namespace, "a")
    settle()
    refs = backend.get("Job", namespace, "shared")["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == [b["metadata"]["uid"]]
    backend.delete("ConfigMap", namespace, "b")
    settle()
    assert not exists(backend, "Job", namespace, "shared")


def test_orphan_deletion_keeps_dependents_without_the_reference(backend, namespace, settle):
    exp = backend.create(make("Experiment", namespace, "e"))
    backend.create(make("Trial", namespace, "t", owners=[owner(exp)]))
    backend.delete("Experiment", namespace, "e", propagation="Orphan")
    settle()
    assert not exists(backend, "Experiment", namespace, "e")
    assert "ownerReferences" not in backend.get("Trial", namespace, "t")["metadata"]


def test_foreground_deletion_without_blockers_removes_everything(backend, namespace, settle):
    chain(backend, namespace)
    backend.delete("Job", namespace, "e-t", propagation="Foreground")
    settle()
    assert not exists(backend, "Job", namespace, "e-t") and not exists(backend, "Pod", namespace, "e-t-pod")
    assert exists(backend, "Trial", namespace, "e-t")


def test_foreground_owner_waits_for_a_blocking_dependent(backend, namespace, settle):
    job = backend.create(make("Job", namespace, "j"))
    backend.create(make("Pod", namespace, "p", owners=[owner(job)], finalizers=["hold"]))
    backend.delete("Job", namespace, "j", propagation="Foreground")
    settle()
    waiting = backend.get("Job", namespace, "j")["metadata"]
    assert waiting["deletionTimestamp"] and "foregroundDeletion" in waiting["finalizers"]
    assert backend.get("Pod", namespace, "p")["metadata"]["deletionTimestamp"]
    without_finalizers(backend, "Pod", namespace, "p")
    settle()
    assert not exists(backend, "Pod", namespace, "p") and not exists(backend, "Job", namespace, "j")


def test_foreground_owner_does_not_wait_for_a_non_blocking_dependent(backend, namespace, settle):
    job = backend.create(make("Job", namespace, "j"))
    backend.create(make("Pod", namespace, "p", owners=[owner(job, block=False)], finalizers=["hold"]))
    backend.delete("Job", namespace, "j", propagation="Foreground")
    settle()
    assert not exists(backend, "Job", namespace, "j")
    assert backend.get("Pod", namespace, "p")["metadata"]["deletionTimestamp"]


# ---- events ---------------------------------------------------------------------------------
def test_events_are_stored_and_identical_repeats_counted(backend, namespace):
    trial = backend.create(make("Trial", namespace, "t"))
    backend.record_event(trial, type="Normal", reason="JobCreated", message="Job t has been created")
    backend.record_event(trial, type="Normal", reason="JobCreated", message="Job t has been created")
    backend.record_event(trial, type="Warning", reason="MetricsUnavailable", message="Metrics are not available")
    events = {e["reason"]: e for e in backend.list("Event", namespace)
              if e["involvedObject"]["name"] == "t"}
    assert set(events) == {"JobCreated", "MetricsUnavailable"}
    created = events["JobCreated"]
    assert created["count"] == 2 and created["type"] == "Normal"
    assert created["involvedObject"]["kind"] == "Trial"
    assert created["involvedObject"]["uid"] == trial["metadata"]["uid"]
    assert created["firstTimestamp"] <= created["lastTimestamp"]
    assert events["MetricsUnavailable"]["count"] == 1 and events["MetricsUnavailable"]["type"] == "Warning"


# ---- admission ------------------------------------------------------------------------------
class StubAdmission:
    """Defaults spec.parallelTrialCount=3 on Experiments; refuses maxTrialCount <= 0."""

    def __init__(self):
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(self, op: str, new: dict, old: dict | None) -> dict:
        self.calls.append((op, new["metadata"]["name"], old is not None))
        if new["kind"] != "Experiment":
            return new
        spec = new.setdefault("spec", {})
        spec.setdefault("parallelTrialCount", 3)
        if spec.get("maxTrialCount", 1) <= 0:
            raise Invalid([FieldError("spec.maxTrialCount", "must be greater than 0", spec["maxTrialCount"])],
                          kind="Experiment", name=new["metadata"]["name"])
        return new


def test_admission_defaults_on_create_and_update(backend_factory, namespace):
    admit = StubAdmission()
    backend = backend_factory(admit=admit)
    exp = backend.create(make("Experiment", namespace, "e", spec={"maxTrialCount": 5}))
    assert exp["spec"] == {"maxTrialCount": 5, "parallelTrialCount": 3}
    exp["spec"] = {"maxTrialCount": 6}
    assert backend.update(exp)["spec"] == {"maxTrialCount": 6, "parallelTrialCount": 3}
    assert admit.calls == [("CREATE", "e", False), ("UPDATE", "e", True)]


def test_admission_is_not_run_on_update_status(backend_factory, namespace):
    admit = StubAdmission()
    backend = backend_factory(admit=admit)
    exp = backend.create(make("Experiment", namespace, "e"))
    backend.update_status({**exp, "status": {"trials": 1}})
    assert [op for op, _, _ in admit.calls] == ["CREATE"]


def test_admission_refusal_propagates_and_changes_nothing(backend_factory, namespace):
    backend = backend_factory(admit=StubAdmission())
    with pytest.raises(Invalid, match="spec.maxTrialCount: Invalid value: 0: must be greater than 0"):
        backend.create(make("Experiment", namespace, "bad", spec={"maxTrialCount": 0}))
    assert not exists(backend, "Experiment", namespace, "bad")
    exp = backend.create(make("Experiment", namespace, "e", spec={"maxTrialCount": 2}))
    exp["spec"]["maxTrialCount"] = -1
    with pytest.raises(Invalid):
        backend.update(exp)
    assert backend.get("Experiment", namespace, "e") == exp | {"spec": {"maxTrialCount": 2, "parallelTrialCount": 3}}


# `from tests.backend_contract import *` brings in the tests and the default fixtures.
__all__ = [name for name in dir() if name.startswith("test_")] + ["compact", "drop_watches"]
