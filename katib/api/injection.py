"""Which of a job's pods get the metrics-collector sidecar (metrics-collection.md §2.1), and why
a trial whose collector kind needs one got none — upstream's trap: the pod webhook skips a
namespace without the injection label (or is unreachable, failurePolicy Ignore, or the operator
did not label a master pod), the job runs, and no metrics ever come. Pure: pods in, words out."""
from __future__ import annotations

from katib.api import constants as c

MASTER_LABELS = {"TFJob": ("job-role", "tf-job-role"), "PyTorchJob": ("job-role", "pytorch-job-role")}
SIDECAR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric")   # None and Custom: no sidecar of ours
SIDECARS = (c.STDOUT_COLLECTOR_CONTAINER, c.COLLECTOR_CONTAINER)
POD_WEBHOOK = "mutating.pod.katib.kubeflow.org"


def is_master(pod: dict, job_kind: str) -> bool:
    """The pod the collector goes into: every pod of a Job; a TFJob's or PyTorchJob's pod with
    a master role label."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    keys = MASTER_LABELS.get(job_kind)
    return keys is None or any(labels.get(k) == "master" for k in keys)


def owned_by(pod: dict, job_kind: str, job_name: str) -> bool:
    return any(ref.get("kind") == job_kind and ref.get("name") == job_name
               for ref in (pod.get("metadata") or {}).get("ownerReferences") or ())


def has_collector(pod: dict) -> bool:
    return any(ct.get("name") in SIDECARS for ct in (pod.get("spec") or {}).get("containers") or ())


class Missing(str):
    """Why no collector ran, in one sentence; `webhook_missed` when the pod was eligible (master
    pod, labelled namespace) and the pod webhook did not mutate it, the one cause a second run
    of the job may not meet (the webhook was unreachable for a moment)."""

    def __new__(cls, text: str, *, webhook_missed: bool = False):
        self = super().__new__(cls, text)
        self.webhook_missed = webhook_missed
        return self


def missing_collector(collector_kind: str, job_kind: str, job_name: str, pods: list[dict], namespace: str,
                      namespace_labels: dict | None) -> Missing | None:
    """Why no collector ran in the job's pods, in one sentence; None when one did, when the kind
    needs no sidecar, or when there are no pods to judge by (the local kubelet runs jobs
    without pods and collects in process)."""
    if collector_kind not in SIDECAR_KINDS:
        return None
    pods = [p for p in pods if owned_by(p, job_kind, job_name)]
    if not pods:
        return None
    masters = [p for p in pods if is_master(p, job_kind)]
    if not masters:
        keys = " or ".join(f"{k}=master" for k in MASTER_LABELS[job_kind])
        return Missing(f"no metrics collector was injected: no pod of {job_kind} {job_name} has label {keys} "
                       f"(only the master pod gets the collector)")
    if any(has_collector(p) for p in masters):
        return None
    pod = masters[0]["metadata"].get("name", "")
    label = f"{c.NAMESPACE_INJECTION_LABEL}={c.NAMESPACE_INJECTION_VALUE}"
    if (namespace_labels or {}).get(c.NAMESPACE_INJECTION_LABEL) != c.NAMESPACE_INJECTION_VALUE:
        return Missing(f"no metrics collector was injected into pod {pod}: namespace {namespace} lacks label {label} "
                       f"(kubectl label namespace {namespace} {label})")
    return Missing(f"no metrics collector was injected into pod {pod}: the pod webhook {POD_WEBHOOK} did not "
                   f"mutate it (not installed, or unreachable when the pod was created: its failurePolicy is Ignore)",
                   webhook_missed=True)
