"""Database layer (the only place peewee is used): observation logs and durable objects.

    db = connect("sqlite:///katib.db")        # or None, a path, ":memory:", mysql://, postgresql://
    report_observation_log(db, "trial-1", logs)
    value = objective_value(get_observation_log(db, "trial-1", "accuracy"), "maximize")
    objects = ObjectTable(db)
    lease = acquire_control(db)               # one controlling process; DatabaseLocked if taken
"""
from katib.db.engine import (
    DEFAULT_SQLITE_PATH,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    DatabaseURLError,
    connect,
    redact,
    sqlite_path,
)
from katib.db.control import ControlLease, DatabaseLocked, acquire_control
from katib.db.objects import CorruptObject, ObjectTable
from katib.db.observations import (
    InvalidTimestamp,
    MetricLog,
    ObservationStore,
    delete_observation_log,
    format_time,
    get_observation_log,
    objective_value,
    parse_time,
    parse_value,
    replace_observation_log,
    report_observation_log,
)

__all__ = [
    "DEFAULT_SQLITE_PATH", "ControlLease", "CorruptObject", "Database", "DatabaseError",
    "DatabaseLocked", "DatabaseURLError", "DatabaseUnavailable", "acquire_control",
    "InvalidTimestamp", "MetricLog", "ObjectTable", "ObservationStore", "connect", "delete_observation_log",
    "format_time", "get_observation_log", "objective_value", "parse_time", "parse_value",
    "redact", "replace_observation_log", "sqlite_path", "report_observation_log",
]
