"""One controlling process per database (issue 6, defect 1): katib.db.control on a real SQLite
file, MariaDB and PostgreSQL, with real holder processes killed by SIGKILL."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from katib.db import DatabaseLocked, ObjectTable, acquire_control, connect
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent
SINCE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

# A holder in a process of its own: takes control, starts a long-lived child the way the local
# runner starts trials (posix_spawn), prints the child's pid and waits to be killed.
HOLDER = r"""
import os, sys
from katib.db import acquire_control, connect
lease = acquire_control(connect(sys.argv[1]), command="holder-under-test")
print(os.posix_spawn("/bin/sleep", ["sleep", "120"], dict(os.environ)), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def any_url(db_url):
    return db_url


def where(url: str) -> str:
    """The name DatabaseLocked gives a database: the absolute path of an SQLite file."""
    return str(Path(url).absolute()) if "://" not in url else re.sub(r":[^:@/]*@", ":***@", url)


def start_holder(url: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # the holder has control once it prints
    assert line.strip().isdigit(), proc.stderr.read()
    return proc, int(line)


def test_a_second_holder_is_refused_with_one_line_naming_the_first(any_url):
    db = connect(any_url)
    first = acquire_control(db, command="katib.py --fake run first.yaml")
    try:
        with pytest.raises(DatabaseLocked) as err:
            acquire_control(connect(any_url), command="second")
        text = str(err.value)
        assert re.fullmatch(
            re.escape(f"database {where(any_url)} is in use by another katib process: pid {os.getpid()} "
                      f"on {socket.gethostname()} since ") + SINCE
            + re.escape(" (katib.py --fake run first.yaml)"), text), text
        assert err.value.holder["pid"] == os.getpid()
    finally:
        first.release()
    acquire_control(db).release()  # released: the next one gets it


def test_sigkilled_holder_loses_control_even_while_its_children_run(any_url):
    proc, child = start_holder(any_url)
    try:
        with pytest.raises(DatabaseLocked, match=rf"pid {proc.pid} on .* \(holder-under-test\)$"):
            acquire_control(connect(any_url))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        os.kill(child, 0)  # the holder's child still runs: it must not have inherited the lock
        lease = acquire_control(connect(any_url), command="after")
        lease.release()
    finally:
        proc.kill()
        proc.wait()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_memory_database_needs_no_lease():
    assert acquire_control(connect(":memory:")) is None


def test_sqlite_lock_file_says_who_holds_it(tmp_path):
    lease = acquire_control(connect(str(tmp_path / "k.db")), command="me")
    try:
        text = (tmp_path / "k.db.lock").read_text()
        assert f'"pid": {os.getpid()}' in text and '"command": "me"' in text
    finally:
        lease.release()


@pytest.mark.parametrize("server", ["mysql", "postgresql"])
def test_server_lease_reports_a_lost_session(server, request):
    url = request.getfixturevalue("mysql_url" if server == "mysql" else "postgres_url")
    db = connect(url)
    lost: list[str] = []
    noticed = threading.Event()
    lease = acquire_control(db, on_lost=lambda line: (lost.append(line), noticed.set()), heartbeat=0.05)
    try:
        with db.session():  # the server ends the lease's session, as a DBA or a failover would
            if server == "mysql":
                holder = db._pw.execute_sql("SELECT IS_USED_LOCK(%s)", (lease._lock_name,)).fetchone()[0]
                db._pw.execute_sql(f"KILL {int(holder)}")
            else:
                db._pw.execute_sql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                   "AND classid = %s AND objid = %s", (0x6B6174, 0x69622D63))
        assert noticed.wait(30)
        assert lost[0].startswith(f"lost control of database {db.url}: ")
    finally:
        lease.release()
    acquire_control(db).release()


# -- the control plane ------------------------------------------------------------------------
def orphan(name: str) -> dict:
    """A Trial whose owner does not exist: the fake backend's start-up GC deletes it (a write)."""
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "5", "uid": "u-orphan",
                         "creationTimestamp": "2024-01-01T00:00:00Z",
                         "ownerReferences": [{"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
                                              "name": "gone", "uid": "u-gone", "controller": True}]},
            "spec": {}}


def stored_names(path: Path) -> set[str]:
    db = connect(str(path))
    try:
        return {o["metadata"]["name"] for o in ObjectTable(db).load_all()}
    finally:
        db.close()


