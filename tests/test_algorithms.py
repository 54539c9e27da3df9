"""The shared algorithm contract (every algorithm that can suggest), then grid and random.

Contract (STYLE.md §7): inside bounds, int/step/categorical respected, deterministic for a
seed, exactly `count` distinct assignments while the space allows, tolerates failed and NaN
trials, state survives json.dumps, a restart from state + trials repeats nothing."""
from __future__ import annotations

import json
import math
import re
import types
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.corpus import EXAMPLES_DIR
import yaml

from katib.algorithms import grid
from katib.algorithms import random as random_algorithm
from katib.algorithms.base import SuggestReply, SuggestRequest, TrialRecord, observed_losses
from katib.algorithms.registry import ALGORITHMS, can_suggest, suggest, validate_algorithm

GRID_EXAMPLE = EXAMPLES_DIR / "grid-example.yaml"


def param(name, kind, *, min=None, max=None, step=None, values=None):
    space = {key: value for key, value in (("min", min), ("max", max), ("step", step)) if value is not None}
    if values is not None:
        space["list"] = list(values)
    return {"name": name, "parameterType": kind, "feasibleSpace": space}


FINITE = [
    param("lr", "double", min="0.1", max="0.5", step="0.1"),
    param("units", "int", min="1", max="7", step="3"),
    param("layers", "int", min="-2", max="1"),
    param("decay", "discrete", values=["1", "2.5", "-3"]),
    param("optimizer", "categorical", values=["sgd", "adam"]),
]
MIXED = [
    param("lr", "double", min="0.0001", max="0.05"),
    param("layers", "int", min="2", max="5"),
    param("optimizer", "categorical", values=["sgd", "adam", "ftrl"]),
]
SPACES = {"finite": FINITE, "mixed": MIXED}


def make_request(algorithm, parameters, *, count=5, trials=(), state=None, seed=7, settings=None):
    return SuggestRequest(
        algorithm=algorithm, parameters=parameters, objective_type="maximize", trials=list(trials),
        count=count, settings=dict(settings or {}), state=state, seed=seed, parallel_trial_count=3,
    )


def trials_from(assignments, *, conditions=("Succeeded",), values=(0.5,), start=0):
    """TrialRecords holding `assignments`, cycling through conditions and values."""
    return [
        TrialRecord(name=f"t-{start + i}", assignments=dict(a), condition=conditions[i % len(conditions)],
                    value=values[i % len(values)])
        for i, a in enumerate(assignments)
    ]


def assert_in_space(parameters, assignment):
    assert [name for name, _ in assignment] == [p["name"] for p in parameters]
    for p, (_, value) in zip(parameters, assignment):
        space = p["feasibleSpace"]
        if p["parameterType"] in ("discrete", "categorical"):
            assert value in space["list"]
            continue
        number = Decimal(value)
        assert Decimal(space["min"]) <= number <= Decimal(space["max"]), (p["name"], value)
        if p["parameterType"] == "int":
            assert re.fullmatch(r"-?\d+", value), value
            assert (number - Decimal(space["min"])) % Decimal(space.get("step", "1")) == 0, value
        elif "step" in space:
            steps = (number - Decimal(space["min"])) / Decimal(space["step"])
            assert abs(steps - round(steps)) < Decimal("1e-9"), value


def key(assignment):
    return tuple(value for _, value in assignment)


CASES = [
    pytest.param(name, space, id=f"{name}-{space_name}")
    for name in ALGORITHMS
    if can_suggest(name)
    for space_name, space in SPACES.items()
    if not validate_algorithm(name, parameters=space, settings=[], parallel_trial_count=3, nas_config=None)
]


def test_random_grid_tpe_sobol_bo_cmaes_and_auto_can_suggest():
    assert {"random", "grid", "tpe", "multivariate-tpe", "sobol", "bayesianoptimization", "cmaes", "auto"} <= {
        name for name in ALGORITHMS if can_suggest(name)}


