"""`tpe` (upstream: hyperopt TPE). Only settings validation exists so far; suggest comes later.

Rules and messages are the hyperopt service's (defaults-and-validation.md §4), except that
every offending setting is reported, not only the first."""
from __future__ import annotations

from .settings import Problem, check_schema_settings, require_parameters

NAME = "tpe"
SETTINGS = {
    "gamma": (float, lambda v: 1 > v > 0, "gamma should be in the range of (0, 1)"),
    "prior_weight": (float, lambda v: v > 0, "prior_weight should be great than zero"),
    "n_EI_candidates": (int, lambda v: v > 0, "n_EI_candidates should be great than zero"),
    "random_state": (int, lambda v: v >= 0, "random_state should be great or equal than zero"),
}


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    return check_schema_settings(NAME, settings, SETTINGS) + require_parameters(NAME, parameters)
