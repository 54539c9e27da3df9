"""`python local_pod_launcher.py SPEC` (a script: standard library only): a trial pod's training
process and its metrics-collector sidecar side by side on this machine, as one job.

SPEC (JSON, from local_process.plan_launch): {"training": {"argv", "env"}, "sidecar": {"argv",
"env", "workingDir"}, "markerDir", "sidecarStdout"}. The training process inherits this
program's output (the job's log). With a `markerDir`, it runs as
`sh -c '"$@" && echo completed > <markerDir>/$$.pid'`, the completion marker the pod webhook's
command rewriting leaves on a cluster, so a collector that waits for that marker works here too.
The sidecar starts next, with KATIB_TRAINING_PID (the pid it should wait for, what a collector
in a pod finds by PID watching), its stderr in `$KATIB_JOB_DIR/sidecar.log` (with stdout too,
unless `sidecarStdout`: then stdout goes to `sidecar.out`).

When the training process ends successfully, the sidecar is waited for and its exit status is
written to `sidecar.exit`; when it fails, the sidecar is stopped (TERM, KILL 5 s later) and
nothing is written: the training's failure is the job's. The exit status is the training's
(128+N for a signal N), so the job's outcome reads as without a sidecar."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

GRACE = 5.0
MARKER_SCRIPT = 'd=$0; "$@" && echo completed >"$d/$$.pid"'


def status(code: int) -> int:
    return 128 - code if code < 0 else code


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    job_dir = Path(os.environ.get("KATIB_JOB_DIR", "."))
    training, sidecar = spec["training"], spec["sidecar"]
    argv = list(training["argv"])
    if spec.get("markerDir"):
        argv = ["/bin/sh", "-c", MARKER_SCRIPT, spec["markerDir"], *argv]
    sys.stdout.flush()
    train = subprocess.Popen(argv, env={**os.environ, **training["env"]})
    log = open(job_dir / "sidecar.log", "ab")
    out = open(job_dir / "sidecar.out", "wb") if spec.get("sidecarStdout") else log
    cwd = os.path.join(os.getcwd(), sidecar.get("workingDir") or ".")
    try:
        side = subprocess.Popen(sidecar["argv"], env={**os.environ, **sidecar["env"],
                                                       "KATIB_TRAINING_PID": str(train.pid)},
                                cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
    except OSError as err:
        log.write(f"cannot start the sidecar {sidecar['argv'][0]}: {err}\n".encode())
        log.close()
        write_atomic(job_dir / "sidecar.exit", "127")
        return status(train.wait())
    code = status(train.wait())
    if code != 0:
        stop(side)
        return code
    write_atomic(job_dir / "sidecar.exit", str(status(side.wait())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
