"""An index of trials per experiment, kept current from the Trial informer's changes (and
from the trials the experiment controller creates, at once: its next pass must not miss them).

The experiment controller needs counters, the best trial and the trial lists on every pass;
recounting every trial each time makes a 10,000-trial experiment quadratic. The index updates
counters and the best trial in O(1) per trial event and only rebuilds on rare changes
(the best trial got worse or went away)."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from katib.algorithms.base import TrialRecord
from katib.controllers import conditions as cond

KILLED, FAILED, SUCCEEDED, RUNNING, PENDING = "killed", "failed", "succeeded", "running", "pending"
STATES = (KILLED, FAILED, SUCCEEDED, RUNNING, PENDING)


def classify(trial: dict) -> str:
    """Which experiment list a trial belongs to (controllers.md §1.3, first match wins)."""
    conds = (trial.get("status") or {}).get("conditions") or []
    for ctype, state in (("Killed", KILLED), ("Failed", FAILED), ("Succeeded", SUCCEEDED),
                         ("Running", RUNNING)):
        if cond.is_true(conds, ctype):
            return state
    return PENDING


def objective_of(trial: dict, metric: str) -> float | None:
    obs = (trial.get("status") or {}).get("observation") or {}
    for m in obs.get("metrics") or ():
        if m.get("name") == metric:
            value = m.get("value", 0.0)  # a zero value is omitted in JSON
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


@dataclass
class TrialSummary:
    name: str
    seq: int                      # creation order
    state: str
    value: float | None
    last_condition: str
    assignments: list[dict]
    start_time: str
    observation: dict | None
    record: TrialRecord | None = None   # how algorithms see it, built once per change
    version: str = ""                   # the trial's resourceVersion this summary is of


@dataclass
class ExperimentTrials:
    objective_metric: str = ""
    objective_type: str = ""
    trials: dict[str, TrialSummary] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATES})
    best: str | None = None

    def better(self, a: float, b: float) -> bool:
        if self.objective_type == "minimize":
            return a < b
        if self.objective_type == "maximize":
            return a > b
        return False

    def _consider(self, s: TrialSummary) -> None:
        if s.value is None or math.isnan(s.value):
            return
        cur = self.trials.get(self.best) if self.best else None
        if cur is None or cur.value is None or self.better(s.value, cur.value) or (
                s.value == cur.value and s.seq < cur.seq):
            self.best = s.name

    def rebuild_best(self) -> None:
        self.best = None
        for s in self.trials.values():
            self._consider(s)

    def put(self, s: TrialSummary) -> None:
        old = self.trials.get(s.name)
        if old is not None:
            self.counts[old.state] -= 1
            s.seq = old.seq
        self.trials[s.name] = s
        self.counts[s.state] += 1
        if old is not None and old.name == self.best and (
                s.value is None or old.value is None or not (s.value == old.value or self.better(s.value, old.value))):
            self.rebuild_best()
        else:
            self._consider(s)

    def remove(self, name: str) -> None:
        old = self.trials.pop(name, None)
        if old is None:
            return
        self.counts[old.state] -= 1
        if self.best == name:
            self.rebuild_best()

    def ordered(self) -> list[TrialSummary]:
        """In creation order: a dict keeps insertion order and an update keeps the position."""
        return list(self.trials.values())


def _not_newer(version: str, held: str) -> bool:
    """resourceVersions are opaque, but the backends' are increasing integers: when both are,
    an equal or smaller one is not news."""
    return version.isdigit() and held.isdigit() and int(version) <= int(held)


class TrialIndex:
    """Trials grouped by (namespace, experiment name); thread-safe."""

    def __init__(self):
        self._lock = threading.RLock()
        self._by_exp: dict[tuple[str, str], ExperimentTrials] = {}
        self._seq = 0

    @staticmethod
    def experiment_of(trial: dict) -> tuple[str, str] | None:
        meta = trial.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") == "Experiment" and ref.get("controller"):
                return meta.get("namespace", ""), ref.get("name", "")
        label = (meta.get("labels") or {}).get("experiment")
        return (meta.get("namespace", ""), label) if label else None

    def get(self, namespace: str, name: str) -> ExperimentTrials:
        with self._lock:
            return self._by_exp.setdefault((namespace, name), ExperimentTrials())

    def observe(self, trial: dict, *, deleted: bool = False) -> tuple[str, str] | None:
        """Apply one trial change; returns the owning experiment's key. A version older than
        the one already held is ignored (a creation seen at once, its event later)."""
        exp_key = self.experiment_of(trial)
        if exp_key is None:
            return None
        name = trial["metadata"]["name"]
        version = str(trial["metadata"].get("resourceVersion") or "")
        with self._lock:
            group = self._by_exp.setdefault(exp_key, ExperimentTrials())
            if deleted:
                group.remove(name)
                return exp_key
            held = group.trials.get(name)
            if held is not None and _not_newer(version, held.version):
                return exp_key
            spec = trial.get("spec") or {}
            objective = spec.get("objective") or {}
            group.objective_metric = objective.get("objectiveMetricName", group.objective_metric)
            group.objective_type = objective.get("type", group.objective_type)
            status = trial.get("status") or {}
            self._seq += 1
            summary = TrialSummary(
                name=name, seq=self._seq, state=classify(trial),
                value=objective_of(trial, group.objective_metric),
                last_condition=cond.last_type(status.get("conditions")),
                assignments=spec.get("parameterAssignments") or [],
                start_time=status.get("startTime") or "",
                observation=status.get("observation"), version=version)
            summary.record = TrialRecord(
                name=name, assignments={a.get("name"): a.get("value") for a in summary.assignments},
                condition=summary.last_condition, value=summary.value, start_time=summary.start_time)
            group.put(summary)
            return exp_key

    def forget_experiment(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_exp.pop((namespace, name), None)
