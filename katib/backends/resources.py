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
        Resource("Lease", "coordination.k8s.io/v1", "leases", has_status=False),
        # Stored as given: what config/ installs (nothing here acts on them yet).
        Resource("Secret", "v1", "secrets", has_status=False),
        Resource("ServiceAccount", "v1", "serviceaccounts", has_status=False),
        Resource("Service", "v1", "services"),
        Resource("Endpoints", "v1", "endpoints", has_status=False),
        Resource("Deployment", "apps/v1", "deployments"),
        Resource("Role", "rbac.authorization.k8s.io/v1", "roles", has_status=False),
        Resource("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", has_status=False),
        Resource("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False,
                 has_status=False),
        Resource("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False,
                 has_status=False),
        Resource("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions",
                 namespaced=False),
        Resource("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
                 "mutatingwebhookconfigurations", namespaced=False, has_status=False),
        Resource("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
                 "validatingwebhookconfigurations", namespaced=False, has_status=False),
    )
}
