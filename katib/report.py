"""Text that `katib.py run` shows: the live status line and the final table."""
from __future__ import annotations

import math


def last_condition(obj: dict) -> dict:
    conds = (obj.get("status") or {}).get("conditions") or []
    return conds[-1] if conds else {}


def trial_state(trial: dict) -> str:
    for ctype in ("Killed", "Failed", "Succeeded", "Running"):
        for c in (trial.get("status") or {}).get("conditions") or ():
            if c.get("type") == ctype and c.get("status") == "True":
                return ctype
    return "Pending"


def objective_value(trial: dict, metric: str) -> float | None:
    for m in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or ():
        if m.get("name") == metric:
            return float(m.get("value", 0.0))
    return None


def fmt_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.6g}"


def progress_line(exp: dict, *, elapsed: float) -> str:
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
    mins, secs = divmod(int(elapsed), 60)
    return (f"[{exp['metadata']['namespace']}/{exp['metadata']['name']}] {cond:<10} "
            f"{done}/{limit if limit is not None else '∞'} done: {status.get('trialsSucceeded', 0)} succeeded, "
            f"{status.get('trialsFailed', 0)} failed, {status.get('trialsRunning', 0)} running, "
            f"{status.get('trialsPending', 0)} pending | {best_text} | {mins:02d}:{secs:02d}")


def final_table(exp: dict, trials: list[dict]) -> str:
    spec, status = exp["spec"], exp.get("status") or {}
    metric = spec["objective"]["objectiveMetricName"]
    cond = last_condition(exp)
    lines = [f"Experiment {exp['metadata']['namespace']}/{exp['metadata']['name']}: "
             f"{cond.get('type', 'Unknown')} ({cond.get('reason', '')}) - {cond.get('message', '')}"]
    counts = ", ".join(f"{status.get(k, 0)} {label}" for k, label in (
        ("trialsSucceeded", "succeeded"), ("trialsFailed", "failed"), ("trialsKilled", "killed")))
    lines.append(f"Trials: {len(trials)} ({counts})")
    best = status.get("currentOptimalTrial") or {}
    if best.get("bestTrialName"):
        value = next((m.get("value", 0.0) for m in (best.get("observation") or {}).get("metrics") or []
                      if m.get("name") == metric), None)
        lines.append(f"Best trial: {best['bestTrialName']}  {metric}={fmt_value(value)}")
        for a in best.get("parameterAssignments") or []:
            lines.append(f"  {a['name']} = {a['value']}")
    else:
        lines.append("Best trial: none (no trial reported the objective metric)")
    params = [p["name"] for p in spec.get("parameters") or []]
    header = ["TRIAL", "STATUS", metric] + params
    rows = []
    for t in trials:
        assigned = {a["name"]: a["value"] for a in t["spec"].get("parameterAssignments") or []}
        rows.append([t["metadata"]["name"], trial_state(t), fmt_value(objective_value(t, metric))]
                    + [assigned.get(p, "") for p in params])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines.append("")
    for row in [header] + rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
