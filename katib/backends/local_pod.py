"""A trial's Job as the pod webhook would have made its pod, for the local kubelet. Pure.

On a cluster the pod webhook gives the master pod an emptyDir volume at the collector's mount
directory (the directory of a File collector's `fileSystemPath.path`, a TensorFlowEvent's
directory itself, a Custom collector's `fileSystemPath` as its kind says) and, for
PrometheusMetric and Custom, a second container. Here every job gets the same, mapped onto the
job's own directory:

* the mount: `<job dir>/metrics-volume` stands for the mount directory. Every occurrence of the
  mount directory in the training container's command, args and env values (as a whole path:
  `/katib` in `/katib/mnist.log` or `--dir=/katib`, never in `/katibx` or `/opt/katib`) is
  rewritten to it before the process starts, and the collector reads it there. So parallel
  trials never share a file. A training container that never names the mount directory (the
  path is hard-coded in the script) cannot be rewritten: it writes the real path, and jobs
  sharing that path run one at a time (`resource`), a leftover file moved aside first;
* PrometheusMetric: the job gets a free port (katib.backends.ports) in `KATIB_METRICS_PORT`
  (listed first in the container's env, so `$(KATIB_METRICS_PORT)` expands in command and
  args) and a sidecar, our collector program, scrapes `http://127.0.0.1:<port><path>` while
  the training runs. A container that never mentions KATIB_METRICS_PORT is taken to listen on
  the spec's port:
  KATIB_METRICS_PORT is then that port and jobs on the same port run one at a time;
* Custom: `collector.customCollector` is the sidecar, its command and args required (an image's
  entrypoint is not known here), with the same mount mapping, `fieldRef` metadata.name and
  metadata.namespace resolved to the pod's, and what it needs to report to katib's observation
  API (`observation_env`: KATIB_OBSERVATIONS_ADDRESS, KATIB_COLLECTOR_TOKEN, KATIB_CA_PEM).

The result is the Job manifest the local runner runs, with the sidecar appended to the master's
pod template and `POD_ANNOTATION` describing it (local_process.plan_launch reads it)."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import re
import sys
from dataclasses import dataclass

from katib.api.constants import CollectorKind
from katib.backends import local_process as lp
from katib.backends import pod_plan
from katib.webhook.pod import mount as collector_mount
from katib.webhook.pod import mount_dir
from katib.webhook.pod import prometheus_url as sidecar_url

VOLUME_DIR = "metrics-volume"
POD_ANNOTATION = lp.POD_ANNOTATION
PORT_VAR = "KATIB_METRICS_PORT"
SIDECAR_OUT, SIDECAR_LOG, SIDECAR_EXIT = "sidecar.out", "sidecar.log", "sidecar.exit"
CUSTOM_FIELD = "spec.metricsCollectorSpec.collector.customCollector"
SCRAPE_INTERVAL = 0.2   # seconds between two scrapes of a PrometheusMetric endpoint
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Mount:
    path: str        # the collector's path (file or directory), normalised
    dir: str         # the mount directory the webhook would mount (dirname for a File)
    fs_kind: str     # File | Directory


@dataclass(frozen=True)
class Plan:
    job: dict                      # the manifest to run
    resource: str | None = None    # what jobs of this kind share on this machine (one at a time)
    resource_text: str = ""        # the resource in words, for the waiting message
    real_path: str | None = None   # a mount that could not be rewritten: the real path to prepare
    mapped: bool = False           # the mount directory is the job's metrics-volume


def collector(trial: dict) -> tuple[str, dict, dict]:
    """(kind, collector, source) of the trial's metrics collector; kind StdOut when none is given."""
    spec = (trial.get("spec") or {}).get("metricsCollector") or {}
    inner = spec.get("collector") or {}
    return str(inner.get("kind") or CollectorKind.STDOUT), inner, spec.get("source") or {}


def mount_of(trial: dict) -> Mount | None:
    """The mount of a File, TensorFlowEvent or Custom (with fileSystemPath) collector."""
    kind = collector(trial)[0]
    if kind not in (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT, CollectorKind.CUSTOM):
        return None
    found = collector_mount(trial)
    if found is None or not found[0]:
        return None
    path = posixpath.normpath(found[0])
    return Mount(path=path, dir=posixpath.normpath(mount_dir(path, found[1])), fs_kind=found[1])


def path_pattern(directory: str) -> re.Pattern:
    """`directory` as a whole path inside a string (pod_plan's rule for the fake's pods)."""
    return pod_plan.path_pattern([directory.rstrip("/")])


def _strings(container: dict):
    """(holder, key) of each command/args element and env value of a container."""
    for field in ("command", "args"):
        value = container.get(field)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield value, i
    for item in container.get("env") or ():
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            yield item, "value"


def mentions(container: dict, pattern: re.Pattern) -> bool:
    return any(pattern.search(holder[key]) for holder, key in _strings(container))


def rewrite(container: dict, pattern: re.Pattern, replacement: str) -> None:
    for holder, key in _strings(container):
        holder[key] = pattern.sub(lambda _m: replacement, holder[key])


def mapped_path(mount: Mount, job_dir: str) -> str:
    """Where the collector's path is for a job whose mount was mapped onto its directory."""
    volume = os.path.join(job_dir, VOLUME_DIR)
    return volume if mount.fs_kind == "Directory" else os.path.join(volume, posixpath.basename(mount.path))


def is_mapped(trial: dict, job: dict) -> bool:
    """The training container names the mount directory (so it is rewritten); decided from the
    Job as created, so a restarted katib decides the same."""
    mount = mount_of(trial)
    if mount is None or mount.dir == "/":
        return False
    try:
        _pod_spec, training = lp.select_container(job)
    except lp.StartError:
        return False
    return mentions(training, path_pattern(mount.dir))


