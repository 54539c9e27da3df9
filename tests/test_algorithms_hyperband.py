"""hyperband on its own (algorithms.md §6): the bracket arithmetic, the whole schedule with
promotions by the objective, short replies while a rung runs, failed trials, the end of the
search, JSON state and the replay from trials when the state is lost."""
from __future__ import annotations

import json
import math
import re

import pytest

from katib.algorithms import hyperband
from katib.algorithms.base import SuggestRequest, TrialRecord
from katib.algorithms.registry import suggest

PARAMETERS = [
    {"name": "--lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
    {"name": "--num-epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},
    {"name": "--optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam", "ftrl"]}},
]
SETTINGS = {"r_l": "9", "resource_name": "--num-epochs", "eta": "3"}
EXAMPLE_SCHEDULE = [(2, 0, 9, 1.0), (2, 1, 3, 3.0), (2, 2, 1, 9.0), (1, 0, 5, 3.0), (1, 1, 2, 9.0), (0, 0, 3, 9.0)]


def request(*, trials=(), state=None, count=9, settings=None, objective="maximize", parameters=None, seed=5):
    return SuggestRequest(algorithm="hyperband", parameters=parameters or PARAMETERS, objective_type=objective,
                          trials=list(trials), count=count, settings=dict(settings or SETTINGS), state=state,
                          seed=seed, parallel_trial_count=9)


def score(assignment: dict) -> float:
    return float(assignment["--lr"]) * float(assignment["--num-epochs"])


class Driver:
    """Plays the controller: asks, turns every assignment into a trial, finishes trials."""

    def __init__(self, **kw):
        self.kw, self.trials, self.state, self.replies = kw, [], None, []

    def ask(self, count=9, *, state="keep"):
        reply = suggest(request(trials=self.trials, state=self.state if state == "keep" else state,
                                count=count, **self.kw))
        self.state = json.loads(json.dumps(reply.state))  # what Suggestion status stores
        self.replies.append(reply)
        for assignment in reply.assignments:
            self.trials.append(TrialRecord(name=f"t-{len(self.trials)}", assignments=dict(assignment),
                                           condition="Running", value=None))
        return reply

    def finish(self, *, value=score, condition="Succeeded", which=None):
        for i, trial in enumerate(self.trials):
            if trial.condition == "Running" and (which is None or which(i, trial)):
                trial.condition = condition
                trial.value = value(trial.assignments) if condition == "Succeeded" else None

    def run(self, count=9, **finish):
        """Ask and finish until the search has ended; returns the rungs as handed out."""
        rungs = []
        for _ in range(50):
            reply = self.ask(count)
            if reply.assignments:
                rungs.append([dict(a) for a in reply.assignments])
            if reply.exhausted:
                self.finish(**finish)
                return rungs
            self.finish(**finish)
        raise AssertionError("the schedule did not end")


def test_bracket_arithmetic_of_the_upstream_example():
    assert hyperband.schedule(9, 3) == EXAMPLE_SCHEDULE
    plan = hyperband.Plan(eta=3, r_l=9.0, resource_name="x")
    assert (plan.s_max, plan.budget) == (2, 27.0)
    big = hyperband.schedule(81, 3)
    assert [n for s, i, n, r in big if i == 0] == [81, 34, 15, 8, 5]
    assert [r for s, i, n, r in big if s == 4] == [1.0, 3.0, 9.0, 27.0, 81.0]
    assert sum(n for _, _, n, _ in big) == 211


def test_s_max_truncates_as_upstream_and_the_validation():
    # log(1000)/log(10) = 2.9999999999999996: upstream's int() gives 2, and so does largest_bracket
    assert hyperband.Plan(eta=10, r_l=1000.0, resource_name="x").s_max == 2
    assert hyperband.largest_bracket(1000.0, 10) == 100 == hyperband.schedule(1000, 10)[0][2]


def test_the_whole_schedule_runs_and_promotes_the_best_third():
    driver = Driver()
    rungs = driver.run()
    assert [(len(r), r[0]["--num-epochs"]) for r in rungs] == [(n, str(int(r))) for _, _, n, r in EXAMPLE_SCHEDULE]
    first, second, third = rungs[:3]
    best = sorted(first, key=score, reverse=True)
    strip = lambda a: (a["--lr"], a["--optimizer"])  # noqa: E731
    assert [strip(a) for a in second] == [strip(a) for a in best[:3]]
    assert [strip(a) for a in third] == [strip(max(second, key=score))]
    # new configurations (rung 0 of each bracket) never repeat one handed out before
    fresh = [strip(a) for rung in (rungs[0], rungs[3], rungs[5]) for a in rung]
    assert len(fresh) == len(set(fresh)) == 17
    assert driver.replies[-1].exhausted and driver.replies[-1].assignments
    after = driver.ask()
    assert (after.assignments, after.exhausted) == ([], True)


def test_minimize_promotes_the_smallest():
    driver = Driver(objective="minimize")
    rungs = driver.run()
    strip = lambda a: a["--lr"]  # noqa: E731
    assert [strip(a) for a in rungs[1]] == [strip(a) for a in sorted(rungs[0], key=score)[:3]]


