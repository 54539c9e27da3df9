"""The peer side of bench/algorithms.py: Optuna's samplers and hyperopt's TPE.

Runs ONLY under the peer venv's interpreter (bench/.venv-peers, see bench/README.md), never
in the project's: bench/algorithms.py starts `bench/.venv-peers/bin/python bench/peers.py`,
writes one JSON job list on stdin and reads one JSON result per line on stdout, so optuna,
hyperopt and torch never enter the project's environment.

Spaces are mapped from Katib's parameter format: double → FloatDistribution / hp.uniform,
double+step → FloatDistribution(step) / hp.quniform, int(+step) → IntDistribution(step) /
hp.quniform (as upstream Katib's hyperopt service did), discrete and categorical →
CategoricalDistribution / hp.choice (the list, unordered, as upstream). A batch of k is k
asks before any tell (Optuna's TPE uses its default constant liar; hyperopt has none)."""
from __future__ import annotations

import json
import sys
import time
import tracemalloc
import warnings

import numpy as np

import problems as P

OPTUNA = ("optuna-tpe", "optuna-mtpe", "optuna-cmaes", "optuna-gp", "optuna-qmc", "optuna-random")
PEERS = OPTUNA + ("hyperopt-tpe",)


def available() -> dict[str, str]:
    """Peer name → version string of the library behind it."""
    import hyperopt
    import optuna

    names = {name: f"optuna {optuna.__version__}" for name in OPTUNA}
    try:
        import torch  # GPSampler's dependency
        names["optuna-gp"] += f" + torch {torch.__version__}"
    except ImportError:
        del names["optuna-gp"]
    names["hyperopt-tpe"] = f"hyperopt {hyperopt.__version__}"
    return names


# ---------------------------------------------------------------------------------------
# optuna


def optuna_sampler(name: str, seed: int):
    from optuna import samplers

    return {
        "optuna-tpe": lambda: samplers.TPESampler(multivariate=False, seed=seed),
        "optuna-mtpe": lambda: samplers.TPESampler(multivariate=True, seed=seed),
        "optuna-cmaes": lambda: samplers.CmaEsSampler(seed=seed),
        "optuna-gp": lambda: samplers.GPSampler(seed=seed),
        "optuna-qmc": lambda: samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed),
        "optuna-random": lambda: samplers.RandomSampler(seed=seed),
    }[name]()


def optuna_distributions(parameters: list[dict]) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for p in parameters:
        space, kind = p["feasibleSpace"], p["parameterType"]
        step = space.get("step")
        if kind == "double":
            out[p["name"]] = FloatDistribution(float(space["min"]), float(space["max"]),
                                               step=float(step) if step else None)
        elif kind == "int":
            out[p["name"]] = IntDistribution(int(space["min"]), int(space["max"]), step=int(step or 1))
        else:
            out[p["name"]] = CategoricalDistribution(P.grid_values(p))
    return out


def new_study(name: str, seed: int):
    import optuna

    return optuna.create_study(sampler=optuna_sampler(name, seed), direction="minimize")


def optuna_run(problem: P.Problem, *, name: str, parallelism: int, seed: int, budget: int):
    study, dists = new_study(name, seed), optuna_distributions(problem.parameters)
    points, values = [], []
    while len(points) < budget:
        asked = [study.ask(dists) for _ in range(min(parallelism, budget - len(points)))]
        for trial in asked:
            f = problem.objective(trial.params)
            study.tell(trial, f)
            points.append(trial.params)
            values.append(f)
    return points, values


def optuna_timing(problem: P.Problem, *, name: str, finished: int, count: int, seed: int, **how) -> dict:
    import optuna

    dists = optuna_distributions(problem.parameters)
    study = new_study(name, seed)
    study.add_trials([optuna.trial.create_trial(params=point, distributions=dists, value=problem.objective(point))
                      for point in P.random_points(problem, n=finished, seed=seed)])
    return measure(lambda: [study.ask(dists) for _ in range(count)], **how)


# ---------------------------------------------------------------------------------------
# hyperopt (no ask/tell API: its own serial loop, Trials + tpe.suggest, done by hand)