def pod_name(job: dict) -> str:
    """The name the Job's pod would get: `<job>-<5 characters>`, stable for one Job."""
    meta = job.get("metadata") or {}
    seed = (meta.get("uid") or meta.get("name") or "").encode()
    return f"{meta.get('name', '')}-{hashlib.sha256(seed).hexdigest()[:5]}"


def metric_names(trial: dict) -> list[str]:
    objective = (trial.get("spec") or {}).get("objective") or {}
    return [objective.get("objectiveMetricName", "")] + list(objective.get("additionalMetricNames") or [])


def prometheus_port(source: dict) -> int:
    port = ((source.get("httpGet") or {}).get("port")) or 8080
    try:
        return int(port)
    except (TypeError, ValueError):
        return 8080


def _resolve_field_refs(container: dict, job: dict, name: str) -> None:
    """fieldRef metadata.name / metadata.namespace → the pod's, as the kubelet resolves them."""
    fields = {"metadata.name": name, "metadata.namespace": (job.get("metadata") or {}).get("namespace", "")}
    for item in container.get("env") or ():
        ref = ((item.get("valueFrom") or {}).get("fieldRef") or {}) if isinstance(item, dict) else {}
        if ref.get("fieldPath") in fields and set(item["valueFrom"]) == {"fieldRef"}:
            item.pop("valueFrom")
            item["value"] = fields[ref["fieldPath"]]


def _prepend_env(container: dict, env: dict[str, str], *, ours_win: bool) -> None:
    """`env` first in the container's env (so `$(VAR)` in its own values and args expands);
    a variable of the same name the container defines is dropped (`ours_win`) or kept (it
    comes later, so it wins)."""
    given = list(container.get("env") or ())
    if ours_win:
        given = [e for e in given if not (isinstance(e, dict) and e.get("name") in env)]
    container["env"] = [{"name": k, "value": v} for k, v in env.items()] + given


def plan(trial: dict | None, job: dict, *, job_dir: str, free_port=None,
         observation_env: dict[str, str] | None = None) -> Plan:
    """The Job as it runs here (see the module's docstring). `free_port()` gives a port for a
    PrometheusMetric job; `observation_env`: the observation API's variables for a Custom one.
    A Job without a trial, or with a StdOut/None collector, is returned as it is."""
    if trial is None:
        return Plan(job=job)
    kind, inner, source = collector(trial)
    if kind not in (CollectorKind.FILE, CollectorKind.TENSORFLOW_EVENT, CollectorKind.CUSTOM,
                    CollectorKind.PROMETHEUS_METRIC):
        return Plan(job=job)
    job = copy.deepcopy(job)
    try:
        pod_spec, training = lp.select_container(job)
    except lp.StartError:
        return Plan(job=job)   # plan_launch says why it cannot run
    name = pod_name(job)
    _resolve_field_refs(training, job, name)
    mount = mount_of(trial)
    mapped = mount is not None and is_mapped(trial, job)
    resource = real_path = None
    text = ""
    volume = os.path.join(job_dir, VOLUME_DIR)
    if mapped:
        rewrite(training, path_pattern(mount.dir), volume)
    elif mount is not None:
        resource, real_path = f"path {mount.path}", mount.path
        text = f"{kind} collector path {mount.path}"
    sidecar, pod = None, {"volume": volume if mapped else None, "markerDir": None}
    if kind == CollectorKind.PROMETHEUS_METRIC:
        spec_port = prometheus_port(source)
        if mentions(training, re.compile(PORT_VAR)):
            port = free_port() if free_port is not None else spec_port
        else:
            port, resource, text = spec_port, f"port {spec_port}", f"PrometheusMetric port {spec_port}"
        _prepend_env(training, {PORT_VAR: str(port)}, ours_win=True)
        sidecar = {"name": "metrics-collector", "command": [sys.executable, "-m", "collector"],
                   "args": ["-t", trial["metadata"]["name"], "-m", ";".join(metric_names(trial)),
                            "-kind", "PrometheusMetric",
                            "-url", sidecar_url({"source": source}, host="127.0.0.1", port=port),
                            "-p", str(SCRAPE_INTERVAL)],
                   "env": [{"name": "PYTHONPATH", "value": _ROOT}]}
        pod["sidecarStdout"] = True
    elif kind == CollectorKind.CUSTOM:
        sidecar = copy.deepcopy(inner.get("customCollector") or {})
        sidecar.setdefault("name", "custom-metrics-collector")
        _resolve_field_refs(sidecar, job, name)
        if mapped:
            rewrite(sidecar, path_pattern(mount.dir), volume)
            pod["markerDir"] = volume
        _prepend_env(sidecar, {"KATIB_TRIAL_NAME": trial["metadata"]["name"], **(observation_env or {})},
                     ours_win=False)
        if training.get("workingDir") and not sidecar.get("workingDir"):
            sidecar["workingDir"] = training["workingDir"]
    if sidecar is not None:
        if kind == CollectorKind.CUSTOM:
            pod["field"] = CUSTOM_FIELD
        pod["sidecar"] = sidecar.get("name")
        pod_spec.setdefault("containers", []).append(sidecar)
        job.setdefault("metadata", {}).setdefault("annotations", {})[POD_ANNOTATION] = json.dumps(pod)
    elif mapped:
        job.setdefault("metadata", {}).setdefault("annotations", {})[POD_ANNOTATION] = json.dumps(pod)
    return Plan(job=job, resource=resource, resource_text=text, real_path=real_path, mapped=mapped)
