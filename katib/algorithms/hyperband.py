"""`hyperband` (upstream: own Python service): brackets of successive halving over a resource.

Bracket arithmetic as upstream (algorithms.md §6), with integer eta and r_l the maximum resource:
s_max = int(log(r_l)/log(eta)) (truncating, as upstream and the validation), B = (s_max+1)*r_l;
bracket s = s_max..0 starts n = ceil((s_max+1)*eta**s/(s+1)) random configurations at resource
r = r_l*eta**-s; rung i (0..s) runs n_i trials at r_i = r*eta**i (the `resource_name` parameter,
rendered as upstream's str(int(r_i)); a double resource that is not whole keeps its fraction),
and the best ceil(n_i/eta) of a finished rung (by the objective, direction-aware; failed, killed
and metric-less trials are never promoted) go on to rung i+1.

Diverges from upstream (which only ever completed the first rung, see the spec's list): the
whole schedule runs. A rung is handed out only as far as it is asked for; while a handed-out rung
still has trials running the reply holds fewer assignments than requested (none at all when the
rung is complete), and once the last rung of the last bracket is handed out the reply is
`exhausted` (the experiment then ends with ExperimentSuggestionEndReached). The request size
never changes the bracket size (upstream used it as n). New configurations never repeat one
that any trial already has. The position in the schedule travels in the reply's JSON state; when
it is lost the schedule is replayed from the trials (creation order), so a restart goes on where
it was. The upstream keys (current_s, current_i, n, r, ...) are also written to the Suggestion's
algorithmSettings, for those who read them there.

Settings validation follows upstream's rules and messages (defaults-and-validation.md §4), all
reported at once. Inputs that crashed upstream's validator or first GetSuggestions (an "Unknown"
failure there) are reported with clear messages instead: r_l of 0/NaN/inf (same message as a
negative r_l), an unparsable eta, and an eta that truncates to 1 (log(1) = 0 divides by zero)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .base import SuggestReply, SuggestRequest, TrialRecord
from .random import draw_distinct
from .rng import make_rng, rng_from_state, rng_to_state
from .settings import SETTINGS_PATH, Problem, last_settings, parameter_entries, require_parameters, setting_path
from .space import format_float, parse_space

NAME = "hyperband"
DEFAULT_ETA = 3
FINISHED = ("Succeeded", "Failed", "Killed")  # a trial in any other condition may still report
STATE_VERSION = 1


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


# ---------------------------------------------------------------------------------------
# the schedule (pure arithmetic)


@dataclass(frozen=True)
class Plan:
    eta: int
    r_l: float
    resource_name: str

    @property
    def s_max(self) -> int:
        return int(math.log(self.r_l) / math.log(self.eta))

    @property
    def budget(self) -> float:
        return (self.s_max + 1) * self.r_l

    def bracket_size(self, s: int) -> int:
        """n = ceil((s_max+1) * eta**s / (s+1)), in integers (no float noise)."""
        return -(-(self.s_max + 1) * self.eta ** s // (s + 1))

    def rung_size(self, s: int, i: int) -> int:
        """n_i = ceil(n * eta**-i): what rung i of bracket s holds when nothing failed."""
        return -(-self.bracket_size(s) // self.eta ** i)

    def resource(self, s: int, i: int) -> float:
        """r_i = r_l * eta**(i-s); a division by an integer power (exact when it is whole)."""
        return self.r_l / self.eta ** (s - i)


def schedule(r_l: float, eta: int) -> list[tuple[int, int, int, float]]:
    """Every rung in order as (bracket s, rung i, n_i, r_i), when no trial fails."""
    plan = Plan(eta=eta, r_l=r_l, resource_name="")
    return [(s, i, plan.rung_size(s, i), plan.resource(s, i))
            for s in range(plan.s_max, -1, -1) for i in range(s + 1)]


def plan_of(settings: dict[str, str]) -> Plan:
    """The request's settings (experiment's, overridden by those stored in status) as a Plan;
    raises ValueError with upstream's messages when they are unusable."""
    entries = [{"name": k, "value": v} for k, v in settings.items()]
    found = last_settings(entries)
    problems = []
    if "r_l" not in found or "resource_name" not in found:
        problems.append((SETTINGS_PATH, "r_l and resource_name must be set."))
    r_l, eta = _r_l(found, problems), _eta(found, problems)
    if problems:
        raise ValueError("; ".join(message for _, message in problems))
    return Plan(eta=eta, r_l=r_l, resource_name=found["resource_name"][1])


