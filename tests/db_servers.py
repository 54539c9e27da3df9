"""Pytest fixtures for real database servers (registered from tests/conftest.py).

`mysql_url` / `postgres_url` (session): $KATIB_TEST_MYSQL_URL / $KATIB_TEST_POSTGRES_URL when
set (`eval "$(.ci/services.sh)"` sets both); otherwise a throw-away server started here from
the local binaries (mariadbd + mariadb-install-db; PostgreSQL under /usr/lib/postgresql/15/bin
or $KATIB_PG_BIN), stopped at the end; otherwise the test is skipped with the reason.
Throw-away servers get PR_SET_PDEATHSIG, so they go when pytest goes, even killed.
`db_url` (per test, parametrised sqlite/mysql/postgresql): a fresh temp SQLite file, or a
server URL whose Katib tables were dropped first — so point these variables at test databases."""
from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import pytest

PG_BIN = Path(os.environ.get("KATIB_PG_BIN", "/usr/lib/postgresql/15/bin"))
TABLES = ("observation_logs", "objects")
BACKENDS = ("sqlite", "mysql", "postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, *, seconds: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            check()
            return True
        except Exception:
            time.sleep(0.1)
    return False


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return "(no log)"


def _spawn(argv: list[str], *, log: Path, user: pwd.struct_passwd | None = None
           ) -> subprocess.Popen:
    """Start a server that dies with this process (PR_SET_PDEATHSIG), even on SIGKILL."""

    def child_setup():
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG; after setuid

    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=child_setup)


def _stop(proc: subprocess.Popen, sig: int, base: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(base, ignore_errors=True)


def _skip(reason: str):
    """Skip a server test, or fail it where the servers are required (CI sets the variable)."""
    if os.environ.get("KATIB_REQUIRE_DB_SERVERS"):
        pytest.fail(f"database server required (KATIB_REQUIRE_DB_SERVERS): {reason}")
    pytest.skip(reason)


def _give_up(base: Path, reason: str):
    shutil.rmtree(base, ignore_errors=True)
    _skip(reason)


# -- MariaDB ----------------------------------------------------------------------------------
def _start_mariadb():
    import pymysql

    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    if not (mariadbd and install):
        _skip("no MariaDB (mariadbd, mariadb-install-db): run .ci/services.sh or set "
                    "KATIB_TEST_MYSQL_URL")
    base = Path(tempfile.mkdtemp(prefix="katib-mariadb-"))
    user_args = ["--user=root"] if os.geteuid() == 0 else []
    done = subprocess.run([install, "--no-defaults", f"--datadir={base / 'data'}", "--skip-test-db",
                           *user_args], capture_output=True, text=True)
    if done.returncode != 0:
        _give_up(base, f"mariadb-install-db failed: {done.stderr.strip()[-300:]}")
    port, sock = _free_port(), base / "sock"
    proc = _spawn([mariadbd, "--no-defaults", f"--datadir={base / 'data'}", f"--socket={sock}",
                   f"--port={port}", "--bind-address=127.0.0.1", f"--log-error={base / 'error.log'}",
                   f"--pid-file={base / 'pid'}", *user_args], log=base / "stdout.log")
    os_user = pwd.getpwuid(os.geteuid()).pw_name  # install-db lets it in through the socket

    def admin():
        return pymysql.connect(unix_socket=str(sock), user=os_user, autocommit=True)

    if not _wait(lambda: admin().close(), seconds=60, proc=proc):
        reason = f"throw-away MariaDB did not start: {_tail(base / 'error.log')}"
        _stop(proc, signal.SIGKILL, base)
        _skip(reason)
    with admin() as conn, conn.cursor() as cur:
        for sql in ("CREATE DATABASE katib CHARACTER SET utf8mb4",
                    "CREATE USER 'katib'@'127.0.0.1' IDENTIFIED BY 'katib'",
                    "GRANT ALL PRIVILEGES ON katib.* TO 'katib'@'127.0.0.1'"):
            cur.execute(sql)
    return f"mysql://katib:katib@127.0.0.1:{port}/katib", lambda: _stop(proc, signal.SIGTERM, base)


# -- PostgreSQL -------------------------------------------------------------------------------
def _start_postgres():
    import psycopg2

    if not (PG_BIN / "initdb").exists():
        _skip(f"no PostgreSQL binaries in {PG_BIN}: run .ci/services.sh or set "
                    "KATIB_TEST_POSTGRES_URL")
    base = Path(tempfile.mkdtemp(prefix="katib-pg-"))
    (base / "sock").mkdir()
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _give_up(base, "running as root and there is no 'postgres' user to run PostgreSQL")
        for path in (base, base / "sock"):
            os.chown(path, user.pw_uid, user.pw_gid)
    data, port = base / "data", _free_port()
    init = _spawn([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                  user=user, log=base / "initdb.log")
    if init.wait(120) != 0:
        _give_up(base, f"throw-away PostgreSQL: initdb failed: {_tail(base / 'initdb.log')}")
    proc = _spawn([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k",
                   str(base / "sock"), "-c", "listen_addresses=127.0.0.1"], user=user,
                  log=base / "server.log")

    def admin():
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        return conn

    if not _wait(lambda: admin().close(), seconds=60, proc=proc):
        reason = f"throw-away PostgreSQL did not start: {_tail(base / 'server.log')}"
        _stop(proc, signal.SIGKILL, base)
        _skip(reason)
    conn = admin()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE katib")
    conn.close()
    # SIGINT: PostgreSQL's "fast" shutdown (SIGTERM would wait for clients to leave).
    return f"postgresql://postgres@127.0.0.1:{port}/katib", lambda: _stop(proc, signal.SIGINT, base)


@contextlib.contextmanager
def _server(env: str, start) -> Iterator[str]:
    url = os.environ.get(env)
    if url:
        yield url
        return
    url, stop = start()
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="session")
def mysql_url():
    with _server("KATIB_TEST_MYSQL_URL", _start_mariadb) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url():
    with _server("KATIB_TEST_POSTGRES_URL", _start_postgres) as url:
        yield url


def drop_tables(url: str) -> None:
    """Drop Katib's tables with the plain driver (a clean slate for each test)."""
    parts = urlsplit(url)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if parts.scheme in ("mysql", "mariadb"):
        import pymysql

        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=user,
                               password=password, database=parts.path.lstrip("/"))
    else:
        import psycopg2

        conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=user,
                                password=password or None, dbname=parts.path.lstrip("/"))
    try:
        with conn.cursor() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A database URL for one test: a temp SQLite file, or a server with no Katib tables."""
    if request.param == "sqlite":
        return str(tmp_path / "katib.db")
    url = request.getfixturevalue("mysql_url" if request.param == "mysql" else "postgres_url")
    drop_tables(url)
    return url
