"""Why a trial failed, from the Job to the screen: the trial's Failed condition carries the
Job's reason, MetricsUnavailable names the metric and the collector, an assignment the template
cannot be rendered for becomes a Failed trial, and the final table shows all of it."""
from __future__ import annotations

import copy

import pytest

from katib import report
from katib.api import constants as c
from tests.world import JOB_TEMPLATE, World, make_experiment


@pytest.fixture
def world():
    return World()


def failed_condition(trial: dict) -> dict:
    return next(x for x in trial["status"]["conditions"] if x["type"] == "Failed" and x["status"] == "True")


# -- the trial's condition -------------------------------------------------------------

def test_failed_job_reason_and_message_reach_the_trial_condition(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    [job] = world.jobs.jobs()
    world.jobs.finish(job, succeeded=False, message="exit code 2")
    world.run_until_idle()
    [trial] = world.trials()
    cond = failed_condition(trial)
    assert cond["reason"] == c.TRIAL_FAILED_REASON
    assert cond["message"] == "Trial has failed: BackoffLimitExceeded: exit code 2"
    assert report.trial_reason(trial) == "BackoffLimitExceeded: exit code 2"
    assert trial["status"]["conditions"][-1]["type"] == "Failed"   # what kubectl shows


def finish_without_metric(world, collector=None) -> dict:
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1, collector=collector))
    world.run_until_idle()
    [job] = world.jobs.jobs()
    world.jobs.finish(job, stdout="loss=0.3\n")   # succeeded, but no accuracy
    world.run_until_idle()
    [trial] = world.trials()
    return failed_condition(trial)


def test_metrics_unavailable_names_the_metric_and_the_stdout_collector(world):
    cond = finish_without_metric(world)
    assert cond["reason"] == c.TRIAL_METRICS_UNAVAILABLE_REASON
    assert cond["message"] == ("Metrics are not available: the job succeeded but reported no value of "
                               "accuracy (StdOut collector)")


def test_metrics_unavailable_names_the_file_collector_and_its_path(world, tmp_path):
    path = str(tmp_path / "metrics.log")
    cond = finish_without_metric(world, {"collector": {"kind": "File"},
                                         "source": {"fileSystemPath": {"path": path, "kind": "File"}}})
    assert f"accuracy (File collector reading {path})" in cond["message"]


def test_metrics_unavailable_names_a_custom_filter(world):
    fmt = r"(\w+):\s*(\d+\.\d+)"
    cond = finish_without_metric(world, {"collector": {"kind": "StdOut"},
                                         "source": {"filter": {"metricsFormat": [fmt]}}})
    assert cond["message"].endswith(f"(StdOut collector with filter {fmt!r})")


# -- an assignment the template cannot be rendered for --------------------------------

def apply_with_configmap_template(world, **over) -> None:
    world.apply({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "tmpl", "namespace": "default"}, "data": {"job.yaml": JOB_TEMPLATE}})
    exp = make_experiment(**over)
    exp["spec"]["trialTemplate"] = {"goTemplate": {"templateSpec": {
        "configMapName": "tmpl", "configMapNamespace": "default", "templatePath": "job.yaml"}}}
    world.apply(exp)   # admitted with the good template
    cm = world.backend.get("ConfigMap", "default", "tmpl")
    cm["data"]["job.yaml"] = JOB_TEMPLATE + "  broken: [unclosed\n"   # edited after admission
    world.backend.update(cm)


def test_unrenderable_assignment_fails_its_trial_and_the_experiment_ends(world):
    apply_with_configmap_template(world, parallel_trial_count=3, max_trial_count=6, max_failed_trial_count=3)
    world.run_until_idle()
    world.run_until_idle()
    trials = world.trials()
    assert len(trials) == 6 and not world.jobs.jobs()       # no Job for any of them
    for trial in trials:
        cond = failed_condition(trial)
        assert cond["reason"] == c.TRIAL_INVALID_TEMPLATE_REASON
        assert cond["message"].startswith("Trial has failed: spec.trialTemplate cannot be rendered")
        assert "YAML" in cond["message"]           # the decoder's own words
        assert trial["spec"]["runSpec"] == ""
    assert world.last_condition() == ("Failed", "True", c.EXPERIMENT_FAILED_REASON)
    assert world.experiment()["status"]["trialsFailed"] == 4 + 2   # 4 > maxFailed 3; the rest failed too


def test_unrenderable_trial_is_created_once_with_its_reason_and_nothing_repeats(world):
    apply_with_configmap_template(world, parallel_trial_count=1, max_trial_count=2, max_failed_trial_count=5)
    world.run_until_idle()
    trials = world.trials()
    assert [t["metadata"]["annotations"][c.TRIAL_TEMPLATE_ERROR_ANNOTATION] for t in trials]
    assert all(t["metadata"]["finalizers"] == [c.FINALIZER_CLEAN_DB] for t in trials)
    assert world.experiment()["status"]["trialsFailed"] == 2
    assert world.last_condition() == ("Succeeded", "True", c.EXPERIMENT_MAX_TRIALS_REACHED_REASON)
    versions = {t["metadata"]["name"]: t["metadata"]["resourceVersion"] for t in world.trials()}
    world.run_until_idle()
    assert {t["metadata"]["name"]: t["metadata"]["resourceVersion"] for t in world.trials()} == versions


