"""`Table` responses (meta.k8s.io/v1): what `kubectl get` prints, computed by the server.

Katib's kinds get the printer columns of their CRDs (katib.api.crd_schema.PRINTER_COLUMNS),
evaluated as kube-apiserver's customresource table convertor does: client-go JSONPath with
missing keys allowed, the first result only, `string` columns printed as text, `date` columns
sent as a humanised age ("5m12s", "3d"). Built-in kinds get the columns of kube-apiserver's
printers (pkg/printers/internalversion) for the fields our objects carry; the rest Name + Age,
as for a CRD without printer columns. The NAMESPACE column of `-A` is kubectl's own.
Pure functions over plain dicts: the HTTP layer decides the media type and `includeObject`."""
from __future__ import annotations

import datetime as _dt
import json
import re
import time
from typing import Any, Callable

from katib.api.crd_schema import PRINTER_COLUMNS

NAME_DESCRIPTION = ("Name must be unique within a namespace. Is required when creating resources, although "
                    "some resources may allow a client to request the generation of an appropriate name "
                    "automatically. Name is primarily intended for creation idempotence and configuration "
                    "definition. Cannot be updated.")
AGE_DESCRIPTION = ("CreationTimestamp is a timestamp representing the server time when this object was "
                   "created.")
INCLUDE_OBJECT = ("None", "Metadata", "Object")

Cell = Callable[[dict, float], Any]


def table(kind: str, objects: list[dict], *, include_object: str = "Metadata",
          list_meta: dict | None = None, now: float | None = None) -> dict:
    """The Table of `objects` (all of `kind`); `list_meta` is the list's metadata
    (resourceVersion, continue, remainingItemCount), `now` a Unix time for the ages."""
    if include_object not in INCLUDE_OBJECT:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, not {include_object!r}")
    now = time.time() if now is None else now
    columns = columns_of(kind)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(obj, now) for _, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata") or {}}
        rows.append(row)
    meta = {k: v for k, v in (list_meta or {}).items() if k in ("resourceVersion", "continue", "remainingItemCount")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [definition for definition, _ in columns], "rows": rows}


def columns_of(kind: str) -> list[tuple[dict, Cell]]:
    """(TableColumnDefinition, cell function) per column of `kind`."""
    if kind in PRINTER_COLUMNS:
        return [_column("Name", "name", NAME_DESCRIPTION, lambda o, now: _meta(o).get("name", ""))] + [
            _crd_column(c) for c in PRINTER_COLUMNS[kind]]
    return [_column("Name", "name", NAME_DESCRIPTION, lambda o, now: _meta(o).get("name", ""))] + \
        BUILTIN_COLUMNS.get(kind, [_age_column()])


