"""Opening a database from a URL, and the one guarded connection everything else uses.

`connect(url)` accepts None (the default SQLite file), a plain path, `:memory:`,
`sqlite:///relative.db` / `sqlite:////absolute.db`, `mysql://user:pw@host:port/db` (also
`mariadb://`) and `postgresql://user:pw@host:port/db` (also `postgres://`); query-string
parameters go to the driver. Tables are created when missing.

One connection per Database, used under a re-entrant lock: every call is serialised, a
`transaction()` holds the lock until it ends, so threads never interleave inside one.
Driver errors become KatibErrors: StorageError for a full, read-only or failing disk (the
process stops: retrying would wait for ever), DatabaseUnavailable (a TemporaryError: retry
later) for connection/lock trouble, DatabaseError otherwise; messages carry the URL without
password (for SQLite files, the absolute path)."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

import peewee as pw
from playhouse import db_url

from katib.db.schema import FIELD_TYPES, Models, make_models
from katib.errors import STORAGE_ERRNOS, KatibError, StorageError, TemporaryError, storage_error

logger = logging.getLogger(__name__)

DEFAULT_SQLITE_PATH = "katib.db"
CONNECT_TIMEOUT = 5  # seconds, for server databases
_IDLE_CHECK = 30.0  # seconds idle after which a server connection is pinged before use
_SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal", "cache_size": -16000,
                   "temp_store": "memory"}
# Driver errors meaning the storage refuses writes (sqlite3 messages, MySQL error numbers,
# PostgreSQL SQLSTATEs: disk_full, read_only_sql_transaction, io_error).
_STORAGE_TEXT = ("database or disk is full", "attempt to write a readonly database", "disk i/o error",
                 "no space left on device", "read-only file system", "disk quota exceeded")
_MYSQL_STORAGE = {1021, 1036, 1114, 1290, 1792}  # disk full, read-only table, table full, --read-only
_PG_STORAGE = {"53100", "25006", "58030"}
_SCHEMES = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql",
            "postgresql": "postgresql", "postgres": "postgresql"}


class DatabaseError(KatibError):
    """A database operation failed for a reason retrying will not fix."""


class DatabaseURLError(DatabaseError):
    """The database URL cannot be used (unknown scheme, missing database name, bad port)."""


class DatabaseUnavailable(TemporaryError, DatabaseError):
    """The server is unreachable, the connection dropped, or the database is locked."""

    def __init__(self, message: str, *, delay: float = 5.0):
        super().__init__(message, delay=delay)


def redact(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def is_storage_failure(err: BaseException) -> bool:
    """Whether a driver error (or the error it wraps) says the disk refuses writes."""
    for e in (err, err.__context__):
        if e is None:
            continue
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            return True
        if getattr(e, "pgcode", None) in _PG_STORAGE:
            return True
        if e.args and isinstance(e.args[0], int) and e.args[0] in _MYSQL_STORAGE:
            return True
        if any(text in str(e).lower() for text in _STORAGE_TEXT):
            return True
    return False


@dataclass(frozen=True)
class Statement:
    """SQL rendered once for this database, and the names of its parameters in order."""
    sql: str
    order: tuple[str, ...]


def render(query: pw.Query, marks: Mapping[str, object]) -> Statement:
    """Render a peewee query as SQL whose parameters are named: `marks` maps each name to the
    distinct placeholder value its SQL parameter carries in `query` (as the field converts it:
    a datetime field's placeholder is given as the text it becomes)."""
    sql, params = query.sql()
    by_value = {value: key for key, value in marks.items()}
    if len(by_value) != len(marks):
        raise ValueError("each parameter needs a distinct placeholder value")
    return Statement(sql, tuple(by_value[p] for p in params))


class Database:
    """An open database: `kind` is "sqlite", "mysql" or "postgresql"; `url` has no password."""

    def __init__(self, peewee_db: pw.Database, *, kind: str, url: str, path: str | None = None):
        self.kind = kind
        self.url = url
        self.path = path  # an SQLite file's absolute path (None: in memory or a server)
        self._pw = peewee_db
        self._lock = threading.RLock()
        self._last_used = time.monotonic()
        self.models: Models = make_models(peewee_db)
        self._statements: dict[str, Statement] = {}

    # -- access -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Exclusive use of the connection for a few statements, each committed on its own."""
        with self._lock:
            self._ensure_open()
            try:
                yield
            except pw.PeeweeException as err:
                raise self._translate(err) from err
            except OSError as err:
                raise storage_error(err, what="database", where=self.where) or err
            finally:
                self._last_used = time.monotonic()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all (nested: a savepoint)."""
        with self.session():
            with self._pw.atomic():
                yield

    def execute_sql(self, sql: str, params: list | tuple = ()) -> None:
        """Run one prepared statement (rendered by peewee for this database) and commit it."""
        with self.session():
            self._pw.execute_sql(sql, params)

    def statement(self, name: str, build: Callable[[], Statement]) -> Statement:
        """The statement called `name`, rendered by `build` the first time only: peewee's query
        building costs many times what SQLite takes to run a small statement."""
        found = self._statements.get(name)
        if found is None:
            found = self._statements[name] = build()
        return found

    def run(self, statement: Statement, values: Mapping[str, object]) -> list[tuple]:
        """Execute a prepared statement with its parameters taken from `values` by name (in a
        transaction when one is open, else committed on its own); returns the rows read."""
        with self.session():
            cursor = self._pw.execute_sql(statement.sql, [values[key] for key in statement.order])
            return list(cursor.fetchall()) if cursor.description else []

    def change(self, statement: Statement, values: Mapping[str, object]) -> int:
        """Execute a prepared INSERT, UPDATE or DELETE; returns how many rows it changed."""
        with self.session():
            return self._pw.execute_sql(statement.sql, [values[key] for key in statement.order]).rowcount

    def ping(self) -> None:
        """`SELECT 1`; raises DatabaseUnavailable when the database does not answer."""
        with self.session():
            self._pw.execute_sql("SELECT 1").fetchall()

    @property
    def name(self) -> str:
        """The database name (a server's database, an SQLite file's path)."""
        return self._pw.database

    def new_connection(self) -> pw.Database:
        """A second, connected peewee handle to the same server, for one thread's long session
        (the control lock): never reconnected behind its owner's back."""
        other = type(self._pw)(self._pw.database, thread_safe=False, autoconnect=False,
                               field_types=FIELD_TYPES[self.kind], **self._pw.connect_params)
        try:
            other.connect()
        except pw.PeeweeException as err:
            raise DatabaseUnavailable(f"database cannot connect to {self.url}: {_first_line(err)}") from err
        return other

    def close(self) -> None:
        with self._lock:
            if not self._pw.is_closed():
                self._pw.close()

    def create_tables(self) -> None:
        with self.session():
            if self.kind == "mysql":
                self.models = make_models(self._pw, text_collation=self._exact_collation())
            self._pw.create_tables([self.models.observation, self.models.stored_object, self.models.report],
                                  safe=True)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns added since a table was first created (a database from an older version)."""
        model = self.models.stored_object
        table = model._meta.table_name
        have = {column.name for column in self._pw.get_columns(table)}
        if "created_version" not in have:
            # Their creation order is lost: the last version is the best guess left.
            self._pw.execute_sql(f"ALTER TABLE {table} ADD COLUMN created_version BIGINT NULL")
            self._pw.execute_sql(f"UPDATE {table} SET created_version = resource_version")

    def _exact_collation(self) -> str:
        """A binary collation without PAD SPACE, so that `a ` != `a` as everywhere else."""
        version = self._pw.server_version or (0,)
        if version[0] >= 10:  # MariaDB (MySQL has no 10.x)
            return "utf8mb4_nopad_bin"
        return "utf8mb4_0900_bin" if version >= (8, 0, 17) else "utf8mb4_bin"

    # -- internals ----------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if self._pw.in_transaction():
            return
        if not self._pw.is_closed():
            idle = time.monotonic() - self._last_used
            if self.kind == "sqlite" or idle < _IDLE_CHECK or self._pw.is_connection_usable():
                return
            logger.info("database connection to %s went stale; reconnecting", self.url)
            self._drop_connection()
        try:
            self._pw.connect()
        except pw.PeeweeException as err:
            raise self._translate(err, action="cannot connect to") from err

    def _drop_connection(self) -> None:
        try:
            self._pw.close()
        except Exception:  # already broken: forget it, the next call reconnects
            self._pw.dispose()

    @property
    def where(self) -> str:
        """The path (SQLite file) or password-less URL that messages name."""
        return self.path or self.url

    def _translate(self, err: BaseException, *, action: str = "error on") -> KatibError:
        if is_storage_failure(err):
            return StorageError(f"database {self.where} cannot be written: {_first_line(err)}",
                                where=self.where)
        message = f"database {action} {self.url}: {_first_line(err)}"
        if isinstance(err, (pw.OperationalError, pw.InterfaceError)):
            if self.kind != "sqlite" and not self._pw.in_transaction():
                self._drop_connection()
            return DatabaseUnavailable(message)
        return DatabaseError(message)

    def __repr__(self) -> str:
        return f"Database({self.kind}, {self.url})"


def _sqlite(path: str, url: str) -> Database:
    memory = path in ("", ":memory:")
    path = ":memory:" if memory else os.path.abspath(os.path.expanduser(path))
    if not memory:
        _make_parent(path)
    peewee_db = pw.SqliteDatabase(
        path, pragmas={} if memory else _SQLITE_PRAGMAS, timeout=10, lock_type="IMMEDIATE",
        thread_safe=False, check_same_thread=False, field_types=FIELD_TYPES["sqlite"])
    return Database(peewee_db, kind="sqlite", url=url, path=None if memory else path)


def _make_parent(path: str) -> None:
    """`--db runs/x.db` with no runs/ yet: create it (a bad parent is reported on connect)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as err:
        raise storage_error(err, what="cannot create the directory of database", where=path) or \
            DatabaseError(f"cannot create the directory of database {path}: {err.strerror}") from None


def _server(url: str, kind: str) -> Database:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as err:
        raise DatabaseURLError(f"bad database URL {redact(url)}: {err}") from None
    if not parts.path.strip("/") or not parts.hostname:
        raise DatabaseURLError(f"bad database URL {redact(url)}: "
                               f"expected {parts.scheme}://user:password@host:port/database")
    scheme = "mysql" if kind == "mysql" else "postgresql"
    normalised = urlunsplit(parts._replace(scheme=scheme))
    params = db_url.parse(normalised, unquote_password=True, unquote_user=True)
    if "passwd" in params:  # playhouse still spells it the way PyMySQL deprecated
        params["password"] = params.pop("passwd")
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    peewee_db = db_url.schemes[scheme](params.pop("database"), thread_safe=False,
                                       field_types=FIELD_TYPES[kind], **params)
    return Database(peewee_db, kind=kind, url=redact(url))


def open_database(url: str | None) -> Database:
    """A Database for `url` (see the module docstring), not yet connected."""
    if url is None:
        return _sqlite(DEFAULT_SQLITE_PATH, DEFAULT_SQLITE_PATH)
    if url == ":memory:" or "://" not in url:
        return _sqlite(url, url)
    scheme = url.split("://", 1)[0].lower()
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise DatabaseURLError(f"unsupported database URL scheme {scheme!r} in {redact(url)} "
                               "(use sqlite:///path, mysql://... or postgresql://...)")
    if kind == "sqlite":
        return _sqlite(sqlite_path(url) or "", url)
    return _server(url, kind)


def sqlite_path(url: str) -> str | None:
    """The file an SQLite database argument names (a path, or sqlite:///rel.db, sqlite:////abs.db),
    as written; None for an in-memory database and for every other URL."""
    if url == ":memory:":
        return None
    if "://" not in url:
        return url or None
    scheme, path = url.split("://", 1)
    if _SCHEMES.get(scheme.lower()) != "sqlite":
        return None
    path = path.split("?", 1)[0]
    path = path[1:] if path.startswith("/") else path
    return path if path not in ("", ":memory:") else None


def connect(url: str | None = None) -> Database:
    """Open the database at `url`, check it answers, and create the tables if missing."""
    db = open_database(url)
    try:
        db.create_tables()
    except DatabaseUnavailable as err:
        db._drop_connection()
        if db.kind == "sqlite" and "unable to open" in str(err):
            raise DatabaseError(str(err)) from err  # waiting will not make the path usable
        raise
    logger.debug("database %s ready", db.url)
    return db
