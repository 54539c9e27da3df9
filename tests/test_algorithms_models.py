"""bayesianoptimization (gp.py), cmaes and auto beyond the shared contract of test_algorithms.py:
the model's gradients, learning, batches, failed trials, bounded rows, linear (not log) scale,
settings that change the search, restart continuity and auto's choice."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from katib.algorithms import auto, bayesianoptimization as bo, cmaes, gp, parzen
from katib.algorithms.base import SuggestRequest, TrialRecord
from katib.algorithms.registry import suggest
from katib.algorithms.space import parse_space
from tests.test_algorithms import MIXED, key, param

SQUARE = [param("x", "double", min="-1", max="1"), param("y", "double", min="-1", max="1")]
TARGET = {"x": -0.5, "y": 0.25}


def request(name, parameters, *, count=1, trials=(), state=None, seed=3, settings=None, objective="minimize",
            max_trials=0):
    return SuggestRequest(algorithm=name, parameters=parameters, objective_type=objective, trials=list(trials),
                          count=count, settings=dict(settings or {}), state=state, seed=seed,
                          parallel_trial_count=count, max_trial_count=max_trials)


def quadratic(assignment) -> float:
    values = dict(assignment)
    return sum((float(values[name]) - target) ** 2 for name, target in TARGET.items())


def loop(name, *, rounds, count=1, parameters=SQUARE, f=quadratic, settings=None, seed=3, state=None, trials=None):
    """Synchronous loop as the controller drives it; returns (trials, last state)."""
    trials = list(trials or [])
    for _ in range(rounds):
        reply = suggest(request(name, parameters, count=count, trials=trials, state=state, seed=seed,
                                settings=settings))
        state = json.loads(json.dumps(reply.state))
        for assignment in reply.assignments:
            trials.append(TrialRecord(f"t{len(trials)}", dict(assignment), "Succeeded", f(assignment)))
    return trials, state


def best(trials) -> float:
    return min(t.value for t in trials)


# ---------------------------------------------------------------------------------------
# the Gaussian process


def test_marginal_likelihood_and_acquisition_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.random((25, 3))
    X[:, 2] = rng.integers(0, 3, 25)
    numeric = np.array([True, True, False])
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.2 * X[:, 2]
    y = (y - y.mean()) / y.std()
    parts = gp._sq_parts(X, X, numeric)
    theta = gp.default_theta(3) + rng.normal(0, 0.3, 5)
    _, grad = gp.neg_log_posterior(theta, parts, y)
    eps = 1e-6
    numeric_grad = [(gp.neg_log_posterior(theta + eps * e, parts, y)[0]
                     - gp.neg_log_posterior(theta - eps * e, parts, y)[0]) / (2 * eps) for e in np.eye(5)]
    assert np.allclose(grad, numeric_grad, rtol=1e-4, atol=1e-6)
    model = gp.condition(X, y, numeric, gp.fit(X, y, numeric, starts=[gp.default_theta(3)]))
    A = rng.random((4, 3))
    A[:, 2] = 1
    for kind in ("EI", "PI", "LCB"):
        mu, sd, dmu, dsd = gp.predict(model, A, grad=True)
        _, gradient = gp.acquisition(kind, mu, sd, float(y.min()), dmu=dmu, dsd=dsd)
        for j in (0, 1):
            step = np.zeros(3)
            step[j] = eps
            up = gp.acquisition(kind, *gp.predict(model, A + step), float(y.min()))[0]
            down = gp.acquisition(kind, *gp.predict(model, A - step), float(y.min()))[0]
            assert np.allclose(gradient[:, j], (up - down) / (2 * eps), rtol=1e-3, atol=1e-5), kind


def test_log_expected_improvement_stays_finite_far_below_the_incumbent():
    values = gp.log_h(np.array([-60.0, -20.0, -1.0, 0.0, 2.0]))
    assert np.all(np.isfinite(values)) and np.all(np.diff(values) > 0)
    z = -3.0  # against the direct formula where it is still accurate
    direct = math.log(math.exp(-z * z / 2) / math.sqrt(2 * math.pi) + z * 0.5 * math.erfc(-z / math.sqrt(2)))
    assert gp.log_h(np.array([z]))[0] == pytest.approx(direct, rel=1e-9)


# ---------------------------------------------------------------------------------------
# bayesianoptimization


def test_bo_finds_the_minimum_of_a_quadratic_far_better_than_random():
    trials, _ = loop("bayesianoptimization", rounds=25)
    randoms, _ = loop("random", rounds=25)
    assert best(trials) < 1e-3
    assert best(trials) < best(randoms) / 10


def test_bo_searches_a_double_on_its_linear_scale_including_negative_ranges():
    # skopt forced log-uniform priors (min > 0); the optimum at -0.5 needs the linear range
    trials, _ = loop("bayesianoptimization", rounds=25)
    x = [float(t.assignments["x"]) for t in trials[12:]]
    assert np.median(np.abs(np.array(x) + 0.5)) < 0.1


def test_bo_uses_n_initial_points_random_points_first():
    first = suggest(request("bayesianoptimization", SQUARE, count=3, settings={"n_initial_points": "3"}))
    trials = [TrialRecord(f"t{i}", dict(a), "Succeeded", quadratic(a)) for i, a in enumerate(first.assignments)]
    model = suggest(request("bayesianoptimization", SQUARE, trials=trials, state=first.state,
                            settings={"n_initial_points": "3"}))
    assert "theta" not in first.state and "theta" in model.state  # the model ran on the 4th point only


@pytest.mark.parametrize("settings", [{"acq_func": "EI"}, {"acq_func": "LCB"}, {"acq_func": "PI"},
                                      {"acq_optimizer": "sampling"}])
def test_bo_each_acquisition_setting_changes_the_choice(settings):
    trials, state = loop("bayesianoptimization", rounds=12)
    default = suggest(request("bayesianoptimization", SQUARE, count=3, trials=trials, state=state))
    other = suggest(request("bayesianoptimization", SQUARE, count=3, trials=trials, state=state, settings=settings))
    assert default.assignments != other.assignments
    assert ("hedge" in other.state) is ("acq_func" not in settings)  # only gp_hedge keeps gains
    assert len(default.state["hedge"]["gains"]) == 3


def test_bo_hedge_gains_move_with_the_model():
    trials, state = loop("bayesianoptimization", rounds=14)
    assert state["hedge"]["gains"] != [0.0, 0.0, 0.0]
    assert len(state["hedge"]["proposals"]) == 3


def test_bo_batch_is_distinct_and_spread_by_the_believer():
    trials, state = loop("bayesianoptimization", rounds=12)
    reply = suggest(request("bayesianoptimization", SQUARE, count=6, trials=trials, state=state))
    points = np.array([[float(v) for _, v in a] for a in reply.assignments])
    assert len({key(a) for a in reply.assignments}) == 6
    gaps = [np.linalg.norm(points[i] - points[j]) for i in range(6) for j in range(i)]
    assert min(gaps) > 1e-3  # not one point repeated, nor one point nudged


def test_bo_running_trials_are_believed_so_the_next_point_moves_away():
    trials, state = loop("bayesianoptimization", rounds=12)
    alone = suggest(request("bayesianoptimization", SQUARE, trials=trials, state=state)).assignments[0]
    running = trials + [TrialRecord("r", dict(alone), "Running", None)]
    after = suggest(request("bayesianoptimization", SQUARE, trials=running, state=state)).assignments[0]
    distance = np.linalg.norm([float(v) - float(w) for (_, v), (_, w) in zip(after, alone)])
    assert distance > 0.01, distance  # not the next candidate beside the running one


def test_bo_failed_trials_count_as_the_worst_and_pending_ones_are_set_apart():
    space = parse_space(SQUARE)
    trials = [TrialRecord("a", {"x": "0.1", "y": "0"}, "Succeeded", 2.0),
              TrialRecord("b", {"x": "0.2", "y": "0"}, "Failed", None),
              TrialRecord("c", {"x": "0.3", "y": "0"}, "Succeeded", math.nan),
              TrialRecord("d", {"x": "0.4", "y": "0"}, "Running", None),
              TrialRecord("e", {"x": "0.5", "y": "0"}, "Succeeded", 5.0),
              TrialRecord("f", {"x": "0.6", "y": "0"}, "Killed", None)]
    rows, losses, pending = bo.training_rows(parzen.read_history(space, trials, "minimize"))
    assert losses.tolist() == [2.0, 5.0, 5.0, 5.0, 5.0]
    assert len(rows) == 5 and len(pending) == 1 and pending[0][0] == pytest.approx(0.7)


def test_bo_conditions_on_a_bounded_number_of_rows_keeping_the_best():
    space = parse_space(SQUARE)
    rng = np.random.default_rng(1)
    trials = [TrialRecord(f"t{i}", {"x": repr(float(x)), "y": repr(float(y))}, "Succeeded", float(i))
              for i, (x, y) in enumerate(rng.uniform(-1, 1, (1000, 2)))]
    rows, losses, _ = bo.training_rows(parzen.read_history(space, trials, "minimize"))
    assert len(rows) == bo.MAX_ROWS
    assert set(range(bo.KEEP_BEST)) <= set(losses.tolist())  # the 64 best
    assert losses.max() >= 990  # and the others spread over the whole history


def test_bo_maximize_is_learned_as_the_negated_loss():
    trials, state = [], None
    for _ in range(22):
        reply = suggest(request("bayesianoptimization", SQUARE, trials=trials, state=state, objective="maximize"))
        state = reply.state
        a = reply.assignments[0]
        trials.append(TrialRecord(f"t{len(trials)}", dict(a), "Succeeded", -quadratic(a)))
    assert max(t.value for t in trials) > -1e-2


def test_bo_categorical_choice_is_learned():
    space = [param("lr", "double", min="0", max="1"), param("opt", "categorical", values=["sgd", "adam", "ftrl"])]
    f = lambda a: (float(dict(a)["lr"]) - 0.3) ** 2 + (0 if dict(a)["opt"] == "adam" else 1)  # noqa: E731
    trials, _ = loop("bayesianoptimization", rounds=22, parameters=space, f=f)
    assert [t.assignments["opt"] for t in trials[12:]].count("adam") >= 7


def test_bo_acquisition_is_searched_over_the_grid_and_categorical_values():
    # a model of f = (x - 0.3)² + (n - 7)²/10 + [c != "b"]; from starts in wrong cells the
    # coordinate search ends on cell centres where no single-axis move raises the acquisition
    parameters = [param("x", "double", min="0", max="1"), param("n", "int", min="1", max="9"),
                  param("c", "categorical", values=["a", "b", "c"])]
    space = parse_space(parameters)
    layout = parzen.layout_of(space)
    rng = np.random.default_rng(0)
    trials = []
    for i in range(30):
        x, n, c = float(rng.random()), int(rng.integers(1, 10)), ["a", "b", "c"][int(rng.integers(3))]
        trials.append(TrialRecord(f"t{i}", {"x": repr(x), "n": str(n), "c": c}, "Succeeded",
                                  (x - 0.3) ** 2 + (n - 7) ** 2 / 10 + (c != "b")))
    X, losses, _ = bo.training_rows(parzen.read_history(space, trials, "minimize"))
    y = (losses - losses.mean()) / losses.std()
    numeric = np.array([True, True, False])
    theta = gp.fit(X, y, numeric, starts=[gp.default_theta(3)])
    model = gp.condition(X, y, numeric, theta)
    starts = np.array([[0.3, 0.5 / 9, 0.0], [0.9, 8.5 / 9, 2.0]])
    rows, values = bo._coordinate_search("EI", model, float(y.min()), layout, starts)
    assert np.allclose(rows[:, 1] * 9 % 1, 0.5)  # n on a cell centre
    for row, value in zip(rows, values):
        for column, size in ((1, 9), (2, 3)):
            moves = np.repeat(row[None], size, axis=0)
            moves[:, column] = (np.arange(size) + 0.5) / size if column == 1 else np.arange(size)
            mu, sd = gp.predict(model, moves)
            assert gp.acquisition("EI", mu, sd, float(y.min()))[0].max() <= value + 1e-9
    assert parzen.key_of_row(space, rows[0])[1:] == (6, 1)  # n = 7, c = "b"


def test_bo_unimplemented_estimator_is_admitted_and_said_in_the_reply_settings():
    reply = suggest(request("bayesianoptimization", SQUARE, settings={"base_estimator": "RF"}))
    assert reply.settings == {"surrogate": "GP (base_estimator RF is not implemented)"}
    assert suggest(request("bayesianoptimization", SQUARE)).settings == {}


def test_bo_restart_from_state_continues_the_same_search():
    trials, state = loop("bayesianoptimization", rounds=13)
    again = [suggest(request("bayesianoptimization", SQUARE, count=2, trials=trials,
                             state=json.loads(json.dumps(state)))) for _ in range(2)]
    assert again[0].assignments == again[1].assignments and again[0].state == again[1].state
    fresh = suggest(request("bayesianoptimization", SQUARE, count=2, trials=trials, state=None))
    assert not {key(a) for a in fresh.assignments} & {key(a) for a in again[0].assignments}  # another stream


# ---------------------------------------------------------------------------------------
# cmaes


def test_cmaes_converges_on_a_quadratic_and_beats_random():
    trials, state = loop("cmaes", rounds=20, count=6)
    randoms, _ = loop("random", rounds=20, count=6)
    assert best(trials) < best(randoms) / 5
    assert np.allclose(state["cma"]["mean"], [0.25, 0.625], atol=0.08)  # (-0.5, 0.25) on the unit square
    assert state["cma"]["generation"] >= 15


def test_cmaes_tells_a_generation_once_popsize_members_finished():
    popsize = cmaes.popsize_for(2)  # 6
    first = suggest(request("cmaes", SQUARE, count=popsize - 1))
    trials = [TrialRecord(f"t{i}", dict(a), "Succeeded", quadratic(a)) for i, a in enumerate(first.assignments)]
    waiting = suggest(request("cmaes", SQUARE, count=1, trials=trials, state=first.state))
    assert waiting.state["cma"]["generation"] == 0 and len(waiting.state["members"]) == popsize
    trials.append(TrialRecord("last", dict(waiting.assignments[0]), "Running", None))
    still = suggest(request("cmaes", SQUARE, count=1, trials=trials, state=waiting.state))
    assert still.state["cma"]["generation"] == 0  # a running member holds the generation back
    trials[-1] = TrialRecord("last", dict(waiting.assignments[0]), "Failed", None)  # failed: counts as the worst
    told = suggest(request("cmaes", SQUARE, count=1, trials=trials, state=still.state))
    assert told.state["cma"]["generation"] == 1 and len(told.state["members"]) == 1
    assert told.state["cma"]["mean"] != [0.5, 0.5]


def test_cmaes_the_worse_half_of_a_generation_shrinks_the_covariance_along_its_steps():
    # active CMA: the good points step along y, the bad ones along x; negative weights take
    # variance off x that the positive-only update would have kept
    def told(active: bool) -> np.ndarray:
        strategy = cmaes.Strategy(2, sigma=0.1, popsize=6, mean=np.array([0.5, 0.5]))
        if not active:
            strategy.negative = np.zeros(0)
        xs = np.array([[0.5, 0.6], [0.5, 0.4], [0.51, 0.55], [0.7, 0.5], [0.3, 0.5], [0.75, 0.5]])
        strategy.tell(xs, np.array([0.0, 0.1, 0.2, 5.0, 6.0, 7.0]))
        return strategy.C
    active, positive = told(True), told(False)
    assert cmaes.Strategy(2, sigma=0.1, popsize=6, mean=np.zeros(2)).negative.sum() < 0
    assert active[0, 0] < 0.9 * positive[0, 0]
    assert active[1, 1] == pytest.approx(positive[1, 1], rel=0.2)
    assert np.all(np.linalg.eigvalsh(active) > 0)


def test_cmaes_replay_from_the_trial_list_rebuilds_the_same_distribution():
    popsize = cmaes.popsize_for(2)
    trials, state = loop("cmaes", rounds=4, count=popsize)
    state = suggest(request("cmaes", SQUARE, count=1, trials=trials, state=state)).state  # tells the 4th
    replayed = suggest(request("cmaes", SQUARE, count=1, trials=trials, state=None))
    assert replayed.state["cma"]["generation"] == state["cma"]["generation"] == 4
    assert np.allclose(replayed.state["cma"]["mean"], state["cma"]["mean"], atol=1e-9)
    assert np.allclose(replayed.state["cma"]["C"], state["cma"]["C"], atol=1e-9)
    assert replayed.state["cma"]["sigma"] == pytest.approx(state["cma"]["sigma"])


def test_cmaes_state_is_json_with_members_mapped_to_their_points():
    reply = suggest(request("cmaes", MIXED, count=4))
    state = json.loads(json.dumps(reply.state))
    space = parse_space(MIXED)
    assert [space.render(tuple(m["key"])) for m in state["members"]] == reply.assignments
    assert len(state["cma"]["C"]) == 2 and all(len(m["x"]) == 2 for m in state["members"])  # lr, layers


def test_cmaes_sigma_setting_sets_the_first_spread():
    def spread(settings):
        reply = suggest(request("cmaes", SQUARE, count=40, settings=settings))
        return np.std([float(dict(a)["x"]) for a in reply.assignments])
    assert spread({"sigma": "0.05"}) < 0.1 < spread({})  # default: 1/6 of the range (2) ≈ 0.33


def test_cmaes_flat_generation_restarts_with_a_doubled_population():
    popsize = cmaes.popsize_for(2)
    trials, state = loop("cmaes", rounds=1, count=popsize, f=lambda a: 1.0)
    reply = suggest(request("cmaes", SQUARE, count=1, trials=trials, state=state))
    assert reply.state["restarts"] == 1 and reply.state["cma"]["popsize"] == 2 * popsize


# ---------------------------------------------------------------------------------------
# auto


@pytest.mark.parametrize("parameters,budget,chosen", [
    ([param("n", "int", min="1", max="5"), param("c", "categorical", values=["a", "b"])], 20, "sobol"),
    (SQUARE, 8, "sobol"),
    (SQUARE, 60, "bayesianoptimization"),
    ([param(f"x{i}", "double", min="0", max="1") for i in range(10)], 60, "cmaes"),
    (SQUARE, 2000, "cmaes"),
    (SQUARE, 0, "cmaes"),
    (MIXED, 60, "bayesianoptimization"),
    (MIXED, 0, "cmaes"),
    (MIXED[:1] + MIXED[2:], 60, "multivariate-tpe"),
    ([param("a", "categorical", values=["x", "y"]), param("b", "categorical", values=["x", "y"])] + SQUARE, 60,
     "multivariate-tpe"),
    ([param("d", "discrete", values=["1", "2", "4"]), param("u", "double", min="0", max="1")], 0,
     "multivariate-tpe"),
])
def test_auto_choice(parameters, budget, chosen):
    assert auto.choose(parameters, budget)[0] == chosen


def test_auto_keeps_its_choice_says_it_and_delegates_with_the_inner_state():
    first = suggest(request("auto", SQUARE, count=2, max_trials=60))
    assert first.settings["auto_algorithm"] == "bayesianoptimization"
    assert first.state["algorithm"] == "bayesianoptimization" and "rng" in first.state["inner"]
    trials = [TrialRecord(f"t{i}", dict(a), "Succeeded", quadratic(a)) for i, a in enumerate(first.assignments)]
    later = suggest(request("auto", SQUARE, count=2, trials=trials, state=json.loads(json.dumps(first.state)),
                            max_trials=5000))  # the budget changed: the choice does not
    assert later.state["algorithm"] == "bayesianoptimization"
    direct = suggest(request("bayesianoptimization", SQUARE, count=2, trials=trials, state=first.state["inner"]))
    assert later.assignments == direct.assignments


def test_auto_passes_random_state_on():
    one = suggest(request("auto", MIXED, count=3, seed=1, settings={"random_state": "4"}))
    two = suggest(request("auto", MIXED, count=3, seed=2, settings={"random_state": "4"}))
    assert one.assignments == two.assignments


def test_auto_settings_are_random_state_only():
    from katib.algorithms.registry import validate_algorithm

    problems = validate_algorithm("auto", parameters=SQUARE, parallel_trial_count=1, nas_config=None,
                                  settings=[{"name": "random_state", "value": "-1"}, {"name": "gamma", "value": "1"}])
    assert problems == [("spec.algorithm.algorithmSettings[0].value", "random_state should be great or equal than zero"),
                        ("spec.algorithm.algorithmSettings[1].name", "unknown setting gamma for algorithm auto")]
    assert validate_algorithm("auto", parameters=SQUARE, settings=[{"name": "random_state", "value": "3"}],
                              parallel_trial_count=1, nas_config=None) == []
