"""katib.db on real SQLite files, MariaDB and PostgreSQL (fixtures: tests/db_servers.py).

Upstream reference: pkg/db/v1alpha3/mysql tests (shared spec upstream-tests.md §7) and the
observation rules of metrics-collection.md §6-7 and controllers.md §3.4."""
from __future__ import annotations

import json
import math
import socket
import sqlite3
import threading
import time
import uuid

import pytest

from collector import parse_text
from katib.db import (
    CorruptObject,
    DatabaseError,
    DatabaseUnavailable,
    DatabaseURLError,
    InvalidTimestamp,
    MetricLog,
    ObjectTable,
    connect,
    delete_observation_log,
    get_observation_log,
    objective_value,
    parse_time,
    report_observation_log,
    replace_observation_log,
)
from katib.errors import KatibError, TemporaryError

T = "2016-12-31T20:02:05.123456Z"


@pytest.fixture
def db(db_url):
    database = connect(db_url)
    yield database
    database.close()


def log(ts, name, value):
    return MetricLog(ts, name, value)


def make_obj(name, rv, *, kind="Trial", namespace="default", **extra):
    meta = {"name": name, "resourceVersion": str(rv)}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": kind, "metadata": meta, **extra}


# -- observation logs -------------------------------------------------------------------------
def test_upstream_register_and_get(db):
    # upstream-tests.md §7: 4 logs at 2016-12-31T20:02:05.123456Z for test1_trial1.
    sent = [log(T, "f1_score", "88.95"), log(T, "loss", "0.5"), log(T, "precision", "88.7"),
            log(T, "recall", "89.2")]
    assert report_observation_log(db, "test1_trial1", sent) == 4
    assert get_observation_log(db, "test1_trial1") == sent
    assert get_observation_log(db, "test1_trial1", "loss") == [log(T, "loss", "0.5")]


def test_time_range_is_inclusive(db):
    times = ["2016-12-31T21:01:05.123455Z", "2016-12-31T21:01:05.123456Z",
             "2016-12-31T22:10:20.123456Z", "2016-12-31T22:10:20.123457Z"]
    report_observation_log(db, "t", [log(ts, "loss", str(i)) for i, ts in enumerate(times)])
    got = get_observation_log(db, "t", "loss", "2016-12-31T21:01:05.123456Z",
                              "2016-12-31T22:10:20.123456Z")
    assert [r.value for r in got] == ["1", "2"]
    assert [r.value for r in get_observation_log(db, "t", start_time=times[2])] == ["2", "3"]
    assert [r.value for r in get_observation_log(db, "t", end_time=times[0])] == ["0"]
    assert [r.value for r in get_observation_log(db, "t", "", "", "")] == ["0", "1", "2", "3"]


def test_times_are_normalised_to_utc_microseconds(db):
    report_observation_log(db, "t", [
        log("2019-09-24T03:37:26.1234567+02:00", "a", "1"),  # beyond µs: truncated, not rounded
        log("2019-09-24T01:37:27.500000Z", "a", "2"),
        log("2019-09-23T23:07:28-02:30", "a", "3"),
    ])
    assert [r.timestamp for r in get_observation_log(db, "t")] == [
        "2019-09-24T01:37:26.123456Z", "2019-09-24T01:37:27.5Z", "2019-09-24T01:37:28Z"]


def test_order_is_time_then_insertion(db):
    # A metrics file without timestamps: every record has the zero time; file order must hold.
    text = "loss=3\nloss=1\n2020-01-01T00:00:00Z loss=0\nloss=2\n"
    report_observation_log(db, "t", parse_text(text, ["loss"]))
    got = get_observation_log(db, "t")
    assert [(r.timestamp, r.value) for r in got] == [
        ("0001-01-01T00:00:00Z", "3"), ("0001-01-01T00:00:00Z", "1"),
        ("0001-01-01T00:00:00Z", "2"), ("2020-01-01T00:00:00Z", "0")]