def hyperopt_space(parameters: list[dict]) -> dict:
    from hyperopt import hp

    out = {}
    for p in parameters:
        space, kind, name = p["feasibleSpace"], p["parameterType"], p["name"]
        if kind in ("discrete", "categorical"):
            out[name] = hp.choice(name, P.grid_values(p))
        elif kind == "int" or space.get("step"):
            out[name] = hp.quniform(name, float(space["min"]), float(space["max"]), float(space.get("step") or 1))
        else:
            out[name] = hp.uniform(name, float(space["min"]), float(space["max"]))
    return out


class Hyperopt:
    def __init__(self, problem: P.Problem, seed: int):
        from hyperopt import Domain, Trials

        self.problem, self.trials = problem, Trials()
        self.rng = np.random.default_rng(seed)
        self.domain = Domain(self._evaluate, hyperopt_space(problem.parameters))
        self.last: dict = {}

    def _evaluate(self, params: dict) -> dict:
        self.last = snap(self.problem, params)
        return {"loss": self.problem.objective(self.last), "status": "ok"}

    def ask(self, count: int, algo=None) -> list[dict]:
        from hyperopt import tpe

        ids = self.trials.new_trial_ids(count)
        docs = (algo or tpe.suggest)(ids, self.domain, self.trials, int(self.rng.integers(2**31 - 1)))
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        wanted = set(ids)
        return [t for t in self.trials._dynamic_trials if t["tid"] in wanted]

    def tell(self, docs: list[dict]) -> list[tuple[dict, float]]:
        from hyperopt import JOB_STATE_DONE, base

        told = []
        for doc in docs:
            result = self.domain.evaluate(base.spec_from_misc(doc["misc"]), base.Ctrl(self.trials, current_trial=doc))
            doc["state"], doc["result"] = JOB_STATE_DONE, result
            told.append((self.last, result["loss"]))
        self.trials.refresh()
        return told


def snap(problem: P.Problem, params: dict) -> dict:
    """hyperopt's quniform gives floats: back to ints / grid values, as a Katib trial would."""
    return P.decode(problem.parameters, P.encode(problem.parameters, params))


def hyperopt_run(problem: P.Problem, *, name: str, parallelism: int, seed: int, budget: int):
    runner, points, values = Hyperopt(problem, seed), [], []
    while len(points) < budget:
        for point, f in runner.tell(runner.ask(min(parallelism, budget - len(points)))):
            points.append(point)
            values.append(f)
    return points, values


def hyperopt_timing(problem: P.Problem, *, name: str, finished: int, count: int, seed: int, **how) -> dict:
    from hyperopt import rand

    runner = Hyperopt(problem, seed)
    runner.tell(runner.ask(finished, algo=rand.suggest))  # hyperopt's own random points
    return measure(lambda: runner.ask(count), **how)


# ---------------------------------------------------------------------------------------
# measuring and the job loop


def measure(call, *, repeats: int, memory: bool) -> dict:
    """Median wall time over `repeats` calls, then (if `memory`) the peak traced memory of one
    more call: tracemalloc slows Python down, so it is never on while timing. Both sides use
    this function (bench/algorithms.py imports it; it needs no peer library)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    peak = None
    if memory:
        tracemalloc.start()
        call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"seconds": sorted(times)[len(times) // 2], "peak_bytes": peak}


def run_job(job: dict) -> dict:
    problem = P.get(job["problem"])
    hyper = job["algorithm"] == "hyperopt-tpe"
    if job["kind"] == "quality":
        run = hyperopt_run if hyper else optuna_run
        points, values = run(problem, name=job["algorithm"], parallelism=job["parallelism"],
                             seed=job["seed"], budget=job["budget"])
        return {**job, "values": values, "assignments": [P.encode(problem.parameters, p) for p in points]}
    timing = hyperopt_timing if hyper else optuna_timing
    return {**job, **timing(problem, name=job["algorithm"], finished=job["finished"],
                            count=job["count"], seed=job["seed"], repeats=job["repeats"], memory=job["memory"])}


def main() -> int:
    warnings.filterwarnings("ignore")
    import logging

    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("hyperopt").setLevel(logging.ERROR)
    request = json.load(sys.stdin)
    if request.get("kind") == "available":
        print(json.dumps(available()), flush=True)
        return 0
    for job in request["jobs"]:
        try:
            result = run_job(job)
        except Exception as error:  # one peer failing must not end the others' runs
            result = {**job, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
