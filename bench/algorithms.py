#!/usr/bin/env python3
"""Tuning quality and suggestion cost of our algorithms beside Optuna's samplers and hyperopt.

Ours run in this process (the project venv), driven through `katib.algorithms.registry.suggest`
as the suggestion controller drives them: the request carries ALL trials, the previous reply's
state, count = what is wanted, a seed on the first call only. The loop is a synchronous batch
loop: at parallelism p it asks for p assignments, evaluates them, marks them Succeeded and asks
again (no trial is left running across a call). The peers run in a subprocess under the peer
venv (bench/peers.py), never importing into this environment. Create that venv once:

    python3 -m venv bench/.venv-peers && bench/.venv-peers/bin/pip install optuna==5.0.0 \\
        hyperopt==0.3.0 cmaes==0.13.1 scipy==1.17.1 numpy==2.4.6 torch==2.13.0

    .venv/bin/python bench/algorithms.py --quick          # 3 seeds, budget 30, no 1,000+ timings
    .venv/bin/python bench/algorithms.py                  # the full run: 10 seeds, budget 60
    .venv/bin/python bench/algorithms.py --algorithms tpe,optuna-tpe --problems branin

Measured: (a) median simple regret (best f so far − f*) at 15/30/60 trials per problem ×
algorithm × parallelism 1 and 4; (b) wall time and peak traced memory of one suggestion call at
10/100/1,000/2,000 finished trials, for 1 and 8 assignments per call — ours with state None
(a restarted process rebuilding from the trial list), peers asked on a study already holding
those trials; (c) repeated assignments within a run (every space here is far bigger than the
budget, so each repeat is one the space did not force). Results: a markdown report on stdout
and bench/results/algorithms.md + .json. Progress goes to stderr."""
from __future__ import annotations

import os

# One BLAS thread for ours too (the peers get the same in peer_env): on 2 shared cores a
# multi-threaded OpenBLAS makes a 200 × 200 Cholesky 4 to 30 times slower, not faster.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import functools
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import problems as P  # noqa: E402
from peers import measure  # noqa: E402  (no peer library needed)
import report  # noqa: E402