def test_values_are_kept_verbatim(db):
    genotype = "Genotype(normal=[[('sep_conv_3x3', 0)]], normal_concat=range(2, 6))"
    values = [genotype, "", "  0.5 ", "∞ ünïcödé 🙂", "x" * 20_000, "1e-05"]
    report_observation_log(db, "t", [log(T, "m", v) for v in values])
    assert [r.value for r in get_observation_log(db, "t")] == values


def test_names_compare_exactly(db):
    report_observation_log(db, "t", [log(T, "Accuracy", "1"), log(T, "accuracy", "2"),
                                     log(T, "accuracy ", "3")])
    assert [r.value for r in get_observation_log(db, "t", "accuracy")] == ["2"]
    assert get_observation_log(db, "T") == []


def test_api_dicts_and_empty_timestamps(db):
    report_observation_log(db, "t", [
        {"time_stamp": T, "metric": {"name": "loss", "value": "0.1"}},
        {"time_stamp": "", "metric": {"name": "loss", "value": "skipped"}},
        log("", "loss", "skipped too"),
    ])
    assert [r.to_api() for r in get_observation_log(db, "t")] == [
        {"time_stamp": T, "metric": {"name": "loss", "value": "0.1"}}]


def test_bad_timestamp_rejects_the_whole_report(db):
    with pytest.raises(InvalidTimestamp, match=r"^Error parsing start time yesterday: "):
        report_observation_log(db, "t", [log(T, "loss", "1"), log("yesterday", "loss", "2")])
    assert get_observation_log(db, "t") == []


@pytest.mark.parametrize("kwargs,message", [
    ({"start_time": "2016-12-31"}, "Error parsing start time 2016-12-31: "),
    ({"end_time": "soon"}, "Error parsing completion time soon: "),
])
def test_bad_query_times(db, kwargs, message):
    with pytest.raises(InvalidTimestamp) as err:
        get_observation_log(db, "t", **kwargs)
    assert str(err.value).startswith(message)


def test_delete_only_touches_one_trial(db):
    report_observation_log(db, "a", [log(T, "loss", "1"), log(T, "loss", "2")])
    report_observation_log(db, "b", [log(T, "loss", "3")])
    assert delete_observation_log(db, "a") == 2
    assert get_observation_log(db, "a") == []
    assert [r.value for r in get_observation_log(db, "b")] == ["3"]
    assert delete_observation_log(db, "a") == 0


def test_a_retried_report_is_stored_once(db):
    """A collector that lost the answer sends the same report (same id) again: no duplicates;
    another id, or another trial with the same id, is a new report; deleting the trial's logs
    forgets its ids (a re-created trial of that name starts afresh)."""
    a, b = f"a-{uuid.uuid4()}", f"b-{uuid.uuid4()}"  # server databases outlive a test
    sent = [log(T, "loss", "1"), log(T, "loss", "2")]
    assert report_observation_log(db, a, sent, report_id="r1") == 2
    assert report_observation_log(db, a, sent, report_id="r1") == 0
    assert report_observation_log(db, b, sent, report_id="r1") == 2
    assert report_observation_log(db, a, [log(T, "loss", "3")], report_id="r2") == 1
    assert [r.value for r in get_observation_log(db, a)] == ["1", "2", "3"]
    assert delete_observation_log(db, a) == 3
    assert report_observation_log(db, a, sent, report_id="r1") == 2
    assert [r.value for r in get_observation_log(db, b)] == ["1", "2"]


def test_a_failed_report_leaves_no_report_id(db):
    a = f"a-{uuid.uuid4()}"
    with pytest.raises(KatibError):
        report_observation_log(db, a, [log(T, "loss", "1"), log("not a time", "loss", "2")], report_id="r1")
    assert report_observation_log(db, a, [log(T, "loss", "1")], report_id="r1") == 1


