"""What a Job runs on the local kubelet: manifest → LaunchSpec (pure; check_executable stats).

Which container of a Job/TFJob/PyTorchJob runs (controllers.md §3.3), its environment and
Kubernetes' `$(VAR)` expansion of env values, command and args. Anything that cannot run
locally raises StartError, which the runner reports as the Job's failure reason."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass

# The training container of each kind (controllers.md §3.3) and the replica that runs locally:
# tf-operator makes the chief/master (else worker 0) the "master" pod; pytorch-operator the Master.
_KINDS = {
    "Job": (None, ()),
    "TFJob": ("tensorflow", ("chief", "master", "worker")),
    "PyTorchJob": ("pytorch", ("master",)),
}
_REPLICA_SPECS = {"TFJob": "tfReplicaSpecs", "PyTorchJob": "pytorchReplicaSpecs"}


class StartError(Exception):
    """The container cannot be started here; the message says why (Job reason `StartError`)."""


@dataclass(frozen=True)
class LaunchSpec:
    """What to run for one Job: argv after `$(VAR)` expansion and the container's own env."""

    argv: list[str]
    env: dict[str, str]
    # TFJob/PyTorchJob: argv runs every replica (katib.backends.local_replicas); these are the
    # replicas' own commands, checked before the job starts as a container runtime would.
    executables: tuple[str, ...] = ()
    working_dir: str | None = None
    active_deadline_seconds: float | None = None
    grace_period_seconds: float | None = None
    volume: str | None = None   # the job's metrics volume (katib.backends.local_pod), created before it starts


def plan_launch(job: dict) -> LaunchSpec:
    """Job manifest → LaunchSpec; raises StartError for what cannot run locally."""
    if not isinstance(job, dict):
        raise StartError("the job manifest is not an object")
    pod_spec, container = select_container(job)
    name = container.get("name") or "(unnamed)"
    env = build_env(container)
    command = _string_list(container, "command")
    args = _string_list(container, "args")
    if not command:
        raise StartError(
            f"container {name}: no command given; the entrypoint of image "
            f"{container.get('image') or '(none)'} is not known to the local runner, "
            "so the command must be set explicitly")
    working_dir = container.get("workingDir") or None
    if working_dir is not None and not isinstance(working_dir, str):
        raise StartError(f"container {name}: workingDir must be a string")
    spec = _obj(job.get("spec"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is None:
        deadline = _obj(spec.get("runPolicy")).get("activeDeadlineSeconds")
    argv, executables = [expand(a, env) for a in command + args], ()
    if job.get("kind") in _REPLICA_SPECS:
        replicas = plan_replicas(job)
        executables = tuple(r["argv"][0] for r in replicas)
        argv = [sys.executable, REPLICA_LAUNCHER, json.dumps({"kind": job["kind"], "replicas": replicas})]
        env = {}
    pod = local_pod(job)
    volume = pod.get("volume") if isinstance(pod.get("volume"), str) else None
    if pod.get("sidecar") is not None:
        sidecar = plan_sidecar(pod_spec, pod)
        executables = (*executables, argv[0], sidecar["argv"][0])
        argv = [sys.executable, POD_LAUNCHER, json.dumps({
            "training": {"argv": argv, "env": env}, "sidecar": sidecar,
            "markerDir": pod.get("markerDir"), "sidecarStdout": bool(pod.get("sidecarStdout"))})]
        env = {}
    return LaunchSpec(
        argv=argv,
        executables=executables,
        env=env,
        working_dir=working_dir,
        active_deadline_seconds=_number(deadline, "spec.activeDeadlineSeconds"),
        grace_period_seconds=_number(pod_spec.get("terminationGracePeriodSeconds"),
                                     "terminationGracePeriodSeconds"),
        volume=volume,
    )


def local_pod(job: dict) -> dict:
    """What katib.backends.local_pod added to the job (POD_ANNOTATION), {} for none."""
    text = _obj(_obj(job.get("metadata")).get("annotations")).get(POD_ANNOTATION)
    try:
        return _obj(json.loads(text)) if isinstance(text, str) else {}
    except ValueError:
        return {}


def plan_sidecar(pod_spec: dict, pod: dict) -> dict:
    """The metrics-collector sidecar of a local pod: {argv, env, workingDir}. Its command is
    required (an image's entrypoint is unknown here); the message names the field."""
    container = next((c for c in pod_spec.get("containers") or () if isinstance(c, dict)
                      and c.get("name") == pod["sidecar"]), None)
    field = pod.get("field") or "the metrics collector"
    if container is None:
        raise StartError(f"{field}: the sidecar container {pod['sidecar']} is missing")
    command = _string_list(container, "command")
    if not command:
        raise StartError(f"{field}.command: not set; the entrypoint of image "
                         f"{container.get('image') or '(none)'} is not known to the local runner, so the "
                         f"collector's command must be given (command, and args if any)")
    env = build_env(container)
    argv = [expand(a, env) for a in command + _string_list(container, "args")]
    return {"argv": argv, "env": env, "workingDir": container.get("workingDir") or None}


def select_container(job: dict) -> tuple[dict, dict]:
    """(pod spec, container) that runs locally: container 0 of a Job; for TFJob/PyTorchJob the
    container named tensorflow/pytorch (else the first) of the master-like replica."""
    kind = job.get("kind") or "Job"
    if kind not in _KINDS:
        raise StartError(f"Invalid Katib Training Job kind {kind}")
    wanted, roles = _KINDS[kind]
    spec = _obj(job.get("spec"))
    if kind == "Job":
        template = spec.get("template")
    else:
        replicas = _obj(spec.get(_REPLICA_SPECS[kind]))
        if not replicas:
            raise StartError(f"{kind} has no spec.{_REPLICA_SPECS[kind]}")
        by_role = {str(role).lower(): role for role in replicas}
        role = next((by_role[r] for r in roles if r in by_role), next(iter(replicas)))
        template = _obj(replicas[role]).get("template")
    pod_spec = _obj(_obj(template).get("spec"))
    containers = pod_spec.get("containers") or []
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise StartError(f"{kind} has no containers in its pod template")
    chosen = next((c for c in containers if isinstance(c, dict) and c.get("name") == wanted),
                  containers[0])
    return pod_spec, chosen


MAX_REPLICAS = 32
# Run as a script (it imports only the standard library), from whatever working directory.
REPLICA_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "local_replicas.py")
POD_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "local_pod_launcher.py")
POD_ANNOTATION = "katib.kubeflow.org/local-pod"   # written by katib.backends.local_pod


