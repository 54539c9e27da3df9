"""The benchmark's problems (bench/problems.py): known minima hold, and their spaces and
value strings are Katib's, so both sides of bench/algorithms.py see the same problem."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import problems as P  # noqa: E402
import report  # noqa: E402
from katib.algorithms.space import parse_space, validate_space  # noqa: E402

NAMES = list(P.PROBLEMS)


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_valid_katib_parameters(name):
    assert validate_space(P.PROBLEMS[name].parameters) == []


@pytest.mark.parametrize("name", NAMES)
def test_minimum_is_reached_at_argmin_and_bounds_random_points(name):
    problem = P.PROBLEMS[name]
    assert problem.objective(problem.argmin) == pytest.approx(problem.minimum, abs=1e-9)
    values = [problem.objective(point) for point in P.random_points(problem, n=3000, seed=1)]
    assert min(values) >= problem.minimum - 1e-9
    assert max(values) > problem.minimum + 1e-3  # not a constant


def test_published_minima():
    # Branin has three global minima; Hartmann-6's is from the literature (Surjanovic & Bingham)
    for x1, x2 in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)):
        assert P.branin({"x1": x1, "x2": x2}) == pytest.approx(0.397887, abs=1e-6)
    assert P.hartmann6(P.PROBLEMS["hartmann6"].argmin) == pytest.approx(-3.32237, abs=1e-5)
    assert P.levy(P._named([1] * 10)) == pytest.approx(0.0, abs=1e-12)
    # at x = -3 every w_i = 0: nine middle terms 1 + 10 sin²(1) and a last term 1
    assert P.levy(P._named([-3] * 10)) == pytest.approx(9 * (1 + 10 * math.sin(1) ** 2) + 1)
    assert P.rosenbrock(P._named([1, 1, 1, 1, 1.1])) > 0


@pytest.mark.parametrize("name", ["mixed-mlp", "mixed-xgb"])
def test_mixed_minimum_is_the_enumerated_one(name):
    problem = P.PROBLEMS[name]
    space = parse_space(problem.parameters)
    # the argmin lies in the space, on the grid, and no grid neighbour of it is better
    assert space.key_of(P.encode(problem.parameters, problem.argmin)) is not None
    for parameter in problem.parameters:
        grid = P.grid_values(parameter)
        for value in grid or []:
            assert problem.objective({**problem.argmin, parameter["name"]: value}) >= problem.minimum - 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_encoding_is_what_katib_renders(name):
    problem = P.PROBLEMS[name]
    space = parse_space(problem.parameters)
    for point in P.random_points(problem, n=200, seed=2):
        encoded = P.encode(problem.parameters, point)
        key = space.key_of(encoded)
        assert key is not None, encoded
        assert dict(space.render(key)) == encoded
        decoded = P.decode(problem.parameters, encoded)
        assert all(math.isclose(float(decoded[k]), float(v)) if not isinstance(v, str) else decoded[k] == v
                   for k, v in point.items())


def test_encode_snaps_float_noise_to_the_grid():
    parameters = P.PROBLEMS["mixed-mlp"].parameters
    point = dict(P.PROBLEMS["mixed-mlp"].argmin, dropout=0.15000000000000002, num_layers=3.0)
    encoded = P.encode(parameters, point)
    assert encoded["dropout"] == "0.15" and encoded["num_layers"] == "3"


def test_repeats_count_equal_assignments_across_spellings():
    parameters = P.PROBLEMS["mixed-mlp"].parameters
    first = P.encode(parameters, P.PROBLEMS["mixed-mlp"].argmin)
    respelled = dict(first, dropout="0.20000000000000001")
    other = dict(first, dropout="0.25")
    assert report.repeats(parameters, [first, other, respelled, first]) == 2
    assert report.repeats(parameters, [first, other]) == 0


def test_regrets_keep_the_best_so_far():
    assert report.regrets([5.0, 3.0, 4.0, 1.0], 1.0, [1, 2, 3, 10]) == {"1": 4.0, "2": 2.0, "3": 2.0, "10": 0.0}


def test_auto_rank_counts_only_the_algorithms_strictly_better():
    # auto delegates: its runs are its pick's, so that twin ties it and does not push it down
    def auto_lines(finals):
        summary = {"quality": {"branin": {p: {n: {"60": v, "seeds": 1} for n, v in finals.items()}
                                          for p in ("1", "4")}},
                   "checkpoints": [60], "timing": {}, "duplicates": {}, "ours": []}
        return [line for line in report.targets(summary, budget=60) if "auto" in line]

    assert auto_lines({"a": 1.0, "b": 2.0, "cmaes": 3.0, "auto": 3.0, "c": 4.0}) == [
        "p=1 auto on branin: rank 3 of 5 — met", "p=4 auto on branin: rank 3 of 5 — met"]
    assert auto_lines({"a": 1.0, "b": 2.0, "c": 3.0 - 1e-9, "cmaes": 3.0, "auto": 3.0})[0] == \
        "p=1 auto on branin: rank 4 of 5 — MISSED"
