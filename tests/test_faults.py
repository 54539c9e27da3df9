"""Faults of the storage under the control plane (issue 6, defects 7 and 8): a full or read-only
database stops the process with one line and exit 2 instead of waiting for ever, the state
stays consistent so that a rerun continues, and a corrupt object row stops start-up with one
line naming it. Real SQLite files, real `katib.py` processes; the disk-full cases are injected
at the DB layer (peewee's execute_sql), plus one real full tmpfs where mounting is allowed."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from katib.errors import StorageError
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent
MAX_TRIALS = 4
FULL = "database or disk is full"

EXPERIMENT = shell_experiment("faulty", script="echo {{.Trial}} >> runs.log;", parallel=2,
                              max_trials=MAX_TRIALS, x_max=20)

# `katib.py` with the database "full" after N writes of the controllers' thread (the kubelet's
# threads follow the same rule: tests/test_kubelet.py).
INJECTED = r"""
import sys, threading
import peewee as pw
from katib.cli import main

real, limit, seen = pw.SqliteDatabase.execute_sql, int(sys.argv[1]), [0]

def execute_sql(self, sql, params=None):
    if threading.current_thread().name == "manager" and sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        seen[0] += 1
        if seen[0] > limit:
            raise pw.OperationalError("database or disk is full")
    return real(self, sql, params)

pw.SqliteDatabase.execute_sql = execute_sql
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def exp_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    return path