def test_control_plane_takes_control_before_it_writes(tmp_path):
    from katib.runtime import FakeControlPlane

    path = tmp_path / "k.db"
    db = connect(str(path))
    ObjectTable(db).put(orphan("orphan-trial"))
    other = acquire_control(db, command="other")
    with pytest.raises(DatabaseLocked, match=r"\(other\)$"):
        FakeControlPlane(db_url=str(path), work_dir=tmp_path)
    assert "orphan-trial" in stored_names(path)  # no GC, no defaults: nothing written
    assert "katib-config" not in stored_names(path)
    other.release()
    plane = FakeControlPlane(db_url=str(path), work_dir=tmp_path)
    plane.stop()
    assert "orphan-trial" not in stored_names(path)  # the same start-up does write once in control
    assert "katib-config" in stored_names(path)
    FakeControlPlane(db_url=str(path), work_dir=tmp_path).stop()  # stop() let go of it


def test_control_plane_that_fails_to_start_lets_go(tmp_path):
    import sqlite3

    from katib.errors import KatibError
    from katib.runtime import FakeControlPlane

    path = tmp_path / "k.db"
    FakeControlPlane(db_url=str(path), work_dir=tmp_path).stop()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE objects SET body = '[1,2]' WHERE name = 'katib-config'")
    with pytest.raises(KatibError, match="table objects"):
        FakeControlPlane(db_url=str(path), work_dir=tmp_path)
    acquire_control(connect(str(path))).release()


# -- end to end: real `katib.py` processes on one SQLite file ---------------------------------
SLEEPY = shell_experiment("sleepy", script="sleep 1;", parallel=2, max_trials=6, x_max=30)


def katib_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "katib.py"), "--fake", *args]


class Started:
    """A background katib process whose stderr is read line by line (and always drained)."""

    def __init__(self, argv: list[str], *, cwd: Path, ready: str):
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._ready, self._mark = threading.Event(), ready
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._ready.wait(60), "".join(self.lines)  # it has control once it says `ready`

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if self._mark in line:
                self._ready.set()
        self._ready.set()

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        out = self.proc.stdout.read()
        self.proc.wait(timeout)
        self._reader.join(10)
        return self.proc.returncode, out


def holder_line(db: Path, pid: int, command: str) -> str:
    return (f"error: database {db} is in use by another katib process: pid {pid} on "
            f"{socket.gethostname()} since ") + "{since} " + f"({command})"


def assert_refused(done, db: Path, holder: subprocess.Popen) -> None:
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    head, _, tail = holder_line(db, holder.pid, " ".join(holder.args[1:])).partition("{since}")
    assert line.startswith(head) and line.endswith(tail) and re.fullmatch(SINCE, line[len(head):-len(tail)]), line


def test_concurrent_runs_on_one_database_run_each_trial_once(tmp_path):
    exp, db = tmp_path / "exp.yaml", tmp_path / "k.db"
    exp.write_text(json.dumps(SLEEPY))
    first = Started(katib_cmd("run", str(exp), "--db", str(db), "-o", "json"), cwd=tmp_path, ready="[default/sleepy]")
    try:
        second = subprocess.run(katib_cmd("run", str(exp), "--db", str(db), "-o", "json"), cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert first.proc.poll() is None, "the first run ended too early for this test"
        assert_refused(second, db, first.proc)  # not finished yet: no read-only results either
        assert second.stdout == ""
        code, out = first.finish()
    finally:
        first.proc.kill()
    assert code == 0, "".join(first.lines)
    [result] = json.loads(out)
    assert len(result["trials"]) == 6
    assert len(list((tmp_path / "k.db.d" / "jobs").iterdir())) == 6

    serve = Started(katib_cmd("serve", "--db", str(db), "--listen", "127.0.0.1:0"), cwd=tmp_path,
                    ready="serving the Kubernetes API at")
    try:
        # finished, same spec: the results, read-only, exit code by results
        shown = subprocess.run(katib_cmd("run", str(exp), "--db", str(db), "-o", "json"), cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        [again] = json.loads(shown.stdout)
        assert sorted(t["metadata"]["name"] for t in again["trials"]) == \
            sorted(t["metadata"]["name"] for t in result["trials"])
        table = subprocess.run(katib_cmd("run", str(exp), "--db", str(db)), cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
        assert table.returncode == 0 and "Best trial: sleepy-" in table.stdout, table.stderr
        best_log = Path(table.stdout.rstrip().splitlines()[-1].split(": ", 1)[1])
        assert best_log.is_file() and "accuracy=" in best_log.read_text()
        # (a changed spec goes through serve's API: tests/test_run_via_api.py)
        other_serve = subprocess.run(katib_cmd("serve", "--db", str(db), "--listen", "127.0.0.1:0"), cwd=tmp_path,
                                     capture_output=True, text=True, timeout=60)
        assert_refused(other_serve, db, serve.proc)
    finally:
        serve.proc.send_signal(signal.SIGINT)
        serve.finish(30)
