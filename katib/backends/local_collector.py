"""The local metrics collector: a finished trial's output → parsed metrics → observation store.

On a cluster the pod webhook injects a collector sidecar that parses the trial's StdOut or
File and reports to the DB manager before the pod ends. Here the kubelet calls
`collect_metrics` when a Job completes, before it marks the Job finished, with the same parser
(`collector.parse`) and the trial's own collector spec: kind (StdOut reads the job's output,
File the collector's `fileSystemPath`, TensorFlowEvent the event files under its directory)
and filters (`metricsFormat`). Records go to an
observation store (`katib.db.ObservationStore`: `replace(trial_name, logs)`); the collector
issue puts that seam behind HTTP."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from collector.parse import MetricLog, parse_lines
from collector.tfevent import parse_directory
from katib.api.constants import CollectorKind

logger = logging.getLogger(__name__)


def collector_spec(trial: dict) -> tuple[str, dict]:
    """(kind, source) of the trial's metrics collector; kind StdOut when none is given."""
    collector = (trial.get("spec") or {}).get("metricsCollector") or {}
    kind = (collector.get("collector") or {}).get("kind") or CollectorKind.STDOUT
    return str(kind), collector.get("source") or {}


def file_collector_path(trial: dict) -> str | None:
    """The normalised path a File collector reads (a TensorFlowEvent collector: its directory),
    None for every other kind. Admission makes it absolute; two spellings of one file (`/a//b`,
    `/a/./b`, a symlinked directory) are one. Each job gets it fresh (see prepare_metrics_file)."""
    kind, source = collector_spec(trial)
    if kind not in (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT):
        return None
    path = (source.get("fileSystemPath") or {}).get("path") or ""
    return os.path.realpath(path) if path else None


def parse_trial_metrics(trial: dict, *, output: Path | None) -> list[MetricLog] | None:
    """The trial's metric records as its collector spec says; None for a kind that cannot run
    locally (no metrics: the trial controller then reports them unavailable)."""
    spec = trial.get("spec") or {}
    objective = spec.get("objective") or {}
    names = [objective.get("objectiveMetricName", "")] + list(objective.get("additionalMetricNames") or [])
    kind, source = collector_spec(trial)
    filters = (source.get("filter") or {}).get("metricsFormat") or None
    if kind == CollectorKind.STDOUT:
        path = output
    elif kind == CollectorKind.FILE:
        path = Path((source.get("fileSystemPath") or {}).get("path", ""))
    elif kind == CollectorKind.TENSORFLOW_EVENT:
        return parse_directory((source.get("fileSystemPath") or {}).get("path", ""), names)
    else:
        if kind != CollectorKind.NONE:
            logger.warning("metrics collector kind %s cannot run locally; no metrics for %s",
                           kind, trial["metadata"]["name"])
        return None
    return parse_lines(read_lines(path), names, filters)


def collect_metrics(observations, trial: dict, *, output: Path | None) -> int:
    """Parse the trial's metrics and store them; returns how many.

    Idempotent: the trial's previous logs are replaced, so a restart that re-reads the same
    output never duplicates an observation."""
    logs = parse_trial_metrics(trial, output=output)
    if logs is None:
        return 0
    observations.replace(trial["metadata"]["name"], logs)
    return len(logs)


def read_lines(path: Path | None) -> list[str]:
    """A metrics file as lines; none when it is missing or unreadable (no metrics, which the
    trial controller reports as MetricsUnavailable naming the collector)."""
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().split("\n")
    except OSError:
        return []