def test_large_report_is_batched(db):
    sent = [log(f"2020-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", "loss", str(i))
            for i in range(1234)]
    assert report_observation_log(db, "t", sent) == 1234
    assert [r.value for r in get_observation_log(db, "t")] == [str(i) for i in range(1234)]


# -- objects ----------------------------------------------------------------------------------
def test_objects_round_trip_and_upsert(db):
    table = ObjectTable(db)
    assert table.load_all() == [] and table.max_resource_version() == 0
    first = make_obj("a", 3, spec={"text": "é ☃", "nested": [1, 2.5, None, True]})
    table.put(first)
    table.put(make_obj("b", 4, kind="Experiment"))
    table.put(make_obj("ns-x", 5, kind="Namespace", namespace=None))  # cluster-scoped
    updated = make_obj("a", 6, status={"phase": "Running"})
    table.put(updated)
    # creation order, whatever the later versions: "a" was created first
    assert table.load_all() == [updated, make_obj("b", 4, kind="Experiment"),
                                make_obj("ns-x", 5, kind="Namespace", namespace=None)]
    assert table.max_resource_version() == 6


def test_a_database_from_before_creation_versions_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute('CREATE TABLE "objects" ("kind" VARCHAR(128) NOT NULL, "namespace" VARCHAR(128) '
                'NOT NULL, "name" VARCHAR(255) NOT NULL, "resource_version" INTEGER NOT NULL, '
                '"body" TEXT NOT NULL, PRIMARY KEY ("kind", "namespace", "name"))')
    for name, rv in (("late", 9), ("early", 2)):
        old.execute("INSERT INTO objects VALUES ('Trial', 'default', ?, ?, ?)",
                    (name, rv, json.dumps(make_obj(name, rv))))
    old.commit()
    old.close()
    database = connect(str(path))
    try:
        table = ObjectTable(database)
        table.put(make_obj("new", 10))
        table.put(make_obj("early", 11))           # an update keeps its place
        assert [o["metadata"]["name"] for o in table.load_all()] == ["early", "late", "new"]
    finally:
        database.close()


def test_same_name_in_other_kind_or_namespace_is_another_row(db):
    table = ObjectTable(db)
    for rv, (kind, ns) in enumerate([("Trial", "a"), ("Trial", "b"), ("Job", "a"),
                                     ("trial", "a")], start=1):
        table.put(make_obj("x", rv, kind=kind, namespace=ns))
    assert len(table.load_all()) == 4


def test_remove_keeps_the_version_high_water_mark(db):
    table = ObjectTable(db)
    table.put(make_obj("a", 1))
    table.put(make_obj("b", 2))
    table.remove("Trial", "default", "b", resource_version=3)
    table.remove("Trial", "default", "missing")  # absent: no error
    assert [o["metadata"]["name"] for o in table.load_all()] == ["a"]
    assert table.max_resource_version() == 3
    table.remove("Trial", "default", "a")
    assert table.load_all() == [] and table.max_resource_version() == 3


def test_large_body(db):
    table = ObjectTable(db)
    big = make_obj("big", 1, spec={"trialTemplate": "x" * 300_000})
    table.put(big)
    assert table.load_all() == [big]


@pytest.mark.parametrize("bad", [
    {"metadata": {"name": "a", "resourceVersion": "1"}},
    {"kind": "Trial", "metadata": {"resourceVersion": "1"}},
    {"kind": "Trial", "metadata": {"name": "a"}},
    {"kind": "Trial", "metadata": {"name": "a", "resourceVersion": "x"}},
    {"kind": "", "metadata": {"name": "a", "resourceVersion": "1"}},
])
def test_put_needs_kind_name_and_version(db, bad):
    with pytest.raises(ValueError):
        ObjectTable(db).put(bad)
    assert ObjectTable(db).load_all() == []