def test_trial_with_template_error_annotation_fails_without_a_job(world):
    """The trial controller's half alone: a Trial carrying the error (say, created just before a
    crash) fails with it on its first reconcile."""
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    [trial] = world.trials()
    bare = copy.deepcopy(trial)
    bare["metadata"] = {"name": "t-x", "namespace": "default", "labels": trial["metadata"]["labels"],
                        "ownerReferences": trial["metadata"]["ownerReferences"],
                        "annotations": {c.TRIAL_TEMPLATE_ERROR_ANNOTATION: "it broke"}}
    bare["spec"]["runSpec"] = ""
    bare.pop("status", None)
    world.apply(bare)
    world.run_until_idle()
    t = world.backend.get("Trial", "default", "t-x")
    assert (failed_condition(t)["reason"], failed_condition(t)["message"]) == (
        c.TRIAL_INVALID_TEMPLATE_REASON, "Trial has failed: it broke")
    assert [x["type"] for x in t["status"]["conditions"]] == ["Created", "Failed"]


# -- the table ---------------------------------------------------------------------------

def test_table_shows_reasons_failures_with_logs_and_no_success_line(world):
    world.apply(make_experiment(parallel_trial_count=3, max_trial_count=3, max_failed_trial_count=5))
    world.run_until_idle()
    jobs = world.jobs.jobs()
    world.jobs.finish(jobs[0], succeeded=False, message="exit code 2")
    world.jobs.finish(jobs[1], stdout="nothing\n")
    world.jobs.finish(jobs[2], succeeded=False, message="exit code 2")
    world.run_until_idle()
    trials = world.trials()
    text = report.final_table(world.experiment(), trials, log_path=lambda name: f"/logs/{name}.log")
    rows = [line for line in text.splitlines() if line.startswith("exp-")]
    assert len(rows) == 3
    assert sum("BackoffLimitExceeded: exit code 2" in r for r in rows) == 2
    [silent] = [r for r in rows if "MetricsUnavailable: the job succeeded" in r]
    assert silent.endswith("…") and len(silent.split("  ")[-1].strip()) == report.REASON_WIDTH  # cut in the row
    assert ": MetricsUnavailable: the job succeeded but reported no value of accuracy (StdOut collector)" in text
    assert "REASON" in text.splitlines()[text.splitlines().index("") + 1]
    for t in trials:
        assert f"    output: /logs/{t['metadata']['name']}.log" in text
    assert text.splitlines()[-1] == ("No trial succeeded: 2 of 3 trial(s) ended with "
                                     "BackoffLimitExceeded: exit code 2 (1 other reason(s) above).")


def test_a_log_named_in_the_reason_is_not_repeated_and_stays_out_of_the_column(world):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    [job] = world.jobs.jobs()
    world.jobs.finish(job, succeeded=False, message="exit code 2; output: /logs/x.log")
    world.run_until_idle()
    text = report.final_table(world.experiment(), world.trials(), log_path=lambda name: "/logs/x.log")
    [row] = [line for line in text.splitlines() if line.startswith("exp-")]
    assert row.endswith("BackoffLimitExceeded: exit code 2")
    assert text.count("/logs/x.log") == 1 and ": BackoffLimitExceeded: exit code 2; output: /logs/x.log" in text


def test_table_lists_a_handful_of_failures_and_counts_the_rest(world):
    world.apply(make_experiment(parallel_trial_count=8, max_trial_count=8, max_failed_trial_count=10))
    world.run_until_idle()
    world.jobs.finish_all(succeeded=False)
    world.run_until_idle()
    text = report.final_table(world.experiment(), world.trials())
    listed = text.split("Failed trials:\n", 1)[1].splitlines()
    assert len([line for line in listed if line.startswith("  exp-")]) == report.SHOWN_FAILURES
    assert f"  ... and {8 - report.SHOWN_FAILURES} more" in listed
    assert "output:" not in text   # no log known: no pointer


def test_table_without_failures_has_no_failure_list_nor_no_success_line(world):
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2))
    world.drive()
    text = report.final_table(world.experiment(), world.trials())
    assert "Failed trials" not in text and "No trial succeeded" not in text


def test_an_algorithm_error_fails_the_suggestion_and_the_table_shows_it(world, monkeypatch):
    from katib.algorithms import registry

    def broken(request):
        raise ValueError("no model can be fitted")
    monkeypatch.setattr(registry, "suggest", broken)
    world.apply(make_experiment())
    world.run_until_idle()
    sug = world.suggestion()
    assert world.experiment()["status"]["conditions"][-1]["type"] == "Failed"   # not a retry loop
    text = report.final_table(world.experiment(), world.trials(), suggestion=sug)
    message = next(x["message"] for x in sug["status"]["conditions"] if x["type"] == "Failed")
    assert message == "algorithm random failed: ValueError: no model can be fitted"
    assert f"Suggestion failed: {message}" in text.splitlines()
    assert text.splitlines()[-1] == "No trial succeeded: the Suggestion failed."


# -- progress ------------------------------------------------------------------------------

def test_progress_counts_killed_and_ticks_running_ages():
    exp = make_experiment()
    exp["status"] = {"conditions": [{"type": "Running", "status": "True"}], "trialsSucceeded": 1,
                     "trialsFailed": 2, "trialsKilled": 3, "trialsRunning": 2}
    first = report.progress(exp, elapsed=75, running_ages=[130.0, 4.0])
    later = report.progress(exp, elapsed=76, running_ages=[131.0, 5.0])
    assert "6/6 done: 1 succeeded, 2 failed, 3 killed, 2 running" in first.state
    assert first.clock == "2 running (oldest 2m10s), elapsed 1m15s"
    assert later.state == first.state and later.clock != first.clock
    assert report.progress(exp, elapsed=3).clock == "elapsed 3s"


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3725, "1h02m")])
def test_durations(seconds, text):
    assert report.fmt_duration(seconds) == text