# ---------------------------------------------------------------------------------------
# the shared contract


@pytest.mark.parametrize("name,space", CASES)
def test_assignments_lie_inside_the_space(name, space):
    reply = suggest(make_request(name, space, count=25))
    assert len(reply.assignments) == 25
    for assignment in reply.assignments:
        assert_in_space(space, assignment)


@pytest.mark.parametrize("name,space", CASES)
def test_same_seed_same_assignments(name, space):
    first = suggest(make_request(name, space, count=8, seed=11))
    second = suggest(make_request(name, space, count=8, seed=11))
    assert first.assignments == second.assignments
    assert first.state == second.state


@pytest.mark.parametrize("name,space", CASES)
def test_exactly_count_distinct_and_unused(name, space):
    earlier = suggest(make_request(name, space, count=10)).assignments
    reply = suggest(make_request(name, space, count=30, trials=trials_from(earlier)))
    keys = [key(a) for a in reply.assignments]
    assert len(keys) == 30
    assert len(set(keys)) == 30
    assert not set(keys) & {key(a) for a in earlier}
    assert reply.exhausted is False


@pytest.mark.parametrize("name,space", CASES)
def test_failed_nan_and_running_trials_are_tolerated(name, space):
    earlier = suggest(make_request(name, space, count=12)).assignments
    trials = trials_from(earlier, conditions=("Failed", "Succeeded", "Running", "Killed", "Created", ""),
                         values=(None, math.nan, 0.3, math.inf, None, -math.nan))
    reply = suggest(make_request(name, space, count=6, trials=trials))
    assert len({key(a) for a in reply.assignments} - {key(a) for a in earlier}) == 6


@pytest.mark.parametrize("name,space", CASES)
def test_restart_from_json_state_and_trials_repeats_nothing(name, space):
    trials, state, handed_out = [], None, []
    for round_number in range(6):
        reply = suggest(make_request(name, space, count=4, trials=trials, state=state))
        state = json.loads(json.dumps(reply.state))  # what Suggestion status stores
        handed_out += [key(a) for a in reply.assignments]
        trials += trials_from(reply.assignments, conditions=("Succeeded", "Failed", "Running"),
                              values=(0.1 * round_number, math.nan), start=len(trials))
    assert len(handed_out) == 24
    assert len(set(handed_out)) == 24


@pytest.mark.parametrize("name,space", CASES)
def test_restart_from_the_same_state_is_deterministic(name, space):
    first = suggest(make_request(name, space, count=3))
    trials = trials_from(first.assignments)
    state = json.loads(json.dumps(first.state))
    again = [suggest(make_request(name, space, count=3, trials=trials, state=state)) for _ in range(2)]
    assert again[0].assignments == again[1].assignments
    assert not {key(a) for a in again[0].assignments} & {key(a) for a in first.assignments}


@pytest.mark.parametrize("name,space", CASES)
def test_lost_state_still_repeats_nothing(name, space):
    first = suggest(make_request(name, space, count=9))
    reply = suggest(make_request(name, space, count=9, trials=trials_from(first.assignments), state=None))
    assert len(reply.assignments) == 9
    assert not {key(a) for a in reply.assignments} & {key(a) for a in first.assignments}


SMALL = [param("units", "int", min="1", max="4"), param("act", "categorical", values=["relu", "tanh"])]


@pytest.mark.parametrize("name", [name for name in ALGORITHMS if can_suggest(name) and not validate_algorithm(
    name, parameters=SMALL, settings=[], parallel_trial_count=3, nas_config=None)])
def test_small_space_is_used_up_then_exhausted(name):
    space = SMALL
    trials, seen, state, replies = [], [], None, []
    for _ in range(12):
        reply = suggest(make_request(name, space, count=4, trials=trials, state=state))
        replies.append(reply)
        assert len(reply.assignments) == 4 or reply.exhausted
        seen += [key(a) for a in reply.assignments]
        trials += trials_from(reply.assignments, start=len(trials))
        state = json.loads(json.dumps(reply.state))
    assert len(seen) == len(set(seen)) >= 6  # random: 4 × 2 points, grid: [1, 4) × 2
    assert (replies[-1].assignments, replies[-1].exhausted) == ([], True)


