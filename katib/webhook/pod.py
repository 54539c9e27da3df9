"""The pod webhook: metrics-collector sidecar injection into trial pods (metrics-collection.md §2).

`trial_of(pod, ...)` decides whether a pod is mutated (a Job/TFJob/PyTorchJob owner whose name
is a Trial's, the master pod of the job, a collector kind other than None); `inject(pod, trial,
...)` returns the mutated pod: the sidecar (or the Custom collector's container verbatim),
`shareProcessNamespace`, the metrics volume on the sidecar and the training container, and the
training command rewritten so that StdOut lands in the metrics file and success leaves a
`<dir>/<pid>.pid` marker; a PrometheusMetric sidecar gets `-kind PrometheusMetric -url
http://localhost:<port><path>` (ours: upstream never collected that kind). `mutate(body, ...)` answers an AdmissionReview with the JSON patch.

Departure from upstream (docs/divergences.md): a training container without an explicit
`command` is refused with a message naming it (upstream asked the image registry for the image's
ENTRYPOINT/CMD, which needs registry access from the webhook)."""
from __future__ import annotations

import copy
import posixpath
from typing import Callable

import jsonpatch

from katib.api.injection import MASTER_LABELS, is_master  # noqa: F401 (re-exported)
from katib.webhook import review as rv

JOB_OWNERS = {("batch/v1", "Job"), ("kubeflow.org/v1", "TFJob"), ("kubeflow.org/v1", "PyTorchJob")}
TRAINING_CONTAINER = {"TFJob": "tensorflow", "PyTorchJob": "pytorch"}
STDOUT_FILE = "/var/log/katib/metrics.log"
VOLUME = "metrics-volume"
DEFAULT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "10Mi", "ephemeral-storage": "500Mi"},
    "limits": {"cpu": "500m", "memory": "100Mi", "ephemeral-storage": "5Gi"},
}


class InjectionError(ValueError):
    """The pod cannot be given its collector; str() is the refusal (HTTP 400 upstream)."""


def owner(pod: dict) -> dict | None:
    """The pod's Job/TFJob/PyTorchJob owner reference (exact apiVersion and kind), or None."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if (ref.get("apiVersion"), ref.get("kind")) in JOB_OWNERS:
            return ref
    return None




def collector_kind(trial: dict) -> str:
    collector = ((trial.get("spec") or {}).get("metricsCollector") or {}).get("collector") or {}
    return str(collector.get("kind") or "StdOut")


def trial_of(pod: dict, namespace: str, *, get_trial: Callable[[str, str], dict | None]) -> dict | None:
    """The Trial whose pod this is, when the pod gets a collector; None otherwise.
    `get_trial(namespace, name)` returns None for a missing Trial and raises on other errors."""
    ref = owner(pod)
    if ref is None or not is_master(pod, ref["kind"]):
        return None
    trial = get_trial(namespace, ref.get("name") or "")
    if trial is None or collector_kind(trial) == "None":
        return None
    return trial


def mount(trial: dict) -> tuple[str, str] | None:
    """(path, "File" | "Directory") the collector reads, or None."""
    spec = trial.get("spec") or {}
    kind = collector_kind(trial)
    fs = ((spec.get("metricsCollector") or {}).get("source") or {}).get("fileSystemPath") or {}
    if kind == "StdOut":
        return STDOUT_FILE, "File"
    if kind == "File":
        return str(fs.get("path") or ""), "File"
    if kind == "TensorFlowEvent":
        return str(fs.get("path") or ""), "Directory"
    if kind == "Custom" and fs:
        return str(fs.get("path") or ""), str(fs.get("kind") or "File")
    return None


def mount_dir(path: str, fs_kind: str) -> str:
    return posixpath.dirname(path) if fs_kind == "File" else path


def sidecar(trial: dict, *, config, report_address: str, mounted: tuple[str, str] | None) -> dict:
    kind = collector_kind(trial)
    spec = trial.get("spec") or {}
    collector = spec.get("metricsCollector") or {}
    if kind == "Custom":
        return copy.deepcopy((collector.get("collector") or {}).get("customCollector") or {})
    try:
        entry = config.collector(kind, require_image=True)
    except Exception as err:  # ConfigError: upstream's messages
        raise InjectionError(str(err)) from None
    objective = spec.get("objective") or {}
    names = [objective.get("objectiveMetricName", "")] + list(objective.get("additionalMetricNames") or [])
    args = ["-t", (trial.get("metadata") or {}).get("name", ""), "-m", ";".join(names), "-s", report_address]
    if mounted is not None:
        args += ["-path", mounted[0]]
    filters = ((collector.get("source") or {}).get("filter") or {}).get("metricsFormat") or []
    if filters:
        args += ["-f", ";".join(filters)]
    if kind == "PrometheusMetric":  # ours: upstream had no collector for this kind
        args += ["-kind", "PrometheusMetric", "-url", prometheus_url(collector)]
    resources = {part: {**DEFAULT_RESOURCES[part], **((entry.resources or {}).get(part) or {})}
                 for part in ("requests", "limits")}
    out = {"name": "metrics-logger-and-collector" if kind in ("StdOut", "File") else "metrics-collector",
           "image": entry.image, "imagePullPolicy": entry.image_pull_policy, "args": args,
           "resources": resources}
    if entry.command:  # ours: an image whose entrypoint is not the collector (katib-config `command`)
        out = {**out, "command": list(entry.command)}
    return out


def prometheus_url(collector: dict, *, host: str = "localhost", port: int | None = None) -> str:
    """The trainer's endpoint as the sidecar reaches it: the pod's own network, so localhost
    (a local trial: 127.0.0.1 and the port it was given)."""
    http = (collector.get("source") or {}).get("httpGet") or {}
    scheme = str(http.get("scheme") or "HTTP").lower()
    path = str(http.get("path") or "/metrics")
    return f"{scheme}://{host}:{port or http.get('port') or 8080}{path if path.startswith('/') else '/' + path}"


def training_container(pod: dict, job_kind: str) -> dict | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    if job_kind == "Job":
        return containers[0] if containers else None
    wanted = TRAINING_CONTAINER.get(job_kind)
    return next((c for c in containers if c.get("name") == wanted), None)


def wrap_command(container: dict, *, kind: str, path: str, fs_kind: str) -> None:
    """Rewrite the training container's command as upstream does (§2.4), in place."""
    command = list(container.get("command") or [])
    if not command:
        raise InjectionError(f"container {container.get('name', '')!r} has no command: the metrics collector "
                             f"needs the training command in the pod spec (the image's entrypoint is not looked up)")
    argv = command + list(container.get("args") or [])
    new_command = ["sh", "-c"]
    if len(argv) >= 2 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        new_command, argv = argv[:2], argv[2:]
    if kind == "StdOut":
        argv.append(f"1>{path} 2>&1")
    argv += ["&&", f"echo completed > {posixpath.join(mount_dir(path, fs_kind), '$$$$.pid')}"]
    container["command"] = new_command
    container["args"] = [" ".join(argv)]


