"""The job kinds a trial may run (batch/v1 Job, kubeflow.org/v1 TFJob and PyTorchJob) and
where their pod templates are. Pure. `JOB_KINDS` is the one list of these kinds."""
from __future__ import annotations

from katib.api.constants import SUPPORTED_JOB_GVKS

JOB_KINDS = tuple(kind for _, kind in SUPPORTED_JOB_GVKS)

POD_TEMPLATE_PATHS = {
    "Job": lambda job: [job.get("spec", {}).get("template")],
    "TFJob": lambda job: [r.get("template") for r in (job.get("spec", {}).get("tfReplicaSpecs") or {}).values()],
    "PyTorchJob": lambda job: [r.get("template") for r in (job.get("spec", {}).get("pytorchReplicaSpecs") or {}).values()],
}
assert set(POD_TEMPLATE_PATHS) == set(JOB_KINDS)


def pod_templates(job: dict) -> list[dict]:
    """The pod templates of a supported job kind; ValueError for any other kind."""
    getter = POD_TEMPLATE_PATHS.get(job.get("kind", ""))
    if getter is None:
        raise ValueError(f"Invalid Katib Training Job kind {job.get('kind', '')}")
    return [t for t in getter(job) if isinstance(t, dict)]
