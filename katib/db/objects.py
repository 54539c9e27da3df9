"""Durable API objects: the fake backend's store, one row per (kind, namespace, name).

The body is the object's JSON text; `resource_version` repeats metadata.resourceVersion so
that a restarted backend can continue numbering above every version it ever handed out
(`remove(..., resource_version=n)` records the version of a deletion for the same reason).
A row that cannot be an object (bad JSON, not an object, kind or metadata missing or not
matching its key) stops load_all with CorruptObject naming the table, the row and the fault:
starting on a partial picture could recreate what the lost row described."""
from __future__ import annotations

import json
from contextlib import AbstractContextManager

from katib.db.engine import Database, DatabaseError, Statement, render

_WATERMARK = ("", "", "")  # (kind, namespace, name) of the row remembering deletion versions
_TABLE = "objects"


class CorruptObject(DatabaseError):
    """A stored row is not a usable object; the message names the table, row and problem."""


def _check_body(row: tuple[str, str, str], body: str) -> dict:
    """The object of one row, or CorruptObject saying what is wrong with it."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise _corrupt(row, f"the body is not JSON ({err})") from None
    if not isinstance(obj, dict):
        raise _corrupt(row, f"the body is a JSON {type(obj).__name__}, not an object")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise _corrupt(row, "the body has no metadata object")
    problem = _key_problem(row, obj, meta)
    if problem:
        raise _corrupt(row, problem)
    return obj


def _key_problem(row: tuple[str, str, str], obj: dict, meta: dict) -> str | None:
    kind, namespace, name = row
    if obj.get("kind") != kind:
        return f"the body's kind is {obj.get('kind')!r}, not {kind!r}"
    if meta.get("name") != name or (meta.get("namespace") or "") != namespace:
        return f"the body's metadata names {meta.get('namespace')!r}/{meta.get('name')!r}"
    version = meta.get("resourceVersion")
    if not (isinstance(version, str) and version.isdigit()):
        return f"metadata.resourceVersion {version!r} is not a number"
    for field, kinds in (("creationTimestamp", str), ("uid", str), ("labels", dict),
                         ("annotations", dict), ("ownerReferences", list), ("finalizers", list)):
        if meta.get(field) is not None and not isinstance(meta[field], kinds):
            return f"metadata.{field} is a JSON {type(meta[field]).__name__}"
    return None


def _corrupt(row: tuple[str, str, str], problem: str) -> CorruptObject:
    kind, namespace, name = row
    where = f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"
    return CorruptObject(f"table {_TABLE}, row {where}: {problem}")


def _key(obj: dict) -> tuple[str, str, str, int]:
    try:
        meta = obj["metadata"]
        kind, name = obj["kind"], meta["name"]
        version = int(meta["resourceVersion"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"object needs kind, metadata.name and an integer "
                         f"metadata.resourceVersion: {err!r}") from None
    if not kind or not name:
        raise ValueError("object needs a non-empty kind and metadata.name")
    return kind, meta.get("namespace") or "", name, version


class ObjectTable:
    """load_all / put / remove / max_resource_version over the `objects` table."""

    def __init__(self, db: Database):
        self._db = db
        self._model = db.models.stored_object

    def transaction(self) -> AbstractContextManager[None]:
        """Group several put/remove calls into one atomic write."""
        return self._db.transaction()

    def load_all(self) -> list[dict]:
        """Every stored object, in creation order (CorruptObject for a bad row)."""
        m = self._model
        with self._db.session():
            rows = list(m.select(m.kind, m.namespace, m.name, m.body).where(m.kind != "")
                        .order_by(m.created_version, m.kind, m.namespace, m.name).tuples())
        try:
            return [_check_body((kind, ns, name), body) for kind, ns, name, body in rows]
        except CorruptObject as err:
            raise CorruptObject(f"database {self._db.where}: {err}") from None

    def put(self, obj: dict) -> None:
        """Insert or replace the object stored under its kind/namespace/name."""
        kind, namespace, name, version = _key(obj)
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        with self._db.session():
            self._upsert(kind, namespace, name, version, body)

    def remove(self, kind: str, namespace: str, name: str, *,
               resource_version: int | None = None) -> None:
        """Forget the object (no error if absent). `resource_version`, if given, is the version
        of the deletion and is kept so that max_resource_version() never goes back."""
        db = self._db
        with db.transaction():
            db.change(db.statement("objects-delete", self._render_delete),
                      {"kind": kind, "namespace": namespace or "", "name": name})
            if resource_version is not None:  # deletions come in increasing order: no max query
                self._upsert(*_WATERMARK, int(resource_version), "{}")

    def max_resource_version(self) -> int:
        """The highest resource version stored or recorded, 0 for an empty table."""
        m = self._model
        with self._db.session():
            value = m.select(m.resource_version).order_by(m.resource_version.desc()).scalar()
        return int(value or 0)

    def _upsert(self, kind: str, namespace: str, name: str, version: int, body: str) -> None:
        # Rendered once (Database.statement): peewee's query building costs ~20x the SQLite write.
        self._db.change(self._db.statement("objects-upsert", self._render_upsert),
                        {"kind": kind, "namespace": namespace, "name": name, "resource_version": version,
                         "created_version": version, "body": body})

    def _render_delete(self) -> Statement:
        m = self._model
        return render(m.delete().where((m.kind == "\0kind") & (m.namespace == "\0namespace")
                                       & (m.name == "\0name")),
                      {"kind": "\0kind", "namespace": "\0namespace", "name": "\0name"})

    def _render_upsert(self) -> Statement:
        m = self._model
        marks = {"kind": "\0kind", "namespace": "\0namespace", "name": "\0name",
                 "resource_version": -7_654_321_987, "created_version": -7_654_321_986,
                 "body": "\0body"}
        query = m.insert(**marks)
        if self._db.kind == "mysql":  # MySQL names no conflict target: the primary key decides
            query = query.on_conflict(preserve=[m.resource_version, m.body])
        else:
            query = query.on_conflict(conflict_target=[m.kind, m.namespace, m.name],
                                      preserve=[m.resource_version, m.body])
        return render(query, marks)