def plan_replicas(job: dict) -> list[dict]:
    """Every replica of a TFJob/PyTorchJob as the local replica launcher runs it, the master
    (chief/master, else worker 0; PyTorch: Master) first: {type, index, argv, env, workingDir}.
    The launcher adds what the operator would set (TF_CONFIG; MASTER_ADDR/PORT, WORLD_SIZE, RANK)."""
    kind = job["kind"]
    wanted, roles = _KINDS[kind]
    specs = _obj(_obj(job.get("spec")).get(_REPLICA_SPECS[kind]))
    by_role = {str(role).lower(): role for role in specs}
    master_role = next((by_role[r] for r in roles if r in by_role), next(iter(specs), None))
    out: list[dict] = []
    for role in sorted(specs, key=lambda r: r != master_role):
        replica = _obj(specs[role])
        count = replica.get("replicas", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise StartError(f"{kind} {role}: replicas must be a non-negative integer, got {count!r}")
        pod_spec = _obj(_obj(replica.get("template")).get("spec"))
        containers = [c for c in pod_spec.get("containers") or [] if isinstance(c, dict)]
        if not containers:
            raise StartError(f"{kind} {role} has no containers in its pod template")
        container = next((c for c in containers if c.get("name") == wanted), containers[0])
        env = build_env(container)
        command = _string_list(container, "command")
        if not command:
            raise StartError(f"{kind} {role}: container {container.get('name') or '(unnamed)'}: no command "
                             f"given; the command must be set explicitly")
        argv = [expand(a, env) for a in command + _string_list(container, "args")]
        for index in range(count):
            out.append({"type": str(role), "index": index, "argv": argv, "env": env,
                        "workingDir": container.get("workingDir") or None})
    if not out:
        raise StartError(f"{kind} has no replicas to run")
    if len(out) > MAX_REPLICAS:
        raise StartError(f"{kind} has {len(out)} replicas; at most {MAX_REPLICAS} run on one machine")
    return out


def build_env(container: dict) -> dict[str, str]:
    """The container's `env`, in order, each value expanded against the ones before it."""
    name = container.get("name") or "(unnamed)"
    if container.get("envFrom"):
        raise StartError(f"container {name}: envFrom is not supported by the local runner")
    env: dict[str, str] = {}
    env_list = container.get("env") or []
    if not isinstance(env_list, list):
        raise StartError(f"container {name}: env must be a list")
    for item in env_list:
        var = item.get("name") if isinstance(item, dict) else None
        if not isinstance(var, str) or not var or "=" in var or "\0" in var:
            raise StartError(f"container {name}: invalid env entry {item!r}")
        if item.get("valueFrom") is not None:
            raise StartError(
                f"container {name}: env {var}: valueFrom is not supported by the local runner")
        value = item.get("value", "")
        if not isinstance(value, str):
            raise StartError(f"container {name}: env {var}: value must be a string")
        env[var] = expand(value, env)
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, and
    undefined or unterminated references are left as written."""
    out: list[str] = []
    checkpoint = cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close < 0:
                    out.append("$(")
                else:
                    var = text[cursor + 2:close]
                    out.append(env[var] if var in env else f"$({var})")
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


_FOUND_FOR = 5.0   # seconds a $PATH lookup that found the executable is trusted
_found: dict[tuple[str, str], float] = {}


def check_executable(argv0: str, *, path: str, cwd: str) -> None:
    """Fail the way a container runtime does when the command cannot be executed. A name found
    on $PATH is not looked up again for a few seconds (a search is a dozen system calls, each
    giving up the GIL, for every trial); a name not found is looked up every time."""
    if "/" not in argv0:
        now = time.monotonic()
        if _found.get((argv0, path), -_FOUND_FOR) + _FOUND_FOR > now:
            return
        if shutil.which(argv0, path=path) is None:
            raise StartError(f'exec: "{argv0}": executable file not found in $PATH')
        if len(_found) > 1000:
            _found.clear()
        _found[(argv0, path)] = now
        return
    full = os.path.join(cwd, argv0)
    if not os.path.exists(full):
        raise StartError(f'exec: "{argv0}": no such file or directory')
    if os.path.isdir(full) or not os.access(full, os.X_OK):
        raise StartError(f'exec: "{argv0}": permission denied')


def _obj(value: object) -> dict:
    """A manifest field that should be an object; anything else counts as absent."""
    return value if isinstance(value, dict) else {}


def _string_list(container: dict, field: str) -> list[str]:
    value = container.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StartError(f"container {container.get('name') or '(unnamed)'}: "
                         f"{field} must be a list of strings")
    return value


def _number(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise StartError(f"{field} must be a non-negative number, got {value!r}")
    return float(value)
