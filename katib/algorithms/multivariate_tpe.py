"""`multivariate-tpe`: TPE with one joint Parzen estimator over all parameters.

Not an upstream v1alpha3 algorithm (Optuna's TPESampler(multivariate=True)); added by issue 9.
Same loop, settings, batching and restart rules as `tpe` (tpe.py); the difference is the
estimator (parzen.py): each finished trial is one product kernel over every parameter, so a
candidate is drawn whole from one trial's neighbourhood and scored jointly, and parameters that
only work together are found together."""
from __future__ import annotations

from . import tpe
from .base import SuggestReply, SuggestRequest
from .settings import Problem, check_schema_settings, require_parameters

NAME = "multivariate-tpe"
SETTINGS = tpe.SETTINGS


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    return check_schema_settings(NAME, settings, SETTINGS) + require_parameters(NAME, parameters)


def suggest(request: SuggestRequest) -> SuggestReply:
    return tpe.suggest_tpe(request, multivariate=True)
