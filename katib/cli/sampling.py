"""Assignments for `katib.py render`: the user's `--set NAME=VALUE` values, checked against
the feasible space, and a random draw for every parameter left unset.

Draws come from katib.algorithms: `random` for hyperparameters; for NAS the experiment's own
algorithm when it can suggest, else katib.algorithms.samples' upstream formats (ENAS/DARTS)."""
from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from katib.algorithms.base import SuggestRequest
from katib.algorithms.registry import can_suggest, suggest
from katib.algorithms.samples import NAS_OUTPUTS, fixed_values, nas_assignments

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
    """One draw for every parameter; ValueError when no algorithm can give one."""
    if spec.get("nasConfig") is not None and not spec.get("parameters"):
        return _from_registry(spec, algorithm, seed) or nas_assignments(
            spec["nasConfig"], algorithm=algorithm, settings=_settings(spec), rng=random.Random(seed))
    fixed = fixed_values(spec)
    free = [p for p in spec.get("parameters") or [] if p.get("name") not in fixed]
    drawn = dict(_from_registry({**spec, "parameters": free}, "random", seed) or []) if free else {}
    if len(drawn) < len(free):
        raise ValueError("the random algorithm cannot sample this search space")
    return [(p["name"], fixed.get(p["name"]) or drawn[p["name"]]) for p in spec.get("parameters") or []]


def _from_registry(spec: dict, algorithm: str, seed: int | None) -> list[tuple[str, str]] | None:
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
    except (ValueError, NotImplementedError):   # e.g. a space the algorithm refuses
        return None
    return list(reply.assignments[0]) if reply.assignments else None


def _settings(spec: dict) -> dict[str, str]:
    settings = (spec.get("algorithm") or {}).get("algorithmSettings") or []
    return {str(s.get("name") or ""): str(s.get("value") or "") for s in settings if isinstance(s, dict)}
