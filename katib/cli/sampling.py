"""Assignments for `katib.py render`: the user's `--set NAME=VALUE` values, checked against
the feasible space, and a random draw for every parameter left unset.

Draws come from katib.algorithms (`random` for hyperparameters; the experiment's own
algorithm for NAS when it can suggest) and fall back to a small local sampler that follows
upstream's output formats (algorithms.md §8–9 for ENAS/DARTS)."""
from __future__ import annotations

import itertools
import json
import math
import random
import re
from decimal import Decimal, InvalidOperation
from typing import Any

NAS_OUTPUTS = {"enas": ("architecture", "nn_config"),
               "darts": ("algorithm-settings", "search-space", "num-layers")}
DARTS_DEFAULTS = {"num_epochs": 50, "w_lr": 0.025, "w_lr_min": 0.001, "w_momentum": 0.9,
                  "w_weight_decay": 3e-4, "w_grad_clip": 5.0, "alpha_lr": 3e-4,
                  "alpha_weight_decay": 1e-3, "batch_size": 128, "num_workers": 4,
                  "init_channels": 16, "print_step": 50, "num_nodes": 4, "stem_multiplier": 3}
_INT = re.compile(r"[+-]?\d+")


def parse_sets(items: list[str]) -> list[tuple[str, str]]:
    """`NAME=VALUE` items (split at the first `=`); ValueError names the bad one."""
    pairs, seen = [], set()
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {item}: expected NAME=VALUE")
        if name in seen:
            raise ValueError(f"--set {name}: given more than once")
        seen.add(name)
        pairs.append((name, value))
    return pairs