PEER_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
# Ours that make sense on these problems (hyperband needs a resource parameter, enas/darts are NAS).
OURS = ("random", "grid", "sobol", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes", "auto")
NOT_HPO = {"hyperband", "enas", "darts"}
PEER_ORDER = ("optuna-tpe", "optuna-mtpe", "optuna-gp", "optuna-cmaes", "optuna-qmc", "optuna-random",
              "hyperopt-tpe")
# Optuna's GPSampler takes 5-10 s per 60-trial run here (torch, 1 thread): its runs are split
# over two worker processes, --gp-seeds can cap them, and its 8-per-call timing at 2,000 trials
# and its memory pass at 1,000+ are skipped (each would cost minutes).
SLOW = {"optuna-gp"}


def our_names() -> list[str]:
    try:
        from katib.algorithms import registry
    except Exception as error:  # e.g. an algorithm half-written in the work tree
        log(f"katib.algorithms.registry does not import ({type(error).__name__}: {error}): ours skipped")
        return []
    names = list(OURS) + [n for n in registry.ALGORITHMS if n not in OURS and n not in NOT_HPO]
    return [name for name in names if registry.can_suggest(name)]


def peer_names() -> dict[str, str]:
    """Peer name → library version; empty when the peer venv is missing (said on stderr)."""
    if not PEER_PYTHON.exists():
        log(f"no peer venv at {PEER_PYTHON}: peers skipped (see the module docstring)")
        return {}
    out = subprocess.run([str(PEER_PYTHON), str(BENCH / "peers.py")], input='{"kind": "available"}',
                         capture_output=True, text=True, check=True, env=peer_env())
    return json.loads(out.stdout)


def peer_env() -> dict:
    # one thread for torch/BLAS, as every other algorithm here runs on one core
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# ours


def request(name: str, problem: P.Problem, *, trials, count: int, state, seed, parallelism: int, budget: int,
            settings: dict | None = None):
    from katib.algorithms.base import SuggestRequest

    return SuggestRequest(algorithm=name, parameters=problem.parameters, objective_type="minimize",
                          trials=trials, count=count, settings=dict(settings or {}), state=state,
                          seed=seed if state is None else None, parallel_trial_count=parallelism,
                          max_trial_count=budget)


@functools.lru_cache(maxsize=None)
def admissible(name: str, problem_name: str) -> str:
    """'' when the algorithm accepts the problem's space, else the admission's first problem."""
    from katib.algorithms import registry

    problem = P.get(problem_name)
    problems = registry.validate_algorithm(name, parameters=problem.parameters, settings=[],
                                           parallel_trial_count=1, nas_config=None)
    return "" if not problems else f"{problems[0][0]}: {problems[0][1]}"


def our_run(job: dict) -> dict:
    from katib.algorithms import registry
    from katib.algorithms.base import TrialRecord

    problem, p, budget = P.get(job["problem"]), job["parallelism"], job["budget"]
    trials, values, state, settings = [], [], None, {}
    while len(trials) < budget:
        reply = registry.suggest(request(job["algorithm"], problem, trials=trials, count=min(p, budget - len(trials)),
                                         state=state, seed=job["seed"], parallelism=p, budget=budget,
                                         settings=settings))
        state = json.loads(json.dumps(reply.state))  # as stored: JSON, nothing else survives
        settings.update(reply.settings)  # as the controller merges them into Suggestion status
        for assignment in reply.assignments:
            assignments = dict(assignment)
            f = problem.objective(P.decode(problem.parameters, assignments))
            trials.append(TrialRecord(name=f"t{len(trials)}", assignments=assignments, condition="Succeeded", value=f))
            values.append(f)
        if not reply.assignments:
            break
    return {**job, "values": values, "assignments": [t.assignments for t in trials]}


def our_timing(job: dict) -> dict:
    from katib.algorithms import registry
    from katib.algorithms.base import TrialRecord

    problem = P.get(job["problem"])
    trials = [TrialRecord(name=f"t{i}", assignments=P.encode(problem.parameters, point), condition="Succeeded",
                          value=problem.objective(point))
              for i, point in enumerate(P.random_points(problem, n=job["finished"], seed=job["seed"]))]

    def call():
        registry.suggest(request(job["algorithm"], problem, trials=trials, count=job["count"], state=None,
                                 seed=job["seed"], parallelism=job["count"], budget=job["finished"] + job["count"]))

    return {**job, **measure(call, repeats=job["repeats"], memory=job["memory"])}


def run_ours(jobs: list[dict], run, results: list, label: str, *, cap: float = math.inf) -> list[str]:
    """Run the jobs in order; an algorithm whose runs took `cap` seconds in all gets no more
    (jobs come seed by seed, so a capped algorithm has fewer seeds everywhere). Returns notes."""
    spent: dict[str, float] = {}
    skipped: dict[str, int] = {}
    for number, job in enumerate(jobs, 1):
        name = job["algorithm"]
        if spent.get(name, 0.0) >= cap:
            skipped[name] = skipped.get(name, 0) + 1
            continue
        started = time.perf_counter()
        try:
            results.append(run(job))
        except Exception as error:  # a broken algorithm must not end the benchmark
            results.append({**job, "error": f"{type(error).__name__}: {error}"})
            log(f"ours {name} on {job['problem']}: {results[-1]['error']}")
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
        if number % 25 == 0 or number == len(jobs):
            log(f"{label} ours {number}/{len(jobs)}")
    return [f"{name}: {count} {label} runs skipped, its runs had taken {cap:.0f} s (--our-cap)"
            for name, count in skipped.items()]


# ---------------------------------------------------------------------------------------
# peers


class PeerWorker(threading.Thread):
    """bench/peers.py under the peer venv, fed one job list; results collected as they come."""

    def __init__(self, jobs: list[dict], label: str):
        super().__init__(daemon=True)
        self.jobs, self.label, self.results = jobs, label, []
        self.process = subprocess.Popen([str(PEER_PYTHON), str(BENCH / "peers.py")], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=peer_env())
        self.process.stdin.write(json.dumps({"jobs": jobs}))
        self.process.stdin.close()

    def run(self) -> None:
        for line in self.process.stdout:
            self.results.append(json.loads(line))
            if "error" in self.results[-1]:
                log(f"peer {self.results[-1]['algorithm']}: {self.results[-1]['error']}")
            if len(self.results) % 25 == 0 or len(self.results) == len(self.jobs):
                log(f"{self.label} {len(self.results)}/{len(self.jobs)}")
        self.process.wait()


def run_peers(jobs: list[dict], label: str, *, split_slow: bool) -> list[PeerWorker]:
    """Started workers: the slow peers in their own process (when splitting) so they use the
    second core while the rest and ours share the first."""
    if not jobs:
        return []
    slow = [j for j in jobs if j["algorithm"] in SLOW] if split_slow else []
    rest = [j for j in jobs if j not in slow]
    parts = ((slow[0::2], "peers-gp-1"), (slow[1::2], "peers-gp-2"), (rest, "peers"))
    workers = [PeerWorker(part, f"{label} {name}") for part, name in parts if part]
    for worker in workers:
        worker.start()
    return workers


# ---------------------------------------------------------------------------------------
# the plan


def quality_jobs(algorithms, problems, *, seeds: int, budget: int, caps: dict) -> list[dict]:
    jobs = []
    for name in algorithms:
        for seed in range(min(seeds, caps.get(name, seeds))):  # seed by seed: see run_ours' cap
            for problem in problems:
                for parallelism in (1, 4):
                    jobs.append({"kind": "quality", "algorithm": name, "problem": problem,
                                 "parallelism": parallelism, "seed": seed, "budget": budget})
    return jobs


def timing_jobs(algorithms, *, problem: str, sizes, counts) -> tuple[list[dict], list[str]]:
    jobs, skipped = [], []
    for name in algorithms:
        for finished in sizes:
            for count in counts:
                if name in SLOW and finished >= 2000 and count > 1:
                    skipped.append(f"{name} at {finished} finished, {count} per call: skipped (cost)")
                    continue
                jobs.append({"kind": "timing", "algorithm": name, "problem": problem, "finished": finished,
                             "count": count, "seed": 0, "repeats": 1 if name in SLOW and finished >= 1000 else 3,
                             "memory": not (name in SLOW and finished >= 1000)})
    return jobs, skipped


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, budget 30, timings at 10 and 100 only")
    parser.add_argument("--algorithms", help="comma-separated names (ours and peers) to run; default: all available")
    parser.add_argument("--problems", help=f"comma-separated, of: {', '.join(P.PROBLEMS)}")
    parser.add_argument("--seeds", type=int, help="seeds per cell (default 10, --quick 3)")
    parser.add_argument("--gp-seeds", type=int, help="seeds for optuna-gp (default: as --seeds; --quick: 1)")
    parser.add_argument("--our-cap", type=float, default=900.0,
                        help="seconds of quality runs per algorithm of ours before its remaining seeds are dropped")
    parser.add_argument("--timing-problem", default="hartmann6", help="the problem suggestion calls are timed on")
    parser.add_argument("--reuse-peers", metavar="RAW",
                        help="take the peers' rows from an earlier run's <out>-raw.json.tmp instead of running them")
    parser.add_argument("--no-timing", action="store_true", help="quality only")
    parser.add_argument("--out", default=str(BENCH / "results" / "algorithms"),
                        help="output path without extension (.md and .json are written)")
    args = parser.parse_args(argv)
    for name in (args.problems or "").split(","):
        if name and name not in P.PROBLEMS:
            parser.error(f"--problems: unknown problem {name!r}; known: {', '.join(P.PROBLEMS)}")
    if args.timing_problem not in P.PROBLEMS:
        parser.error(f"--timing-problem: unknown problem {args.timing_problem!r}")
    return args


def select(args, *, reuse: bool) -> tuple[list[str], dict[str, str], list[str]]:
    ours, peers = our_names(), ({} if reuse else peer_names())
    wanted = [n for n in (args.algorithms or "").split(",") if n]
    unknown = [n for n in wanted if n not in ours and n not in peers and n not in PEER_ORDER]
    if unknown:
        log(f"--algorithms: not available here, skipped: {', '.join(unknown)}")
    if wanted:
        ours = [n for n in ours if n in wanted]
        peers = {n: v for n, v in peers.items() if n in wanted}
    problems = [n for n in (args.problems or "").split(",") if n] or list(P.PROBLEMS)
    return ours, peers, problems


def quality_phase(args, *, ours, peers, problems, seeds, budget, caps) -> tuple[list[dict], list[str]]:
    """Peers in their workers while ours run here; results compacted (no assignments kept)."""
    our_jobs = [j for j in quality_jobs(ours, problems, seeds=seeds, budget=budget, caps={})
                if not admissible(j["algorithm"], j["problem"])]
    notes = [f"{n} on {p}: not admitted ({admissible(n, p)})" for n in ours for p in problems if admissible(n, p)]
    workers = run_peers(quality_jobs(peers, problems, seeds=seeds, budget=budget, caps=caps),
                        "quality", split_slow=True)
    results: list[dict] = []
    notes += run_ours(our_jobs, our_run, results, "quality", cap=args.our_cap)
    for worker in workers:
        worker.join()
        results += worker.results
    return [compact(r) for r in results], notes


def compact(result: dict) -> dict:
    if "assignments" not in result:
        return result
    problem = P.get(result["problem"])
    rest = {k: v for k, v in result.items() if k != "assignments"}
    return {**rest, "repeats": report.repeats(problem.parameters, result["assignments"]),
            "trials": len(result["assignments"])}


def timing_phase(args, *, ours, peers) -> tuple[list[dict], list[str]]:
    """Ours first, then the peers, one process at a time (nothing else of ours running)."""
    sizes = (10, 100) if args.quick else (10, 100, 1000, 2000)
    jobs, notes = timing_jobs(ours, problem=args.timing_problem, sizes=sizes, counts=(1, 8))
    for job in jobs:  # grid needs a finite space: timed on the stepped variant
        if admissible(job["algorithm"], job["problem"]):
            job["problem"] = f"{job['problem']}-step0.01"
    notes += sorted({f"{j['algorithm']} timed on {j['problem']} (every double given step 0.01)"
                     for j in jobs if "-step" in j["problem"]})
    timings: list[dict] = []
    run_ours(jobs, our_timing, timings, "timing")
    peer_jobs, peer_notes = timing_jobs(peers, problem=args.timing_problem, sizes=sizes, counts=(1, 8))
    for worker in run_peers(peer_jobs, "timing", split_slow=False):
        worker.join()
        timings += worker.results
    return timings, notes + peer_notes


def reused_peers(path: str, *, seeds: int, budget: int) -> tuple[dict, list[dict], list[dict], list[str]]:
    """Peer versions, quality results, timings and notes of an earlier run's raw file."""
    raw = json.loads(Path(path).read_text())
    if (raw["seeds"], raw["budget"]) != (seeds, budget):
        raise SystemExit(f"--reuse-peers {path}: that run had {raw['seeds']} seeds and budget {raw['budget']}, "
                         f"this one {seeds} and {budget}")
    mine = set(raw["peers"])
    return (raw["peers"], [r for r in raw["quality"] if r["algorithm"] in mine],
            [t for t in raw["timing"] if t["algorithm"] in mine],
            [n for n in raw["peer_notes"]] + [f"peer rows reused from the run of {raw['date']}"])


def main(argv=None) -> int:
    args = parse_args(argv)
    seeds, budget = args.seeds or (3 if args.quick else 10), 30 if args.quick else 60
    caps = {"optuna-gp": args.gp_seeds or (1 if args.quick else seeds)}
    ours, peers, problems = select(args, reuse=bool(args.reuse_peers))
    peer_list = [n for n in PEER_ORDER if n in peers]
    started, load_start = time.time(), f"{os.getloadavg()[0]:.2f}"
    log(f"ours: {', '.join(ours) or '-'}; peers: {', '.join(peer_list) or '-'}; problems: {', '.join(problems)}")
    results, notes = quality_phase(args, ours=ours, peers=peer_list, problems=problems, seeds=seeds,
                                   budget=budget, caps=caps)
    timings, timing_notes = timing_phase(args, ours=ours, peers=peer_list) if not args.no_timing else ([], [])
    peer_notes = [n for n in timing_notes if n.startswith(tuple(PEER_ORDER))]
    if timings and "hyperopt-tpe" in peers:
        peer_notes.append("hyperopt-tpe timed on its own random points (rand.suggest), the others on the same points")
    if timings and "optuna-gp" in peers:
        peer_notes.append("optuna-gp: memory not traced at 1,000+ trials (cost); tracemalloc does not see torch's "
                          "tensors at all, so its peaks are lower bounds")
    out = Path(args.out)
    raw = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": seeds, "budget": budget,
           "peers": peers, "quality": results, "timing": timings, "peer_notes": peer_notes}
    if args.reuse_peers:
        peers, peer_results, peer_timings, peer_notes = reused_peers(args.reuse_peers, seeds=seeds, budget=budget)
        peer_list = [n for n in PEER_ORDER if n in peers]
        results, timings = results + peer_results, timings + peer_timings
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{out}-raw.json.tmp").write_text(json.dumps(raw))  # for a later --reuse-peers
    capped = {name: cap for name, cap in caps.items() if cap != seeds and name in peers}
    meta = report.machine(peers=peers, seeds=seeds, budget=budget, seed_cap=capped, quick=args.quick,
                          timing_problem=args.timing_problem, elapsed=time.time() - started,
                          load_start=load_start)
    notes += [n for n in timing_notes if n not in peer_notes] + peer_notes
    summary = report.summarise(results, timings, problems={n: P.PROBLEMS[n] for n in problems},
                               ours=ours, peers=peer_list, budget=budget)
    text = report.markdown(summary, meta=meta, notes=notes)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "notes": notes, **summary}, indent=1) + "\n")
    log(f"done in {time.time() - started:.0f} s: {out}.md, {out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
