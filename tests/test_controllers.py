"""The three controllers driven step by step on the fake backend with a fake clock."""
from __future__ import annotations

import pytest

from katib.errors import Conflict
from tests.world import World, make_experiment


@pytest.fixture
def world():
    return World()


def names(objs):
    return sorted(o["metadata"]["name"] for o in objs)


def trial_states(world):
    out = {}
    for t in world.trials():
        conds = [c for c in t.get("status", {}).get("conditions", []) if c["status"] == "True"]
        out[t["metadata"]["name"]] = conds[-1]["type"] if conds else None
    return out


# -- start-up ----------------------------------------------------------------------------

def test_first_passes_add_finalizer_then_created_then_suggestion(world):
    world.apply(make_experiment())
    world.run_until_idle()
    exp = world.experiment()
    assert "update-prometheus-metrics" in exp["metadata"]["finalizers"]
    assert world.conditions(exp)[:2] == [("Created", "True", "ExperimentCreated"),
                                          ("Running", "True", "ExperimentRunning")]
    sug = world.suggestion()
    assert sug["spec"] == {"algorithmName": "random", "requests": 3}
    assert sug["metadata"]["ownerReferences"][0]["uid"] == exp["metadata"]["uid"]
    assert [c[0] for c in world.conditions(sug)] == ["Created", "DeploymentReady", "Running"]
    assert sug["status"]["suggestionCount"] == 3


def test_parallel_trial_count_is_respected(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=5))
    world.run_until_idle()
    assert len(world.trials()) == 2
    world.jobs.finish_all(stdout="accuracy=0.9\n")
    world.run_until_idle()
    assert world.experiment()["status"]["trialsSucceeded"] == 2
    assert len(world.trials()) == 4
    assert world.suggestion()["spec"]["requests"] == 4


def test_trial_objects_carry_labels_owner_runspec_and_collector(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    [trial] = world.trials()
    exp = world.experiment()
    sug = world.suggestion()
    assert trial["metadata"]["name"] == sug["status"]["suggestions"][0]["name"]
    assert trial["metadata"]["name"].startswith("exp-") and len(trial["metadata"]["name"]) == 12
    assert trial["metadata"]["labels"] == {"experiment": "exp"}
    assert trial["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
    assert trial["metadata"]["ownerReferences"][0]["uid"] == exp["metadata"]["uid"]
    assert trial["spec"]["metricsCollector"] == {"collector": {"kind": "StdOut"}}
    lr = next(a["value"] for a in trial["spec"]["parameterAssignments"] if a["name"] == "--lr")
    assert f'- "--lr={lr}"' in trial["spec"]["runSpec"]
    [job] = world.jobs.jobs()
    assert job["metadata"]["name"] == trial["metadata"]["name"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == trial["metadata"]["uid"]
    pod_annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations == {"sidecar.istio.io/inject": "false"}
    assert "clean-metrics-in-db" in trial["metadata"]["finalizers"]


# -- end conditions ---------------------------------------------------------------------

def test_max_trial_count_ends_with_exactly_that_many_trials(world):
    world.apply(make_experiment(parallel_trial_count=3, max_trial_count=7))
    world.drive(values=lambda i, job: 0.1 * (i + 1))
    exp = world.experiment()
    assert len(world.trials()) == 7
    assert exp["status"]["trialsSucceeded"] == 7
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    assert ("Running", "False", "ExperimentRunning") in world.conditions(exp)
    assert exp["status"]["completionTime"]


def test_best_trial_is_the_best_observation(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=6, objective_type="minimize"))
    seen = iter([0.5, 0.2, 0.7, 0.1, 0.3, 0.9])
    world.drive(values=lambda i, job: next(seen))
    status = world.experiment()["status"]
    values = {t["metadata"]["name"]: t["status"]["observation"]["metrics"][0]["value"] for t in world.trials()}
    best = min(values, key=values.get)
    assert status["currentOptimalTrial"]["bestTrialName"] == best
    assert status["currentOptimalTrial"]["observation"]["metrics"] == [{"name": "accuracy", "value": 0.1}]
    trial = world.backend.get("Trial", "default", best)
    assert status["currentOptimalTrial"]["parameterAssignments"] == trial["spec"]["parameterAssignments"]


def test_goal_reached_ends_and_kills_running_trials(world):
    world.apply(make_experiment(parallel_trial_count=3, max_trial_count=10, goal=0.8))
    world.run_until_idle()
    world.jobs.start_all()
    world.run_until_idle()
    first, *others = world.jobs.jobs()
    world.jobs.finish(first, stdout="accuracy=0.85\n")
    world.run_until_idle()
    assert world.last_condition() == ("Succeeded", "True", "ExperimentGoalReached")
    states = trial_states(world)
    assert sorted(states.values()) == ["Killed", "Killed", "Succeeded"]
    assert world.jobs.jobs() == []  # killed trials' jobs are deleted
    status = world.experiment()["status"]
    assert status["trialsKilled"] == 2 and status["trialsSucceeded"] == 1
    assert len(world.trials()) == 3


def test_max_failed_trial_count_fails_the_experiment(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=10, max_failed_trial_count=1))
    world.run_until_idle()
    world.jobs.finish_all(succeeded=False)
    world.run_until_idle()
    exp = world.experiment()
    assert world.last_condition() == ("Failed", "True", "ExperimentFailed")
    assert exp["status"]["conditions"][-1]["message"] == "Experiment has failed because max failed count has reached"
    assert exp["status"]["trialsFailed"] == 2


def test_failed_count_equal_to_max_failed_does_not_fail(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=3, max_failed_trial_count=1))
    world.run_until_idle()
    world.jobs.finish_all(succeeded=False)
    world.run_until_idle()
    assert world.last_condition() == ("Running", "True", "ExperimentRunning")


