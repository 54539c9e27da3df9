"""Upstream's trap, fixed: a trial whose collector needs the sidecar, whose job's pods got none
(namespace not labelled, pod webhook down with failurePolicy Ignore, no master-labelled pod),
fails when its job ends, with MetricsUnavailable naming the pod and the cause. When the cause
is the webhook (it may have been unreachable for a moment), the job runs once more first."""
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


# ---- a pod the webhook missed: the job runs once more --------------------------------------------
LABELLED = {c.NAMESPACE_INJECTION_LABEL: c.NAMESPACE_INJECTION_VALUE}


def finish_with_pod(world, job, *, sidecar: bool, stdout: str = "") -> None:
    world.backend.create(pod(f"{job['metadata']['name']}-{job['metadata']['uid'][:5]}", job, sidecar=sidecar))
    world.jobs.finish(job, stdout=stdout)
    world.run_until_idle()


def events(world, reason: str) -> list[str]:
    """The messages of the events with this reason, one per occurrence (a repeated event is
    one object with a count)."""
    return [e["message"] for e in world.backend.list("Event", "default") if e.get("reason") == reason
            for _ in range(e.get("count") or 1)]


def test_a_pod_the_webhook_missed_runs_again_and_the_second_run_counts():
    world, first = one_trial_world(LABELLED)
    finish_with_pod(world, first, sidecar=False)
    [trial] = world.trials()
    assert not any(x["type"] in ("Failed", "Succeeded") for x in trial["status"]["conditions"])
    assert trial["metadata"]["annotations"][c.TRIAL_RERUN_ANNOTATION] == first["metadata"]["uid"]
    [second] = world.jobs.jobs()            # the first is gone, with its pod; the same name again
    assert second["metadata"]["name"] == first["metadata"]["name"]
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert [p["metadata"]["name"] for p in world.backend.list("Pod", "default")] == []
    [rerun] = events(world, c.EVENT_JOB_RERUN)
    assert rerun.startswith(f"Job {first['metadata']['name']} runs again: no metrics collector was injected")
    finish_with_pod(world, second, sidecar=True, stdout="accuracy=0.75\n")
    [trial] = world.trials()
    assert world.conditions(trial)[-1] == ("Succeeded", "True", c.TRIAL_SUCCEEDED_REASON)
    assert trial["status"]["observation"]["metrics"] == [{"name": "accuracy", "value": 0.75}]
    assert world.last_condition()[0] == "Succeeded"


def test_a_second_miss_fails_the_trial_and_there_is_no_third_run():
    world, first = one_trial_world(LABELLED)
    finish_with_pod(world, first, sidecar=False)
    [second] = world.jobs.jobs()
    finish_with_pod(world, second, sidecar=False)
    cond = failed(world)
    assert cond["reason"] == c.TRIAL_METRICS_UNAVAILABLE_REASON
    assert cond["message"].endswith("its failurePolicy is Ignore); the same on the job's second run")
    assert world.jobs.jobs() == []
    assert len(events(world, c.EVENT_JOB_RERUN)) == 1
    assert world.last_condition()[0] == "Failed"


def test_other_causes_fail_at_once_without_a_second_run():
    world, job = one_trial_world()          # namespace not labelled: a second run would meet the same
    finish_with_pod(world, job, sidecar=False)
    assert "lacks label" in failed(world)["message"]
    assert events(world, c.EVENT_JOB_RERUN) == []
    assert c.TRIAL_RERUN_ANNOTATION not in (world.trials()[0]["metadata"].get("annotations") or {})


def test_a_crash_between_the_mark_and_the_deletion_resumes_the_rerun(monkeypatch):
    from katib import failpoints

    world, first = one_trial_world(LABELLED)
    crashes = []

    def crash(name):
        if name == "job-rerun-marked" and not crashes:
            crashes.append(name)
            raise RuntimeError("crashed after storing the mark")
    monkeypatch.setattr(failpoints, "hit", crash)
    finish_with_pod(world, first, sidecar=False)
    assert crashes
    [second] = world.jobs.jobs()            # the retried reconcile deleted the marked job: one rerun
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    finish_with_pod(world, second, sidecar=True, stdout="accuracy=0.5\n")
    assert world.conditions(world.trials()[0])[-1][0] == "Succeeded"


def test_the_job_being_deleted_for_the_rerun_is_waited_for_not_judged_again():
    world, first = one_trial_world(LABELLED)
    held = pod("held", first)
    held["metadata"]["finalizers"] = ["test.katib/hold"]          # keeps the foreground deletion going
    held["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = True
    world.backend.create(held)
    world.jobs.finish(first, stdout="")
    world.run_until_idle()
    going = world.backend.get("Job", "default", first["metadata"]["name"])
    assert going["metadata"].get("deletionTimestamp")
    going["status"]["active"] = 0                                    # a change that wakes the trial
    world.backend.update_status(going)
    world.run_until_idle()
    assert len(events(world, c.EVENT_JOB_RERUN)) == 1 and world.jobs.jobs() == []
    assert not any(x["type"] == "Failed" for x in world.trials()[0]["status"]["conditions"])
    stuck = world.backend.get("Pod", "default", "held")
    stuck["metadata"]["finalizers"] = []
    world.backend.update(stuck)
    world.run_until_idle()
    [second] = world.jobs.jobs()
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
