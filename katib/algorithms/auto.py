"""`auto`: picks one of the other algorithms from the search space and the budget.

Not an upstream algorithm; added by issue 9. The choice is a pure function of the experiment
(spec.parameters, maxTrialCount), made on the first call and kept in the state, so it stays the
same across calls and restarts (a lost state makes the same choice again). The reply's settings
carry it — `auto_algorithm` (the name) and `auto_reason` — which the suggestion controller merges
into the Suggestion's status.algorithmSettings, where `kubectl get suggestion -o yaml` shows it.

Rules, first match wins (d = number of parameters, budget = maxTrialCount, 0 = unknown; the
thresholds come from bench/results/algorithms.md):
  finite space no larger than the budget, or budget <= 10   → sobol (spread out, no model to fit)
  d <= 7, budget <= 500, at most half as many categoricals as ordered parameters (double,
      int, sorted discrete)                                 → bayesianoptimization
  only ordered parameters, at least 2 double/int            → cmaes
  at least 2 double/int and at most half as many categoricals → cmaes (categoricals at random)
  otherwise (mostly categorical)                            → multivariate-tpe
On the benchmark's two mixed spaces (1 categorical beside 4-5 ordered parameters, budget 60)
the Gaussian process, whose acquisition is searched over every value of the grid and
categorical axes, did better than CMA-ES and either TPE; in 10 dimensions CMA-ES did best.

Settings: `random_state` only, handed to the chosen algorithm."""
from __future__ import annotations

from . import bayesianoptimization, cmaes, multivariate_tpe, parzen, sobol
from .base import SuggestReply, SuggestRequest
from .settings import Problem, check_schema_settings, require_parameters
from .space import parse_space

NAME = "auto"
SETTINGS = {
    "random_state": (int, lambda v: v >= 0, "random_state should be great or equal than zero"),
}
CHOICES = {module.NAME: module for module in (sobol, bayesianoptimization, cmaes, multivariate_tpe)}
TINY_BUDGET = 10
GP_DIMENSIONS = 7
GP_BUDGET = 500


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    return check_schema_settings(NAME, settings, SETTINGS) + require_parameters(NAME, parameters)


def choose(parameters: list[dict], max_trial_count: int) -> tuple[str, str]:
    """(algorithm name, reason)."""
    space = parse_space(parameters)
    budget = max_trial_count if max_trial_count and max_trial_count > 0 else 0
    d = len(space)
    if space.size is not None and budget and space.size <= budget:
        return "sobol", f"the space has {space.size} points, no more than the budget of {budget} trials"
    if budget and budget <= TINY_BUDGET:
        return "sobol", f"a budget of {budget} trials is too small for a model"
    layout = parzen.layout_of(space)
    continuous = sum(axis.type in ("double", "int") for axis in space.axes)
    ordered = len(layout.numeric)
    if d <= GP_DIMENSIONS and budget and budget <= GP_BUDGET and 2 * len(layout.categorical) <= ordered:
        kinds = f"{ordered} ordered" + (f" and {len(layout.categorical)} categorical" if layout.categorical else "")
        return "bayesianoptimization", f"{kinds} parameters and a budget of {budget} trials"
    if not layout.categorical:
        if continuous >= 2:
            return "cmaes", (f"{d} ordered parameters and a budget of {budget or 'unknown'} trials: "
                             f"too many for a Gaussian process")
    if layout.categorical and continuous >= 2 and 2 * len(layout.categorical) <= continuous:
        return "cmaes", (f"{continuous} double/int parameters beside {len(layout.categorical)} categorical: "
                         f"CMA-ES on the former, the latter at random")
    if layout.categorical:
        return "multivariate-tpe", f"{len(layout.categorical)} categorical of {d} parameters"
    return "multivariate-tpe", f"{d} parameters, a budget of {budget or 'unknown'} trials"


def suggest(request: SuggestRequest) -> SuggestReply:
    state = request.state or {}
    name, reason = state.get("algorithm"), state.get("reason", "")
    if name not in CHOICES:
        name, reason = choose(request.parameters, request.max_trial_count)
    inner = CHOICES[name]
    settings = {"random_state": request.settings["random_state"]} if "random_state" in request.settings else {}
    reply = inner.suggest(SuggestRequest(
        algorithm=name, parameters=request.parameters, objective_type=request.objective_type,
        trials=request.trials, count=request.count, settings=settings, state=state.get("inner"),
        seed=request.seed, parallel_trial_count=request.parallel_trial_count,
        max_trial_count=request.max_trial_count))
    return SuggestReply(assignments=reply.assignments, exhausted=reply.exhausted,
                        state={"algorithm": name, "reason": reason, "inner": reply.state},
                        settings={**reply.settings, "auto_algorithm": name, "auto_reason": reason})