def test_job_without_objective_metric_fails_trial_as_metrics_unavailable(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=2, max_failed_trial_count=5))
    world.run_until_idle()
    world.jobs.finish_all(stdout="loss=0.3\n")
    world.run_until_idle()
    trial = world.trials()[0]
    failed = [c for c in trial["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "MetricsUnavailable" and failed["status"] == "True"
    assert world.experiment()["status"]["trialsFailed"] == 1
    assert len(world.trials()) == 2  # a replacement was started


def test_grid_exhaustion_ends_with_suggestion_end_reached(world):
    params = [{"name": "--layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
              {"name": "--opt", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}]
    world.apply(make_experiment(algorithm="grid", parameters=params, parallel_trial_count=4,
                                max_trial_count=None))
    world.drive()
    trials = world.trials()
    points = {tuple((a["name"], a["value"]) for a in t["spec"]["parameterAssignments"]) for t in trials}
    assert len(points) == len(trials)
    assert world.last_condition() == ("Succeeded", "True", "ExperimentSuggestionEndReached")
    assert world.conditions(world.suggestion())[-1][2] == "SuggestionExhausted"


def test_invalid_algorithm_settings_fail_at_admission(world):
    from katib.errors import Invalid
    with pytest.raises(Invalid) as err:
        world.apply(make_experiment(settings=[{"name": "no_such", "value": "1"}]))
    assert "spec.algorithm.algorithmSettings" in str(err.value)


# -- parallelism and resume -------------------------------------------------------------

def test_lowering_parallelism_deletes_nothing_and_waits(world):
    world.apply(make_experiment(parallel_trial_count=3, max_trial_count=10))
    world.run_until_idle()
    first = world.jobs.jobs()[0]
    world.jobs.finish(first, stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert len(world.trials()) == 4
    exp = world.experiment()
    exp["spec"]["parallelTrialCount"] = 1
    world.backend.update(exp)
    world.run_until_idle()
    assert len(world.trials()) == 4  # nothing deleted, completed trial kept
    jobs = world.jobs.jobs()
    world.jobs.finish(jobs[0], stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert len(world.trials()) == 4  # still 2 active >= 1: no new trial
    for job in world.jobs.jobs():
        world.jobs.finish(job, stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert len(world.trials()) == 5  # back under the limit: one at a time
    assert world.experiment()["status"]["trialsSucceeded"] == 4


def test_raising_parallelism_starts_more(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=10))
    world.run_until_idle()
    exp = world.experiment()
    exp["spec"]["parallelTrialCount"] = 4
    world.backend.update(exp)
    world.run_until_idle()
    assert len(world.trials()) == 4


def test_long_running_restarts_when_max_trial_count_is_raised(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2))
    world.drive()
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    exp = world.experiment()
    exp["spec"]["maxTrialCount"] = 4
    world.backend.update(exp)
    world.run_until_idle()
    types = [c[0] for c in world.conditions(world.experiment())]
    assert types == ["Created", "Restarting", "Running"]
    world.drive()
    assert len(world.trials()) == 4
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")


def test_never_resume_terminates_suggestion_and_cannot_restart(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2, resume_policy="Never"))
    world.drive()
    sug = world.suggestion()
    assert world.conditions(sug)[-1] == ("Succeeded", "True", "SuggestionSucceeded")
    exp = world.experiment()
    exp["spec"]["maxTrialCount"] = 5
    world.backend.update(exp)
    world.run_until_idle()
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    assert len(world.trials()) == 2


def test_goal_reached_is_not_restartable(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=3, goal=0.4))
    world.drive()
    exp = world.experiment()
    exp["spec"]["maxTrialCount"] = 9
    world.backend.update(exp)
    world.run_until_idle()
    assert world.last_condition() == ("Succeeded", "True", "ExperimentGoalReached")


# -- retain, deletion --------------------------------------------------------------------

def test_jobs_are_deleted_after_completion_unless_retained(world):
    world.apply(make_experiment(name="gone", parallel_trial_count=1, max_trial_count=1))
    world.apply(make_experiment(name="kept", parallel_trial_count=1, max_trial_count=1, retain=True))
    world.drive()
    remaining = [j["metadata"]["name"] for j in world.backend.list("Job")]
    kept = [t["metadata"]["name"] for t in world.trials() if t["metadata"]["labels"]["experiment"] == "kept"]
    assert remaining == kept


def test_delete_experiment_cascades_and_cleans_observations(world):
    from katib.db import get_observation_log
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2))
    world.drive()
    trial_names = names(world.trials())
    assert all(get_observation_log(world.db, n) for n in trial_names)
    world.backend.delete("Experiment", "default", "exp")
    world.run_until_idle()
    assert world.backend.list("Experiment") == []
    assert world.backend.list("Suggestion") == []
    assert world.trials() == []
    assert world.backend.list("Job") == []
    assert not any(get_observation_log(world.db, n) for n in trial_names)


