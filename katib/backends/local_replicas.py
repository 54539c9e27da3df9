"""`python local_replicas.py SPEC` (a script: standard library and its sibling ports.py only):
every replica of a TFJob or PyTorchJob as a local process, with the environment its operator
would give it, so that a distributed training script runs unchanged on one machine.

SPEC (JSON, from local_process.plan_replicas): the job kind and its replicas, the master first.
Each replica gets a free port on 127.0.0.1 (ports.free_ports) and:
  TFJob       TF_CONFIG = {"cluster": {<type>: ["127.0.0.1:<port>", ...]}, "task": {"type", "index"},
              "environment": "cloud"}, types lower-cased as tf-operator writes them (an
              evaluator is not part of the cluster);
  PyTorchJob  MASTER_ADDR=127.0.0.1, MASTER_PORT=<the master's port>, WORLD_SIZE=<replicas>,
              RANK=<0 for the master, then 1, 2, ... for the workers>, PYTHONUNBUFFERED=0.
The master's output is this program's output (the job's log, which the StdOut collector reads,
as Katib collects the master pod only); the others write `$KATIB_JOB_DIR/replicas/<type>-<i>.log`.

The job ends when the master ends (its exit status is the job's: success policy "chief/master,
else worker 0"), or when another replica fails first (restartPolicy is not applied: a failed
replica fails the job, its status is the job's and the reason is printed). The others are then
sent SIGTERM, and SIGKILL 5 s later; they share this process group, so a kill of the job reaches
every replica."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    from katib.backends.ports import free_ports
except ImportError:     # run as a script: its own directory is on sys.path
    from ports import free_ports

GRACE = 5.0


def name(replica: dict) -> str:
    return f"{replica['type'].lower()}-{replica['index']}"


def operator_env(kind: str, replicas: list[dict], ports: list[int]) -> list[dict[str, str]]:
    """The variables the operator sets, per replica (same order as `replicas`)."""
    if kind == "TFJob":
        cluster: dict[str, list[str]] = {}
        for replica, port in zip(replicas, ports):
            if replica["type"].lower() != "evaluator":
                cluster.setdefault(replica["type"].lower(), []).append(f"127.0.0.1:{port}")
        return [{"TF_CONFIG": json.dumps({"cluster": cluster,
                                          "task": {"type": r["type"].lower(), "index": r["index"]},
                                          "environment": "cloud"})} for r in replicas]
    world = str(len(replicas))
    return [{"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(ports[0]), "WORLD_SIZE": world,
             "RANK": str(rank), "PYTHONUNBUFFERED": "0"} for rank in range(len(replicas))]


def stop_all(procs: dict[int, tuple[dict, subprocess.Popen]]) -> None:
    for _, proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + GRACE
    for _, proc in procs.values():
        try:
            proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(spec: dict) -> int:
    kind, replicas = spec["kind"], spec["replicas"]
    ports = free_ports(len(replicas))
    extra = operator_env(kind, replicas, ports)
    log_dir = Path(os.environ.get("KATIB_JOB_DIR") or ".") / "replicas"
    procs: dict[int, tuple[dict, subprocess.Popen]] = {}
    terminating = False

    def on_term(signum, _frame):
        nonlocal terminating
        terminating = True
        stop_all(procs)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    base = {k: v for k, v in os.environ.items() if k != "KATIB_JOB_DIR"}
    for i, (replica, env) in enumerate(zip(replicas, extra)):
        out = None
        if i > 0:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = open(log_dir / f"{name(replica)}.log", "ab")
        try:
            proc = subprocess.Popen(replica["argv"], env={**base, **replica["env"], **env},
                                    cwd=replica.get("workingDir") or None, stdout=out,
                                    stderr=subprocess.STDOUT if out else None)
        except OSError as err:
            print(f"replica {name(replica)}: cannot start {replica['argv'][0]}: {err.strerror}", file=sys.stderr)
            stop_all(procs)
            return 127
        finally:
            if out is not None:
                out.close()
        procs[proc.pid] = (replica, proc)
    master_pid = next(iter(procs))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid not in procs:
            continue
        replica, proc = procs.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        if pid == master_pid:
            stop_all(procs)
            return code
        if code != 0 and not terminating:
            print(f"replica {name(replica)} failed with exit code {code} "
                  f"(its output: {log_dir / (name(replica) + '.log')})", file=sys.stderr)
            stop_all(procs)
            return code


if __name__ == "__main__":
    sys.exit(run(json.loads(sys.argv[1])))
