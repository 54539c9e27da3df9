"""The observation API: JSON mirrors of Katib's DB-manager calls ReportObservationLog,
GetObservationLog and DeleteObservationLog, for metrics collectors outside the katib process.

    POST /observations/v1alpha3/report  {trial_name, observation_log: {metric_logs: [...]}, report_id?}
    POST /observations/v1alpha3/get     {trial_name, metric_name?, start_time?, end_time?}
    POST /observations/v1alpha3/delete  {trial_name}

Each call carries `Authorization: Bearer <token>`, the trial's own credential (`trial_token`):
an HMAC of the trial name under a key only the katib process holds, so a collector can neither
write nor read another trial's metrics, and no per-trial state is needed to check it. A
`report_id` makes a report idempotent: the same id again writes nothing. Answers are
(HTTP status, JSON body); a bad payload is 400 with the reason."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

PREFIX = "/observations/v1alpha3"
KEY_BYTES = 32


class CollectorKey:
    """The key collector credentials are derived from."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("collector key: at least 16 bytes")
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path | str) -> CollectorKey:
        """The key in `path` (32 random bytes made on first use, mode 0600)."""
        path = Path(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        return cls(path.read_bytes())

    def trial_token(self, trial_name: str) -> str:
        mac = hmac.new(self._key, b"trial:" + trial_name.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def allows(self, token: str | None, trial_name: str) -> bool:
        return bool(token) and hmac.compare_digest(token, self.trial_token(trial_name))


class BadRequest(ValueError):
    pass


def _payload(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"the body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body is not a JSON object")
    name = data.get("trial_name")
    if not isinstance(name, str) or not name:
        raise BadRequest("trial_name: required, a non-empty string")
    return data


def _optional_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key}: must be a string")
    return value or None


def _metric_logs(data: dict) -> list[dict]:
    log = data.get("observation_log")
    if not isinstance(log, dict):
        raise BadRequest("observation_log: required, an object")
    logs = log.get("metric_logs")
    logs = [] if logs is None else logs
    if not isinstance(logs, list):
        raise BadRequest("observation_log.metric_logs: must be a list")
    for i, entry in enumerate(logs):
        where = f"observation_log.metric_logs[{i}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"{where}: must be an object")
        if not isinstance(entry.get("time_stamp", ""), str):
            raise BadRequest(f"{where}.time_stamp: must be a string (RFC 3339)")
        metric = entry.get("metric")
        if not isinstance(metric, dict):
            raise BadRequest(f"{where}.metric: required, an object")
        if not isinstance(metric.get("name"), str) or not metric["name"]:
            raise BadRequest(f"{where}.metric.name: required, a non-empty string")
        if not isinstance(metric.get("value", ""), str):
            raise BadRequest(f"{where}.metric.value: must be a string")
    return logs


def _error(code: int, message: str) -> tuple[int, dict]:
    return code, {"error": message}


def handlers(store, key: CollectorKey) -> dict:
    """path → handler(body, bearer token) → (status, JSON answer), over an ObservationStore."""

    def guarded(op):
        def handle(body: bytes, token: str | None) -> tuple[int, dict]:
            try:
                data = _payload(body)
            except BadRequest as err:
                return _error(400, str(err))
            if not token:
                return _error(401, "Unauthorized: a trial's bearer token is required")
            if not key.allows(token, data["trial_name"]):
                return _error(403, f"Forbidden: the token is not trial {data['trial_name']}'s")
            try:
                return op(data)
            except BadRequest as err:
                return _error(400, str(err))
            except ValueError as err:  # InvalidTimestamp: upstream's "Error parsing ... time"
                return _error(400, str(err))
        return handle

    def report(data):
        logs = _metric_logs(data)
        report_id = _optional_str(data, "report_id")
        written = store.report(data["trial_name"], logs, report_id=report_id)
        return 200, {"written": written}

    def get(data):
        logs = store.get(data["trial_name"], _optional_str(data, "metric_name"),
                         start_time=_optional_str(data, "start_time"), end_time=_optional_str(data, "end_time"))
        return 200, {"observation_log": {"metric_logs": [log.to_api() for log in logs]}}

    def delete(data):
        return 200, {"deleted": store.delete(data["trial_name"])}

    return {f"{PREFIX}/report": guarded(report), f"{PREFIX}/get": guarded(get),
            f"{PREFIX}/delete": guarded(delete)}