def test_transaction_is_all_or_nothing(db):
    table = ObjectTable(db)
    table.put(make_obj("keep", 1))
    with pytest.raises(RuntimeError):
        with table.transaction():
            table.put(make_obj("a", 2))
            table.remove("Trial", "default", "keep")
            report_observation_log(db, "t", [log(T, "loss", "1")])
            raise RuntimeError("crash in the middle")
    assert [o["metadata"]["name"] for o in table.load_all()] == ["keep"]
    assert get_observation_log(db, "t") == []
    with table.transaction():
        table.put(make_obj("a", 2))
        table.put(make_obj("b", 3))
    assert table.max_resource_version() == 3 and len(table.load_all()) == 3


def test_other_threads_wait_for_a_transaction(db):
    table = ObjectTable(db)
    inside, seen = threading.Event(), []
    reader = threading.Thread(target=lambda: (inside.wait(), seen.append(table.load_all())))
    reader.start()
    with table.transaction():
        table.put(make_obj("a", 1))
        inside.set()
        reader.join(0.3)
        assert reader.is_alive()  # blocked until the transaction ends
        table.put(make_obj("b", 2))
    reader.join(10)
    assert [[o["metadata"]["name"] for o in objs] for objs in seen] == [["a", "b"]]


def test_concurrent_writers_and_readers(db):
    table, errors = ObjectTable(db), []

    def work(k):
        try:
            for i in range(40):
                table.put(make_obj(f"w{k}-{i % 10}", k * 1000 + i))
                report_observation_log(db, f"trial-{k}", [log(T, "loss", str(i))])
                table.load_all()
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(table.load_all()) == 60
    assert table.max_resource_version() == 5039
    assert all(len(get_observation_log(db, f"trial-{k}")) == 40 for k in range(6))


def test_data_survives_reconnect(db_url):
    first = connect(db_url)
    ObjectTable(first).put(make_obj("a", 7))
    report_observation_log(first, "t", [log(T, "loss", "1")])
    first.close()
    second = connect(db_url)  # tables exist: created once, reused
    try:
        assert ObjectTable(second).max_resource_version() == 7
        assert [r.value for r in get_observation_log(second, "t")] == ["1"]
        second.ping()
    finally:
        second.close()


def test_sqlite_puts_per_second(tmp_path):
    # Target > 2,000 single-row committed puts/s on a WAL file (measured ~25,000 here).
    db = connect(str(tmp_path / "speed.db"))
    table, n = ObjectTable(db), 2000
    start = time.perf_counter()
    for i in range(n):
        table.put(make_obj(f"t{i % 100}", i + 1, spec={"x": "y" * 1000}))
    rate = n / (time.perf_counter() - start)
    db.close()
    assert rate > 2000, f"{rate:.0f} puts/s"


# -- connect() --------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sqlite_file_uses_wal(tmp_path):
    path = tmp_path / "k.db"
    connect(f"sqlite:///{path}").close()  # sqlite:////abs/path
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"observation_logs", "objects"} <= tables


@pytest.mark.parametrize("url,path", [(None, "katib.db"), ("rel.db", "rel.db"),
                                      ("sqlite:///sub.db", "sub.db")])
def test_sqlite_paths(tmp_path, monkeypatch, url, path):
    monkeypatch.chdir(tmp_path)
    db = connect(url)
    ObjectTable(db).put(make_obj("a", 1))
    db.close()
    assert (tmp_path / path).is_file()


def test_memory_database_is_shared_across_threads():
    db = connect(":memory:")
    table = ObjectTable(db)
    thread = threading.Thread(target=table.put, args=(make_obj("a", 1),))
    thread.start()
    thread.join()
    assert table.max_resource_version() == 1


