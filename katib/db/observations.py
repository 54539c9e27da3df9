"""Observation logs: the DB manager's three operations and the trial's objective value.

Mirrors Katib v1alpha3 pkg/db/v1alpha3/mysql (shared spec metrics-collection.md §6.1, §7) and
the trial controller's observation derivation (controllers.md §3.4). Differences from upstream
(also in docs/divergences.md):
- a report is all-or-nothing: timestamps are checked before anything is written (upstream
  keeps the rows inserted before a bad timestamp);
- rows with equal times come back in insertion order (upstream: ORDER BY time only);
- names compare exactly on MySQL too (upstream's default collation ignores case);
- objective_value skips unparseable and NaN values instead of counting them as 0.0."""
from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Iterable, Mapping

from katib.db.engine import Database, DatabaseError, Statement, render

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII)
# strconv.ParseFloat's decimal and special forms (no surrounding spaces, no underscores).
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
                    re.ASCII | re.IGNORECASE)


# One record, as the collector parses it and as it is stored (timestamps read back are
# RFC 3339 in UTC with trailing zeros trimmed).
from collector.parse import MetricLog  # noqa: E402  (shared with the standalone collector)


class InvalidTimestamp(DatabaseError, ValueError):
    """A time that is not RFC 3339; the message is upstream's `Error parsing <what> time ...`."""


def parse_time(text: str, *, what: str = "start") -> _dt.datetime:
    """RFC 3339 → naive UTC datetime, truncated to microseconds (as upstream's MySQL format)."""
    m = _RFC3339.fullmatch(text)
    try:
        if m is None:
            raise ValueError("not an RFC 3339 date-time")
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        micro = int(((m.group(7) or "") + "000000")[:6])
        t = _dt.datetime(y, mo, d, h, mi, s, micro)
        if m.group(8) != "Z":
            sign = 1 if m.group(9) == "+" else -1
            oh, om = int(m.group(10)), int(m.group(11))
            if oh > 23 or om > 59:
                raise ValueError("time zone offset out of range")
            t -= sign * _dt.timedelta(hours=oh, minutes=om)
    except (ValueError, OverflowError) as err:
        raise InvalidTimestamp(f"Error parsing {what} time {text}: {err}") from None
    return t


def format_time(t: _dt.datetime) -> str:
    """Naive UTC datetime → RFC 3339 like Go's RFC3339Nano: `...05.1234Z`, `...05Z`."""
    frac = f".{t.microsecond:06d}".rstrip("0").rstrip(".")
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T"
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}{frac}Z")


def _fields(log: Any) -> tuple[str, str, str]:
    """(timestamp, name, value) of a MetricLog-like object or an API dict."""
    if isinstance(log, Mapping):
        metric = log.get("metric") or {}
        return (log.get("time_stamp") or "", metric.get("name") or "", metric.get("value") or "")
    return (log.timestamp or "", log.name, log.value)


def report_observation_log(db: Database, trial_name: str, logs: Iterable[Any], *,
                           report_id: str | None = None) -> int:
    """Store `logs` (MetricLog-likes or `{time_stamp, metric: {name, value}}` dicts) for the
    trial; records with an empty timestamp are skipped (as upstream). Returns rows written.
    `report_id`: a report with an id already applied to this trial writes nothing (returns 0),
    so that a collector may retry a report whose answer it never got."""
    rows = _rows(db, trial_name, logs)
    with db.transaction():
        if report_id is not None:
            ids = {"trial_name": trial_name, "report_id": report_id}
            if db.run(db.statement("report-seen", lambda: _report_seen(db)), ids):
                return 0
            db.run(db.statement("report-insert", lambda: _report_insert(db)), ids)
        _insert(db, rows)
    return len(rows)


def get_observation_log(db: Database, trial_name: str, metric_name: str | None = None,
                        start_time: str | None = None, end_time: str | None = None
                        ) -> list[MetricLog]:
    """The trial's records, optionally one metric and a closed time range (RFC 3339; empty or
    None = unbounded), ordered by time, then by insertion."""
    model = db.models.observation
    if not (metric_name or start_time or end_time):  # what the controllers ask, once a trial
        rows = db.run(db.statement("observations-of", lambda: _observations_of(db)),
                      {"trial_name": trial_name})
    else:
        query = model.select(model.time, model.metric_name, model.value).where(
            model.trial_name == trial_name)
        if metric_name:
            query = query.where(model.metric_name == metric_name)
        if start_time:
            query = query.where(model.time >= parse_time(start_time, what="start"))
        if end_time:
            query = query.where(model.time <= parse_time(end_time, what="completion"))
        with db.session():
            rows = list(query.order_by(model.time, model.id).tuples())
    read_time = model.time.python_value
    return [MetricLog(format_time(read_time(t)) if t is not None else "", name, value)
            for t, name, value in rows]


def delete_observation_log(db: Database, trial_name: str) -> int:
    """Delete all records of the trial, and the ids of the reports that wrote them; returns how
    many records there were."""
    with db.transaction():
        db.run(db.statement("reports-delete", lambda: _reports_delete(db)), {"trial_name": trial_name})
        return _delete_observations(db, trial_name)


def replace_observation_log(db: Database, trial_name: str, logs: Iterable[Any]) -> int:
    """Replace every record of the trial with `logs`, atomically (a re-read of the same output,
    e.g. after a restart, never duplicates an observation). Report ids are kept: what a
    collector reported once stays applied."""
    rows = _rows(db, trial_name, logs)
    with db.transaction():
        _delete_observations(db, trial_name)
        _insert(db, rows)
    return len(rows)