@pytest.mark.parametrize("name,space", CASES)
def test_zero_count_is_an_empty_reply(name, space):
    reply = suggest(make_request(name, space, count=0))
    assert reply.assignments == []
    assert reply.exhausted is False
    json.dumps(reply.state)


def test_suggest_rejects_unknown_and_not_yet_implemented_names(monkeypatch):
    with pytest.raises(ValueError, match="unknown algorithm name nope"):
        suggest(make_request("nope", FINITE))
    monkeypatch.setitem(ALGORITHMS, "later", types.SimpleNamespace(NAME="later"))  # settings only, no suggest
    with pytest.raises(NotImplementedError, match="later"):
        suggest(make_request("later", FINITE))


def test_suggest_rejects_an_invalid_space():
    with pytest.raises(ValueError, match=r"spec.parameters\[0\].feasibleSpace.max"):
        suggest(make_request("random", [param("x", "int", min="5", max="1")]))


# ---------------------------------------------------------------------------------------
# grid (algorithms.md §4)


def grid_example_parameters():
    return yaml.safe_load(GRID_EXAMPLE.read_text())["spec"]["parameters"]


def test_grid_example_order_matches_upstream_chocolate():
    reply = suggest(make_request("grid", grid_example_parameters(), count=11))
    points = [dict(a) for a in reply.assignments]
    first = [(p["--lr"], p["--num-epochs"], p["--num-layers"], p["--optimizer"]) for p in points]
    assert first[:2] == [("0.001", "10", "2", "sgd"), ("0.002", "10", "2", "sgd")]
    assert [p[0] for p in first[:9]] == ["0.001", "0.002", "0.003", "0.004", "0.005", "0.006", "0.007",
                                         "0.008", "0.009000000000000001"]
    assert first[9:] == [("0.001", "11", "2", "sgd"), ("0.002", "11", "2", "sgd")]
    assert [name for name, _ in reply.assignments[0]] == ["--lr", "--num-layers", "--num-epochs", "--optimizer"]


def test_grid_example_size_and_last_point():
    axes = grid.grid_axes(grid_example_parameters())
    table = grid.Grid(axes)
    assert [axis.size for axis in axes] == [9, 3, 5, 3]
    assert table.size == 405
    assert dict(table.point(404)) == {"--lr": "0.009000000000000001", "--num-layers": "4",
                                      "--num-epochs": "14", "--optimizer": "ftrl"}


def test_grid_axes_are_ordered_by_base64_of_the_name():
    # base64("optimizer") = "b3B0..." sorts before base64("lr") = "bHI=", so optimizer varies fastest
    space = [param("lr", "double", min="0.1", max="0.3", step="0.1"),
             param("optimizer", "categorical", values=["sgd", "adam"])]
    reply = suggest(make_request("grid", space, count=4))
    assert [key(a) for a in reply.assignments] == [("0.1", "sgd"), ("0.1", "adam"), ("0.2", "sgd"), ("0.2", "adam")]


@pytest.mark.parametrize("parameter,values", [
    (param("n", "int", min="2", max="5"), ["2", "3", "4"]),  # max excluded, as upstream
    (param("n", "int", min="0", max="10", step="4"), ["0", "4", "8"]),
    (param("x", "double", min="0.5", max="3", step="0.5"), ["0.5", "1", "1.5", "2", "2.5"]),  # int if whole
    (param("x", "double", min="0", max="1", step="0.3"), ["0", "0.3", "0.6", "0.8999999999999999"]),
    (param("x", "double", min="0.1", max="0.4", step="0.1"),  # float noise makes ceil() include max
     ["0.1", "0.2", "0.30000000000000004", "0.4"]),
    (param("d", "discrete", values=["8", "2", "4"]), ["8", "2", "4"]),
])
def test_grid_axis_values(parameter, values):
    reply = suggest(make_request("grid", [parameter], count=10))
    assert [a[0][1] for a in reply.assignments] == values
    assert reply.exhausted is True


