#!/usr/bin/env python3
"""Control-plane overhead of the local fake backend.

Runs N trials of a trivial command at parallelism P through the whole product path (durable
fake API on SQLite, controllers, random algorithm, local processes, StdOut metrics) and reports:

* overhead per trial = (wall time - ideal schedule) / N, where the ideal schedule is
  ceil(N / P) x the command's own median run time (measured beside it);
* trials per second; peak RSS of the process (each size runs in a fresh child process);
* CPU per trial of the katib process, and of the trials' own processes (the wrapper that
  records each exit status, and the command): which side a change moved (on two cores they
  compete with each other). On a shared VM they drift with the load like the wall time: only
  runs side by side compare.

`--via kubectl` measures the laptop's kubectl path instead: `katib.py --fake serve` in its own
process, the experiment applied with the pinned kubectl and awaited with `kubectl wait`; the wall
time runs from the apply to the end of the wait, and the peak RSS is the serve process's.

    python bench/controlplane.py                      # N = 100, 1000, 10000 at P = 10
    python bench/controlplane.py --sizes 100,1000 --parallel 10
    python bench/controlplane.py --sizes 1000 --via process,kubectl

Results: a table on stdout, and bench/results/controlplane.json + .md."""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMAND = ["sh", "-c", "echo accuracy=0.5"]


def experiment(n: int, parallel: int) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel, "maxTrialCount": n, "maxFailedTrialCount": n,
            "parameters": [{"name": "x", "parameterType": "double",
                            "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {"goTemplate": {"rawTemplate": TEMPLATE}},
        },
    }


TEMPLATE = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Trial}}
  namespace: {{.NameSpace}}
spec:
  template:
    spec:
      containers:
      - name: main
        image: none
        command: %s
      restartPolicy: Never
