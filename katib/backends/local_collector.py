"""The local metrics collector: a finished trial's output → parsed metrics → observation store.

On a cluster the pod webhook injects a collector sidecar that parses the trial's StdOut or
File and reports to the DB manager before the pod ends. Here the kubelet calls
`collect_metrics` when a Job completes, before it marks the Job finished, with the same parser
(`collector.parse`) and the trial's own collector spec: kind (StdOut reads the job's output,
File the collector's `fileSystemPath`, TensorFlowEvent the event files under its directory —
both in the job's own metrics volume when the path was mapped there, see local_pod —,
PrometheusMetric what its scraping sidecar printed) and filters (`metricsFormat`). Records go
to an observation store (`katib.db.ObservationStore`: `replace(trial_name, logs)`). A Custom
collector reports through the observation API itself: nothing is collected here."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import json

from collector.parse import MetricLog, parse_lines
from collector.tfevent import parse_directory
from katib.api.constants import CollectorKind
from katib.backends import local_pod

logger = logging.getLogger(__name__)


def collector_spec(trial: dict) -> tuple[str, dict]:
    """(kind, source) of the trial's metrics collector; kind StdOut when none is given."""
    kind, _, source = local_pod.collector(trial)
    return kind, source


def file_collector_path(trial: dict) -> str | None:
    """The normalised path a File collector reads (a TensorFlowEvent collector: its directory),
    None for every other kind. Admission makes it absolute; two spellings of one file (`/a//b`,
    `/a/./b`, a symlinked directory) are one. Each job gets it fresh (see prepare_metrics_file)."""
    kind, source = collector_spec(trial)
    if kind not in (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT):
        return None
    path = (source.get("fileSystemPath") or {}).get("path") or ""
    return os.path.realpath(path) if path else None


def source_path(trial: dict, job: dict | None, job_dir: Path | None) -> str:
    """A File/TensorFlowEvent collector's path as this job wrote it: in its metrics volume
    when the mount was mapped (local_pod.is_mapped on the Job as created), else the real one."""
    mount = local_pod.mount_of(trial)
    if mount is None:
        return ""
    if job is not None and job_dir is not None and local_pod.is_mapped(trial, job):
        return local_pod.mapped_path(mount, str(job_dir))
    return mount.path


def parse_trial_metrics(trial: dict, *, output: Path | None, job: dict | None = None,
                        job_dir: Path | None = None) -> list[MetricLog] | None:
    """The trial's metric records as its collector spec says; None when nothing is to be
    stored here (None and Custom collectors: the trial's own code or collector reports)."""
    names = local_pod.metric_names(trial)
    kind, source = collector_spec(trial)
    filters = (source.get("filter") or {}).get("metricsFormat") or None
    if kind == CollectorKind.STDOUT:
        path = output
    elif kind == CollectorKind.FILE:
        path = Path(source_path(trial, job, job_dir))
    elif kind == CollectorKind.TENSORFLOW_EVENT:
        return parse_directory(source_path(trial, job, job_dir), names)
    elif kind == CollectorKind.PROMETHEUS_METRIC:
        return scraped(job_dir / local_pod.SIDECAR_OUT if job_dir is not None else None)
    else:
        return None
    return parse_lines(read_lines(path), names, filters)


def scraped(path: Path | None) -> list[MetricLog]:
    """What the PrometheusMetric sidecar (`python -m collector` without -s) printed: the
    ReportObservationLog request as JSON. Unreadable: no metrics."""
    try:
        with open(path, encoding="utf-8") as fh:
            logs = json.load(fh)["observation_log"]["metric_logs"] or []
        return [MetricLog(log.get("time_stamp", ""), log["metric"]["name"], log["metric"].get("value", ""))
                for log in logs]
    except (OSError, TypeError, ValueError, KeyError, AttributeError):
        return []


def collect_metrics(observations, trial: dict, *, output: Path | None, job: dict | None = None,
                    job_dir: Path | None = None) -> int:
    """Parse the trial's metrics and store them; returns how many.

    Idempotent: the trial's previous logs are replaced, so a restart that re-reads the same
    output never duplicates an observation."""
    logs = parse_trial_metrics(trial, output=output, job=job, job_dir=job_dir)
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
