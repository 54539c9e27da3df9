"""Controller rules that a one-character change breaks: best-trial ties, goal equality, the
objective type's choice among several reported values, the LongRunning restart condition, the
rate-limited summary write, and a settled world that writes nothing more (controllers.md §1.3,
§1.7, §3.4). Each test drives the real controllers on the fake backend with the fake clock."""
from __future__ import annotations

import pytest

from tests.world import World, make_experiment


@pytest.fixture
def world():
    return World()


def creation_order(world) -> list[str]:
    return [t["metadata"]["name"] for t in world.trials()]  # the fake lists in creation order


def job_of(world, trial_name: str) -> dict:
    return next(j for j in world.jobs.jobs() if j["metadata"]["name"] == trial_name)


def condition_types(world, name: str = "exp") -> list[str]:
    return [c[0] for c in world.conditions(world.experiment(name))]


def best_trial(world) -> str:
    return world.experiment()["status"]["currentOptimalTrial"]["bestTrialName"]


# -- best trial and goal -------------------------------------------------------------------

@pytest.mark.parametrize("objective_type, values", [
    ("maximize", (0.5, 0.9, 0.9)),
    ("minimize", (0.9, 0.2, 0.2)),
])
@pytest.mark.parametrize("finish_order", [(0, 1, 2), (2, 1, 0), (0, 2, 1)])
def test_a_tie_keeps_the_earlier_trial_whatever_finishes_first(world, objective_type, values, finish_order):
    world.apply(make_experiment(objective_type=objective_type, parallel_trial_count=3, max_trial_count=3))
    world.run_until_idle()
    trials = creation_order(world)
    assert len(trials) == 3
    for i in finish_order:
        world.jobs.finish(job_of(world, trials[i]), stdout=f"accuracy={values[i]}\n")
        world.run_until_idle()
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    assert best_trial(world) == trials[1]  # trials[2] ties with it but was created later


@pytest.mark.parametrize("objective_type, goal, value, reached", [
    ("maximize", 0.8, "0.8", True),     # at the goal: reached (>=)
    ("maximize", 0.8, "0.79", False),
    ("minimize", 0.2, "0.2", True),     # at the goal: reached (<=)
    ("minimize", 0.2, "0.21", False),
])
def test_the_goal_is_reached_at_equality(world, objective_type, goal, value, reached):
    world.apply(make_experiment(objective_type=objective_type, goal=goal, parallel_trial_count=1,
                                max_trial_count=5))
    world.run_until_idle()
    world.jobs.finish_all(stdout=f"accuracy={value}\n")
    world.run_until_idle()
    if reached:
        assert world.last_condition() == ("Succeeded", "True", "ExperimentGoalReached")
        assert len(world.trials()) == 1
    else:
        assert world.last_condition() == ("Running", "True", "ExperimentRunning")
        assert len(world.trials()) == 2


@pytest.mark.parametrize("objective_type, expected", [("maximize", 0.9), ("minimize", 0.2)])
def test_the_observation_is_the_objective_types_best_of_several_values(world, objective_type, expected):
    """Four values in the log: first 0.5, min 0.2, max 0.9, latest 0.4 (controllers.md §3.4)."""
    world.apply(make_experiment(objective_type=objective_type, parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    world.jobs.finish_all(stdout="accuracy=0.5\naccuracy=0.2\naccuracy=0.9\naccuracy=0.4\n")
    world.run_until_idle()
    [trial] = world.trials()
    assert [log.value for log in world.ctx.observations.get(trial["metadata"]["name"], "accuracy")] == [
        "0.5", "0.2", "0.9", "0.4"]
    assert trial["status"]["observation"]["metrics"] == [{"name": "accuracy", "value": expected}]
    assert world.experiment()["status"]["currentOptimalTrial"]["observation"]["metrics"] == [
        {"name": "accuracy", "value": expected}]


# -- the LongRunning restart condition (controllers.md §1.1.3, docs/divergences.md) ---------------

def finished(world, **over) -> dict:
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=2, **over))
    world.drive()
    return world.experiment()


def edit_spec(world, **fields) -> None:
    exp = world.experiment()
    for key, value in fields.items():
        if value is None:
            exp["spec"].pop(key, None)
        else:
            exp["spec"][key] = value
    world.backend.update(exp)
    world.run_until_idle()


@pytest.mark.parametrize("edit", [
    {"parallelTrialCount": 3},     # maxTrialCount unchanged: still reached
    {"maxTrialCount": 1},          # lowered below the completed trials: nothing to add
])
def test_a_max_trials_reached_experiment_stays_done_unless_more_trials_are_allowed(world, edit):
    before = finished(world)
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    edit_spec(world, **edit)
    exp = world.experiment()
    assert "Restarting" not in condition_types(world)
    assert exp["status"]["conditions"] == before["status"]["conditions"]
    assert exp["status"]["completionTime"] == before["status"]["completionTime"]
    assert len(world.trials()) == 2


def test_removing_max_trial_count_restarts_a_long_running_experiment(world):
    finished(world)
    edit_spec(world, maxTrialCount=None)
    assert condition_types(world) == ["Created", "Restarting", "Running"]
    assert len(world.trials()) == 4  # two more started, unbounded now