@pytest.mark.parametrize("url,fragment", [
    ("oracle://u:secret@h/db", "unsupported database URL scheme 'oracle'"),
    ("mysql://u:secret@127.0.0.1:port/db", "bad database URL"),
    ("postgresql://u:secret@127.0.0.1:5432/", "bad database URL"),
    ("mysql:///katib", "bad database URL"),
])
def test_bad_urls(url, fragment):
    with pytest.raises(DatabaseURLError) as err:
        connect(url)
    assert fragment in str(err.value) and "secret" not in str(err.value)
    assert "\n" not in str(err.value) and isinstance(err.value, KatibError)


@pytest.mark.parametrize("scheme", ["mysql", "postgresql"])
def test_unreachable_server_is_temporary(scheme):
    url = f"{scheme}://katib:secret@127.0.0.1:{_closed_port()}/katib"
    with pytest.raises(DatabaseUnavailable) as err:
        connect(url)
    text = str(err.value)
    assert isinstance(err.value, TemporaryError) and err.value.delay > 0
    assert text.startswith(f"database cannot connect to {scheme}://katib:***@127.0.0.1:")
    assert "secret" not in text and "\n" not in text


def test_unopenable_sqlite_file_is_permanent(tmp_path):
    (tmp_path / "a-directory.db").mkdir()
    with pytest.raises(DatabaseError) as err:
        connect(str(tmp_path / "a-directory.db"))
    assert not isinstance(err.value, TemporaryError)


def test_missing_parent_directories_are_created(tmp_path):
    connect(str(tmp_path / "runs" / "deep" / "k.db")).close()  # issue 6: `--db runs/x.db`
    assert (tmp_path / "runs" / "deep" / "k.db").is_file()


def test_parent_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(DatabaseError) as err:
        connect(str(tmp_path / "runs" / "k.db"))
    assert str(err.value) == f"cannot create the directory of database {tmp_path}/runs/k.db: File exists"


# -- objective value (controllers.md §3.4, without upstream's "unparseable = 0") -------------
@pytest.mark.parametrize("values,kind,expected", [
    (["0.5", "0.9", "0.7"], "maximize", 0.9),
    (["0.5", "0.9", "0.7"], "minimize", 0.5),
    (["0.5", "0.9", "0.7"], "unknown", 0.5),
    (["-1", "1e-05", "+2.5", ".5", "3."], "minimize", -1.0),
    (["abc", "0.3", ""], "maximize", 0.3),
    (["-0.2", "n/a"], "maximize", -0.2),  # upstream would report 0.0 (n/a counted as 0)
    (["abc", " 1", "1_000", "0x1p-2"], "minimize", 0.25),
    (["nan", "0.4", "NaN"], "maximize", 0.4),
    (["inf", "1"], "maximize", math.inf),
    (["-Infinity", "1"], "minimize", -math.inf),
    (["abc", "nan"], "maximize", None),
    ([], "minimize", None),
])
def test_objective_value(values, kind, expected):
    assert objective_value([log(T, "m", v) for v in values], kind) == expected


def test_objective_value_accepts_enum_like_types():
    class Kind:
        value = "maximize"
    assert objective_value([log(T, "m", "1"), log(T, "m", "2")], Kind()) == 2.0


@pytest.mark.parametrize("text", ["2016-12-31T20:02:05", "2016-12-31T20:02:05+25:00",
                                  "0001-01-01T00:30:00+01:00", "2016-13-01T00:00:00Z"])
def test_parse_time_rejects(text):
    with pytest.raises(InvalidTimestamp):
        parse_time(text)


def test_report_json_round_trip(db):
    # The HTTP API carries the collector's request body verbatim.
    request = json.loads(json.dumps({"trial_name": "t", "observation_log": {"metric_logs": [
        {"time_stamp": T, "metric": {"name": "loss", "value": "0.25"}}]}}))
    report_observation_log(db, request["trial_name"], request["observation_log"]["metric_logs"])
    assert objective_value(get_observation_log(db, "t", "loss"), "minimize") == 0.25


