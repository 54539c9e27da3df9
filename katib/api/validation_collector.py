"""Admission checks of spec.metricsCollectorSpec (upstream validateMetricsCollector; shared
spec defaults-and-validation.md §2.3), on the defaulted JSON form.

Deliberate departures (docs/divergences.md):
* the sidecar-config check is real: a kind the pod webhook would inject (StdOut, File,
  TensorFlowEvent, PrometheusMetric) must have an entry in katib-config's
  `metrics-collector-sidecar` (upstream's lookup swallowed the error, so PrometheusMetric,
  which has no entry and no collector, was admitted and its trials never ran);
* `Custom` without `source` is accepted (upstream crashed on a nil pointer);
* a `Custom` fileSystemPath problem names the exact field instead of "source is invalid";
* filters are checked as Go RE2 would (collector.parse.validate_filter) when available."""
from __future__ import annotations

import posixpath
import re

from katib.api import constants as c
from katib.errors import FieldError

MC = "spec.metricsCollectorSpec"
FSP = f"{MC}.source.fileSystemPath"
HTTP = f"{MC}.source.httpGet"

FILE_PATH_REQUIRED = (
    "File path where metrics file exists is required by .spec.metricsCollectorSpec.source.fileSystemPath.path")
DIRECTORY_PATH_REQUIRED = ("Directory path where tensorflow event files exist is required by "
                           ".spec.metricsCollectorSpec.source.fileSystemPath.path")


def validate_metrics_collector(spec: dict, *, config) -> list[FieldError]:
    """Every problem of `spec.metricsCollectorSpec` (config: katib.config.KatibConfig)."""
    mc = _obj(spec.get("metricsCollectorSpec"))
    kind = str(_obj(mc.get("collector")).get("kind") or "")
    errors = []
    if kind in c.AUTO_INJECTED_COLLECTORS:
        errors += _check_sidecar_config(kind, config)
    check = _KIND_CHECKS.get(kind)
    if check is None:
        errors.append(FieldError(f"{MC}.collector.kind", f"Invalid metrics collector kind: {kind}.", kind=""))
    else:
        errors += check(mc)
    return errors + _check_filters(_obj(_obj(mc.get("source")).get("filter")).get("metricsFormat"))


def _check_sidecar_config(kind: str, config) -> list[FieldError]:
    from katib.config import ConfigError

    try:
        config.collector(kind)
    except ConfigError as err:
        return [FieldError(f"{MC}.collector.kind", f"GetMetricsCollectorImage failed: {err}.", kind="")]
    return []


def _check_nothing(mc: dict) -> list[FieldError]:
    return []


def _check_file(mc: dict) -> list[FieldError]:
    return _check_path(mc, want_kind=c.FileSystemKind.FILE, message=FILE_PATH_REQUIRED)


def _check_tfevent(mc: dict) -> list[FieldError]:
    return _check_path(mc, want_kind=c.FileSystemKind.DIRECTORY, message=DIRECTORY_PATH_REQUIRED)


def _check_path(mc: dict, *, want_kind: str, message: str) -> list[FieldError]:
    fsp = _obj(mc.get("source")).get("fileSystemPath")
    if not isinstance(fsp, dict):
        return [FieldError(FSP, message, kind="Required value")]
    errors = []
    if fsp.get("kind") != want_kind:
        errors.append(FieldError(f"{FSP}.kind", message, value=fsp.get("kind")))
    if not _absolute(fsp.get("path")):
        errors.append(FieldError(f"{FSP}.path", message, value=fsp.get("path")))
    return errors


def _check_prometheus(mc: dict) -> list[FieldError]:
    http = _obj(_obj(mc.get("source")).get("httpGet"))
    errors = []
    if not _positive_port(http.get("port")):
        errors.append(FieldError(f"{HTTP}.port", "must be a positive integer value for metrics "
                                 "collector kind: PrometheusMetric.", value=http.get("port")))
    path = http.get("path")
    if not (isinstance(path, str) and path.startswith("/")):
        errors.append(FieldError(f"{HTTP}.path", "is invalid for metrics collector kind: "
                                 "PrometheusMetric.", value=path))
    return errors


def _check_custom(mc: dict) -> list[FieldError]:
    errors = []
    if _obj(mc.get("collector")).get("customCollector") is None:
        errors.append(FieldError(f"{MC}.collector.customCollector",
                                 "is required for metrics collector kind: Custom.", kind="Required value"))
    fsp = _obj(mc.get("source")).get("fileSystemPath")   # absent source: accepted
    if isinstance(fsp, dict):
        if fsp.get("kind") not in (c.FileSystemKind.DIRECTORY, c.FileSystemKind.FILE):
            errors.append(FieldError(f"{FSP}.kind", "must be Directory or File", value=fsp.get("kind")))
        if not _absolute(fsp.get("path")):
            errors.append(FieldError(f"{FSP}.path", "must be an absolute path", value=fsp.get("path")))
    return errors


_KIND_CHECKS = {
    c.CollectorKind.NONE: _check_nothing,
    c.CollectorKind.STDOUT: _check_nothing,
    c.CollectorKind.FILE: _check_file,
    c.CollectorKind.TENSORFLOW_EVENT: _check_tfevent,
    c.CollectorKind.PROMETHEUS_METRIC: _check_prometheus,
    c.CollectorKind.CUSTOM: _check_custom,
}


def _check_filters(formats: object) -> list[FieldError]:
    errors = []
    for i, fmt in enumerate(formats if isinstance(formats, list) else []):
        problem = filter_problem(str(fmt))
        if problem:
            errors.append(FieldError(f"{MC}.source.filter.metricsFormat[{i}]", problem, kind=""))
    return errors


def filter_problem(fmt: str) -> str | None:
    """Upstream's admission message for a metrics filter, or None when it is usable."""
    from collector.parse import validate_filter

    return validate_filter(fmt)


def _positive_port(port: object) -> bool:
    """Go's IntOrString.IntValue() > 0: an int, or a string of decimal digits."""
    if isinstance(port, bool):
        return False
    if isinstance(port, int):
        return port > 0
    if isinstance(port, str) and re.fullmatch(r"[+-]?\d+", port):
        return int(port) > 0
    return False


def _absolute(path: object) -> bool:
    return isinstance(path, str) and posixpath.isabs(path)


def _obj(value: object) -> dict:
    return value if isinstance(value, dict) else {}
