"""Benchmark problems in Katib's parameter format, each with a known minimum.

Shared by both sides of bench/algorithms.py: our algorithms (project venv) and the peers
(bench/.venv-peers), so it needs nothing but numpy. A problem is `spec.parameters` in JSON
form (feasibleSpace bounds as strings, as a user writes them), an objective over decoded
values (double → float, int → int, discrete → float, categorical → str) to be MINIMISED,
and its known minimum f*, so that simple regret = best f so far − f*.

The two mixed spaces are made up but HPO-like: a continuous "learning rate" whose best value
depends on the finite parameters in closed form, so f* is exact: the finite part is
enumerated and the continuous part set to its clipped analytic argmin."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Problem:
    name: str
    parameters: list[dict]
    objective: Callable[[dict], float]
    minimum: float
    argmin: dict  # decoded values at which `objective` equals `minimum`


def double(name: str, low, high, step=None) -> dict:
    space = {"min": str(low), "max": str(high)}
    if step is not None:
        space["step"] = str(step)
    return {"name": name, "parameterType": "double", "feasibleSpace": space}


def integer(name: str, low: int, high: int, step: int | None = None) -> dict:
    space = {"min": str(low), "max": str(high)}
    if step is not None:
        space["step"] = str(step)
    return {"name": name, "parameterType": "int", "feasibleSpace": space}


def listed(name: str, kind: str, values) -> dict:
    return {"name": name, "parameterType": kind, "feasibleSpace": {"list": [str(v) for v in values]}}


# ---------------------------------------------------------------------------------------
# value encoding: decoded values ↔ Katib assignment strings (as katib/algorithms/space.py renders)


def grid_values(parameter: dict) -> list | None:
    """The values of a finite int/stepped-double/list axis (decoded), None for a continuous one."""
    kind, space = parameter["parameterType"], parameter["feasibleSpace"]
    if kind in ("discrete", "categorical"):
        return [float(v) if kind == "discrete" else v for v in space["list"]]
    step = space.get("step") or ("1" if kind == "int" else "")
    if not step:
        return None
    low, high, stride = Decimal(space["min"]), Decimal(space["max"]), Decimal(step)
    count = int((high - low) // stride) + 1
    numbers = [low + i * stride for i in range(count)]
    return [int(n) if kind == "int" else float(n) for n in numbers]


def encode(parameters: list[dict], values: dict) -> dict[str, str]:
    """Decoded values → the assignment strings Katib stores (finite values snapped to the grid)."""
    out = {}
    for parameter in parameters:
        name, kind = parameter["name"], parameter["parameterType"]
        value, grid = values[name], grid_values(parameter)
        if kind in ("discrete", "categorical"):
            out[name] = parameter["feasibleSpace"]["list"][grid.index(value if kind == "categorical" else float(value))]
        elif grid is None:
            out[name] = repr(float(value))
        else:
            nearest = min(range(len(grid)), key=lambda i: abs(grid[i] - float(value)))
            out[name] = str(grid[nearest]) if kind == "int" else repr(grid[nearest])
    return out


def decode(parameters: list[dict], assignments: dict[str, str]) -> dict:
    """Katib assignment strings → typed values for the objective."""
    casts = {"double": float, "int": int, "discrete": float, "categorical": str}
    return {p["name"]: casts[p["parameterType"]](assignments[p["name"]]) for p in parameters}


# ---------------------------------------------------------------------------------------
# standard continuous problems


def branin(v: dict) -> float:
    x1, x2 = v["x1"], v["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
H6_ARGMIN = [0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054]


def hartmann6(v: dict) -> float:
    x = np.array([v[f"x{i}"] for i in range(1, 7)])
    return float(-_H6_ALPHA @ np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)))


def rosenbrock(v: dict) -> float:
    x = np.array([v[f"x{i}"] for i in range(1, len(v) + 1)])
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy(v: dict) -> float:
    x = np.array([v[f"x{i}"] for i in range(1, len(v) + 1)])
    w = 1 + (x - 1) / 4
    middle = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    last = (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2)
    return float(np.sin(np.pi * w[0]) ** 2 + middle + last)


def _axes(n: int, low, high) -> list[dict]:
    return [double(f"x{i}", low, high) for i in range(1, n + 1)]


def _named(values) -> dict:
    return {f"x{i}": float(x) for i, x in enumerate(values, 1)}


# ---------------------------------------------------------------------------------------
# mixed HPO-like problems: g(finite) + a * (h(continuous) - c(finite))^2


MLP = [double("learning_rate", "0.0001", "0.1"), integer("num_layers", 1, 8),
       listed("batch_size", "discrete", [16, 32, 64, 128, 256]),
       listed("optimizer", "categorical", ["sgd", "adam", "rmsprop"]),
       double("dropout", "0", "0.5", "0.05")]
_MLP_LR = {"sgd": -1.0, "adam": -2.0, "rmsprop": -2.3}  # log10 of the best lr at batch 64
_MLP_OFFSET = {"sgd": 0.25, "adam": 0.0, "rmsprop": 0.1}


def _mlp_best_log_lr(v: dict) -> float:
    return _MLP_LR[v["optimizer"]] + 0.15 * (math.log2(v["batch_size"]) - 6)


def mlp(v: dict) -> float:
    """A validation error: the best lr moves with optimizer and batch size (log scale, which
    Katib's linear double range does not know), depth wants dropout."""
    depth = 4 if v["optimizer"] == "adam" else 3
    return (0.1 + _MLP_OFFSET[v["optimizer"]]
            + 1.0 * (math.log10(v["learning_rate"]) - _mlp_best_log_lr(v)) ** 2
            + 0.04 * (v["num_layers"] - depth) ** 2
            + 0.6 * (v["dropout"] - 0.05 * v["num_layers"]) ** 2
            + 0.02 * (math.log2(v["batch_size"]) - 6) ** 2)


XGB = [integer("max_depth", 2, 12), integer("n_estimators", 50, 500, 50), double("eta", "0.01", "0.3"),
       double("subsample", "0.5", "1.0", "0.1"),
       listed("booster", "categorical", ["gbtree", "dart", "gblinear"]),
       listed("min_child_weight", "discrete", [1, 3, 5, 7, 10])]
_XGB_DEPTH = {"gbtree": 6, "dart": 8, "gblinear": 2}
_XGB_OFFSET = {"gbtree": 0.0, "dart": 0.02, "gblinear": 0.08}


def _xgb_best_eta(v: dict) -> float:
    return 15.0 / v["n_estimators"]


def xgb(v: dict) -> float:
    """A log-loss: eta × n_estimators wants to stay near 15, depth depends on the booster,
    min_child_weight on depth."""
    return (0.2 + _XGB_OFFSET[v["booster"]]
            + 0.5 * math.log(v["eta"] / _xgb_best_eta(v)) ** 2
            + 0.01 * (v["max_depth"] - _XGB_DEPTH[v["booster"]]) ** 2
            + 0.05 * (v["n_estimators"] / 500 - 0.6) ** 2
            + 0.3 * (v["subsample"] - 0.8) ** 2
            + 0.004 * (v["min_child_weight"] - v["max_depth"] / 2 - 2) ** 2)


def enumerate_minimum(parameters: list[dict], objective, continuous) -> tuple[float, dict]:
    """Exact minimum of a mixed problem: every finite combination, with each continuous
    parameter at `continuous[name](values)` clipped to its bounds (the term is convex in it)."""
    finite = [p for p in parameters if grid_values(p) is not None]
    best = (math.inf, {})
    for combination in itertools.product(*(grid_values(p) for p in finite)):
        values = {p["name"]: x for p, x in zip(finite, combination)}
        for p in parameters:
            if p["name"] in continuous:
                low, high = float(p["feasibleSpace"]["min"]), float(p["feasibleSpace"]["max"])
                values[p["name"]] = min(max(continuous[p["name"]](values), low), high)
        f = objective(values)
        if f < best[0]:
            best = (f, values)
    return best


def _mixed(name: str, parameters: list[dict], objective, continuous) -> Problem:
    minimum, argmin = enumerate_minimum(parameters, objective, continuous)
    return Problem(name, parameters, objective, minimum, argmin)


def build() -> dict[str, Problem]:
    problems = [
        Problem("branin", [double("x1", -5, 10), double("x2", 0, 15)], branin, 0.39788735772973816,
                {"x1": math.pi, "x2": 2.275}),
        Problem("hartmann6", _axes(6, 0, 1), hartmann6, -3.3223680114155147, _named(H6_ARGMIN)),
        Problem("rosenbrock5", _axes(5, -5, 10), rosenbrock, 0.0, _named([1] * 5)),
        Problem("levy10", _axes(10, -10, 10), levy, 0.0, _named([1] * 10)),
        _mixed("mixed-mlp", MLP, mlp, {"learning_rate": lambda v: 10 ** _mlp_best_log_lr(v)}),
        _mixed("mixed-xgb", XGB, xgb, {"eta": _xgb_best_eta}),
    ]
    return {problem.name: problem for problem in problems}


PROBLEMS = build()


def stepped(problem: Problem, step: str) -> Problem:
    """The problem with every continuous double given `step`: a finite version for grid."""
    parameters = [dict(p, feasibleSpace={**p["feasibleSpace"], "step": step})
                  if p["parameterType"] == "double" and not p["feasibleSpace"].get("step") else p
                  for p in problem.parameters]
    return Problem(f"{problem.name}-step{step}", parameters, problem.objective, problem.minimum, problem.argmin)


def get(name: str) -> Problem:
    """A problem by name; "<name>-step<step>" is its stepped variant (used for timing only:
    its minimum is the continuous problem's, a bound rather than exact)."""
    if name in PROBLEMS or "-step" not in name:
        return PROBLEMS[name]
    base, step = name.rsplit("-step", 1)
    return stepped(PROBLEMS[base], step)


def random_points(problem: Problem, *, n: int, seed: int) -> list[dict]:
    """`n` decoded points drawn uniformly (finite axes: uniform over their values): the
    finished trials both sides are timed on."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for parameter in problem.parameters:
            grid = grid_values(parameter)
            if grid is None:
                space = parameter["feasibleSpace"]
                point[parameter["name"]] = float(rng.uniform(float(space["min"]), float(space["max"])))
            else:
                point[parameter["name"]] = grid[int(rng.integers(len(grid)))]
        points.append(point)
    return points
