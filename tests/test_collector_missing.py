"""Upstream's trap, fixed: a trial whose collector needs the sidecar, whose job's pods got none
(namespace not labelled, pod webhook down with failurePolicy Ignore, no master-labelled pod),
fails at once when its job ends, with MetricsUnavailable naming the pod and the cause."""
from __future__ import annotations

import pytest

from katib.api import constants as c
from katib.api.injection import missing_collector
from tests.world import World, make_experiment


def pod(name: str, job: dict, *, labels=None, sidecar: bool = False) -> dict:
    containers = [{"name": "main", "image": "x"}] + ([{"name": c.STDOUT_COLLECTOR_CONTAINER, "image": "y"}]
                                                     if sidecar else [])
    meta = job["metadata"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels or {},
                         "ownerReferences": [{"apiVersion": job["apiVersion"], "kind": job["kind"],
                                              "name": meta["name"], "uid": meta.get("uid", "u")}]},
            "spec": {"containers": containers}}


def one_trial_world(namespace_labels=None, collector=None):
    world = World()
    world.backend.create({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": "default", "labels": namespace_labels or {}}})
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1, max_failed_trial_count=0,
                                collector=collector))
    world.run_until_idle()
    [job] = world.jobs.jobs()
    return world, job


def failed(world) -> dict:
    [trial] = world.trials()
    return next(x for x in trial["status"]["conditions"] if x["type"] == "Failed")


def test_a_namespace_without_the_injection_label_is_named():
    world, job = one_trial_world()
    world.backend.create(pod("exp-pod-1", job))
    world.jobs.finish(job, stdout="")           # the job ran; nobody collected anything
    world.run_until_idle()
    cond = failed(world)
    assert cond["reason"] == c.TRIAL_METRICS_UNAVAILABLE_REASON
    assert cond["message"] == (
        f"Metrics are not available: no metrics collector was injected into pod exp-pod-1: namespace default lacks "
        f"label katib-metricscollector-injection=enabled (kubectl label namespace default "
        f"katib-metricscollector-injection=enabled)")
    assert world.last_condition()[0] == "Failed"   # the experiment ends too: nothing hangs


def test_a_labelled_namespace_whose_pod_has_no_sidecar_blames_the_webhook():
    world, job = one_trial_world({c.NAMESPACE_INJECTION_LABEL: c.NAMESPACE_INJECTION_VALUE})
    world.backend.create(pod("exp-pod-1", job))
    world.jobs.finish(job, stdout="")
    world.run_until_idle()
    assert "the pod webhook mutating.pod.katib.kubeflow.org did not mutate it" in failed(world)["message"]


def test_an_injected_pod_without_metrics_keeps_the_general_message():
    world, job = one_trial_world({c.NAMESPACE_INJECTION_LABEL: c.NAMESPACE_INJECTION_VALUE})
    world.backend.create(pod("exp-pod-1", job, sidecar=True))
    world.jobs.finish(job, stdout="")
    world.run_until_idle()
    assert failed(world)["message"] == ("Metrics are not available: the job succeeded but reported no value of "
                                        "accuracy (StdOut collector)")


def test_kinds_without_a_sidecar_of_ours_are_not_judged_by_pods():
    world, job = one_trial_world(collector={"collector": {"kind": "None"}})
    world.backend.create(pod("exp-pod-1", job))
    world.jobs.finish(job, stdout="")
    world.run_until_idle()
    assert "injected" not in failed(world)["message"]


@pytest.mark.parametrize("kind,labels,expected", [
    ("TFJob", {"tf-job-role": "worker"}, "no pod of TFJob t-1 has label job-role=master or tf-job-role=master"),
    ("PyTorchJob", {}, "no pod of PyTorchJob t-1 has label job-role=master or pytorch-job-role=master"),
    ("TFJob", {"job-role": "master"}, "injected into pod p-0: namespace ns lacks label"),
    ("PyTorchJob", {"pytorch-job-role": "master"}, "injected into pod p-0: namespace ns lacks label"),
])
def test_operator_jobs_are_judged_by_their_master_pod(kind, labels, expected):
    job = {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": {"name": "t-1", "namespace": "ns"}}
    pods = [pod("p-0", job, labels=labels), pod("other", {**job, "metadata": {"name": "t-2", "namespace": "ns"}},
                                                 labels={"job-role": "master"}, sidecar=True)]
    assert expected in missing_collector("File", kind, "t-1", pods, "ns", {})


def test_no_pods_no_judgement():
    """The local kubelet runs jobs without pods (and collects in process): nothing to blame."""
    assert missing_collector("StdOut", "Job", "t", [], "ns", {}) is None
    assert missing_collector("Custom", "Job", "t", [{"metadata": {"name": "p"}}], "ns", {}) is None