def inject(pod: dict, trial: dict, *, config, report_address: str, job_kind: str,
           inject_security_context: bool = False, sidecar_env: list[dict] | None = None) -> dict:
    """The mutated copy of `pod` (InjectionError when it cannot be done). `sidecar_env`: what our
    collector needs to report (its trial token, katib's CA), added to a non-Custom sidecar."""
    out = copy.deepcopy(pod)
    spec = out.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    mounted = mount(trial)
    side = sidecar(trial, config=config, report_address=report_address, mounted=mounted)
    if sidecar_env and collector_kind(trial) != "Custom":
        side["env"] = list(side.get("env") or []) + copy.deepcopy(sidecar_env)
    if inject_security_context and containers and containers[0].get("securityContext"):
        side["securityContext"] = copy.deepcopy(containers[0]["securityContext"])
    containers.append(side)
    spec["shareProcessNamespace"] = True
    training = training_container(out, job_kind)
    if mounted is not None:
        path, fs_kind = mounted
        spec.setdefault("volumes", []).append({"name": VOLUME, "emptyDir": {}})
        volume_mount = {"name": VOLUME, "mountPath": mount_dir(path, fs_kind)}
        for container in (side, training):
            if container is not None:
                container.setdefault("volumeMounts", []).append(dict(volume_mount))
    kind = collector_kind(trial)
    if training is not None and mounted is not None and kind in ("StdOut", "File", "TensorFlowEvent"):
        wrap_command(training, kind=kind, path=mounted[0], fs_kind=mounted[1])
    return out


def mutate(body, *, get_trial: Callable[[str, str], dict | None], config, report_address: str,
           inject_security_context: bool = False,
           sidecar_env: Callable[[dict], list[dict]] | None = None) -> dict:
    """The answer to a mutating review of a Pod: a JSON patch for trial pods, allowed as-is for
    the others, refused (400, upstream's messages) when the collector cannot be injected."""
    api_version, request = rv.read_request(body)
    pod = request.get("object") or {}
    if request["operation"] != "CREATE" or pod.get("kind", "Pod") != "Pod":
        return rv.allow(api_version, request)
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or ""
    trial = trial_of(pod, namespace, get_trial=get_trial)
    if trial is None:
        return rv.allow(api_version, request)
    try:
        mutated = inject(pod, trial, config=config, report_address=report_address, job_kind=owner(pod)["kind"],
                         inject_security_context=inject_security_context,
                         sidecar_env=sidecar_env(trial) if sidecar_env is not None else None)
    except InjectionError as err:
        return rv.deny(api_version, request, {"code": 400, "reason": "BadRequest", "message": str(err)})
    return rv.patch(api_version, request, jsonpatch.make_patch(pod, mutated).patch)
