"""`hyperband` (upstream: own Python service). Only settings validation exists so far.

Upstream rules and messages (defaults-and-validation.md §4), all reported at once. Inputs
that crashed upstream's validator or first GetSuggestions (an "Unknown" failure there) are
reported with clear messages instead: r_l of 0/NaN/inf (same message as a negative r_l),
an unparsable eta, and an eta that truncates to 1 (log(1) = 0 divides by zero)."""
from __future__ import annotations

import math

from .settings import SETTINGS_PATH, Problem, last_settings, parameter_entries, require_parameters, setting_path

NAME = "hyperband"
DEFAULT_ETA = 3


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    found = last_settings(settings)
    problems = require_parameters(NAME, parameters)
    if "r_l" not in found or "resource_name" not in found:
        problems.append((SETTINGS_PATH, "r_l and resource_name must be set."))
    r_l = _r_l(found, problems)
    eta = _eta(found, problems)
    if r_l is not None and eta is not None:
        needed = largest_bracket(r_l, eta)
        if int(parallel_trial_count or 0) < needed:
            problems.append(("spec.parallelTrialCount", f"parallelTrialCount must be not less than {needed}."))
    if "resource_name" in found:
        index, resource = found["resource_name"]
        if resource not in {p.get("name") for _, p in parameter_entries(parameters)}:
            problems.append((setting_path(index), "value of resource_name setting must be in parameters."))
    return problems


def largest_bracket(r_l: float, eta: int) -> int:
    """ceil(eta**s_max) with upstream's truncating s_max = int(log(r_l)/log(eta))."""
    s_max = int(math.log(r_l) / math.log(eta))
    return int(math.ceil(eta ** s_max))


def _r_l(found: dict[str, tuple[int, str]], problems: list[Problem]) -> float | None:
    if "r_l" not in found:
        return None
    index, value = found["r_l"]
    try:
        r_l = float(value)
    except ValueError:
        r_l = math.nan
    if not (math.isfinite(r_l) and r_l > 0):
        problems.append((setting_path(index), "r_l must be a positive float number."))
        return None
    return r_l


def _eta(found: dict[str, tuple[int, str]], problems: list[Problem]) -> int | None:
    if "eta" not in found:
        return DEFAULT_ETA
    index, value = found["eta"]
    try:
        eta = int(float(value))
    except (ValueError, OverflowError):
        problems.append((setting_path(index), f'eta must be a number, got "{value}"'))
        return None
    if eta == 1:
        problems.append((setting_path(index), f'eta must be at least 2, got "{value}" (eta is truncated '
                                              f'to an integer; a value <= 0 selects the default 3)'))
        return None
    return eta if eta > 0 else DEFAULT_ETA