def test_a_running_rung_gets_a_short_reply_and_no_more_than_it_needs():
    driver = Driver()
    first = driver.ask(4)
    assert len(first.assignments) == 4 and not first.exhausted
    assert len(driver.ask(9).assignments) == 5          # the rest of rung 0 (9), not 9 more
    assert driver.ask(9).assignments == []              # waiting for rung 0's trials
    driver.finish(which=lambda i, t: i < 8)
    reply = driver.ask(9)
    assert (reply.assignments, reply.exhausted) == ([], False)  # one trial still running
    driver.finish()
    assert [dict(a)["--num-epochs"] for a in driver.ask(9).assignments] == ["3", "3", "3"]


def test_failed_trials_are_never_promoted_and_an_all_failed_rung_ends_its_bracket():
    driver = Driver()
    driver.ask()
    failed = {t.name for t in driver.trials[:7]}
    driver.finish(condition="Failed", which=lambda i, t: t.name in failed)
    driver.finish(value=lambda a: math.nan, which=lambda i, t: i == 7)  # NaN: not promoted either
    driver.finish()
    promoted = driver.ask()
    assert [dict(a)["--lr"] for a in promoted.assignments] == [driver.trials[8].assignments["--lr"]]
    driver.finish(condition="Failed")
    nxt = driver.ask()   # bracket s=2 is over (its rung 1 failed): bracket s=1 starts
    assert [dict(a)["--num-epochs"] for a in nxt.assignments] == ["3"] * 5


def test_state_is_json_and_a_restart_from_it_continues_the_same_schedule():
    straight = Driver()
    straight.run()
    restarted = Driver()
    for step in range(len(straight.replies)):
        restarted.state = json.loads(json.dumps(restarted.state))
        again = suggest(request(trials=restarted.trials, state=restarted.state))
        assert again.assignments == restarted.ask().assignments  # same input, same output
        assert restarted.replies[-1].assignments == straight.replies[step].assignments
        restarted.finish()


@pytest.mark.parametrize("lost_after,promotion", [(1, True), (2, True), (3, False), (4, True), (5, False)])
def test_lost_state_is_replayed_from_the_trials(lost_after, promotion):
    """Without state, the position comes from the trials: the same promotions, or a new
    bracket's new configurations (at its resource, none used before)."""
    straight = Driver()
    straight.run()
    replayed = Driver()
    for _ in range(lost_after):
        replayed.ask()
        replayed.finish()
    used = {(t.assignments["--lr"], t.assignments["--optimizer"]) for t in replayed.trials}
    reply = replayed.ask(state=None)
    expected = straight.replies[lost_after].assignments
    if promotion:
        assert reply.assignments == expected
    else:
        assert [dict(a)["--num-epochs"] for a in reply.assignments] == [dict(a)["--num-epochs"] for a in expected]
        assert not {(dict(a)["--lr"], dict(a)["--optimizer"]) for a in reply.assignments} & used
    assert reply.exhausted == straight.replies[lost_after].exhausted


def test_lost_state_while_a_rung_runs_waits_for_it():
    driver = Driver()
    driver.ask(6)
    driver.finish(which=lambda i, t: i < 3)
    reply = driver.ask(9, state=None)
    assert [dict(a)["--num-epochs"] for a in reply.assignments] == ["1"] * 3  # the rest of rung 0
    assert driver.ask(9, state=None).assignments == []


def test_a_small_space_shrinks_the_rungs_and_ends():
    parameters = [{"name": "units", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
                  {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}]
    driver = Driver(parameters=parameters, settings={"r_l": "9", "resource_name": "epochs"})
    rungs = driver.run(value=lambda a: float(a["units"]))
    assert [len(r) for r in rungs] == [4, 2, 1]   # 4 configurations only: bracket 2 uses them all
    assert sorted(a["units"] for a in rungs[1]) == ["3", "4"]


def test_double_resource_keeps_its_fraction_and_same_seed_same_reply():
    parameters = [PARAMETERS[0], {"name": "budget", "parameterType": "double",
                                  "feasibleSpace": {"min": "0.1", "max": "10"}}]
    reply = suggest(request(parameters=parameters, settings={"r_l": "10", "resource_name": "budget", "eta": "2"}))
    assert {dict(a)["budget"] for a in reply.assignments} == {"1.25"}  # 10 / 2**3
    again = suggest(request(parameters=parameters, settings={"r_l": "10", "resource_name": "budget", "eta": "2"}))
    assert again.assignments == reply.assignments


def test_upstream_state_keys_are_written_to_the_settings():
    reply = suggest(request())
    assert reply.settings == {"eta": "3", "s_max": "2", "r_l": "9.0", "b_l": "27.0", "r": "1.0", "n": "9",
                              "current_s": "2", "current_i": "0", "resource_name": "--num-epochs",
                              "evaluating_trials": "9"}


@pytest.mark.parametrize("settings,message", [
    ({"eta": "3"}, "r_l and resource_name must be set."),
    ({"r_l": "-1", "resource_name": "--num-epochs"}, "r_l must be a positive float number."),
    ({"r_l": "9", "resource_name": "--num-epochs", "eta": "x"}, 'eta must be a number, got "x"'),
    ({"r_l": "9", "resource_name": "--nope"}, "value of resource_name setting must be in parameters."),
])
def test_unusable_settings_raise_with_upstream_messages(settings, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        suggest(request(settings=settings))
