"""`bayesianoptimization` (upstream: scikit-optimize 0.5.2). Only settings validation so far.

Upstream had no ValidateAlgorithmSettings (bad values raised at the first GetSuggestions,
unknown keys were ignored). We check the known keys at admission with our own messages;
unknown keys are still ignored, as upstream did."""
from __future__ import annotations

from .settings import Problem, last_settings, require_parameters, setting_path
from .space import is_integer_text

NAME = "bayesianoptimization"
BASE_ESTIMATORS = ("GP", "RF", "ET", "GBRT")  # skopt compares upper-cased
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")  # skopt's EIps/PIps need trial durations: unusable
ACQ_OPTIMIZERS = ("auto", "sampling", "lbfgs")
MAX_SEED = 2**32 - 1  # numpy RandomState


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    found = last_settings(settings)
    problems = require_parameters(NAME, parameters)
    for name, check in _CHECKS.items():
        if name in found:
            index, value = found[name]
            message = check(value)
            if message:
                problems.append((setting_path(index), message))
    problems += _check_lbfgs(found)
    return problems


def _one_of(name: str, allowed: tuple[str, ...], *, fold_case: bool = False):
    def check(value: str) -> str | None:
        candidates = [a.upper() for a in allowed] if fold_case else allowed
        if (value.upper() if fold_case else value) in candidates:
            return None
        return f'{name} must be one of {", ".join(allowed)}, got "{value}"'
    return check


def _check_n_initial_points(value: str) -> str | None:
    if is_integer_text(value) and int(value) >= 0:
        return None
    return f'n_initial_points must be an integer >= 0, got "{value}"'


def _check_random_state(value: str) -> str | None:
    if is_integer_text(value) and 0 <= int(value) <= MAX_SEED:
        return None
    return f'random_state must be an integer between 0 and {MAX_SEED}, got "{value}"'


def _check_lbfgs(found: dict[str, tuple[int, str]]) -> list[Problem]:
    """skopt refuses lbfgs for estimators without gradients (all but GP)."""
    index, optimizer = found.get("acq_optimizer", (None, "auto"))
    estimator = found.get("base_estimator", (None, "GP"))[1]
    if optimizer != "lbfgs" or estimator.upper() not in BASE_ESTIMATORS or estimator.upper() == "GP":
        return []
    return [(setting_path(index), f"acq_optimizer lbfgs needs base_estimator GP "
                                  f"({estimator} has no gradients); use auto or sampling")]


_CHECKS = {
    "base_estimator": _one_of("base_estimator", BASE_ESTIMATORS, fold_case=True),
    "n_initial_points": _check_n_initial_points,
    "acq_func": _one_of("acq_func", ACQ_FUNCS),
    "acq_optimizer": _one_of("acq_optimizer", ACQ_OPTIMIZERS),
    "random_state": _check_random_state,
}
