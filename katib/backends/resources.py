"""The kinds the backends serve: apiVersion, plural and scope of each, addressed by `kind`.

The API server's discovery documents come from here too: singular name, short names,
categories (Katib's CRDs: `all`, `kubeflow`, `katib`; no short names upstream) and whether
the kind has a status subresource."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    kind: str
    api_version: str
    plural: str
    namespaced: bool = True
    has_status: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def singular(self) -> str:
        return self.kind.lower()


_KATIB = ("all", "kubeflow", "katib")

RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in (
        Resource("Experiment", "kubeflow.org/v1alpha3", "experiments", categories=_KATIB),
        Resource("Trial", "kubeflow.org/v1alpha3", "trials", categories=_KATIB),
        Resource("Suggestion", "kubeflow.org/v1alpha3", "suggestions", categories=_KATIB),
        Resource("Job", "batch/v1", "jobs", categories=("all",)),
        Resource("TFJob", "kubeflow.org/v1", "tfjobs", categories=("all", "kubeflow")),
        Resource("PyTorchJob", "kubeflow.org/v1", "pytorchjobs", categories=("all", "kubeflow")),
        Resource("ConfigMap", "v1", "configmaps", has_status=False, short_names=("cm",)),
        Resource("Namespace", "v1", "namespaces", namespaced=False, short_names=("ns",)),
        Resource("Event", "v1", "events", has_status=False, short_names=("ev",)),
        Resource("Pod", "v1", "pods", short_names=("po",), categories=("all",)),
        Resource("Lease", "coordination.k8s.io/v1", "leases", has_status=False),
        # Stored as given: what config/ installs (nothing here acts on them yet).
        Resource("Secret", "v1", "secrets", has_status=False),
        Resource("ServiceAccount", "v1", "serviceaccounts", has_status=False, short_names=("sa",)),
        Resource("Service", "v1", "services", short_names=("svc",), categories=("all",)),
        Resource("Endpoints", "v1", "endpoints", has_status=False, short_names=("ep",)),
        Resource("PersistentVolumeClaim", "v1", "persistentvolumeclaims", short_names=("pvc",)),
        Resource("Deployment", "apps/v1", "deployments", short_names=("deploy",), categories=("all",)),
        Resource("Role", "rbac.authorization.k8s.io/v1", "roles", has_status=False),
        Resource("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", has_status=False),
        Resource("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False,
                 has_status=False),
        Resource("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False,
                 has_status=False),
        Resource("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions",
                 namespaced=False, short_names=("crd", "crds")),
        Resource("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
                 "mutatingwebhookconfigurations", namespaced=False, has_status=False),
        Resource("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
                 "validatingwebhookconfigurations", namespaced=False, has_status=False),
    )
}
