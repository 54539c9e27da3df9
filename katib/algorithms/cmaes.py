"""`cmaes` (upstream: goptuna CMA-ES sampler). Only settings validation exists so far.

Upstream rules and messages (defaults-and-validation.md §4), every duplicate reported.
Upstream answered a bad `random_state`/`sigma` with code Internal, which the controller
treated as valid before every GetSuggestions failed; we reject them at admission, keeping
upstream's message prefix."""
from __future__ import annotations

import math

from .settings import Problem, iter_settings, parameter_entries, require_parameters, setting_path
from .space import is_integer_text

NAME = "cmaes"
_STUDY_ERROR = "Failed to create goptuna study and search space"


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    entries = parameter_entries(parameters)
    problems = require_parameters(NAME, parameters)
    continuous = [p for _, p in entries if p.get("parameterType") in ("double", "int")]
    if len(continuous) < 2:
        problems.append(("spec.parameters", "CMA-ES only supports two or more dimensional continuous search space."))
    seen = set()
    for index, parameter in entries:
        name = parameter.get("name")
        if name in seen:
            problems.append((f"spec.parameters[{index}].name", f"Detect duplicated parameter name: {name}"))
        seen.add(name)
    return problems + _check_settings(settings)


def _check_settings(settings) -> list[Problem]:
    problems = []
    for index, name, value in iter_settings(settings):
        if name == "random_state" and not is_integer_text(value):
            problems.append((setting_path(index), f'{_STUDY_ERROR}: random_state must be an integer, got "{value}"'))
        if name == "sigma" and not _positive_float(value):
            problems.append((setting_path(index), f'{_STUDY_ERROR}: sigma must be a positive number, got "{value}"'))
    return problems


def _positive_float(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and number > 0