def test_grid_axis_never_holds_the_same_value_twice():
    # upstream's floor() lands on k-1 for k=98 here, which would hand out a point twice
    (axis,) = grid.grid_axes([param("x", "double", min="0.001628", max="0.011628", step="0.0001")])
    values = [axis.value_at(k) for k in range(axis.size)]
    assert axis.size == 100
    assert len(set(values)) == 100
    assert values[97] != values[98]


def test_grid_continues_from_trials_when_state_is_lost():
    parameters = grid_example_parameters()
    first = suggest(make_request("grid", parameters, count=5))
    trials = trials_from([first.assignments[0], first.assignments[2]])
    reply = suggest(make_request("grid", parameters, count=3, trials=trials, state=None))
    assert reply.assignments == [first.assignments[1], first.assignments[3], first.assignments[4]]


def test_grid_position_in_state_is_not_handed_out_again_after_trials_are_deleted():
    parameters = grid_example_parameters()
    first = suggest(make_request("grid", parameters, count=5))
    reply = suggest(make_request("grid", parameters, count=1, trials=[], state=first.state))
    assert first.state == {"position": 5}
    assert dict(reply.assignments[0])["--lr"] == "0.006"


def test_grid_exhaustion_returns_fewer_with_exhausted():
    space = [param("n", "int", min="1", max="3"), param("c", "categorical", values=["a", "b"])]
    reply = suggest(make_request("grid", space, count=10))  # base64: "c" (Yw==) < "n" (bg==)
    assert [key(a) for a in reply.assignments] == [("1", "a"), ("1", "b"), ("2", "a"), ("2", "b")]
    assert reply.exhausted is True
    after = suggest(make_request("grid", space, count=2, trials=trials_from(reply.assignments), state=reply.state))
    assert (after.assignments, after.exhausted) == ([], True)


def test_grid_reports_exhaustion_with_the_last_full_batch():
    space = [param("n", "int", min="1", max="3")]
    reply = suggest(make_request("grid", space, count=2))
    assert (len(reply.assignments), reply.exhausted) == (2, True)


def test_grid_without_double_step_fails_like_upstream():
    with pytest.raises(ValueError, match="param lr step is nil"):
        suggest(make_request("grid", [param("lr", "double", min="0.1", max="0.2")]))


# ---------------------------------------------------------------------------------------
# random


def test_random_state_setting_wins_over_request_seed():
    with_setting = suggest(make_request("random", MIXED, count=4, seed=1, settings={"random_state": "5"}))
    other_seed = suggest(make_request("random", MIXED, count=4, seed=2, settings={"random_state": "5"}))
    by_seed = suggest(make_request("random", MIXED, count=4, seed=5))
    assert with_setting.assignments == other_seed.assignments == by_seed.assignments
    assert suggest(make_request("random", MIXED, count=4, seed=6)).assignments != by_seed.assignments


def test_random_without_any_seed_still_carries_its_generator():
    first = suggest(make_request("random", MIXED, count=2, seed=None))
    state = json.loads(json.dumps(first.state))
    again = [suggest(make_request("random", MIXED, count=3, seed=None, state=state)) for _ in range(2)]
    assert again[0].assignments == again[1].assignments


def test_random_generator_state_is_json_strings_not_128_bit_numbers():
    state = suggest(make_request("random", MIXED, count=1)).state["rng"]
    assert isinstance(state["state"], str) and isinstance(state["inc"], str)
    assert all(abs(v) < 2**53 for v in state.values() if isinstance(v, int))


