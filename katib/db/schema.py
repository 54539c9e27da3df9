"""Table definitions: `observation_logs` (upstream Katib's schema), `objects` and
`observation_reports` (ours: which reports were applied, so that a retried report is not
stored twice).

Models are built per connection (`make_models(peewee_db)`), so several databases can be open
at once (tests do this). Times are naive UTC datetimes stored with microsecond precision:
DATETIME(6) on MySQL/MariaDB, TIMESTAMP(6) on PostgreSQL, fixed-width text on SQLite (so that
text order is time order)."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import peewee as pw

# Per-engine column types for our own BIGTEXT (object bodies can exceed MySQL's 64 KiB TEXT).
FIELD_TYPES = {
    "sqlite": {"BIGTEXT": "TEXT"},
    "postgresql": {"BIGTEXT": "TEXT"},
    "mysql": {"BIGTEXT": "LONGTEXT"},
}


class UTCDateTimeField(pw.Field):
    field_type = "DATETIME"

    def get_modifiers(self):
        return [6]

    def db_value(self, value):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")

    def python_value(self, value):
        if value is None or isinstance(value, _dt.datetime):
            return value
        text = str(value)
        return _dt.datetime.fromisoformat(text if "." in text else text + ".000000")


class BigTextField(pw.TextField):
    field_type = "BIGTEXT"


@dataclass(frozen=True)
class Models:
    observation: type[pw.Model]
    stored_object: type[pw.Model]
    report: type[pw.Model]


def make_models(database: pw.Database, *, text_collation: str | None = None) -> Models:
    """Model classes bound to `database`. `text_collation` makes names compare exactly on
    MySQL (its default collations ignore case and trailing spaces)."""

    class ObservationLog(pw.Model):
        # Column set and types as upstream: trial_name, id, time, metric_name, value.
        trial_name = pw.CharField(max_length=255, collation=text_collation)
        id = pw.AutoField()
        time = UTCDateTimeField(null=True)
        metric_name = pw.CharField(max_length=255, collation=text_collation)
        value = pw.TextField()

        class Meta:
            table_name = "observation_logs"
            # Not upstream: every query filters by trial and orders by time.
            indexes = ((("trial_name", "time"), False),)

    class StoredObject(pw.Model):
        kind = pw.CharField(max_length=128, collation=text_collation)
        namespace = pw.CharField(max_length=128, collation=text_collation)
        name = pw.CharField(max_length=255, collation=text_collation)
        resource_version = pw.BigIntegerField()
        # The version the object was created with, never updated: list order after a restart
        # is creation order, as in the live store (creationTimestamp has whole seconds only).
        # Rows of a database from before the column got their version of then (engine.py).
        created_version = pw.BigIntegerField(null=True)
        body = BigTextField()

        class Meta:
            table_name = "objects"
            primary_key = pw.CompositeKey("kind", "namespace", "name")

    class ObservationReport(pw.Model):
        # A collector's report id per trial: a report retried after a lost answer is a no-op.
        trial_name = pw.CharField(max_length=255, collation=text_collation)
        report_id = pw.CharField(max_length=128, collation=text_collation)

        class Meta:
            table_name = "observation_reports"
            primary_key = pw.CompositeKey("trial_name", "report_id")

    for model in (ObservationLog, StoredObject, ObservationReport):
        model.bind(database, bind_refs=False, bind_backrefs=False)
    return Models(observation=ObservationLog, stored_object=StoredObject, report=ObservationReport)
