"""The suggestion controller off the reconcile path and with short replies.

  * hyperband's whole schedule on the World (fake backend, fake clock): rungs and resources as
    the arithmetic says, promotions, ExperimentSuggestionEndReached, also when maxTrialCount
    leaves no change of spec.requests to wake the Suggestion; a restart (state in, same
    schedule out) and a lost state;
  * a slow algorithm on real threads: another experiment's trials are created and finish while
    its call runs, it is reported as slow, a restart during the call repeats it and nothing is
    duplicated, a reply to a Suggestion that changed meanwhile is dropped."""
from __future__ import annotations

import threading
import time
import types
from collections import Counter

import pytest

from katib.algorithms import hyperband
from katib.algorithms import random as random_algorithm
from katib.algorithms.registry import ALGORITHMS
from katib.controllers import suggestion as suggestion_controller
from katib.controllers.context import Context
from katib.controllers.manager import Manager
from tests.world import SteppedQueue, World, make_experiment

PARAMETERS = [
    {"name": "--lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
    {"name": "--num-epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},
]
SETTINGS = [{"name": "r_l", "value": "9"}, {"name": "resource_name", "value": "--num-epochs"},
            {"name": "eta", "value": "3"}]
SCHEDULE = hyperband.schedule(9, 3)   # 9, 3, 1 | 5, 2 | 3 trials
TOTAL = sum(n for _, _, n, _ in SCHEDULE)


def hyperband_experiment(**over):
    kw = dict(algorithm="hyperband", parallel_trial_count=9, max_trial_count=None, max_failed_trial_count=None,
              parameters=PARAMETERS, settings=SETTINGS)
    return make_experiment(**{**kw, **over})


def assignments(trial: dict) -> dict:
    return {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]}


def score(job: dict) -> float:
    """The objective a job prints: lr × epochs (so more resource is better, as in training)."""
    args = dict(arg.split("=", 1) for arg in job["spec"]["template"]["spec"]["containers"][0]["command"][2:])
    return float(args["--lr"]) * float(args["--num-epochs"])


def run_schedule(world: World, *, rounds: int = 12, on_round=None) -> list[list[dict]]:
    """Finish every running job, round after round; returns the trials created in each round."""
    world.run_until_idle()
    seen, created = set(), []
    for number in range(rounds):
        new = [t for t in world.trials() if t["metadata"]["name"] not in seen]
        seen |= {t["metadata"]["name"] for t in new}
        if new:
            created.append(sorted(new, key=lambda t: t["metadata"]["creationTimestamp"]))
        if not world.jobs.finish_all(values=lambda i, job: score(job)):
            break
        world.run_until_idle()
        if on_round:
            on_round(number)
    return created


def trials_in_order(world: World) -> list[dict]:
    return [assignments(t) for t in sorted(world.trials(), key=lambda t: (t["metadata"]["creationTimestamp"],
                                                                          t["metadata"]["resourceVersion"]))]


# -- hyperband on the World ----------------------------------------------------------------

@pytest.mark.parametrize("max_trial_count,reason", [
    (None, "ExperimentSuggestionEndReached"), (100, "ExperimentSuggestionEndReached"),
    # the last rungs change no spec.requests (each finished trial lowers what may still run):
    # the Suggestion still learns that its rung is over
    (TOTAL, "ExperimentMaxTrialsReached"),
])
def test_hyperband_runs_every_rung_and_ends_with_suggestion_end_reached(max_trial_count, reason):
    world = World()
    world.apply(hyperband_experiment(max_trial_count=max_trial_count))
    rounds = run_schedule(world)
    assert [len(r) for r in rounds] == [n for _, _, n, _ in SCHEDULE]
    assert [{assignments(t)["--num-epochs"] for t in r} for r in rounds] == [{str(int(r))} for *_, r in SCHEDULE]
    # promoted: the best third of the rung before, with the larger resource
    first, second, third = ([assignments(t) for t in r] for r in rounds[:3])
    best = sorted(first, key=lambda a: float(a["--lr"]), reverse=True)
    assert [a["--lr"] for a in second] == [a["--lr"] for a in best[:3]]
    assert [a["--lr"] for a in third] == [max(second, key=lambda a: float(a["--lr"]))["--lr"]]
    exp = world.experiment()
    assert world.last_condition() == ("Succeeded", "True", reason)
    assert exp["status"]["trialsSucceeded"] == TOTAL == len(world.trials())
    if reason == "ExperimentSuggestionEndReached":
        assert world.conditions(world.suggestion())[-1] == ("Succeeded", "True", "SuggestionExhausted")
    world.run_until_idle()
    assert world.next_due() is None   # a completed experiment's Suggestion checks nothing more


def test_hyperband_continues_the_same_schedule_after_a_restart():
    straight = World()
    straight.apply(hyperband_experiment())
    run_schedule(straight)
    expected = trials_in_order(straight)

    world = World()
    world.apply(hyperband_experiment())

    def restart(number):
        if number in (0, 3):   # after rung 0 and in bracket 1: a new process, same store
            restart_process(world)
            world.run_until_idle()
    run_schedule(world, on_round=restart)
    assert trials_in_order(world) == expected
    assert world.last_condition() == ("Succeeded", "True", "ExperimentSuggestionEndReached")


def test_hyperband_with_lost_state_rebuilds_it_from_the_trials():
    world = World()
    world.apply(hyperband_experiment())

    def lose_state(number):
        sug = world.suggestion()
        if sug["status"].pop(suggestion_controller.STATE_KEY, None):
            world.backend.update_status(sug)
            world.run_until_idle()
    rounds = run_schedule(world, on_round=lose_state)
    assert [len(r) for r in rounds] == [n for _, _, n, _ in SCHEDULE]
    lrs = [assignments(t)["--lr"] for r in (rounds[0], rounds[3], rounds[5]) for t in r]
    assert len(set(lrs)) == len(lrs) == 17  # new configurations only in rung 0s, never repeated
    assert world.last_condition() == ("Succeeded", "True", "ExperimentSuggestionEndReached")


def test_an_experiment_that_ended_while_a_rung_waits_asks_nothing_more():
    world = World()
    world.apply(hyperband_experiment(goal=0.9))
    world.run_until_idle()
    first, second = world.jobs.jobs()[:2]
    world.jobs.finish(first, stdout="accuracy=0.5\n")
    world.run_until_idle(jump_clock=False)
    assert world.suggestion()["spec"]["requests"] == 10 and world.next_due() is not None  # rung 0 waits
    world.jobs.finish(second, stdout="accuracy=0.95\n")
    world.run_until_idle()
    assert world.last_condition() == ("Succeeded", "True", "ExperimentGoalReached")
    assert world.next_due() is None                 # no checks of the waiting rung go on
    assert suggestion_count(world, "exp") == 9      # the killed rung promoted nobody


def test_a_waiting_rung_does_not_call_the_algorithm_until_a_trial_finished(monkeypatch):
    calls = []
    real = hyperband.suggest
    monkeypatch.setattr(hyperband, "suggest", lambda request: calls.append(request.count) or real(request))
    world = World()
    world.apply(hyperband_experiment(max_trial_count=TOTAL))
    world.run_until_idle()
    assert len(world.trials()) == 9 and len(calls) == 1
    world.advance(3600)          # an hour of checks while rung 0 runs: no call
    assert len(calls) == 1
    jobs = world.jobs.jobs()
    world.jobs.finish(jobs[0], stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert len(calls) == 2 and len(world.trials()) == 9   # asked once more: still waiting
    for job in jobs[1:]:
        world.jobs.finish(job, stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert len(world.trials()) == 12


def test_finished_trials_wake_the_waiting_rungs_at_once():
    """A short reply waits for trials to finish; in the last rungs the experiment asks for no
    more (spec.requests is at maxTrialCount), so only the trials' ends wake the Suggestion.
    The whole schedule runs without a clock jump: none of the backed-off checks is needed."""
    world = World()
    world.apply(hyperband_experiment(max_trial_count=TOTAL))
    world.run_until_idle(jump_clock=False)
    for _ in range(len(SCHEDULE)):
        world.jobs.finish_all(values=lambda i, job: score(job))
        world.run_until_idle(jump_clock=False)
    assert len(world.trials()) == TOTAL
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")


def test_a_finished_trial_does_not_wake_a_suggestion_that_waits_for_nothing(monkeypatch):
    """Without a short reply waiting, what a finished trial changes for the Suggestion comes
    through the experiment's requests; the trial itself does not wake the suggestion controller."""
    from katib.controllers import manager

    reconciles = Counter()
    real = manager.RECONCILERS["suggestion"]

    def counted(ctx, namespace, name):
        reconciles[name] += 1
        return real(ctx, namespace, name)
    monkeypatch.setitem(manager.RECONCILERS, "suggestion", counted)
    world = World()
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2))
    world.run_until_idle()
    assert len(world.trials()) == 2 and reconciles["exp"] > 0
    reconciles.clear()
    world.jobs.finish(world.jobs.jobs()[0], stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert world.experiment()["status"]["trialsSucceeded"] == 1 and reconciles["exp"] == 0


# -- off the reconcile path (real threads) ---------------------------------------------------

class SlowAlgorithm:
    """A test algorithm registered as `cmaes`: each call waits until released."""

    NAME = "cmaes"

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0
        self.in_call = threading.Event()

    @staticmethod
    def validate_settings(**_):
        return []

    def suggest(self, request):
        self.calls += 1
        self.in_call.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("the test never released the slow algorithm")
        return random_algorithm.suggest(request)


@pytest.fixture
def slow(monkeypatch):
    algorithm = SlowAlgorithm()
    monkeypatch.setitem(ALGORITHMS, "cmaes", algorithm)
    yield algorithm
    algorithm.release.set()


def threaded_world() -> World:
    world = World()
    world.ctx.suggestion_executor = suggestion_controller.SuggestionWorkers(max_workers=2)
    return world


def pump(world: World, until, *, timeout: float = 20.0) -> None:
    """Drive the world until `until()`; the workers' replies arrive on their own threads."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached"
        world.run_until_idle(jump_clock=False)  # the fake clock stays: moved by the tests only
        time.sleep(0.002)


def restart_process(world: World, *, executor=None) -> None:
    """A new process on the same store: new context, queue and manager (the old ones are gone)."""
    old = world.ctx
    world.ctx = Context(backend=old.backend, db=old.db, clock=old.clock, config=old.config,
                        get_configmap=old.get_configmap, seed=11, queue=SteppedQueue(old.clock))
    if executor is not None:
        world.ctx.suggestion_executor = executor
    world.manager = Manager(world.ctx, threaded=False)


def suggestion_count(world: World, name: str) -> int:
    return (world.suggestion(name).get("status") or {}).get("suggestionCount", 0)


def test_a_slow_algorithm_does_not_delay_another_experiments_trials(slow):
    world = threaded_world()
    world.apply(make_experiment(name="a", algorithm="cmaes", parallel_trial_count=2, max_trial_count=2))
    world.apply(make_experiment(name="b", algorithm="random", parallel_trial_count=2, max_trial_count=4))
    pump(world, slow.in_call.is_set)

    def b_done():
        world.jobs.finish_all()
        return world.last_condition("b")[:2] == ("Succeeded", "True")
    pump(world, b_done)
    assert not slow.release.is_set() and suggestion_count(world, "a") == 0   # A's call still runs
    world.clock.advance(suggestion_controller.SLOW_CALL)
    world.run_until_idle(jump_clock=False)
    assert world.experiment("b")["status"]["trialsSucceeded"] == 4
    events = [e for e in world.backend.list("Event", "default") if e["reason"] == "SuggestionSlow"]
    assert events and events[0]["involvedObject"]["name"] == "a"
    assert "algorithm cmaes is still computing 2 assignment(s)" in events[0]["message"]
    slow.release.set()
    pump(world, lambda: len([t for t in world.trials() if t["metadata"]["name"].startswith("a-")]) == 2)
    assert slow.calls == 1


def test_a_restart_during_a_call_repeats_it_and_duplicates_nothing(slow):
    world = threaded_world()
    world.apply(make_experiment(name="a", algorithm="cmaes", parallel_trial_count=3, max_trial_count=3))
    pump(world, slow.in_call.is_set)
    old_manager = world.manager
    restart_process(world, executor=suggestion_controller.SuggestionWorkers(max_workers=1))
    slow.in_call.clear()
    pump(world, slow.in_call.is_set)
    assert slow.calls == 2                   # nothing was recorded: the new process asks again
    slow.release.set()
    pump(world, lambda: len(world.trials()) == 3)
    # the first process's reply arrives too (as if it had lived on): it is for an older
    # Suggestion status and is dropped
    old_manager.run_until_idle()
    world.run_until_idle()
    sug = world.suggestion("a")
    assert sug["status"]["suggestionCount"] == 3 == len(world.trials())
    names = [t["metadata"]["name"] for t in world.trials()]
    assert len(set(names)) == 3
    assert len({tuple(assignments(t).items()) for t in world.trials()}) == 3


def test_a_stale_reply_is_dropped_and_the_call_made_again(slow):
    world = threaded_world()
    world.apply(make_experiment(name="a", algorithm="cmaes", parallel_trial_count=2, max_trial_count=2))
    pump(world, slow.in_call.is_set)
    sug = world.suggestion("a")   # someone else records a state meanwhile: the reply is for the old one
    sug["status"][suggestion_controller.STATE_KEY] = '{"moved":1}'
    world.backend.update_status(sug)
    slow.in_call.clear()
    slow.release.set()
    pump(world, lambda: len(world.trials()) == 2)
    assert slow.calls == 2
    assert suggestion_count(world, "a") == 2


def test_a_failing_algorithm_on_a_worker_fails_the_suggestion(monkeypatch):
    def broken(request):
        raise ZeroDivisionError("boom")
    monkeypatch.setitem(ALGORITHMS, "cmaes", types.SimpleNamespace(
        NAME="cmaes", validate_settings=lambda **_: [], suggest=broken))
    world = threaded_world()
    world.apply(make_experiment(name="a", algorithm="cmaes"))
    pump(world, lambda: ("Failed", "True", "ExperimentFailed") in world.conditions(world.experiment("a")))
    failed = [c for c in world.suggestion("a")["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["message"] == "algorithm cmaes failed: ZeroDivisionError: boom"


def test_without_an_executor_the_call_is_inline_and_one_pass_records_it():
    world = World()
    assert getattr(world.ctx, "suggestion_executor", None) is None
    world.apply(make_experiment(name="a"))
    world.run_until_idle()
    assert Counter(len(t["spec"]["parameterAssignments"]) for t in world.trials()) == {2: 3}
    assert not suggestion_controller.calls_of(world.ctx)


def test_the_control_planes_run_algorithm_calls_off_the_reconcile_thread(tmp_path):
    """`katib.py --fake` and `katib.py serve` build their Context with worker threads (World and
    the tests above choose theirs): a slow fit there cannot hold every other experiment."""
    from katib.runtime import FakeControlPlane

    plane = FakeControlPlane(db_url=f"sqlite:///{tmp_path / 'k.db'}", work_dir=str(tmp_path))
    try:
        assert isinstance(plane.ctx.suggestion_executor, suggestion_controller.SuggestionWorkers)
    finally:
        plane.stop()


class RecordingExecutor:
    """Keeps what is submitted, runs nothing."""

    def __init__(self):
        self.submitted = []

    def submit(self, fn) -> None:
        self.submitted.append(fn)


@pytest.mark.parametrize("algorithm, on_worker", [("random", False), ("grid", False), ("sobol", False),
                                                  ("tpe", True)])
def test_quick_algorithms_run_inline_beside_the_workers(algorithm, on_worker):
    """random, grid and sobol answer in one reconcile even with workers: handing them to a
    thread cost two more reconciles per call than the call itself."""
    world = World()
    world.ctx.suggestion_executor = executor = RecordingExecutor()
    stepped = [{"name": "--lr", "parameterType": "double",
                "feasibleSpace": {"min": "0.01", "max": "0.03", "step": "0.01"}},
               {"name": "--layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "5"}}]
    world.apply(make_experiment(name="a", algorithm=algorithm, parameters=stepped))
    world.run_until_idle()
    assert bool(executor.submitted) == on_worker
    assert len(world.trials()) == (0 if on_worker else 3)
