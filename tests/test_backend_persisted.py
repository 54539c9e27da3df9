"""The Backend contract against the fake backend as `katib.py --fake` runs it: written through
SelectivePersistence to a real ObjectTable in SQLite, MariaDB and PostgreSQL. After every
test the database is opened again on a new connection by a new backend (what the next
process finds), which must list exactly the live objects (Events are kept in memory only)."""
from __future__ import annotations

import pytest

from tests.backend_contract import *  # noqa: F401,F403  (the contract tests run here)
from tests.backend_contract import exists, make, names, owner, rv
from tests.db_servers import BACKENDS
from katib.backends.base import RESOURCES
from katib.backends.fake import FakeBackend
from katib.clock import FakeClock
from katib.db import ObjectTable, connect
from katib.runtime import NOT_PERSISTED, SelectivePersistence

NS = "ns-a"


def persisted(backend: FakeBackend) -> dict[tuple[str, str, str], dict]:
    """Every object a restart must bring back, by key (the list order after a restart is
    test_a_restart_keeps_the_list_order's)."""
    return {(kind, o["metadata"]["namespace"], o["metadata"]["name"]): o
            for kind in RESOURCES if kind not in NOT_PERSISTED for o in backend.list(kind)}


def reopen(server_url: str, clock) -> tuple[FakeBackend, object]:
    db = connect(server_url)
    return FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(db))), db


@pytest.fixture(scope="module", params=BACKENDS)
def server_url(request, tmp_path_factory):
    """One database per module and backend kind: a temp SQLite file, or a server whose Katib
    tables were dropped once (each test then starts from an empty `objects` table)."""
    if request.param == "sqlite":
        return str(tmp_path_factory.mktemp("persisted") / "katib.db")
    from tests.db_servers import drop_tables

    url = request.getfixturevalue("mysql_url" if request.param == "mysql" else "postgres_url")
    drop_tables(url)
    return url


@pytest.fixture
def database(server_url):
    db = connect(server_url)
    db.execute_sql("DELETE FROM objects")  # a clean slate; one statement, no DDL
    yield db
    db.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def backend(database, server_url, clock):
    live = FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(database)))
    yield live
    database.close()
    # The rows themselves first: a backend that loads them finishes half-done deletions (and
    # writes that back), which would hide a resurrected object.
    again = connect(server_url)
    try:
        rows = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o
                for o in ObjectTable(again).load_all()}
        assert rows == persisted(live), "stored rows differ from the live state"
        reopened = FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(again)))
        assert persisted(reopened) == persisted(live), "state after restart differs from the live state"
    finally:
        again.close()


@pytest.fixture
def backend_factory(database, clock):
    return lambda *, admit: FakeBackend(clock=clock, admit=admit,
                                        persistence=SelectivePersistence(ObjectTable(database)))


@pytest.fixture
def namespace():
    return NS


@pytest.fixture
def other_namespace():
    return "ns-b"


@pytest.fixture
def settle():
    return lambda: None  # the fake delivers events and collects garbage before a write returns


# ---- what only a persisted backend must keep ---------------------------------------------------
def test_a_restart_brings_back_every_object_and_continues_the_versions(database, server_url, clock):
    live = FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(database)))
    versions: list[int] = []
    live.subscribe(lambda event: versions.append(rv(event.object)))
    exp = live.create(make("Experiment", NS, "e"))
    live.create(make("Trial", NS, "t", owners=[owner(exp)], finalizers=["clean-metrics-in-db"]))
    live.update_status({**live.get("Trial", NS, "t"), "status": {"round": 2}})
    live.delete("Trial", NS, "t")                   # held by its finalizer: marked only
    live.create(make("ConfigMap", NS, "gone"))
    live.delete("ConfigMap", NS, "gone")             # the newest version is a deletion
    database.close()
    reopened, again = reopen(server_url, clock)
    try:
        assert persisted(reopened) == persisted(live)
        trial = reopened.get("Trial", NS, "t")
        assert trial["status"] == {"round": 2} and trial["metadata"]["deletionTimestamp"]
        assert not exists(reopened, "ConfigMap", NS, "gone")
        assert rv(reopened.create(make("ConfigMap", NS, "new"))) > max(versions)  # past the deletion too
    finally:
        again.close()


def test_a_restart_keeps_the_list_order(database, server_url, clock):
    live = FakeBackend(clock=clock, persistence=SelectivePersistence(ObjectTable(database)))
    for name in ("c", "a", "b"):
        live.create(make("Trial", NS, name))
    live.update_status({**live.get("Trial", NS, "a"), "status": {"x": 1}})
    database.close()
    reopened, again = reopen(server_url, clock)
    try:
        assert names(reopened, "Trial", NS) == names(live, "Trial", NS) == ["c", "a", "b"]
    finally:
        again.close()
