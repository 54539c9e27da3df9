"""The kinds the backends serve: apiVersion, plural and scope of each, addressed by `kind`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    kind: str
    api_version: str
    plural: str
    namespaced: bool = True
    has_status: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in (
        Resource("Experiment", "kubeflow.org/v1alpha3", "experiments"),
        Resource("Trial", "kubeflow.org/v1alpha3", "trials"),
        Resource("Suggestion", "kubeflow.org/v1alpha3", "suggestions"),
        Resource("Job", "batch/v1", "jobs"),
        Resource("TFJob", "kubeflow.org/v1", "tfjobs"),
        Resource("PyTorchJob", "kubeflow.org/v1", "pytorchjobs"),
        Resource("ConfigMap", "v1", "configmaps", has_status=False),
        Resource("Namespace", "v1", "namespaces", namespaced=False),
        Resource("Event", "v1", "events", has_status=False),
        Resource("Pod", "v1", "pods"),
    )
}