@pytest.mark.parametrize("over, end", [
    ({"goal": 0.4}, ("Succeeded", "True", "ExperimentGoalReached")),
    ({"max_failed_trial_count": 0}, ("Failed", "True", "ExperimentFailed")),
])
def test_only_max_trials_reached_can_restart(world, over, end):
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=3, **over))
    world.drive(succeeded="goal" in over)
    assert world.last_condition() == end
    trials = len(world.trials())
    edit_spec(world, maxTrialCount=9)
    assert world.last_condition() == end
    assert "Restarting" not in condition_types(world)
    assert len(world.trials()) == trials


# -- the rate-limited summary write ------------------------------------------------------------

def test_a_rate_limited_summary_is_requeued_and_written_when_due():
    world = World(status_interval=5.0)
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=10))
    world.run_until_idle()
    assert world.next_due() is None
    world.advance(5.0)  # the interval since the last summary write is over
    first, second = world.jobs.jobs()
    world.jobs.finish(first, stdout="accuracy=0.5\n")
    world.run_until_idle(jump_clock=False)
    assert world.experiment()["status"]["trialsSucceeded"] == 1  # written at once
    start = world.clock.now()
    world.jobs.finish(second, stdout="accuracy=0.6\n")
    world.run_until_idle(jump_clock=False)
    assert world.experiment()["status"]["trialsSucceeded"] == 1  # not within the interval...
    assert world.next_due() == pytest.approx(start + 5.0)       # ...but requeued for its end
    world.run_until_idle()  # the fake clock jumps to the requeue
    status = world.experiment()["status"]
    assert world.clock.now() == pytest.approx(start + 5.0)
    assert status["trialsSucceeded"] == 2 and status["trials"] == 4
    assert status["succeededTrialList"] == [first["metadata"]["name"], second["metadata"]["name"]]
    assert world.next_due() is None


def test_a_terminal_transition_is_written_at_once_despite_the_interval():
    world = World(status_interval=5.0)
    world.apply(make_experiment(parallel_trial_count=1, max_trial_count=1))
    world.run_until_idle()
    start = world.clock.now()
    world.jobs.finish_all(stdout="accuracy=0.5\n")
    world.run_until_idle(jump_clock=False)
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    assert world.experiment()["status"]["trialsSucceeded"] == 1
    assert world.clock.now() == start


# -- a settled world is idempotent --------------------------------------------------------------

class WriteCounter:
    """Every write the controllers attempt (even one the backend finds a no-op) and every
    watch event (Events included), until stop()."""

    OPS = ("create", "update", "update_status", "delete", "record_event")

    def __init__(self, world):
        self.writes: list[tuple] = []
        self.backend = world.backend
        self.unsubscribe = world.backend.subscribe(self.on_event, readonly=True)
        for op in self.OPS:
            setattr(self.backend, op, self.counted(op, getattr(self.backend, op)))

    def counted(self, op, real):
        def call(*args, **kwargs):
            self.writes.append((op,) + tuple(a["metadata"]["name"] if isinstance(a, dict) else a for a in args))
            return real(*args, **kwargs)
        return call

    def on_event(self, event) -> None:
        self.writes.append((event.type, event.object["kind"], event.object["metadata"]["name"]))

    def stop(self) -> None:
        self.unsubscribe()
        for op in self.OPS:
            delattr(self.backend, op)  # the class's methods again


def resync_after(world, seconds: float) -> list[tuple[str, str, str]]:
    """What the control plane writes when the clock jumps and then everything is reconciled
    again (as after a restart): nothing, for a settled world."""
    counter = WriteCounter(world)
    versions = {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                for kind in ("Experiment", "Suggestion", "Trial", "Job") for o in world.backend.list(kind)}
    world.advance(seconds)
    world.manager.sync()
    world.run_until_idle()
    counter.stop()
    after = {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
             for kind in ("Experiment", "Suggestion", "Trial", "Job") for o in world.backend.list(kind)}
    assert after == versions
    assert world.next_due() is None
    return counter.writes


@pytest.mark.parametrize("status_interval", [0.0, 5.0])
def test_a_finished_experiment_writes_nothing_more_when_time_moves(status_interval):
    world = World(status_interval=status_interval)
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=5))
    world.drive(values=lambda i, job: 0.1 * (i + 1))
    assert world.last_condition() == ("Succeeded", "True", "ExperimentMaxTrialsReached")
    assert resync_after(world, 10 ** 6) == []


@pytest.mark.parametrize("status_interval", [0.0, 5.0])
def test_an_experiment_waiting_for_running_jobs_writes_nothing_more_when_time_moves(status_interval):
    world = World(status_interval=status_interval)
    world.apply(make_experiment(parallel_trial_count=3, max_trial_count=6))
    world.run_until_idle()
    world.jobs.start_all()
    world.run_until_idle()
    world.jobs.finish(world.jobs.jobs()[0], stdout="accuracy=0.5\n")
    world.run_until_idle()
    assert len(world.jobs.jobs()) == 3 and world.experiment()["status"]["trialsSucceeded"] == 1
    assert resync_after(world, 3600) == []