def test_replace_observation_log_is_atomic_and_idempotent(db_url):
    from katib.db import connect, get_observation_log, replace_observation_log
    from collector.parse import MetricLog

    db = connect(db_url)
    logs = [MetricLog("2020-01-01T00:00:00Z", "acc", "0.5"), MetricLog("2020-01-01T00:00:01Z", "acc", "0.7")]
    replace_observation_log(db, "t1", logs)
    replace_observation_log(db, "t1", logs)
    assert [log.value for log in get_observation_log(db, "t1", "acc")] == ["0.5", "0.7"]
    with pytest.raises(Exception):
        replace_observation_log(db, "t1", [MetricLog("not a time", "acc", "0.9")])
    assert [log.value for log in get_observation_log(db, "t1", "acc")] == ["0.5", "0.7"]
    db.close()


def test_replace_keeps_what_collectors_reported_once(db):
    """The in-process re-read replaces the rows, not the ids of reports already applied: a
    collector's retry of one of them is still a no-op."""
    a = f"a-{uuid.uuid4()}"
    assert report_observation_log(db, a, [log(T, "loss", "1")], report_id="r1") == 1
    assert replace_observation_log(db, a, [log(T, "loss", "2"), log(T, "loss", "3")]) == 2
    assert report_observation_log(db, a, [log(T, "loss", "1")], report_id="r1") == 0
    assert [r.value for r in get_observation_log(db, a)] == ["2", "3"]
    assert replace_observation_log(db, a, []) == 0
    assert get_observation_log(db, a) == []


def test_a_statement_is_rendered_once_per_database(db):
    from katib.db.engine import render

    built = []

    def build():
        built.append(1)
        m = db.models.observation
        return render(m.select(m.value).where(m.trial_name == "\0t"), {"trial_name": "\0t"})
    first = db.statement("test-values-of", build)
    assert db.statement("test-values-of", build) is first and built == [1]
    s = f"s-{uuid.uuid4()}"
    report_observation_log(db, s, [log(T, "loss", "7")])
    assert db.run(first, {"trial_name": s}) == [("7",)]
    m = db.models.observation
    with pytest.raises(ValueError, match="distinct placeholder"):
        render(m.select().where((m.trial_name == "x") & (m.metric_name == "x")), {"a": "x", "b": "x"})


