"""Algorithm names → implementations, and admission-time validation.

Each entry is a module with `NAME` and
`validate_settings(*, parameters, settings, parallel_trial_count, nas_config)`; those that can
already generate assignments also have `suggest(request) -> SuggestReply`. The names are the
eight of upstream v1alpha3's default katib-config (algorithms.md §0), plus issue 9's
`multivariate-tpe`, `sobol` and `auto`.

Upstream validated algorithm settings once, in the Suggestion, and stopped at the first
problem; we validate at admission and report every problem as (field path, message)."""
from __future__ import annotations

from types import ModuleType
from typing import Mapping, Sequence

from . import auto, bayesianoptimization, cmaes, darts, enas, grid, hyperband, multivariate_tpe, random, sobol, tpe
from .base import SuggestReply, SuggestRequest
from .settings import Problem
from .space import validate_space

ALGORITHMS: dict[str, ModuleType] = {
    module.NAME: module for module in (random, tpe, grid, bayesianoptimization, hyperband, cmaes, enas, darts,
                                       multivariate_tpe, sobol, auto)
}

__all__ = ["ALGORITHMS", "can_suggest", "is_quick", "suggest", "validate_algorithm", "validate_space"]


def can_suggest(name: str) -> bool:
    return hasattr(ALGORITHMS.get(name), "suggest")


def is_quick(name: str) -> bool:
    """The algorithm's calls take milliseconds at most, whatever the history (module flag
    QUICK): the suggestion controller runs them inline instead of on a worker thread, which
    would cost two more reconciles per call."""
    return bool(getattr(ALGORITHMS.get(name), "QUICK", False))


def suggest(request: SuggestRequest) -> SuggestReply:
    """Run the named algorithm; raises ValueError for an unknown name or an invalid space,
    NotImplementedError for a known algorithm that cannot suggest yet."""
    algorithm = ALGORITHMS.get(request.algorithm)
    if algorithm is None:
        raise ValueError(_unknown(request.algorithm))
    if not hasattr(algorithm, "suggest"):
        raise NotImplementedError(f"algorithm {request.algorithm} cannot suggest yet")
    return algorithm.suggest(request)


def validate_algorithm(
    name: str,
    *,
    parameters: Sequence[Mapping] | None,
    settings: Sequence[Mapping] | None,
    parallel_trial_count: int | None,
    nas_config: Mapping | None,
) -> list[Problem]:
    """Every problem of the algorithm-specific rules (not the generic ones of validate_space)."""
    algorithm = ALGORITHMS.get(name)
    if algorithm is None:
        return [("spec.algorithm.algorithmName", _unknown(name))]
    return algorithm.validate_settings(
        parameters=list(parameters or []),
        settings=list(settings or []),
        parallel_trial_count=parallel_trial_count,
        nas_config=nas_config,
    )


def _unknown(name: str) -> str:
    return f"unknown algorithm name {name}: must be one of {', '.join(sorted(ALGORITHMS))}"
