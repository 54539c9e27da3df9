"""Exceptions that decide what the work queue does next.

NotFound / AlreadyExists / Conflict mirror API-server answers; Invalid carries field errors;
TemporaryError asks for a retry after a delay; PermanentError ends the object with a condition;
StorageError stops the process (a full or read-only disk: retrying would wait for ever).
Only the backends and the DB layer turn transport and driver failures into these."""
from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, phrased as Kubernetes does: `path: Invalid value: v: why`."""

    path: str
    message: str
    value: object = None
    kind: str = "Invalid value"

    def __str__(self) -> str:
        if not self.kind:  # a sentence that already names the value: `path: message`
            return f"{self.path}: {self.message}"
        if self.kind == "Invalid value":
            return f"{self.path}: Invalid value: {_show(self.value)}: {self.message}"
        if self.kind in ("Required value", "Forbidden"):
            return f"{self.path}: {self.kind}: {self.message}"
        return f"{self.path}: {self.kind}: {_show(self.value)}: {self.message}"


def _show(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class KatibError(Exception):
    """Base of every error the project raises on purpose."""


class NotFound(KatibError):
    pass


class AlreadyExists(KatibError):
    pass


class Conflict(KatibError):
    """The object changed since it was read (resourceVersion mismatch)."""


class Invalid(KatibError):
    """Admission refused the object; `errors` lists every field problem."""

    def __init__(self, errors: list[FieldError], *, kind: str = "", name: str = ""):
        self.errors = list(errors)
        self.kind = kind
        self.name = name
        head = f'{kind} "{name}" is invalid' if kind else "invalid object"
        super().__init__(head + ": " + "; ".join(str(e) for e in self.errors))


class Forbidden(KatibError):
    pass


class Expired(KatibError):
    """A watch asked for changes since a resourceVersion the backend no longer remembers
    (Kubernetes: 410 Gone, "too old resource version"): list again and watch from the list's
    version."""


class TemporaryError(KatibError):
    def __init__(self, message: str, *, delay: float = 1.0):
        super().__init__(message)
        self.delay = delay


class PermanentError(KatibError):
    def __init__(self, message: str, *, reason: str = "ReconcileFailed"):
        super().__init__(message)
        self.reason = reason


# OSError numbers that mean the storage itself refuses writes: waiting will not help.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO})


class StorageError(KatibError):
    """Durable storage cannot be written (disk full, read-only, I/O error). Not retried: the
    process stops with this one line, which says what failed and on which path or URL."""

    def __init__(self, message: str, *, where: str = ""):
        super().__init__(message)
        self.where = where


def storage_error(err: BaseException, *, what: str, where: str) -> StorageError | None:
    """A StorageError for an OSError that means the disk refuses writes, else None."""
    if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:
        reason = err.strerror or errno.errorcode.get(err.errno, str(err.errno))
        return StorageError(f"{what} {where}: {reason}", where=where)
    return None