def test_random_state_continues_the_stream():
    one_call = suggest(make_request("random", MIXED, count=6))
    first = suggest(make_request("random", MIXED, count=3))
    second = suggest(make_request("random", MIXED, count=3, state=json.loads(json.dumps(first.state)),
                                  trials=trials_from(first.assignments)))
    assert first.assignments + second.assignments == one_call.assignments


def test_random_hits_both_int_bounds_and_stays_within_double_bounds():
    reply = suggest(make_request("random", MIXED, count=300))
    layers = {dict(a)["layers"] for a in reply.assignments}
    lrs = np.array([float(dict(a)["lr"]) for a in reply.assignments])
    assert layers == {"2", "3", "4", "5"}
    assert 0.0001 <= lrs.min() and lrs.max() <= 0.05
    assert lrs.std() > 0.01  # spread over the range, not stuck


def test_random_stepped_double_includes_max_and_has_no_float_noise():
    space = [param("x", "double", min="0.1", max="0.7", step="0.1")]
    reply = suggest(make_request("random", space, count=7))
    assert sorted(a[0][1] for a in reply.assignments) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert reply.exhausted is True


def test_random_finds_the_last_free_point_of_a_large_finite_space():
    space = [param("a", "int", min="0", max="299"), param("b", "int", min="0", max="299")]  # 90 000 points
    taken = [[("a", str(i % 300)), ("b", str(i // 300))] for i in range(90_000) if i != 12_345]
    reply = suggest(make_request("random", space, count=3, trials=trials_from(taken)))
    assert reply.assignments == [[("a", "45"), ("b", "41")]]
    assert reply.exhausted is True


def test_random_dedupes_draws_in_a_space_too_large_to_enumerate():
    space = [param("a", "int", min="0", max="316"), param("b", "int", min="0", max="316")]  # 100 489 points
    taken = [[("a", str(i % 317)), ("b", str(i // 317))] for i in range(0, 100_489, 25)]
    reply = suggest(make_request("random", space, count=3000, trials=trials_from(taken)))
    keys = {key(a) for a in reply.assignments}
    assert len(keys) == 3000  # ~45 draws collide within the batch, and ~120 with trials
    assert not keys & {key(a) for a in taken}
    assert reply.exhausted is False


def test_random_with_lost_state_does_not_replay_its_stream(monkeypatch):
    # a replay would only be caught by rejecting every old point in a row
    monkeypatch.setattr(random_algorithm, "MAX_REJECTIONS", 2)
    first = suggest(make_request("random", MIXED, count=5))
    again = suggest(make_request("random", MIXED, count=5, trials=trials_from(first.assignments), state=None))
    assert not {dict(a)["lr"] for a in again.assignments} & {dict(a)["lr"] for a in first.assignments}


def test_random_matches_trial_values_written_differently():
    space = [param("n", "int", min="1", max="2"), param("d", "discrete", values=["0.5", "1"])]
    trials = trials_from([{"n": "1.0", "d": "0.50"}, {"n": "2", "d": "1.0"}, {"n": "1", "d": "1"}])
    reply = suggest(make_request("random", space, count=5, trials=trials))
    assert reply.assignments == [[("n", "2"), ("d", "0.5")]]


# ---------------------------------------------------------------------------------------
# base helpers


def test_observed_losses_keep_finite_succeeded_trials_signed_for_the_goal():
    trials = [
        TrialRecord("a", {}, "Succeeded", 0.8), TrialRecord("b", {}, "Succeeded", math.nan),
        TrialRecord("c", {}, "Failed", 0.9), TrialRecord("d", {}, "Succeeded", None),
        TrialRecord("e", {}, "Running", 0.1), TrialRecord("f", {}, "Succeeded", -0.25),
    ]
    assert [(t.name, loss) for t, loss in observed_losses(trials, "maximize")] == [("a", -0.8), ("f", 0.25)]
    assert [loss for _, loss in observed_losses(trials, "minimize")] == [0.8, -0.25]
