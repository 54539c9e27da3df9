"""Pure decisions of the experiment controller: summary, end conditions, trial arithmetic.

Mirrors Katib v1alpha3 UpdateExperimentStatus / ReconcileTrials (controllers.md §1.3–1.4),
fed from the trial index instead of a full list on every pass."""
from __future__ import annotations

from dataclasses import dataclass

from katib.api import constants as c
from katib.controllers.index import (FAILED, KILLED, PENDING, RUNNING, SUCCEEDED,
                                     ExperimentTrials)

LIST_KEYS = {KILLED: "killedTrialList", FAILED: "failedTrialList",
             SUCCEEDED: "succeededTrialList", RUNNING: "runningTrialList",
             PENDING: "pendingTrialList"}
COUNT_KEYS = {KILLED: "trialsKilled", FAILED: "trialsFailed", SUCCEEDED: "trialsSucceeded",
              RUNNING: "trialsRunning", PENDING: "trialsPending"}

GOAL = ("Succeeded", c.EXPERIMENT_GOAL_REACHED_REASON, c.EXPERIMENT_GOAL_REACHED_MESSAGE)
MAX_FAILED = ("Failed", c.EXPERIMENT_FAILED_REASON, c.EXPERIMENT_MAX_FAILED_MESSAGE)
MAX_TRIALS = ("Succeeded", c.EXPERIMENT_MAX_TRIALS_REACHED_REASON, c.EXPERIMENT_MAX_TRIALS_REACHED_MESSAGE)
SUGGESTION_END = ("Succeeded", c.EXPERIMENT_SUGGESTION_END_REACHED_REASON,
                  c.EXPERIMENT_SUGGESTION_END_REACHED_MESSAGE)
SUGGESTION_FAILED = ("Failed", c.EXPERIMENT_FAILED_REASON, c.EXPERIMENT_SUGGESTION_FAILED_MESSAGE)


def active(group: ExperimentTrials) -> int:
    return group.counts[PENDING] + group.counts[RUNNING]


def completed(group: ExperimentTrials) -> int:
    return group.counts[SUCCEEDED] + group.counts[FAILED] + group.counts[KILLED]


def summarize(group: ExperimentTrials, status: dict) -> dict:
    """A new status dict: `status` with the trial lists, counters and optimal trial replaced."""
    new = {k: v for k, v in status.items()
           if k not in LIST_KEYS.values() and k not in COUNT_KEYS.values() and k != "trials"}
    if not group.trials:  # upstream leaves the summary alone with zero trials
        return dict(status)
    lists: dict[str, list[str]] = {state: [] for state in LIST_KEYS}
    for s in group.ordered():
        lists[s.state].append(s.name)
    new["trials"] = len(group.trials)
    for state, names in lists.items():
        if names:
            new[LIST_KEYS[state]] = names
            new[COUNT_KEYS[state]] = len(names)
    best = group.trials.get(group.best) if group.best else None
    if best is not None:
        new["currentOptimalTrial"] = {
            "bestTrialName": best.name,
            "parameterAssignments": [dict(a) for a in best.assignments],
            "observation": {"metrics": [dict(m) for m in (best.observation or {}).get("metrics") or []]},
        }
    else:
        new.setdefault("currentOptimalTrial", {"bestTrialName": "", "parameterAssignments": None,
                                               "observation": {"metrics": None}})
    return new


def goal_reached(group: ExperimentTrials, objective: dict) -> bool:
    goal = objective.get("goal")
    best = group.trials.get(group.best) if group.best else None
    if goal is None or best is None or best.value is None:
        return False
    if objective.get("type") == c.ObjectiveType.MINIMIZE:
        return best.value <= goal
    if objective.get("type") == c.ObjectiveType.MAXIMIZE:
        return best.value >= goal
    return False


def end_condition(spec: dict, group: ExperimentTrials, *, suggestion_exhausted: bool,
                  unconsumed: int) -> tuple[str, str, str] | None:
    """The terminal condition the experiment reaches now, if any (first match wins)."""
    if goal_reached(group, spec.get("objective") or {}):
        return GOAL
    max_failed = spec.get("maxFailedTrialCount")
    if max_failed is not None and group.counts[FAILED] > max_failed:
        return MAX_FAILED
    max_trials = spec.get("maxTrialCount")
    if max_trials is not None and completed(group) >= max_trials:
        return MAX_TRIALS
    # Upstream never reaches this; we end an experiment whose algorithm ran out.
    if suggestion_exhausted and active(group) == 0 and unconsumed == 0:
        return SUGGESTION_END
    return None


@dataclass(frozen=True)
class TrialPlan:
    add: int           # how many more trials should be running
    requests: int      # the Suggestion's cumulative spec.requests


def plan_trials(spec: dict, group: ExperimentTrials, *, suggestion_count: int,
                unconsumed: int) -> TrialPlan:
    """How many trials to add, and what to request from the Suggestion.

    Unlike upstream, lowering parallelTrialCount deletes nothing: surplus trials finish and no
    new ones start until fewer than parallelTrialCount are active."""
    parallel = spec.get("parallelTrialCount") or c.DEFAULT_PARALLEL_TRIAL_COUNT
    act = active(group)
    max_trials = spec.get("maxTrialCount")
    required = parallel if max_trials is None else min(max_trials - completed(group), parallel)
    add = max(required - act, 0)
    still_needed = max(add - unconsumed, 0)
    return TrialPlan(add=add, requests=suggestion_count + still_needed)
