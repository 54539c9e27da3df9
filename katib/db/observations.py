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

from katib.db.engine import Database, DatabaseError

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII)
# strconv.ParseFloat's decimal and special forms (no surrounding spaces, no underscores).
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
                    re.ASCII | re.IGNORECASE)
_BATCH = 500


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
    rows = []
    for log in logs:
        stamp, name, value = _fields(log)
        if not stamp:
            continue
        rows.append({"trial_name": trial_name, "time": parse_time(stamp, what="start"),
                     "metric_name": name, "value": value})
    model = db.models.observation
    with db.transaction():
        if report_id is not None:
            reports = db.models.report
            seen = reports.select().where((reports.trial_name == trial_name) & (reports.report_id == report_id))
            if seen.exists():
                return 0
            reports.insert(trial_name=trial_name, report_id=report_id).execute()
        for i in range(0, len(rows), _BATCH):
            model.insert_many(rows[i:i + _BATCH]).execute()
    return len(rows)


def get_observation_log(db: Database, trial_name: str, metric_name: str | None = None,
                        start_time: str | None = None, end_time: str | None = None
                        ) -> list[MetricLog]:
    """The trial's records, optionally one metric and a closed time range (RFC 3339; empty or
    None = unbounded), ordered by time, then by insertion."""
    model = db.models.observation
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
    return [MetricLog(format_time(t) if t is not None else "", name, value)
            for t, name, value in rows]


def delete_observation_log(db: Database, trial_name: str) -> int:
    """Delete all records of the trial; returns how many there were."""
    model, reports = db.models.observation, db.models.report
    with db.transaction():
        reports.delete().where(reports.trial_name == trial_name).execute()
        return model.delete().where(model.trial_name == trial_name).execute()


def replace_observation_log(db: Database, trial_name: str, logs: Iterable[Any]) -> int:
    """Replace every record of the trial with `logs`, atomically (a re-read of the same output,
    e.g. after a restart, never duplicates an observation)."""
    with db.transaction():
        delete_observation_log(db, trial_name)
        return report_observation_log(db, trial_name, logs)


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