# -- statements -----------------------------------------------------------------------------------
# Rendered once per database (Database.statement): peewee's query building took most of the time
# of a trial's observations. The marks are placeholder values telling the parameters apart.
_COLUMNS = ("trial_name", "time", "metric_name", "value")
_CHUNK = 100                # rows per INSERT statement (so at most _CHUNK statements are kept)
_TIME_MARK = _dt.datetime(1111, 1, 1, 1, 1, 1, 111111)


def _rows(db: Database, trial_name: str, logs: Iterable[Any]) -> list[tuple]:
    """(trial_name, time, metric_name, value) as stored; every timestamp is checked first."""
    to_db = db.models.observation.time.db_value
    rows = []
    for log in logs:
        stamp, name, value = _fields(log)
        if not stamp:
            continue
        rows.append((trial_name, to_db(parse_time(stamp, what="start")), name, str(value)))
    return rows


def _insert(db: Database, rows: list[tuple]) -> None:
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i:i + _CHUNK]
        statement = db.statement(f"observations-insert-{len(chunk)}", lambda: _render_insert(db, len(chunk)))
        db.run(statement, {f"{column}{j}": value for j, row in enumerate(chunk)
                           for column, value in zip(_COLUMNS, row)})


def _render_insert(db: Database, count: int) -> Statement:
    model = db.models.observation
    to_db = model.time.db_value
    marks, rows = {}, []
    for j in range(count):
        stamp = _TIME_MARK + _dt.timedelta(seconds=j)
        rows.append({"trial_name": f"\0trial{j}", "time": stamp, "metric_name": f"\0metric{j}",
                     "value": f"\0value{j}"})
        marks.update({f"trial_name{j}": f"\0trial{j}", f"time{j}": to_db(stamp),
                      f"metric_name{j}": f"\0metric{j}", f"value{j}": f"\0value{j}"})
    return render(model.insert_many(rows), marks)


def _delete_observations(db: Database, trial_name: str) -> int:
    return db.change(db.statement("observations-delete", lambda: render(
        db.models.observation.delete().where(db.models.observation.trial_name == "\0trial"),
        {"trial_name": "\0trial"})), {"trial_name": trial_name})


def _reports_delete(db: Database) -> Statement:
    reports = db.models.report
    return render(reports.delete().where(reports.trial_name == "\0trial"), {"trial_name": "\0trial"})


def _report_seen(db: Database) -> Statement:
    reports = db.models.report
    return render(reports.select(reports.report_id).where(
        (reports.trial_name == "\0trial") & (reports.report_id == "\0report")),  # the key: one row at most
        {"trial_name": "\0trial", "report_id": "\0report"})


def _report_insert(db: Database) -> Statement:
    return render(db.models.report.insert(trial_name="\0trial", report_id="\0report"),
                  {"trial_name": "\0trial", "report_id": "\0report"})


def _observations_of(db: Database) -> Statement:
    model = db.models.observation
    return render(model.select(model.time, model.metric_name, model.value)
                  .where(model.trial_name == "\0trial").order_by(model.time, model.id),
                  {"trial_name": "\0trial"})


def parse_value(text: str) -> float | None:
    """A metric value as Go's strconv.ParseFloat reads it; None when it does not parse."""
    if _FLOAT.fullmatch(text):
        return float(text)
    if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?\d+", text):
        try:
            return float.fromhex(text)
        except ValueError:
            return None
    return None


def objective_value(logs: Iterable[Any], objective_type: str) -> float | None:
    """The trial's observation: min (minimize) or max (maximize) over all parseable values,
    the first one for any other type; None when no value parses. NaN values are skipped."""
    values = []
    for log in logs:
        value = parse_value(_fields(log)[2])
        if value is not None and not math.isnan(value):
            values.append(value)
    if not values:
        return None
    kind = str(getattr(objective_type, "value", objective_type)).lower()
    if kind == "minimize":
        return min(values)
    if kind == "maximize":
        return max(values)
    return values[0]


class ObservationStore:
    """The observation-store protocol between the controllers (and the metrics collector) and
    the DB: what the trial controller and the kubelet call instead of the functions above, so
    that the collector issue can put this seam behind HTTP (upstream's DB manager API)."""

    def __init__(self, db: Database):
        self.db = db

    def report(self, trial_name: str, logs: Iterable[Any], *, report_id: str | None = None) -> int:
        """Append records (ReportObservationLog); returns rows written (0 for a report id
        already applied)."""
        return report_observation_log(self.db, trial_name, logs, report_id=report_id)

    def replace(self, trial_name: str, logs: Iterable[Any]) -> int:
        """Replace every record of the trial atomically (a re-read never duplicates)."""
        return replace_observation_log(self.db, trial_name, logs)

    def get(self, trial_name: str, metric_name: str | None = None, *,
            start_time: str | None = None, end_time: str | None = None) -> list[MetricLog]:
        """GetObservationLog: records in time order, optionally one metric and a time range."""
        return get_observation_log(self.db, trial_name, metric_name, start_time, end_time)

    def delete(self, trial_name: str) -> int:
        """DeleteObservationLog: forget the trial's records (its finalizer calls this)."""
        return delete_observation_log(self.db, trial_name)

    def objective_value(self, trial_name: str, metric_name: str, objective_type: str) -> float | None:
        """The trial's observation of `metric_name`: min or max as the objective type says."""
        return objective_value(self.get(trial_name, metric_name), objective_type)