def build_assignments(spec: dict, sets: list[tuple[str, str]], *, seed: int | None
                      ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(assignments in parameter order, problems, names that were sampled)."""
    algorithm = str((spec.get("algorithm") or {}).get("algorithmName") or "")
    if spec.get("nasConfig") is not None and not spec.get("parameters"):
        names, checks = list(NAS_OUTPUTS.get(algorithm, ())), {}
    else:
        params = [p for p in spec.get("parameters") or [] if isinstance(p, dict)]
        names = [str(p.get("name") or "") for p in params]
        checks = dict(zip(names, params))
    given = dict(sets)
    problems = [f"--set {n}: unknown parameter (known: {', '.join(names) or 'none'})"
                for n in given if n not in names]
    problems += [f"--set {n}={v}: {why}" for n, v in given.items()
                 if n in checks and (why := check_value(checks[n], v))]
    missing = [n for n in names if n not in given]
    drawn: dict[str, str] = {}
    if missing and not problems:
        try:
            drawn = dict(sample(spec, algorithm=algorithm, seed=seed))
        except (ValueError, TypeError, KeyError, ArithmeticError) as err:
            problems.append(f"cannot sample {', '.join(missing)}: {err}")
    values = {**drawn, **given}
    return [(n, values[n]) for n in names if n in values], problems, missing


def check_value(parameter: dict, value: str) -> str | None:
    """Why `value` is outside the parameter's feasible space, or None."""
    kind = parameter.get("parameterType")
    space = parameter.get("feasibleSpace") or {}
    if kind in ("categorical", "discrete"):
        options = [str(v) for v in space.get("list") or []]
        number = _number(value)
        if value in options or (kind == "discrete" and number is not None
                                and number in {_number(o) for o in options}):
            return None
        return f"must be one of {', '.join(options)}"
    if kind not in ("int", "double"):
        return None   # validation reports the parameter itself
    number = _number(value)
    if number is None or (kind == "int" and not _INT.fullmatch(value.strip())):
        return f"must be {'an integer' if kind == 'int' else 'a number'}"
    low, high = _number(space.get("min")), _number(space.get("max"))
    if low is not None and high is not None and not low <= number <= high:
        return f"must be between {space.get('min')} and {space.get('max')}"
    step = _number(space.get("step"))
    if kind == "int" and step and low is not None and (number - low) % step:
        return f"must be {space.get('min')} plus a multiple of step {space.get('step')}"
    return None


def _number(text: Any) -> Decimal | None:
    try:
        number = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


# ----------------------------------------------------------------------------------- sampling

def sample(spec: dict, *, algorithm: str, seed: int | None) -> list[tuple[str, str]]:
    if spec.get("nasConfig") is not None and not spec.get("parameters"):
        return _from_registry(spec, algorithm, seed) or _sample_nas(spec, algorithm, random.Random(seed))
    return _from_registry(spec, "random", seed) or _sample_parameters(spec, random.Random(seed))


def _from_registry(spec: dict, algorithm: str, seed: int | None) -> list[tuple[str, str]] | None:
    try:
        from katib.algorithms.base import SuggestRequest
        from katib.algorithms.registry import can_suggest, suggest
    except ImportError:
        return None
    if not can_suggest(algorithm):
        return None
    request = SuggestRequest(
        algorithm=algorithm, parameters=list(spec.get("parameters") or []),
        objective_type=str((spec.get("objective") or {}).get("type") or "maximize"), trials=[],
        count=1, settings=_settings(spec), state=None, seed=seed,
        parallel_trial_count=int(spec.get("parallelTrialCount") or 0),
        max_trial_count=int(spec.get("maxTrialCount") or 0), nas_config=spec.get("nasConfig"))
    try:
        reply = suggest(request)
    except (ValueError, NotImplementedError):   # e.g. a space the algorithm refuses; draw locally
        return None
    return list(reply.assignments[0]) if reply.assignments else None


def _settings(spec: dict) -> dict[str, str]:
    settings = (spec.get("algorithm") or {}).get("algorithmSettings") or []
    return {str(s.get("name") or ""): str(s.get("value") or "") for s in settings if isinstance(s, dict)}


def _sample_parameters(spec: dict, rng: random.Random) -> list[tuple[str, str]]:
    return [(str(p.get("name")), _draw(p, rng)) for p in spec.get("parameters") or []]


def _draw(parameter: dict, rng: random.Random) -> str:
    kind, space = parameter.get("parameterType"), parameter.get("feasibleSpace") or {}
    if kind in ("categorical", "discrete"):
        return str(rng.choice(space["list"]))
    low, high = float(space["min"]), float(space["max"])
    step = float(space["step"]) if space.get("step") else (1.0 if kind == "int" else 0.0)
    if kind == "int":
        return str(int(low) + int(step) * rng.randint(0, int((high - low) // step)))
    if step:
        return str(low + step * rng.randint(0, math.floor((high - low) / step + 1e-9)))
    return str(rng.uniform(low, high))


# ---------------------------------------------------------------------------------------- NAS

def _sample_nas(spec: dict, algorithm: str, rng: random.Random) -> list[tuple[str, str]]:
    nas = spec["nasConfig"]
    graph = nas.get("graphConfig") or {}
    if algorithm == "darts":
        settings = {**DARTS_DEFAULTS, **_settings(spec)}
        return [("algorithm-settings", _squote(settings)),
                ("search-space", _squote(_darts_primitives(nas.get("operations") or []))),
                ("num-layers", str(graph.get("numLayers")))]
    if algorithm == "enas":
        return _sample_enas(graph, nas.get("operations") or [], rng)
    raise ValueError(f"algorithm {algorithm} does not produce a neural architecture")


def _darts_primitives(operations: list[dict]) -> list[str]:
    out = []
    for op in operations:
        kind = op.get("operationType")
        if kind == "skip_connection":
            out.append(kind)
            continue
        first = (op.get("parameters") or [{}])[0]
        out += [f"{kind}_{f}x{f}" for f in (first.get("feasibleSpace") or {}).get("list") or []]
    return out


def _sample_enas(graph: dict, operations: list[dict], rng: random.Random) -> list[tuple[str, str]]:
    table = _enas_operations(operations)
    layers = int(graph["numLayers"])
    arch = [[rng.randrange(len(table))] + [rng.randint(0, 1) for _ in range(layer)]
            for layer in range(layers)]
    used = sorted({row[0] for row in arch})
    embedding = {str(i): {"opt_id": i, "opt_type": table[i][0], "opt_params": table[i][1]} for i in used}
    config = {"num_layers": layers, "input_sizes": graph.get("inputSizes"),
              "output_sizes": graph.get("outputSizes"), "embedding": embedding}
    return [("architecture", _squote(arch)), ("nn_config", _squote(config))]


def _enas_operations(operations: list[dict]) -> list[tuple[str, dict]]:
    """Every (operationType, {param: value}) in id order: last parameter varies fastest."""
    table = []
    for op in operations:
        params = op.get("parameters") or []
        names = [p.get("name") for p in params]
        for combo in itertools.product(*(_enas_values(p) for p in params)):
            table.append((op.get("operationType"), dict(zip(names, combo))))
    return table


def _enas_values(parameter: dict) -> list:
    space = parameter.get("feasibleSpace") or {}
    if parameter.get("parameterType") == "categorical":
        return list(space.get("list") or [])
    if parameter.get("parameterType") == "int":
        return list(range(int(space["min"]), int(space["max"]) + 1, int(space["step"])))
    low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
    return [low + i * step for i in range(math.floor((high - low) / step + 1e-9) + 1)]


def _squote(value: Any) -> str:
    """JSON with `"` turned into `'`, as the NAS services hand it to trials."""
    return json.dumps(value).replace('"', "'")
