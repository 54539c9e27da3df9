"""Tables of bench/algorithms.py: raw run results → medians, duplicates, targets → markdown.

Pure functions over the JSON-safe results both sides return; nothing here runs an algorithm."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

import problems as P

PAIRS = {"tpe": "optuna-tpe", "multivariate-tpe": "optuna-mtpe", "bayesianoptimization": "optuna-gp",
         "cmaes": "optuna-cmaes"}
MODEL_BASED = ("tpe", "multivariate-tpe", "bayesianoptimization", "cmaes")
FAST = ("random", "sobol", "grid")


def checkpoints(budget: int) -> list[int]:
    return [n for n in (15, 30, 60) if n < budget] + [budget]


def regrets(values: list[float], minimum: float, marks: list[int]) -> dict[str, float]:
    """Simple regret after each mark (a run that ended early keeps its last best)."""
    best = np.minimum.accumulate(np.asarray(values, dtype=float))
    return {str(n): float(best[min(n, len(best)) - 1] - minimum) for n in marks}


def repeats(parameters: list[dict], assignments: list[dict]) -> int:
    """Trials whose assignment (snapped to Katib's value strings) equals an earlier one's."""
    seen, count = set(), 0
    for assignment in assignments:
        key = tuple(sorted(P.encode(parameters, P.decode(parameters, assignment)).items()))
        count += key in seen
        seen.add(key)
    return count


def summarise(results: list[dict], timings: list[dict], *, problems: dict, ours: list[str], peers: list[str],
              budget: int) -> dict:
    marks, algorithms = checkpoints(budget), ours + peers
    runs: dict = {}
    duplicates = {name: {"repeats": 0, "trials": 0} for name in algorithms}
    errors = sorted({f"{r['algorithm']} on {r['problem']}: {r['error']}" for r in results + timings if "error" in r})
    for r in results:
        if "error" in r:
            continue
        problem = problems[r["problem"]]
        cell = runs.setdefault(r["problem"], {}).setdefault(str(r["parallelism"]), {}).setdefault(r["algorithm"], [])
        cell.append(regrets(r["values"], problem.minimum, marks))
        duplicates[r["algorithm"]]["repeats"] += r["repeats"]
        duplicates[r["algorithm"]]["trials"] += r["trials"]
    quality = {prob: {p: {name: {**{m: statistics.median(run[m] for run in cell) for m in map(str, marks)},
                                 "seeds": len(cell)}
                          for name, cell in by_p.items()}
                      for p, by_p in by_prob.items()}
               for prob, by_prob in runs.items()}
    timing: dict = {}
    for t in timings:
        if "error" not in t:
            timing.setdefault(t["algorithm"], {}).setdefault(str(t["finished"]), {})[str(t["count"])] = {
                "seconds": t["seconds"], "peak_bytes": t["peak_bytes"]}
    summary = {"algorithms": algorithms, "ours": ours, "peers": peers, "checkpoints": marks,
               "problems": {name: describe(problem) for name, problem in problems.items()}, "quality": quality,
               "timing": timing, "duplicates": duplicates, "errors": errors, "runs": runs}
    summary["targets"] = targets(summary, budget=budget)
    return summary


def describe(problem: P.Problem) -> dict:
    kinds = [p["parameterType"] + ("+step" if p["feasibleSpace"].get("step") else "") for p in problem.parameters]
    return {"parameters": len(kinds), "types": {k: kinds.count(k) for k in sorted(set(kinds))},
            "minimum": problem.minimum}


def _final(summary: dict, problem: str, p: str, name: str) -> float | None:
    cell = summary["quality"].get(problem, {}).get(p, {}).get(name)
    return None if cell is None else cell[str(summary["checkpoints"][-1])]


def targets(summary: dict, *, budget: int) -> list[str]:
    """The issue's targets, each as one line saying met / missed and by what."""
    lines, problems = [], list(summary["quality"])
    for p in ("1", "4"):
        for ours, peer in PAIRS.items():
            pairs = [(_final(summary, prob, p, ours), _final(summary, prob, p, peer)) for prob in problems]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if pairs:
                wins = sum(a <= b for a, b in pairs)
                lines.append(f"p={p} {ours} ≤ {peer} (median regret at {budget}): {wins}/{len(pairs)} problems "
                             f"(target ≥ {len(pairs) - 1}) — {'met' if wins >= len(pairs) - 1 else 'MISSED'}")
        for name in MODEL_BASED:
            pairs = [(_final(summary, prob, p, name), _final(summary, prob, p, "random")) for prob in problems]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if pairs:
                wins = sum(a < b for a, b in pairs)
                lines.append(f"p={p} {name} < random: {wins}/{len(pairs)} "
                             f"— {'met' if wins >= len(pairs) - 1 else 'MISSED'}")
        for prob in problems:
            cell = summary["quality"][prob].get(p, {})
            if "auto" in cell:
                # competition ranking: 1 + the algorithms strictly better. auto's runs ARE the
                # runs of the algorithm it picks (same seed, same points), so that twin ties it
                # and must not push it down a place.
                mine = _final(summary, prob, p, "auto")
                rank = 1 + sum(_final(summary, prob, p, n) < mine for n in cell if n != "auto")
                lines.append(f"p={p} auto on {prob}: rank {rank} of {len(cell)} — {'met' if rank <= 3 else 'MISSED'}")
    lines += speed_targets(summary["timing"])
    ours_repeats = sum(summary["duplicates"][n]["repeats"] for n in summary["ours"])
    lines.append(f"repeated assignments, ours: {ours_repeats} — {'met' if ours_repeats == 0 else 'MISSED'}")
    return lines


def speed_targets(timing: dict) -> list[str]:
    def seconds(name, n, k):
        return timing.get(name, {}).get(str(n), {}).get(str(k), {}).get("seconds")

    lines = []
    for k in (1, 8):
        ours, peer = seconds("tpe", 1000, k), seconds("optuna-tpe", 1000, k)
        if ours is not None and peer is not None:
            lines.append(f"tpe at 1,000, {k}/call: {ours * 1e3:.1f} ms vs optuna-tpe {peer * 1e3:.1f} ms = "
                         f"1/{peer / ours:.1f} (target ≤ 1/5) — {'met' if ours * 5 <= peer else 'MISSED'}")
        bo = seconds("bayesianoptimization", 1000, k)
        if bo is not None:
            lines.append(f"bayesianoptimization at 1,000, {k}/call: {bo:.2f} s (target < 1 s) — "
                         f"{'met' if bo < 1 else 'MISSED'}")
        for name in FAST:
            fast = seconds(name, 2000, k)
            if fast is not None:
                lines.append(f"{name} at 2,000, {k}/call: {fast * 1e3:.2f} ms (target < 5 ms) — "
                             f"{'met' if fast < 0.005 else 'MISSED'}")
    return lines


# ---------------------------------------------------------------------------------------
# markdown


def _g(x) -> str:
    return "–" if x is None else f"{x:.3g}"


def _time(cell) -> str:
    if not cell:
        return "–"
    s, peak = cell["seconds"], cell["peak_bytes"]
    text = f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"
    if peak is None:
        return text
    return text + (f" / {peak / 2**20:.1f} MiB" if peak >= 2**20 else f" / {peak / 2**10:.0f} KiB")


def markdown(summary: dict, *, meta: dict, notes: list[str]) -> str:
    marks, out = summary["checkpoints"], []
    out.append(f"# Algorithms benchmark ({meta['date']})\n")
    out.append(f"Machine: {meta['machine']}; Python {meta['python']}, numpy {meta['numpy']}; commit {meta['commit']}; "
               f"load average {meta['load_start']} at start, {meta['load_end']} at end; {meta['elapsed']:.0f} s.")
    out.append(f"Peers: {', '.join(f'{k} ({v})' for k, v in meta['peers'].items()) or 'none'}.")
    out.append(f"Budget {meta['budget']} trials, {meta['seeds']} seeds per cell"
               f"{'; capped: ' + ', '.join(f'{k} {v}' for k, v in meta['seed_cap'].items()) if meta['seed_cap'] else ''}"
               f"{' (--quick)' if meta['quick'] else ''}. Ours: synchronous batches through the registry "
               f"(all trials + state per call); peers: ask/tell, k asks then k tells.\n")
    out.append("Problems (minimised; regret = best f so far − f*):\n")
    out.append(_table(["problem", "parameters", "types", "f*"],
                      [[name, str(d["parameters"]), ", ".join(f"{n} {k}" for k, n in d["types"].items()),
                        f"{d['minimum']:.6g}"] for name, d in summary["problems"].items()]))
    out.append(f"## Median simple regret at {marks[-1]} trials\n")
    for p in ("1", "4"):
        out.append(f"Parallelism {p}:\n")
        out.append(_table(["algorithm"] + list(summary["quality"]),
                          [[n] + [_g(_final(summary, prob, p, n)) for prob in summary["quality"]]
                           for n in summary["algorithms"]
                           if any(_final(summary, prob, p, n) is not None for prob in summary["quality"])]))
    out.append("## Median simple regret at " + "/".join(map(str, marks)) + " trials, per problem\n")
    for prob, by_p in summary["quality"].items():
        out.append(f"### {prob}\n")
        header = ["algorithm"] + [f"p={p} @{m}" for p in ("1", "4") for m in marks] + ["seeds"]
        rows = []
        for n in summary["algorithms"]:
            cells = [by_p.get(p, {}).get(n) for p in ("1", "4")]
            if any(cells):
                rows.append([n] + [_g(c[str(m)]) if c else "–" for c in cells for m in marks]
                            + [str(max(c["seeds"] for c in cells if c))])
        out.append(_table(header, rows))
    if summary["timing"]:
        out.append(f"## Time per suggestion call / peak traced memory ({meta['timing_problem']})\n")
        sizes = sorted({int(n) for t in summary["timing"].values() for n in t})
        header = ["algorithm"] + [f"{n} × {k}" for n in sizes for k in (1, 8)]
        rows = [[name] + [_time(summary["timing"][name].get(str(n), {}).get(str(k))) for n in sizes for k in (1, 8)]
                for name in summary["algorithms"] if name in summary["timing"]]
        out.append("Columns: finished trials × assignments per call. Ours: state None (a restarted process).\n")
        out.append(_table(header, rows))
    out.append("## Repeated assignments within a run\n")
    out.append(_table(["algorithm", "repeats", "trials"],
                      [[n, str(d["repeats"]), str(d["trials"])] for n, d in summary["duplicates"].items() if d["trials"]]))
    out.append("## Targets (issue 9)\n")
    out.append("auto's rank counts the algorithms strictly better than it (ties share a rank): its runs are "
               "those of the algorithm it picks, which would otherwise push it down one place.\n")
    out += [f"- {line}" for line in summary["targets"]] + [""]
    if notes or summary["errors"]:
        out.append("## Notes\n")
        out += [f"- {line}" for line in notes + summary["errors"]] + [""]
    return "\n".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def machine(**fields) -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "katib/algorithms"], capture_output=True, text=True,
                           cwd=root).stdout.strip()
    commit += " (katib/algorithms with uncommitted changes)" if dirty else ""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {model}",
            "python": platform.python_version(), "numpy": np.__version__, "commit": commit,
            "load_start": fields.pop("load_start", None), "load_end": f"{os.getloadavg()[0]:.2f}", **fields}