# ---------------------------------------------------------------------------------------
# suggest


class Schedule:
    """Where one experiment is in the schedule: bracket s, rung i, the rung's target size, the
    assignments it has handed out (value lists in parameter order) and those still to hand out
    (promotions). s = -1: every rung is handed out."""

    def __init__(self, request: SuggestRequest, plan: Plan):
        self.plan = plan
        self.names = [p.get("name") for p in request.parameters]
        if plan.resource_name not in self.names:
            raise ValueError("value of resource_name setting must be in parameters.")
        self.where = self.names.index(plan.resource_name)
        resource_parameter = request.parameters[self.where]
        self.resource_type = resource_parameter.get("parameterType")
        self.configs = parse_space([p for p in request.parameters if p.get("name") != plan.resource_name])
        self.maximize = request.objective_type == "maximize"
        self.trials: dict[str, TrialRecord] = {}
        for trial in request.trials:
            values = self.values_of(trial.assignments)
            if values is not None:
                self.trials[json.dumps(values)] = trial
        self.used = self.configs.used_keys(request.trials)
        self.s, self.i = plan.s_max, 0
        self.target = plan.rung_size(self.s, 0)
        self.members: list[list[str]] = []
        self.queue: list[list[str]] = []

    # -- values --------------------------------------------------------------------------
    def values_of(self, assignments: dict[str, str]) -> list[str] | None:
        values = [assignments.get(name) for name in self.names]
        return None if None in values else values

    def resource_text(self, s: int, i: int) -> str:
        r = self.plan.resource(s, i)
        if self.resource_type == "double" and r != int(r):
            return format_float(r)
        return str(int(r))

    @property
    def done(self) -> bool:
        return self.s < 0

    @property
    def final(self) -> bool:
        """Nothing more will ever be handed out."""
        return self.done or (self.s == 0 and len(self.members) >= self.target and not self.queue)

    # -- state ---------------------------------------------------------------------------
    def load(self, state: dict) -> None:
        self.s, self.i, self.target = int(state["s"]), int(state["i"]), int(state["target"])
        self.members = [list(m) for m in state["members"]]
        self.queue = [list(q) for q in state["queue"]]

    def dump(self) -> dict:
        return {"version": STATE_VERSION, "eta": self.plan.eta, "r_l": self.plan.r_l,
                "resource_name": self.plan.resource_name, "s_max": self.plan.s_max,
                "s": self.s, "i": self.i, "target": self.target,
                "members": self.members, "queue": self.queue}

    def upstream_settings(self) -> dict[str, str]:
        """Upstream's state keys, as its service wrote them to algorithmSettings (str() of each;
        current_s = -1 once finished)."""
        s = self.s
        n = self.plan.bracket_size(s) if s >= 0 else -1
        r = self.plan.resource(s, 0) if s >= 0 else -1
        running = len(self.members) if s >= 0 and self.i < s else 0
        return {"eta": str(self.plan.eta), "s_max": str(self.plan.s_max), "r_l": str(float(self.plan.r_l)),
                "b_l": str(float(self.plan.budget)), "r": str(r), "n": str(n), "current_s": str(s),
                "current_i": str(self.i if s >= 0 else 0), "resource_name": self.plan.resource_name,
                "evaluating_trials": str(running)}

    # -- moving on -----------------------------------------------------------------------
    def rung_finished(self) -> bool:
        """Every assignment of the rung is handed out and its trial has finished."""
        if self.queue or len(self.members) < self.target:
            return False
        for values in self.members:
            trial = self.trials.get(json.dumps(values))
            if trial is None or trial.condition not in FINISHED:
                return False
        return True

    def advance(self) -> None:
        """The rung is over: promote the best of it to the next rung, or open the next bracket."""
        if self.i < self.s:
            # ceil(n_i/eta) of the rung as it ran (smaller than the arithmetic's only when the
            # space ran out of configurations)
            top = min(self.plan.rung_size(self.s, self.i + 1), -(-len(self.members) // self.plan.eta))
            promoted = self.best(top)
            if promoted:
                self.i += 1
                resource = self.resource_text(self.s, self.i)
                self.queue = [v[:self.where] + [resource] + v[self.where + 1:] for v in promoted]
                self.members, self.target = [], len(self.queue)
                return
        self.s, self.i, self.members, self.queue = self.s - 1, 0, [], []
        self.target = self.plan.rung_size(self.s, 0) if self.s >= 0 else 0

    def best(self, top: int) -> list[list[str]]:
        """The `top` best members that succeeded with a finite objective (ties: handed out first)."""
        sign = -1.0 if self.maximize else 1.0
        ranked = []
        for order, values in enumerate(self.members):
            trial = self.trials[json.dumps(values)]
            if trial.condition == "Succeeded" and trial.value is not None and math.isfinite(trial.value):
                ranked.append((sign * trial.value, order, values))
        ranked.sort(key=lambda item: item[:2])
        return [values for _, _, values in ranked[:top]]

    # -- handing out ---------------------------------------------------------------------
    def hand_out(self, count: int, rng) -> list[list[str]]:
        out: list[list[str]] = []
        while len(out) < count and not self.done:
            if self.queue:
                take = self.queue[:count - len(out)]
                self.queue = self.queue[len(take):]
            elif len(self.members) < self.target:
                take = self.new_configs(min(count - len(out), self.target - len(self.members)), rng)
            elif self.rung_finished():
                self.advance()
                continue
            else:
                break  # waiting for the rung's trials
            self.members += take
            out += take
        return out

    def new_configs(self, want: int, rng) -> list[list[str]]:
        keys, exhausted = draw_distinct(self.configs, rng, count=want, used=self.used)
        self.used.update(keys)
        if len(keys) < want and exhausted:  # no unused configuration left: the rung is smaller
            self.target = len(self.members) + len(keys)
        resource = self.resource_text(self.s, self.i)
        out = []
        for key in keys:
            values = [value for _, value in self.configs.render(key)]
            out.append(values[:self.where] + [resource] + values[self.where:])
        return out

    def replay(self, trials: list[TrialRecord]) -> None:
        """Rebuild the position from the trials alone (state lost): walk the schedule in the
        trials' creation order, each trial taking the place its assignment fits."""
        for trial in trials:
            values = self.values_of(trial.assignments)
            while values is not None and not self.done:
                if values in self.queue:
                    self.queue.remove(values)
                    self.members.append(values)
                    break
                if (not self.queue and len(self.members) < self.target and self.i == 0
                        and values[self.where] == self.resource_text(self.s, 0)):
                    self.members.append(values)
                    break
                if not self.rung_finished():
                    break  # does not fit the schedule (e.g. settings changed): only kept as used
                self.advance()


def suggest(request: SuggestRequest) -> SuggestReply:
    plan = plan_of(request.settings)
    sched = Schedule(request, plan)
    state = request.state
    if state and state.get("version") == STATE_VERSION:
        sched.load(state)
        rng = rng_from_state(state["rng"])
    else:
        sched.replay(request.trials)
        rng = make_rng(request.seed if not request.trials or request.seed is None
                       else [request.seed, len(request.trials)])
    values = sched.hand_out(max(request.count, 0), rng)
    assignments = [list(zip(sched.names, v)) for v in values]
    return SuggestReply(assignments=assignments, state={**sched.dump(), "rng": rng_to_state(rng)},
                        exhausted=sched.final, settings=sched.upstream_settings())
