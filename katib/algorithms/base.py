"""The algorithm contract: SuggestRequest in, SuggestReply out.

The suggestion controller builds a request from the Experiment (after merging the
settings stored in Suggestion status), ALL its trials and the JSON state from the previous
reply, then stores the reply's assignments and state in Suggestion status in one write
(controllers.md §2.3). An algorithm must therefore be able to continue after a process
restart from (state + trials) alone, and must never hand out an assignment that already
appears in `trials` when the space is finite."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TrialRecord:
    """One trial of the experiment as the algorithm sees it."""

    name: str
    assignments: dict[str, str]  # parameter name -> value string
    condition: str  # last condition type: "Created", "Running", "Succeeded", "Failed", "Killed", ""
    value: float | None  # objective observation (None if absent); may be NaN
    start_time: str = ""  # RFC3339 or ""


@dataclass
class SuggestRequest:
    algorithm: str  # algorithmName
    parameters: list[dict]  # spec.parameters, JSON form
    objective_type: str  # "minimize" | "maximize"
    trials: list[TrialRecord]  # all trials, running ones too
    count: int  # how many new assignments are wanted
    settings: dict[str, str]  # algorithmSettings merged with the ones stored in status
    state: dict | None  # JSON-safe state from the previous reply; None on the first call
    seed: int | None = None
    parallel_trial_count: int = 0
    max_trial_count: int = 0
    nas_config: dict | None = None  # spec.nasConfig, JSON form


@dataclass
class SuggestReply:
    assignments: list[list[tuple[str, str]]]  # each [(name, value)] in parameter order; len <= count
    state: dict  # JSON-safe; the controller passes it back on the next call
    exhausted: bool = False  # the algorithm will never produce more (required when len < count)
    settings: dict[str, str] = field(default_factory=dict)  # persisted in Suggestion status


def observed_losses(trials: list[TrialRecord], objective_type: str) -> list[tuple[TrialRecord, float]]:
    """Succeeded trials with a finite objective, as losses (negated when maximizing).

    Upstream's Trial.convert kept only SUCCEEDED trials carrying the objective metric;
    NaN/inf observations are dropped here as well since no model can learn from them."""
    sign = -1.0 if objective_type == "maximize" else 1.0
    return [
        (trial, sign * float(trial.value))
        for trial in trials
        if trial.condition == "Succeeded" and trial.value is not None and math.isfinite(trial.value)
    ]
