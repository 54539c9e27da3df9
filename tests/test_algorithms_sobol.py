"""`sobol` beyond the shared contract: it is the scrambled Sobol' sequence, a restart continues
it (with the state, and with a given seed even without), a finite space is covered exactly
once and then reported exhausted, settings are validated."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import qmc

from katib.algorithms import sobol
from katib.algorithms.base import SuggestRequest, TrialRecord
from katib.algorithms.registry import suggest, validate_algorithm
from katib.algorithms.space import parse_space
from tests.test_algorithms import key, param

CUBE = [param("a", "double", min="0", max="1"), param("b", "double", min="-5", max="5"),
        param("c", "double", min="10", max="20")]


def request(parameters, *, trials=(), count=4, state=None, seed=4, settings=None):
    return SuggestRequest(algorithm="sobol", parameters=parameters, objective_type="maximize", trials=list(trials),
                          count=count, settings=dict(settings or {}), state=state, seed=seed)


def finished(assignments, start=0):
    return [TrialRecord(f"t-{start + i}", dict(a), "Succeeded", 0.5) for i, a in enumerate(assignments)]


def test_points_are_the_scrambled_sobol_sequence_of_the_seed():
    reply = suggest(request(CUBE, count=8, seed=4))
    expected = qmc.Sobol(3, scramble=True, seed=4).random(8)
    assert reply.assignments == [parse_space(CUBE).from_unit(u) for u in expected]
    assert reply.state == {"seed": "4", "position": 8}


def test_first_points_are_stratified_as_a_sobol_net_is():
    space = [param("x", "double", min="0", max="1")]
    for seed in range(5):
        xs = [float(a[0][1]) for a in suggest(request(space, count=16, seed=seed)).assignments]
        assert sorted(int(x * 16) for x in xs) == list(range(16))  # one point in each sixteenth


def test_a_restart_from_json_state_continues_the_sequence():
    one_call = suggest(request(CUBE, count=10)).assignments
    first = suggest(request(CUBE, count=4))
    state = json.loads(json.dumps(first.state))
    second = suggest(request(CUBE, count=6, trials=finished(first.assignments), state=state))
    assert first.assignments + second.assignments == one_call
    assert second.state["position"] == 10


def test_without_state_a_given_seed_continues_the_sequence_past_the_trials():
    one_call = suggest(request(CUBE, count=9, settings={"random_state": "12"}, seed=None)).assignments
    lost = suggest(request(CUBE, count=3, trials=finished(one_call[:6]), settings={"random_state": "12"}, seed=1))
    assert lost.assignments == one_call[6:]


def test_without_state_a_continuous_walk_skips_the_count_of_trials_and_any_point_a_trial_holds():
    one_call = suggest(request(CUBE, count=10, settings={"random_state": "12"}, seed=None)).assignments
    # six trials, the sixth being the sequence's 7th point: the walk resumes at point 6, which a
    # trial holds, so it is skipped
    trials = finished(one_call[:5] + [one_call[6]])
    lost = suggest(request(CUBE, count=2, trials=trials, settings={"random_state": "12"}, seed=1))
    assert lost.assignments == one_call[7:9]
    assert lost.state["position"] == 9


def test_the_random_state_setting_wins_over_the_request_seed():
    by_setting = suggest(request(CUBE, count=3, seed=1, settings={"random_state": "7"}))
    assert by_setting == suggest(request(CUBE, count=3, seed=7))
    assert by_setting.assignments != suggest(request(CUBE, count=3, seed=1)).assignments


def test_without_any_seed_the_drawn_seed_is_kept_in_the_state():
    first = suggest(request(CUBE, count=2, seed=None))
    state = json.loads(json.dumps(first.state))
    again = [suggest(request(CUBE, count=3, seed=None, state=state, trials=finished(first.assignments)))
             for _ in range(2)]
    assert again[0] == again[1]
    assert int(state["seed"]) == int(again[0].state["seed"])


@pytest.mark.parametrize("count", [1, 4, 7])
def test_a_finite_space_is_covered_exactly_once_then_exhausted(count):
    space = [param("n", "int", min="1", max="5"), param("act", "categorical", values=["relu", "tanh", "elu"]),
             param("lr", "double", min="0.1", max="0.2", step="0.1")]  # 5 × 3 × 2 = 30 points
    trials, state, replies = [], None, []
    while not (replies and replies[-1].exhausted):
        reply = suggest(request(space, count=count, trials=trials, state=state))
        assert len(reply.assignments) == count or reply.exhausted
        replies.append(reply)
        trials += finished(reply.assignments, start=len(trials))
        state = json.loads(json.dumps(reply.state))
        assert len(replies) <= 30
    keys = [tuple(t.assignments.values()) for t in trials]
    assert len(keys) == len(set(keys)) == 30
    after = suggest(request(space, count=2, trials=trials, state=state))
    assert (after.assignments, after.exhausted) == ([], True)


def test_points_held_by_trials_are_skipped_on_a_finite_space():
    space = [param("n", "int", min="0", max="99")]
    ahead = suggest(request(space, count=6)).assignments
    taken = finished([ahead[1], ahead[3]])
    reply = suggest(request(space, count=4, trials=taken))
    assert reply.assignments == [ahead[0], ahead[2], ahead[4], ahead[5]]
    assert reply.state["position"] == 6


def test_when_the_sequence_only_revisits_used_cells_the_free_points_are_still_found(monkeypatch):
    monkeypatch.setattr(sobol, "LOOKAHEAD", 0)
    space = [param("n", "int", min="0", max="999")]
    taken = finished([[("n", str(i))] for i in range(1000) if i not in (17, 500, 999)])
    reply = suggest(request(space, count=5, trials=taken))
    assert sorted(key(a) for a in reply.assignments) == [("17",), ("500",), ("999",)]
    assert reply.exhausted is True


def test_settings_are_validated():
    problems = validate_algorithm("sobol", parameters=CUBE, settings=[{"name": "random_state", "value": "-2"},
                                                                       {"name": "gamma", "value": "0.1"}],
                                  parallel_trial_count=1, nas_config=None)
    assert problems == [("spec.algorithm.algorithmSettings[0].value", "random_state should be great or equal than zero"),
                        ("spec.algorithm.algorithmSettings[1].name", "unknown setting gamma for algorithm sobol")]
    assert validate_algorithm("sobol", parameters=CUBE, settings=[{"name": "random_state", "value": "3"}],
                              parallel_trial_count=1, nas_config=None) == []


def test_spread_beats_uniform_random_in_six_dimensions():
    space = [param(f"x{i}", "double", min="0", max="1") for i in range(6)]

    def discrepancy(name, seed):
        reply = suggest(SuggestRequest(algorithm=name, parameters=space, objective_type="minimize", trials=[],
                                       count=64, settings={}, state=None, seed=seed))
        return qmc.discrepancy(np.array([[float(v) for _, v in a] for a in reply.assignments]))

    assert max(discrepancy("sobol", s) for s in range(3)) < min(discrepancy("random", s) for s in range(3))