""" % json.dumps(COMMAND)


def command_time(samples: int = 50) -> float:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        subprocess.run(COMMAND, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_one(n: int, parallel: int) -> dict:
    from katib.runtime import FakeControlPlane

    with tempfile.TemporaryDirectory(prefix="katib-bench-") as tmp:
        plane = FakeControlPlane(db_url=str(Path(tmp) / "katib.db"), work_dir=Path(tmp), seed=1)
        cpu0 = cpu_times()
        t0 = time.perf_counter()
        plane.backend.create(experiment(n, parallel))
        plane.start()
        try:
            while True:
                exp = plane.backend.get("Experiment", "default", "bench")
                status = exp.get("status") or {}
                done = any(c["type"] in ("Succeeded", "Failed") and c["status"] == "True"
                           for c in status.get("conditions") or [])
                if done and not status.get("trialsRunning") and not status.get("trialsPending"):
                    break
                time.sleep(0.01)
            wall = time.perf_counter() - t0
            cpu = [b - a for a, b in zip(cpu0, cpu_times())]
        finally:
            plane.stop(kill_jobs=True)
        succeeded = status.get("trialsSucceeded", 0)
    return {"n": n, "parallel": parallel, "wall_s": wall, "succeeded": succeeded,
            "cpu_s": cpu[0], "children_cpu_s": cpu[1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def cpu_times(pid: int | None = None) -> tuple[float, float]:
    """(CPU seconds of the process, CPU seconds of its reaped children): the katib process's
    own work, and the trials' processes (wrapper and command) it started."""
    if pid is None:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def run_kubectl_one(n: int, parallel: int) -> dict:
    """`katib.py --fake serve` + `kubectl apply -f` + `kubectl wait`, timed from the apply."""
    kubectl = Path(sys.executable).parent / "kubectl"
    with tempfile.TemporaryDirectory(prefix="katib-bench-") as tmp:
        tmp_path = Path(tmp)
        kubeconfig, exp_file = tmp_path / "kubeconfig", tmp_path / "exp.json"
        exp_file.write_text(json.dumps(experiment(n, parallel)))
        log = open(tmp_path / "serve.log", "w+")   # a file: a pipe nobody drains would block the server
        serve = subprocess.Popen([sys.executable, str(ROOT / "katib.py"), "--fake", "--db", str(tmp_path / "katib.db"),
                                  "serve", "--listen", "127.0.0.1:0", "--kubeconfig", str(kubeconfig),
                                  "--seed", "1", "--parallel", str(parallel)],
                                 cwd=tmp, stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            while "serving the Kubernetes API at" not in (tmp_path / "serve.log").read_text():
                if serve.poll() is not None:
                    raise RuntimeError(f"katib.py --fake serve exited {serve.returncode}: "
                                       f"{(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.05)
            base = [str(kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
            cpu0 = cpu_times(serve.pid)
            t0 = time.perf_counter()
            subprocess.run([*base, "apply", "-f", str(exp_file)], check=True, capture_output=True)
            subprocess.run([*base, "wait", "--for=condition=Succeeded", "experiment/bench", "--timeout=3600s"],
                           check=True, capture_output=True)
            wall = time.perf_counter() - t0
            cpu = [b - a for a, b in zip(cpu0, cpu_times(serve.pid))]
            got = json.loads(subprocess.run([*base, "get", "experiment", "bench", "-o", "json"], check=True,
                                            capture_output=True, text=True).stdout)
            rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{serve.pid}/status").read_text().splitlines()
                          if line.startswith("VmHWM:"))
        finally:
            serve.terminate()
            serve.wait(30)
            log.close()
    return {"n": n, "parallel": parallel, "wall_s": wall, "succeeded": got["status"].get("trialsSucceeded", 0),
            "cpu_s": cpu[0], "children_cpu_s": cpu[1], "peak_rss_mb": rss_kb / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated trial counts")
    parser.add_argument("--parallel", type=int, default=10, help="parallelTrialCount")
    parser.add_argument("--via", default="process",
                        help="comma-separated: process (in-process control plane), kubectl (kubectl against "
                             "katib.py --fake serve)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    vias = args.via.split(",")
    if set(vias) - {"process", "kubectl"}:
        parser.error(f"--via: unknown mode(s) {', '.join(sorted(set(vias) - {'process', 'kubectl'}))}")
    if args.one:
        print(json.dumps(run_one(args.one, args.parallel)))
        return 0
    cmd_s = command_time()
    rows = []
    for n, via in ((int(s), via) for s in args.sizes.split(",") for via in vias):
        print(f"running N={n} P={args.parallel} via {via} ...", file=sys.stderr, flush=True)
        if via == "kubectl":
            res = run_kubectl_one(n, args.parallel)
        else:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--parallel", str(args.parallel)],
                                 capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
        res["via"] = via
        if res["succeeded"] != n:
            raise SystemExit(f"N={n} via {via}: {res['succeeded']} trials succeeded, not {n}")
        ideal = math.ceil(n / args.parallel) * cmd_s
        res.update(ideal_s=ideal, overhead_ms=(res["wall_s"] - ideal) / n * 1000,
                   trials_per_s=n / res["wall_s"])
        rows.append(res)
        print(f"  wall {res['wall_s']:.1f}s, overhead {res['overhead_ms']:.2f} ms/trial", file=sys.stderr)
    lines = [f"command `{' '.join(COMMAND)}`: median {cmd_s * 1000:.2f} ms; P = {args.parallel}; "
             f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
             "", "| N | via | wall (s) | ideal (s) | overhead / trial (ms) | trials/s | katib CPU / trial (ms) "
             "| trial processes' CPU / trial (ms) | peak RSS (MB) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['via']} | {r['wall_s']:.2f} | {r['ideal_s']:.2f} | {r['overhead_ms']:.2f} | "
                     f"{r['trials_per_s']:.1f} | {r['cpu_s'] / r['n'] * 1000:.2f} | "
                     f"{r['children_cpu_s'] / r['n'] * 1000:.2f} | {r['peak_rss_mb']:.0f} |")
    by_n = {r["n"]: r for r in rows if r["via"] == "process"}
    if 1000 in by_n and 10000 in by_n:
        lines.append("")
        lines.append(f"overhead ratio 10,000 / 1,000: {by_n[10000]['overhead_ms'] / by_n[1000]['overhead_ms']:.2f}")
    text = "\n".join(lines)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "controlplane.json").write_text(json.dumps({"command_ms": cmd_s * 1000, "rows": rows}, indent=2))
    (results / "controlplane.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