def _column(name: str, fmt: str, description: str, cell: Cell, *, type_: str = "string",
            priority: int = 0) -> tuple[dict, Cell]:
    return ({"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}, cell)


def _crd_column(col: dict) -> tuple[dict, Cell]:
    path = col["jsonPath"]
    steps = parse_jsonpath(path)
    kind = col["type"]

    def cell(obj: dict, now: float) -> Any:
        results = evaluate(steps, obj)
        if not results:
            return None
        return cell_for_value(kind, results[0], now)

    description = col.get("description") or f"Custom resource definition column (in JSONPath format): {path}"
    return ({"name": col["name"], "type": kind, "format": col.get("format", ""), "description": description,
             "priority": col.get("priority", 0)}, cell)


def cell_for_value(column_type: str, value: Any, now: float) -> Any:
    """kube-apiserver's cellForJSONValue (string columns: the JSONPath printer's text)."""
    if value is None:
        return None
    if column_type == "string":
        return _text(value)
    if column_type == "integer" and _is_number(value):
        return int(value)
    if column_type == "number" and _is_number(value):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        stamp = _parse_time(value)
        return "<invalid>" if stamp is None else human_duration(now - stamp)
    return None


def _text(value: Any) -> str:
    """What client-go's JSONPath PrintResults writes for one value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: shortest repr, exponent form from 1e21 or below 1e-4."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mantissa}e{sign}{abs(int(exp)):02d}"
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_time(text: str) -> float | None:
    try:
        stamp = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return stamp.timestamp()


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration: what AGE columns show."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


# ------------------------------------------------------------------------------------ JSONPath

_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(-?\d*):(-?\d*)\]|\[(-?\d+)\]|\[\*\]|\.\*")


def parse_jsonpath(path: str) -> list[tuple]:
    """The simple JSONPath of printer columns: `.a.b`, `[n]`, `[a:b]`, `[*]` (and `{...}` around)."""
    text = path[1:-1] if path.startswith("{") and path.endswith("}") else path
    steps, pos = [], 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {text[pos:]!r}")
        if m.group(1) is not None:
            steps.append(("field", m.group(1)))
        elif m.group(4) is not None:
            steps.append(("index", int(m.group(4))))
        elif m.group(0) in ("[*]", ".*"):
            steps.append(("all",))
        else:
            steps.append(("slice", int(m.group(2)) if m.group(2) else None, int(m.group(3)) if m.group(3) else None))
        pos = m.end()
    return steps


def evaluate(steps: list[tuple], data: Any) -> list[Any]:
    """Every value the path reaches; missing keys and out-of-range indexes reach nothing."""
    values = [data]
    for step in steps:
        out: list[Any] = []
        for value in values:
            if step[0] == "field" and isinstance(value, dict) and step[1] in value:
                out.append(value[step[1]])
            elif step[0] == "index" and isinstance(value, list) and -len(value) <= step[1] < len(value):
                out.append(value[step[1]])
            elif step[0] == "slice" and isinstance(value, list):
                out.extend(value[step[1]:step[2]])
            elif step[0] == "all":
                out.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list) else [])
        values = out
    return values


# ------------------------------------------------------------------------------- built-in kinds

def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _get(obj: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def _age(obj: dict, now: float) -> str:
    stamp = _parse_time(str(_meta(obj).get("creationTimestamp") or ""))
    return "<unknown>" if stamp is None else human_duration(now - stamp)


def _age_column() -> tuple[dict, Cell]:
    return _column("Age", "", AGE_DESCRIPTION, _age)


def _has_condition(obj: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in _get(obj, "status", "conditions", default=[]) or [] if isinstance(c, dict))


def _job_status(job: dict, now: float) -> str:
    for condition, text in (("Complete", "Complete"), ("Failed", "Failed")):
        if _has_condition(job, condition):
            return text
    if _meta(job).get("deletionTimestamp"):
        return "Terminating"
    for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(job, condition):
            return condition
    return "Running"


def _job_completions(job: dict, now: float) -> str:
    succeeded = _get(job, "status", "succeeded", default=0) or 0
    completions = _get(job, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = _get(job, "spec", "parallelism", default=0) or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(job: dict, now: float) -> str:
    start = _parse_time(str(_get(job, "status", "startTime") or ""))
    if start is None:
        return ""
    end = _parse_time(str(_get(job, "status", "completionTime") or ""))
    return human_duration((now if end is None else end) - start)


def _pod_ready(pod: dict, now: float) -> str:
    statuses = _get(pod, "status", "containerStatuses", default=[]) or []
    total = len(_get(pod, "spec", "containers", default=[]) or [])
    return f"{sum(1 for s in statuses if isinstance(s, dict) and s.get('ready'))}/{total}"


def _pod_status(pod: dict, now: float) -> str:
    reason = _get(pod, "status", "reason") or _get(pod, "status", "phase") or ""
    for status in _get(pod, "status", "containerStatuses", default=[]) or []:
        waiting = _get(status, "state", "waiting", "reason")
        terminated = _get(status, "state", "terminated")
        if waiting:
            reason = waiting
        elif isinstance(terminated, dict):
            reason = terminated.get("reason") or (f"Signal:{terminated['signal']}" if terminated.get("signal")
                                                  else f"ExitCode:{terminated.get('exitCode', 0)}")
    if _meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_restarts(pod: dict, now: float) -> int:
    return sum(int(s.get("restartCount") or 0)
               for s in _get(pod, "status", "containerStatuses", default=[]) or [] if isinstance(s, dict))


def _count(*keys: str) -> Cell:
    return lambda obj, now: len(_get(obj, *keys, default=None) or {})


def _field(*keys: str, default: Any = "") -> Cell:
    return lambda obj, now: _get(obj, *keys, default=default) or default


def _containers(spec_keys: tuple[str, ...], attribute: str) -> Cell:
    return lambda obj, now: ",".join(str(c.get(attribute, "")) for c in _get(obj, *spec_keys, default=[]) or []
                                     if isinstance(c, dict))


def _selector(obj: dict, now: float) -> str:
    labels = _get(obj, "spec", "selector", "matchLabels", default={}) or {}
    return ",".join(f"{k}={v}" for k, v in labels.items()) if labels else "<none>"


_TEMPLATE = ("spec", "template", "spec", "containers")

BUILTIN_COLUMNS: dict[str, list[tuple[dict, Cell]]] = {
    "Job": [
        _column("Status", "", "Status of the job.", _job_status),
        _column("Completions", "", "The number of pods which reached phase Succeeded.", _job_completions),
        _column("Duration", "", "Time required to complete the job.", _job_duration),
        _age_column(),
        _column("Containers", "", "Names of each container in the template.", _containers(_TEMPLATE, "name"),
                priority=1),
        _column("Images", "", "Images referenced by each container in the template.",
                _containers(_TEMPLATE, "image"), priority=1),
        _column("Selector", "", "A label query over pods that should match the pod count.", _selector, priority=1),
    ],
    "Pod": [
        _column("Ready", "", "The aggregate readiness state of this pod for accepting traffic.", _pod_ready),
        _column("Status", "", "The aggregate status of the containers in this pod.", _pod_status),
        _column("Restarts", "", "The number of times the containers in this pod have been restarted.",
                _pod_restarts, type_="integer"),
        _age_column(),
        _column("IP", "", "IP address allocated to the pod.", _field("status", "podIP", default="<none>"),
                priority=1),
        _column("Node", "", "Name of the node the pod is assigned to.",
                _field("spec", "nodeName", default="<none>"), priority=1),
    ],
    "Namespace": [_column("Status", "", "The status of the namespace", _field("status", "phase", default="Active")),
                  _age_column()],
    "ConfigMap": [_column("Data", "", "Number of data entries.", lambda o, now: len(o.get("data") or {})
                          + len(o.get("binaryData") or {}), type_="integer"), _age_column()],
    "Secret": [_column("Type", "", "The type of the secret", _field("type", default="Opaque")),
               _column("Data", "", "The number of entries in the data.", _count("data"), type_="integer"),
               _age_column()],
    "Lease": [_column("Holder", "", "The holder of the lease.", _field("spec", "holderIdentity")), _age_column()],
    "Deployment": [
        _column("Ready", "", "Number of the pod with ready state.",
                lambda o, now: f"{_get(o, 'status', 'readyReplicas', default=0) or 0}/"
                               f"{_get(o, 'spec', 'replicas', default=1)}"),
        _column("Up-to-date", "", "Total number of non-terminated pods targeted by this deployment that have the "
                "desired template spec.", _field("status", "updatedReplicas", default=0), type_="integer"),
        _column("Available", "", "Total number of available pods (ready for at least minReadySeconds) targeted by "
                "this deployment.", _field("status", "availableReplicas", default=0), type_="integer"),
        _age_column(),
    ],
    "Event": [
        _column("Type", "", "Type of this event (Normal, Warning).", _field("type")),
        _column("Reason", "", "The reason this event is generated.", _field("reason")),
        _column("Object", "", "The object that this event is about.",
                lambda o, now: f"{str(_get(o, 'involvedObject', 'kind', default='')).lower()}/"
                               f"{_get(o, 'involvedObject', 'name', default='')}"),
        _column("Message", "", "A human-readable description of the status of this operation.", _field("message")),
        _age_column(),
    ],
    "MutatingWebhookConfiguration": [
        _column("Webhooks", "", "Webhooks indicates the number of webhooks.", _count("webhooks"), type_="integer"),
        _age_column()],
    "ValidatingWebhookConfiguration": [
        _column("Webhooks", "", "Webhooks indicates the number of webhooks.", _count("webhooks"), type_="integer"),
        _age_column()],
}
