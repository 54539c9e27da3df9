"""Text that `katib.py run` shows: the live progress line and the final table. Pure: objects in,
strings out (run.py reads the backend and the runner, and prints).

The table is where a user learns why trials failed: each failed or killed trial's reason is in
its row, the first few failures are listed with their full message and output log, a failed
Suggestion's message is shown, and "No trial succeeded" is said in so many words."""
from __future__ import annotations

import collections
import math
import re
from dataclasses import dataclass
from typing import Callable

from katib.api import constants as c
from katib.controllers.index import objective_of

SHOWN_FAILURES = 5       # failed trials listed with their message and log; the rest are counted
REASON_WIDTH = 60        # the REASON column is cut there (the list under the table has it all)
# The local runner ends a failed Job's message with where its output is; the column leaves
# that to the list under the table.
OUTPUT_SUFFIX = re.compile(r"(^|; )output: \S+$")


def last_condition(obj: dict) -> dict:
    conds = (obj.get("status") or {}).get("conditions") or []
    return conds[-1] if conds else {}


def true_condition(obj: dict, ctype: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == ctype and cond.get("status") == c.ConditionStatus.TRUE:
            return cond
    return None


def trial_state(trial: dict) -> str:
    for ctype in ("Killed", "Failed", "Succeeded", "Running"):
        if true_condition(trial, ctype):
            return ctype
    return "Pending"


def trial_reason(trial: dict) -> str:
    """Why a trial failed or was killed, in one line ("" otherwise): the Job's words for a
    failed Job ("Error: exit code 2"), else the condition's reason and what it adds."""
    cond = true_condition(trial, "Killed") or true_condition(trial, "Failed")
    if cond is None:
        return ""
    reason, message = cond.get("reason", ""), cond.get("message", "")
    for prefix in (c.TRIAL_FAILED_MESSAGE, c.TRIAL_METRICS_UNAVAILABLE_MESSAGE):
        if message == prefix:
            message = ""
        elif message.startswith(prefix + ": "):
            message = message[len(prefix) + 2:]
    if reason == c.TRIAL_FAILED_REASON and message:
        return message
    return f"{reason}: {message}" if message else reason


def short_reason(trial: dict) -> str:
    """trial_reason without the output path (the same for every trial that failed alike)."""
    return OUTPUT_SUFFIX.sub("", trial_reason(trial))


def fmt_value(value: float | str | None) -> str:
    """A metric value in 6 significant digits; "-" for none, NaN or what is not a number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(value) else f"{value:.6g}"


def fmt_duration(seconds: float) -> str:
    """1m05s, 2h03m, 45s."""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    mins, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{mins:02d}m"
    return f"{mins}m{secs:02d}s" if mins else f"{secs}s"


@dataclass(frozen=True)
class Progress:
    state: str    # changes when something happens (counts, condition, best value)
    clock: str    # changes every second (elapsed time, running trials' ages)

    def line(self) -> str:
        return f"{self.state} | {self.clock}"


def progress(exp: dict, *, elapsed: float, running_ages: list[float] = ()) -> Progress:
    """`running_ages`: seconds since each of the experiment's running trial processes started."""
    status = exp.get("status") or {}
    spec = exp["spec"]
    metric = spec["objective"]["objectiveMetricName"]
    best = status.get("currentOptimalTrial") or {}
    best_metrics = (best.get("observation") or {}).get("metrics") or []
    best_text = next((f"best {metric}={fmt_value(float(m.get('value', 0.0)))}" for m in best_metrics
                      if m.get("name") == metric), "best -")
    cond = last_condition(exp).get("type", "Pending")
    limit = spec.get("maxTrialCount")
    done = sum(status.get(k, 0) for k in ("trialsSucceeded", "trialsFailed", "trialsKilled"))
    state = (f"[{exp['metadata']['namespace']}/{exp['metadata']['name']}] {cond:<10} "
             f"{done}/{limit if limit is not None else '∞'} done: {status.get('trialsSucceeded', 0)} succeeded, "
             f"{status.get('trialsFailed', 0)} failed, {status.get('trialsKilled', 0)} killed, "
             f"{status.get('trialsRunning', 0)} running, {status.get('trialsPending', 0)} pending | {best_text}")
    clock = f"elapsed {fmt_duration(elapsed)}"
    if running_ages:
        clock = f"{len(running_ages)} running (oldest {fmt_duration(max(running_ages))}), " + clock
    return Progress(state=state, clock=clock)


def final_table(exp: dict, trials: list[dict], *, suggestion: dict | None = None,
                log_path: Callable[[str], str | None] = lambda name: None) -> str:
    """The result of one experiment. `log_path(trial_name)`: where that trial's output is kept,
    or None when it has none."""
    spec, status = exp["spec"], exp.get("status") or {}
    metric = spec["objective"]["objectiveMetricName"]
    cond = last_condition(exp)
    lines = [f"Experiment {exp['metadata']['namespace']}/{exp['metadata']['name']}: "
             f"{cond.get('type', 'Unknown')} ({cond.get('reason', '')}) - {cond.get('message', '')}"]
    failed_sug = true_condition(suggestion, "Failed") if suggestion else None
    if failed_sug:
        lines.append(f"Suggestion failed: {failed_sug.get('message') or failed_sug.get('reason', '')}")
    counts = ", ".join(f"{status.get(k, 0)} {label}" for k, label in (
        ("trialsSucceeded", "succeeded"), ("trialsFailed", "failed"), ("trialsKilled", "killed")))
    lines.append(f"Trials: {len(trials)} ({counts})")
    lines += best_lines(status, metric, extra=additional_metrics(spec, metric))
    lines.append("")
    lines += table_lines(spec, trials, metric)
    lines += failure_lines(trials, log_path)
    if not any(trial_state(t) == "Succeeded" for t in trials):
        lines += ["", no_success_line(trials, failed_sug)]
    return "\n".join(lines)


def best_lines(status: dict, metric: str, *, extra: list[str] = ()) -> list[str]:
    """The best trial, its objective (and the additional metrics it reported), its assignments."""
    best = status.get("currentOptimalTrial") or {}
    if not best.get("bestTrialName"):
        return ["Best trial: none (no trial reported the objective metric)"]
    values = {m.get("name"): m.get("value", 0.0) for m in (best.get("observation") or {}).get("metrics") or []}
    shown = "  ".join(f"{name}={fmt_value(values.get(name))}" for name in [metric, *extra]
                      if name == metric or name in values)
    return [f"Best trial: {best['bestTrialName']}  {shown}"] + [
        f"  {a['name']} = {a['value']}" for a in best.get("parameterAssignments") or []]


def additional_metrics(spec: dict, metric: str) -> list[str]:
    """objective.additionalMetricNames without the objective metric, in their order."""
    names = (spec.get("objective") or {}).get("additionalMetricNames") or []
    return [n for n in dict.fromkeys(names) if n != metric]


def table_lines(spec: dict, trials: list[dict], metric: str) -> list[str]:
    """One row per trial: name, state, the objective, each additional metric (its latest
    value, as the trial's observation holds it), the assignments, the reason."""
    params = [p["name"] for p in spec.get("parameters") or []]
    extra = additional_metrics(spec, metric)
    header = ["TRIAL", "STATUS", metric] + extra + params + ["REASON"]
    rows = []
    for t in trials:
        assigned = {a["name"]: a["value"] for a in t["spec"].get("parameterAssignments") or []}
        reason = short_reason(t)
        if len(reason) > REASON_WIDTH:
            reason = reason[:REASON_WIDTH - 1] + "…"
        rows.append([t["metadata"]["name"], trial_state(t)] + [fmt_value(objective_of(t, m)) for m in [metric, *extra]]
                    + [assigned.get(p, "") for p in params] + [reason])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header] + rows]


def failure_lines(trials: list[dict], log_path: Callable[[str], str | None]) -> list[str]:
    """The first SHOWN_FAILURES failed trials with their whole reason and output log."""
    failed = [t for t in trials if trial_state(t) == "Failed"]
    if not failed:
        return []
    lines = ["", "Failed trials:"]
    for t in failed[:SHOWN_FAILURES]:
        name = t["metadata"]["name"]
        reason, log = trial_reason(t), log_path(name)
        lines.append(f"  {name}: {reason}" + (f"\n    output: {log}" if log and log not in reason else ""))
    if len(failed) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(failed) - SHOWN_FAILURES} more")
    return lines


def no_success_line(trials: list[dict], failed_suggestion: dict | None) -> str:
    """One plain sentence: no trial succeeded, and the most common reason why."""
    if not trials:
        why = "the Suggestion failed" if failed_suggestion else "no trial was run"
        return f"No trial succeeded: {why}."
    reasons = collections.Counter(short_reason(t) or trial_state(t) for t in trials)
    reason, count = reasons.most_common(1)[0]
    return (f"No trial succeeded: {count} of {len(trials)} trial(s) ended with {reason}"
            + ("" if count == len(trials) else f" ({len(reasons) - 1} other reason(s) above)") + ".")
