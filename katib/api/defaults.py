"""Experiment defaulting (upstream's mutating webhook, `Experiment.SetDefault`).

Works on the JSON form so that unknown keys pass through untouched. Rules and order are those
of shared spec defaults-and-validation.md §1; applying them twice changes nothing. Values of
the wrong type are left alone (validation reports them)."""
from __future__ import annotations

import copy

from katib.api import constants as c


def set_defaults(exp: dict, *, katib_namespace: str = c.DEFAULT_KATIB_NAMESPACE) -> dict:
    """A defaulted deep copy of the Experiment `exp` (the input is not modified)."""
    out = copy.deepcopy(exp)
    if not isinstance(out, dict):
        return out
    if out.get("spec") is None:
        out["spec"] = {}
    spec = out["spec"]
    if not isinstance(spec, dict):
        return out
    if spec.get("parallelTrialCount") is None:
        spec["parallelTrialCount"] = c.DEFAULT_PARALLEL_TRIAL_COUNT
    if not spec.get("resumePolicy"):
        spec["resumePolicy"] = str(c.DEFAULT_RESUME_POLICY)
    _default_trial_template(spec, katib_namespace)
    _default_metrics_collector(spec)
    return out


def _child(parent: dict, key: str) -> dict | None:
    """`parent[key]`, created as {} when absent; None when it holds something else."""
    if parent.get(key) is None:
        parent[key] = {}
    value = parent[key]
    return value if isinstance(value, dict) else None


def _default_trial_template(spec: dict, katib_namespace: str) -> None:
    # retain: true only when the whole trialTemplate was omitted (upstream quirk, kept).
    if spec.get("trialTemplate") is None:
        spec["trialTemplate"] = {"retain": True}
    template = spec["trialTemplate"]
    if not isinstance(template, dict):
        return
    go = _child(template, "goTemplate")
    if go is None:
        return
    if not go.get("rawTemplate") and go.get("templateSpec") is None:
        go["templateSpec"] = {
            "configMapName": c.DEFAULT_TRIAL_TEMPLATE_CONFIGMAP,
            "configMapNamespace": katib_namespace,
            "templatePath": c.DEFAULT_TRIAL_TEMPLATE_PATH,
        }


def _default_metrics_collector(spec: dict) -> None:
    mc = _child(spec, "metricsCollectorSpec")
    if mc is None:
        return
    if mc.get("collector") is None:
        mc["collector"] = {"kind": str(c.CollectorKind.STDOUT)}
    collector = mc["collector"]
    kind = collector.get("kind") if isinstance(collector, dict) else None
    if kind == c.CollectorKind.PROMETHEUS_METRIC:
        _default_http_get(mc)
    elif kind == c.CollectorKind.FILE:
        _default_file_system_path(mc, c.FileSystemKind.FILE, c.DEFAULT_METRICS_FILE)
    elif kind == c.CollectorKind.TENSORFLOW_EVENT:
        _default_file_system_path(mc, c.FileSystemKind.DIRECTORY, c.DEFAULT_TFEVENT_DIR)


def _default_http_get(mc: dict) -> None:
    source = _child(mc, "source")
    http_get = _child(source, "httpGet") if source is not None else None
    if http_get is None:
        return
    if not http_get.get("path"):
        http_get["path"] = c.DEFAULT_PROMETHEUS_PATH
    if _port_text(http_get.get("port")) == "0":
        http_get["port"] = c.DEFAULT_PROMETHEUS_PORT


def _port_text(port: object) -> str:
    """Go's IntOrString.String(): an unset port is the integer 0, i.e. "0"."""
    return "0" if port is None else str(port)


def _default_file_system_path(mc: dict, kind: str, path: str) -> None:
    source = _child(mc, "source")
    fsp = _child(source, "fileSystemPath") if source is not None else None
    if fsp is None:
        return
    if not fsp.get("kind"):
        fsp["kind"] = str(kind)
    if not fsp.get("path"):
        fsp["path"] = path
