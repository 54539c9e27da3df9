r"""Admission warnings: what is valid but cannot work as written. Pure; never raises.

Today one: a metric name the default StdOut/File filter can never report. That filter
(`([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)`, metrics-collection.md §3.2) is Go RE2, where `\w` is
ASCII, and a record is kept only when the captured name equals the metric name — so a name
with any other character (`précision`, `val acc`, `top/1`) is never collected and every trial
ends MetricsUnavailable. Upstream accepts such an experiment silently; we accept it too (it is
valid Katib) but say so before any trial runs, since the spec cannot be edited afterwards."""
from __future__ import annotations

import re

from katib.api import constants as c
from katib.api.defaults import set_defaults
from katib.api.types import Experiment
from katib.serde import check as check_types

# The names group of the default filter, as Go reads it (ASCII `\w`).
_DEFAULT_NAME = re.compile(r"[A-Za-z0-9_|-]+")
_FILTERED_KINDS = (c.CollectorKind.STDOUT, c.CollectorKind.FILE)


def experiment_warnings(exp: dict) -> list[str]:
    """One sentence per problem of `exp` (an Experiment, defaulted or not) that admission lets
    through but that will keep it from working; [] when the object does not even type-check."""
    if not isinstance(exp, dict) or check_types(Experiment, exp):
        return []
    spec = set_defaults(exp)["spec"]
    mc = spec.get("metricsCollectorSpec") or {}
    if (mc.get("collector") or {}).get("kind") not in _FILTERED_KINDS:
        return []
    if ((mc.get("source") or {}).get("filter") or {}).get("metricsFormat"):
        return []   # the user's own filters decide what matches
    objective = spec.get("objective") or {}
    names = [("spec.objective.objectiveMetricName", objective.get("objectiveMetricName"))]
    names += [(f"spec.objective.additionalMetricNames[{i}]", n)
              for i, n in enumerate(objective.get("additionalMetricNames") or [])]
    return [f"{path}: metric {name!r} can never be matched by the default metrics filter "
            f"{c.DEFAULT_METRICS_FILTER} (names of ASCII letters, digits, '_', '|' and '-' only), so "
            f"no trial will report it; rename the metric or set "
            f"spec.metricsCollectorSpec.source.filter.metricsFormat"
            for path, name in names if name and not _DEFAULT_NAME.fullmatch(name)]