# -- robustness ---------------------------------------------------------------------------

@pytest.mark.parametrize("op,kind", [("update_status", "Experiment"), ("update_status", "Trial"),
                                     ("update_status", "Suggestion"), ("update", "Suggestion"),
                                     ("create", "Trial"), ("update", "Trial")])
def test_conflicts_on_writes_are_retried(world, op, kind):
    world.backend.inject(op=op, kind=kind, error=Conflict("injected"), times=2)
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=4))
    world.drive(values=lambda i, job: 0.3)
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    assert len(world.trials()) == 4


def test_crash_between_recording_assignments_and_creating_trials(world):
    """Assignments recorded but no Trial created: a fresh control plane creates exactly those."""
    world.backend.inject(op="create", kind="Trial", error=RuntimeError("crash"), times=1)
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2))
    world.run_until_idle(jump_clock=False)  # the process "dies" before its retry is due
    recorded = [s["name"] for s in world.suggestion()["status"]["suggestions"]]
    assert len(recorded) == 2 and world.trials() == []
    world.manager.sync()
    world.run_until_idle()
    assert names(world.trials()) == sorted(recorded)
    assert world.suggestion()["status"]["suggestionCount"] == 2


def test_many_trials_one_reconcile_each_keeps_counts_consistent(world):
    world.apply(make_experiment(parallel_trial_count=5, max_trial_count=40, max_failed_trial_count=100))
    i = 0
    for _ in range(100):
        world.run_until_idle()
        jobs = world.jobs.jobs()
        if not jobs:
            break
        for job in jobs[:2]:
            i += 1
            world.jobs.finish(job, stdout=f"accuracy={i / 100}\n", succeeded=i % 5 != 0)
    world.run_until_idle()
    status = world.experiment()["status"]
    assert status["trials"] == 40
    assert status["trialsSucceeded"] + status["trialsFailed"] == 40
    assert status["trialsFailed"] == 8
    assert len(status["succeededTrialList"]) == status["trialsSucceeded"]


def test_suggestion_status_keeps_only_unconsumed_assignments(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=12))
    world.drive()
    sug = world.suggestion()
    assert sug["status"]["suggestionCount"] == 12
    assert len(sug["status"]["suggestions"]) <= 2
    trial_names = set(names(world.trials()))
    assert len(trial_names) == 12
    assert {s["name"] for s in sug["status"]["suggestions"]} <= trial_names


def test_restart_clears_completion_time(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.drive()
    assert world.experiment()["status"]["completionTime"]
    exp = world.experiment()
    exp["spec"]["maxTrialCount"] = 2
    world.backend.update(exp)
    world.run_until_idle()
    assert world.experiment()["status"].get("completionTime") is None
    world.drive()
    assert world.experiment()["status"]["completionTime"]


def test_additional_metrics_are_observed_beside_the_objective_with_their_latest_value(world):
    exp = make_experiment(parallel_trial_count=1, max_trial_count=1)
    exp["spec"]["objective"]["additionalMetricNames"] = ["loss", "recall", "lr"]
    world.apply(exp)
    world.run_until_idle()
    # loss reported twice (the latest counts); recall never; lr without a number
    world.jobs.finish_all(stdout="loss=0.4\naccuracy=0.8\nloss=0.25\nlr=\n")
    world.run_until_idle()
    [trial] = world.trials()
    assert trial["status"]["observation"]["metrics"] == [{"name": "accuracy", "value": 0.8},
                                                         {"name": "loss", "value": 0.25}]
    assert world.experiment()["status"]["currentOptimalTrial"]["observation"]["metrics"][0] == \
        {"name": "accuracy", "value": 0.8}


def test_the_experiments_own_write_of_a_suggestion_wakes_only_the_suggestion_controller():
    """The experiment asks its Suggestion for more by writing spec.requests; that change is
    for the suggestion controller. A change of the Suggestion by anyone else (its answer)
    wakes the experiment."""
    from katib.controllers.experiment import CONTROLLER

    world = World()
    world.apply(make_experiment())
    world.run_until_idle()
    sug = world.suggestion()
    asked = world.ctx.wrote(CONTROLLER, world.backend.update(
        {**sug, "spec": {**sug["spec"], "requests": sug["spec"]["requests"] + 1}}))
    world.manager.informers.poll()
    queued = set(world.ctx.queue._queued)
    assert ("suggestion", "default", "exp") in queued and ("experiment", "default", "exp") not in queued
    world.run_until_idle()
    answered = world.suggestion()
    assert answered["metadata"]["resourceVersion"] != asked["metadata"]["resourceVersion"]
    assert answered["status"]["suggestionCount"] == asked["spec"]["requests"]
