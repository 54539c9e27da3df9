"""One controlling process per database: the lease every control plane takes before it writes.

Two control planes on one database would both reconcile the same experiments and each start
trials (issue 6: 21 job directories for a 12-trial experiment). So a control plane first
takes an exclusive lock that the operating system or the server drops when its holder dies,
however it dies (SIGKILL included):
- SQLite: `flock` on the side file `<db>.lock` (SQLite itself uses POSIX locks on the database
  file, which any close of that file in the process would drop), holder info written into it;
- MySQL/MariaDB: `GET_LOCK(name, 0)` on a connection of its own, held for the lease's life;
- PostgreSQL: `pg_try_advisory_lock(key)` on a connection of its own (advisory locks are per
  database already);
for servers the holder info goes into the `katib_control` table after the lock is taken.
A second process gets DatabaseLocked: one line naming the holder (pid, host, since, command).
The lock descriptors and sockets are close-on-exec, so trial processes never inherit them."""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from typing import Callable

import peewee as pw

from katib.db.engine import Database, DatabaseError
from katib.errors import KatibError, storage_error

logger = logging.getLogger(__name__)

PG_LOCK_KEY = 0x6B617469622D63  # "katib-c": advisory locks are scoped to the current database
HEARTBEAT = 60.0  # seconds between checks that a server still counts us as the holder
_STALE_WAIT = 5.0  # seconds to wait for a server to notice that a holder on this host died


class DatabaseLocked(KatibError):
    """Another process controls the database; `holder` is what it wrote about itself."""

    def __init__(self, where: str, holder: dict):
        self.where = where
        self.holder = holder
        super().__init__(f"database {where} is in use by another katib process: {describe(holder)}")


def describe(holder: dict) -> str:
    if not holder:
        return "holder unknown (it has not written its details yet)"
    return (f"pid {holder.get('pid', '?')} on {holder.get('hostname', '?')} since "
            f"{holder.get('since', '?')} ({holder.get('command', '?')})")


def holder_info(command: str | None = None) -> dict:
    """What a holder says about itself: pid, hostname, since (RFC 3339, UTC), command line."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    line = command if command is not None else shlex.join(sys.argv)
    return {"pid": os.getpid(), "hostname": socket.gethostname(),
            "since": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "command": " ".join(line.split())[:300]}


def acquire_control(db: Database, *, command: str | None = None,
                    on_lost: Callable[[str], None] | None = None,
                    heartbeat: float = HEARTBEAT) -> "ControlLease | None":
    """Take control of `db` or raise DatabaseLocked. None for an in-memory database (no other
    process can open it). `on_lost(line)` is called if a server drops our lock connection."""
    if db.kind == "sqlite":
        return None if db.path is None else FileLease(db.path + ".lock", command=command)
    return ServerLease(db, command=command, on_lost=on_lost, heartbeat=heartbeat)


class ControlLease:
    def release(self) -> None:
        raise NotImplementedError


class FileLease(ControlLease):
    """flock(LOCK_EX) on `<db>.lock`, kept until release() or the process ends."""

    def __init__(self, path: str, *, command: str | None):
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise storage_error(err, what="cannot create the lock file", where=path) or \
                DatabaseError(f"cannot open the lock file {path}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_file_holder(fd)
            os.close(fd)
            raise DatabaseLocked(path[:-len(".lock")], holder) from None
        self._fd: int | None = fd
        try:
            data = json.dumps(holder_info(command)).encode() + b"\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as err:
            self.release()
            raise storage_error(err, what="cannot write the lock file", where=path) or err

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_file_holder(fd: int) -> dict:
    # The holder writes its details right after locking: a reader that comes in between sees
    # an empty or half-written file for a moment.
    for _ in range(20):
        try:
            return json.loads(os.pread(fd, 4096, 0))
        except ValueError:
            time.sleep(0.05)
    return {}


class ServerLease(ControlLease):
    """A server-side lock on a connection of its own, checked every `heartbeat` seconds (which
    also keeps the connection from idling out, e.g. MySQL's wait_timeout)."""

    def __init__(self, db: Database, *, command: str | None, on_lost, heartbeat: float):
        self.where = db.url
        self._kind = db.kind
        self._lock_name = f"katib-control:{db.name}"[:64]  # GET_LOCK names are server-wide
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._released = False
        self._conn = db.new_connection()
        try:
            self._take(command)
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._watch, args=(heartbeat,), daemon=True,
                                        name="db-control-lease")
        self._thread.start()

    def _take(self, command: str | None) -> None:
        text = "LONGTEXT" if self._kind == "mysql" else "TEXT"
        self._run(f"CREATE TABLE IF NOT EXISTS katib_control (id INTEGER PRIMARY KEY, holder {text} NOT NULL)")
        deadline = time.monotonic() + _STALE_WAIT
        while not self._try_lock():
            holder = self._read_holder()
            if not (_died_here(holder) and time.monotonic() < deadline):
                raise DatabaseLocked(self.where, holder)
            time.sleep(0.1)  # the server has not yet noticed that the holder's connection closed
        with self._conn.atomic():
            self._run("DELETE FROM katib_control WHERE id = 1")
            self._run("INSERT INTO katib_control (id, holder) VALUES (1, %s)",
                      (json.dumps(holder_info(command)),))

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._stop.set()
        self._close()  # the server drops the lock with the session

    # -- statements on the lock connection ------------------------------------------------------
    def _run(self, sql: str, params: tuple = ()):
        try:
            return self._conn.execute_sql(sql, params)
        except pw.PeeweeException as err:
            raise DatabaseError(f"database error on {self.where} (control lock): {err}") from err

    def _scalar(self, sql: str, params: tuple = ()):
        return self._run(sql, params).fetchone()[0]

    def _try_lock(self) -> bool:
        if self._kind == "mysql":
            return self._scalar("SELECT GET_LOCK(%s, 0)", (self._lock_name,)) == 1
        return bool(self._scalar("SELECT pg_try_advisory_lock(%s)", (PG_LOCK_KEY,)))

    def _holding(self) -> bool:
        if self._kind == "mysql":
            return self._scalar("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self._lock_name,)) == 1
        return bool(self._scalar(  # a bigint key shows as classid (high half), objid (low half)
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND pid = pg_backend_pid() AND classid = %s AND objid = %s",
            (PG_LOCK_KEY >> 32, PG_LOCK_KEY & 0xFFFFFFFF)))

    def _read_holder(self) -> dict:
        row = self._run("SELECT holder FROM katib_control WHERE id = 1").fetchone()
        try:
            return json.loads(row[0]) if row else {}
        except ValueError:
            return {}

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                held = self._holding()
                reason = "the server no longer counts this process as its holder"
            except KatibError as err:
                held, reason = False, f"the lock connection failed: {err}"
            if not held and not self._stop.is_set():
                logger.error("lost control of database %s: %s", self.where, reason)
                if self._on_lost is not None:
                    self._on_lost(f"lost control of database {self.where}: {reason}")
                return

    def _close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # a dead connection: the server ends the session (and the lock) itself
            logger.debug("closing the control connection failed", exc_info=True)


def _died_here(holder: dict) -> bool:
    """The holder ran on this host and its pid is gone."""
    if holder.get("hostname") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