def katib(*args, cwd: Path, injected_after: int | None = None, timeout: float = 120):
    prefix = ["-c", INJECTED, str(injected_after)] if injected_after is not None else [str(ROOT / "katib.py")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *prefix, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def check_finished_once_each(tmp: Path, result) -> None:
    """Exactly maxTrialCount trials, distinct assignments, all Succeeded, each one's process run."""
    assert result.returncode == 0, result.stderr
    [doc] = json.loads(result.stdout)
    trials = doc["trials"]
    assert len(trials) == MAX_TRIALS
    assert len({json.dumps(t["spec"]["parameterAssignments"]) for t in trials}) == MAX_TRIALS
    assert all(t["status"]["conditions"][-1]["type"] == "Succeeded" for t in trials)
    ran = (tmp / "runs.log").read_text().split()
    assert set(ran) == {t["metadata"]["name"] for t in trials}


# -- in the controllers' thread --------------------------------------------------------------
@pytest.mark.parametrize("writes", [0, 3, 8, 15])
def test_full_database_stops_run_with_one_line_and_rerun_continues(tmp_path, exp_file, writes):
    db = tmp_path / "k.db"
    failed = katib("--fake", "run", str(exp_file), "--db", str(db), "-q", cwd=tmp_path, injected_after=writes,
                   timeout=60)  # a hang is a failure (TimeoutExpired)
    assert failed.returncode == 2, failed.stderr
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: database {db} cannot be written: {FULL}"]
    again = katib("--fake", "run", str(exp_file), "--db", str(db), "-q", "-o", "json", cwd=tmp_path)
    check_finished_once_each(tmp_path, again)


def test_storage_error_in_a_reconcile_reaches_on_fatal_once_and_is_not_retried(tmp_path):
    from katib.db import ObjectTable
    from katib.runtime import SelectivePersistence
    from tests.world import World, make_experiment

    world = World(db_url=str(tmp_path / "k.db"))
    world.backend._store.persistence = SelectivePersistence(ObjectTable(world.db))
    world.apply(make_experiment(max_trial_count=2, parallel_trial_count=2))
    lines: list[str] = []
    world.manager.on_fatal = lines.append
    with world.db.session():  # a real SQLITE_FULL for every write from now on
        pages = world.db._pw.execute_sql("PRAGMA page_count").fetchone()[0]
        world.db._pw.execute_sql(f"PRAGMA max_page_count = {pages}")
        world.db._pw.execute_sql("PRAGMA cache_size = 0")
    world.run_until_idle()  # returns: nothing is requeued for ever
    assert lines and set(lines) == {f"database {tmp_path / 'k.db'} cannot be written: {FULL}"}
    world.clock.advance(3600)
    assert world.run_until_idle() == 0  # not retried later either


def test_without_on_fatal_a_storage_error_propagates(monkeypatch):
    from katib.controllers import manager as manager_module
    from tests.world import World, make_experiment

    world = World()
    world.apply(make_experiment())

    def full(ctx, ns, name):
        raise StorageError(f"database x cannot be written: {FULL}", where="x")

    monkeypatch.setitem(manager_module.RECONCILERS, "experiment", full)
    with pytest.raises(StorageError, match=FULL):
        world.run_until_idle()


@pytest.mark.parametrize("errno_, fatal", [(28, True), (30, True), (122, True), (2, False)])
def test_os_errors_of_a_full_disk_are_fatal_others_retried(monkeypatch, errno_, fatal):
    from katib.controllers import manager as manager_module
    from tests.world import World, make_experiment

    world = World()
    world.apply(make_experiment())
    lines: list[str] = []
    world.manager.on_fatal = lines.append
    calls = []

    def failing(ctx, ns, name):
        calls.append(name)
        raise OSError(errno_, os.strerror(errno_), "/some/file")

    monkeypatch.setitem(manager_module.RECONCILERS, "experiment", failing)
    world.run_until_idle()
    if fatal:
        assert lines == [f"[default/exp] experiment: cannot write /some/file: {os.strerror(errno_)}"]
        world.clock.advance(3600)
        world.run_until_idle()
        assert calls == ["exp"]
    else:
        assert lines == []
        world.clock.advance(3600)
        world.run_until_idle()
        assert len(calls) > 1  # backed off and retried


def test_anything_that_ends_the_controllers_thread_fails_the_plane(tmp_path):
    from katib.runtime import FakeControlPlane

    plane = FakeControlPlane(db_url=str(tmp_path / "k.db"), work_dir=tmp_path)

    def broken(stop, *, poll):
        raise RecursionError("maximum recursion depth exceeded\nsecond line")

    plane.manager.run = broken
    try:
        plane.start()
        assert plane.failed.wait(30)
        assert plane.failure == "the controllers stopped: maximum recursion depth exceeded"
    finally:
        plane.stop()


# -- corrupt rows ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize("body,problem", [
    ("{not json", "the body is not JSON"),
    ("[1,2]", "the body is a JSON list, not an object"),
    ('{"kind": "ConfigMap"}', "the body has no metadata object"),
])
def test_corrupt_row_stops_start_up_with_one_line(tmp_path, exp_file, command, body, problem):
    db = tmp_path / "k.db"
    first = katib("--fake", "run", str(exp_file), "--db", str(db), "-q", "-o", "json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE objects SET body = ? WHERE kind = 'ConfigMap' AND name = 'katib-config'", (body,))
    args = [str(exp_file)] if command == "run" else []
    done = katib("--fake", command, *args, "--db", str(db), cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: database {db}: table objects, row ConfigMap/kubeflow/katib-config: {problem}")


# -- a real full disk --------------------------------------------------------------------------
def test_real_full_disk_stops_run_and_rerun_continues(tmp_path, exp_file, tmpfs):
    small_tmpfs = tmpfs("1m")
    db = small_tmpfs / "k.db"
    work = ["--work-dir", str(tmp_path / "work")]  # only the database is on the small disk
    init = katib("--fake", "run", str(exp_file), "--db", str(db), "-q", "-o", "json", *work, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    with sqlite3.connect(db) as conn:  # the next run has to write: a second experiment
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    exp2 = dict(EXPERIMENT, metadata={"name": "second", "namespace": "default"})
    (tmp_path / "exp2.yaml").write_text(yaml.safe_dump(exp2))
    filler = small_tmpfs / "filler"
    try:  # fill the disk to the last block
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    full = katib("--fake", "run", str(tmp_path / "exp2.yaml"), "--db", str(db), "-q", *work, cwd=tmp_path,
                 timeout=60)
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:"), errors          # one line, nothing else
    assert str(db) in errors[0] and ("full" in errors[0] or "No space" in errors[0]), errors
    filler.unlink()
    (tmp_path / "runs.log").unlink()
    again = katib("--fake", "run", str(tmp_path / "exp2.yaml"), "--db", str(db), "-q", "-o", "json", *work,
                  cwd=tmp_path)
    check_finished_once_each(tmp_path, again)


# -- a crash inside a multi-object write ---------------------------------------------------------
TWO_WRITES = r"""
import sys
from katib.db import ObjectTable, connect
from katib.runtime import SelectivePersistence

persistence = SelectivePersistence(ObjectTable(connect(sys.argv[1])))
with persistence.transaction():
    for name in ("first", "second"):
        persistence.put({"kind": "Trial", "metadata": {"name": name, "namespace": "default", "resourceVersion": "1"}})
"""


@pytest.mark.parametrize("armed", [True, False])
def test_sigkill_between_the_statements_of_one_transaction_writes_nothing(tmp_path, armed):
    from katib.db import ObjectTable, connect

    db = tmp_path / "k.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT), KATIB_FAILPOINTS="persist-mid-transaction" if armed else "")
    done = subprocess.run([sys.executable, "-c", TWO_WRITES, str(db)], env=env, capture_output=True, text=True,
                          timeout=60)
    names = {o["metadata"]["name"] for o in ObjectTable(connect(str(db))).load_all()}
    if armed:
        assert done.returncode == -9 and names == set()  # killed after the first statement: rolled back
    else:
        assert done.returncode == 0 and names == {"first", "second"}, done.stderr


def test_a_disk_filling_up_during_the_run_is_one_line_on_stderr(tmp_path, tmpfs):
    """Database and job directories on one small disk that the trials' output fills: the
    threads that hit it say so through the plane, not in log lines of their own."""
    disk = tmpfs("512k")
    exp = shell_experiment("filling", script="head -c 60000 /dev/zero | tr '\\\\0' x; echo;", parallel=2,
                           max_trials=40, x_max=60)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    done = katib("--fake", "run", str(tmp_path / "exp.yaml"), "--db", str(disk / "k.db"), "-q",
                 cwd=tmp_path, timeout=90)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(disk) in lines[0], lines
