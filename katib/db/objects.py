"""Durable API objects: the fake backend's store, one row per (kind, namespace, name).

The body is the object's JSON text; `resource_version` repeats metadata.resourceVersion so
that a restarted backend can continue numbering above every version it ever handed out
(`remove(..., resource_version=n)` records the version of a deletion for the same reason)."""
from __future__ import annotations

import json
from contextlib import AbstractContextManager

from katib.db.engine import Database

_WATERMARK = ("", "", "")  # (kind, namespace, name) of the row remembering deletion versions


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
        self._upsert_sql: tuple[str, list[str]] | None = None

    def transaction(self) -> AbstractContextManager[None]:
        """Group several put/remove calls into one atomic write."""
        return self._db.transaction()

    def load_all(self) -> list[dict]:
        """Every stored object, in resource-version order."""
        m = self._model
        with self._db.session():
            bodies = list(m.select(m.body).where(m.kind != "")
                          .order_by(m.resource_version, m.kind, m.namespace, m.name).tuples())
        return [json.loads(body) for (body,) in bodies]

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
        m = self._model
        with self._db.transaction():
            m.delete().where((m.kind == kind) & (m.namespace == (namespace or ""))
                             & (m.name == name)).execute()
            if resource_version is not None:  # deletions come in increasing order: no max query
                self._upsert(*_WATERMARK, int(resource_version), "{}")

    def max_resource_version(self) -> int:
        """The highest resource version stored or recorded, 0 for an empty table."""
        m = self._model
        with self._db.session():
            value = m.select(m.resource_version).order_by(m.resource_version.desc()).scalar()
        return int(value or 0)

    def _upsert(self, kind: str, namespace: str, name: str, version: int, body: str) -> None:
        # The statement is rendered once: peewee's query building costs ~20x the SQLite write.
        if self._upsert_sql is None:
            self._upsert_sql = self._render_upsert()
        sql, order = self._upsert_sql
        values = {"kind": kind, "namespace": namespace, "name": name,
                  "resource_version": version, "body": body}
        self._db.execute_sql(sql, [values[key] for key in order])

    def _render_upsert(self) -> tuple[str, list[str]]:
        m = self._model
        marks = {"kind": "\0kind", "namespace": "\0namespace", "name": "\0name",
                 "resource_version": -7_654_321_987, "body": "\0body"}
        query = m.insert(**marks)
        if self._db.kind == "mysql":  # MySQL names no conflict target: the primary key decides
            query = query.on_conflict(preserve=[m.resource_version, m.body])
        else:
            query = query.on_conflict(conflict_target=[m.kind, m.namespace, m.name],
                                      preserve=[m.resource_version, m.body])
        sql, params = query.sql()
        order = [next(k for k, v in marks.items() if v == p) for p in params]
        return sql, order