# -- corrupt object rows (issue 6, defect 8): one line naming table, row and fault ----------
@pytest.mark.parametrize("body,problem", [
    ("{not json", "the body is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("[1,2]", "the body is a JSON list, not an object"),
    ('{"metadata": {"name": "t1", "namespace": "default", "resourceVersion": "1"}}',
     "the body's kind is None, not 'Trial'"),
    ('{"kind": "Trial"}', "the body has no metadata object"),
    ('{"kind": "Trial", "metadata": []}', "the body has no metadata object"),
    ('{"kind": "Trial", "metadata": {"name": "t2", "namespace": "default", "resourceVersion": "1"}}',
     "the body's metadata names 'default'/'t2'"),
    ('{"kind": "Trial", "metadata": {"name": "t1", "namespace": "default", "resourceVersion": "x"}}',
     "metadata.resourceVersion 'x' is not a number"),
    ('{"kind": "Trial", "metadata": {"name": "t1", "namespace": "default", "resourceVersion": "1", '
     '"labels": [1]}}', "metadata.labels is a JSON list"),
    ("[" * 100_000, "the body is not JSON (maximum recursion depth exceeded while decoding a JSON array from a unicode string)"),
])
def test_corrupt_object_row_is_named(tmp_path, body, problem):
    path = tmp_path / "k.db"
    db = connect(str(path))
    table = ObjectTable(db)
    table.put(make_obj("t0", 1))
    table.put(make_obj("t1", 2))
    with sqlite3.connect(path) as conn:  # edited outside katib, as a user or a bad disk would
        conn.execute("UPDATE objects SET body = ? WHERE name = 't1'", (body,))
    with pytest.raises(CorruptObject) as err:
        table.load_all()
    assert str(err.value) == f"database {path}: table objects, row Trial/default/t1: {problem}"
    assert isinstance(err.value, KatibError)


# -- storage that refuses writes (issue 6, defect 7): StorageError, never a retry ------------
READ_ONLY_SESSION = {"sqlite": "PRAGMA query_only = 1", "mysql": "SET SESSION TRANSACTION READ ONLY",
                     "postgresql": "SET default_transaction_read_only = on"}


def test_read_only_database_is_a_storage_error(db):
    from katib.errors import StorageError

    with db.session():  # the server (or file) refuses writes from now on, as a read-only disk does
        db._pw.execute_sql(READ_ONLY_SESSION[db.kind])
    with pytest.raises(StorageError) as err:
        report_observation_log(db, "t", [log(T, "loss", "0.5")])
    assert not isinstance(err.value, TemporaryError)
    assert str(err.value).startswith(f"database {db.where} cannot be written: ")
    assert "\n" not in str(err.value) and ("readonly" in str(err.value) or "read-only" in str(err.value)
                                           or "READ ONLY" in str(err.value))


def test_full_sqlite_file_is_a_storage_error(tmp_path):
    from katib.errors import StorageError

    db = connect(str(tmp_path / "k.db"))
    with db.session():  # a real SQLITE_FULL: the file may not grow beyond its current pages
        pages = db._pw.execute_sql("PRAGMA page_count").fetchone()[0]
        db._pw.execute_sql(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError) as err:
        report_observation_log(db, "t", [log(T, "loss", "x" * 1000)] * 200)
    assert str(err.value) == f"database {tmp_path / 'k.db'} cannot be written: database or disk is full"
    assert get_observation_log(db, "t") == []  # all or nothing


@pytest.mark.parametrize("err,storage", [
    (sqlite3.OperationalError("disk I/O error"), True),
    (sqlite3.OperationalError("database is locked"), False),
    (OSError(28, "No space left on device"), True),
    (OSError(30, "Read-only file system"), True),
    (OSError(2, "No such file or directory"), False),
])
def test_which_driver_errors_mean_storage(err, storage):
    from katib.db.engine import is_storage_failure

    assert is_storage_failure(err) is storage


def test_driver_error_codes_mean_storage():
    import pymysql

    from katib.db.engine import is_storage_failure

    class PgError(Exception):
        def __init__(self, pgcode):
            super().__init__("ERROR")
            self.pgcode = pgcode

    assert is_storage_failure(pymysql.err.OperationalError(1114, "The table 'objects' is full"))
    assert is_storage_failure(pymysql.err.OperationalError(1021, "Disk full"))
    assert not is_storage_failure(pymysql.err.OperationalError(2013, "Lost connection"))
    assert is_storage_failure(PgError("53100")) and not is_storage_failure(PgError("40001"))


# -- the observation store protocol ------------------------------------------------------------
def test_observation_store_over_the_db(db):
    from katib.db import ObservationStore

    store = ObservationStore(db)
    assert store.report("t1", [log(T, "loss", "0.5"), log(T, "acc", "0.7")]) == 2
    assert store.replace("t1", [log(T, "acc", "0.9"), log("2017-01-01T00:00:00Z", "acc", "0.8")]) == 2
    assert store.get("t1", "acc") == [log(T, "acc", "0.9"), log("2017-01-01T00:00:00Z", "acc", "0.8")]
    assert store.get("t1", "acc", start_time="2017-01-01T00:00:00Z") == [log("2017-01-01T00:00:00Z", "acc", "0.8")]
    assert store.objective_value("t1", "acc", "minimize") == 0.8
    assert store.objective_value("t1", "acc", "maximize") == 0.9
    assert store.objective_value("t1", "loss", "maximize") is None
    assert store.delete("t1") == 2 and store.get("t1") == []
