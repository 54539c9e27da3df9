"""How the pod kubelet (local_pods) runs one container of a Pod on this machine. Pure.

A container becomes a one-container Job manifest for the local runner (local_process.plan_launch
reads it: command, args, env, `$(VAR)` expansion, workingDir, deadlines), after four local
stand-ins for what a node gives a pod:

* Volumes: each `emptyDir` volume is a directory of the pod (`<pod dir>/volumes/<name>`). The
  container's filesystem is this machine's, so a mount cannot be made; instead every
  occurrence of a container's volumeMount `mountPath` (as a whole path or a path prefix, e.g.
  `/var/log/katib` in `1>/var/log/katib/metrics.log`) in its command, args, env values and
  workingDir is rewritten to the volume's directory (plus `subPath`). A program that builds
  the path itself from pieces does not see the volume. Other volume kinds cannot run here.
* Process namespace: a pod with `shareProcessNamespace: true` has its containers' top-level
  PIDs listed in `<pod dir>/pids` (one per line, in start order) and every container gets
  `KATIB_POD_PIDS_FILE` naming it: the collector's PID wait (collector/wait.py) reads it instead
  of scanning /proc for parent PID 0, which on a shared host names only the host's init.
* Cluster DNS and Services: a `<service>.<namespace>.svc[.cluster.local][:<port>]` named in a
  container's command, args or env is resolved through the Service's Endpoints when the
  container starts and passed as `KATIB_RESOLVE` (`host:port=ip:port|ip:port,...`); our
  collector connects to those addresses in turn (one per attempt, as a Service spreads
  connections) and still verifies the certificate for the service name (as curl's --resolve).
  Other programs do not read it: for them the name does not resolve.
* Images: an image is not run. A container of the image `katib` (any registry/tag) defaults
  its workingDir to the katib checkout, which is that image's content (its WORKDIR holds
  katib/ and collector/), so `python -m collector` finds the collector; other containers
  default to the kubelet's working directory (katib's). Commands are looked up on PATH, which
  is katib's with its interpreter's bin directory first (runtime.trial_environment)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from katib.backends.local_process import StartError

KATIB_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIDS_ENV = "KATIB_POD_PIDS_FILE"
RESOLVE_ENV = "KATIB_RESOLVE"
_SERVICE = re.compile(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc"
                      r"(\.cluster\.local)?(:(\d+))?\b")


@dataclass(frozen=True)
class ServiceRef:
    host: str        # as written: katib.kubeflow.svc
    name: str
    namespace: str
    port: int


def volume_dirs(pod: dict, pod_dir: str) -> dict[str, str]:
    """volume name → its directory; StartError for a kind other than emptyDir."""
    out = {}
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        name = volume.get("name") or ""
        kinds = [k for k in volume if k != "name"]
        if kinds != ["emptyDir"]:
            raise StartError(f"volume {name}: only emptyDir volumes can be given to a pod by the local "
                             f"kubelet (got {', '.join(kinds) or 'no source'})")
        out[name] = os.path.join(pod_dir, "volumes", name)
    return out


def mounts(container: dict, volumes: dict[str, str]) -> dict[str, str]:
    """mountPath → local directory, for the container's volumeMounts."""
    out = {}
    for mount in container.get("volumeMounts") or ():
        name, path = mount.get("name") or "", str(mount.get("mountPath") or "")
        if name not in volumes:
            raise StartError(f"container {container.get('name')}: volumeMount {name}: no such volume in the pod")
        if not path.startswith("/") or path.rstrip("/") == "":
            raise StartError(f"container {container.get('name')}: volumeMount {name}: mountPath {path!r} "
                             f"must be an absolute path other than /")
        local = volumes[name]
        if mount.get("subPath"):
            local = os.path.join(local, str(mount["subPath"]))
        out[path.rstrip("/")] = local
    return out


def path_pattern(paths) -> re.Pattern:
    """Any of `paths` as a whole path inside a string: not preceded by a path character, not
    followed by a name character (`/…` may follow); the longest first. Group 1 is the path."""
    return re.compile(r"(?<![\w./-])(" + "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
                      + r")(?![\w.-])")


def rewrite(text: str, mapped: dict[str, str]) -> str:
    """Every mount path in `text` (whole, or followed by `/`) → its local directory; longest first."""
    if not mapped:
        return text
    return path_pattern(mapped).sub(lambda m: mapped[m.group(1)], text)


def services_in(container: dict) -> list[ServiceRef]:
    texts = list(container.get("command") or []) + list(container.get("args") or [])
    texts += [str(e.get("value") or "") for e in container.get("env") or () if isinstance(e, dict)]
    found = {}
    for text in texts:
        for m in _SERVICE.finditer(str(text)):
            port = int(m.group(7)) if m.group(7) else 443
            host = m.group(0).rsplit(":", 1)[0] if m.group(7) else m.group(0)
            found[(host, port)] = ServiceRef(host=host, name=m.group(1), namespace=m.group(3), port=port)
    return list(found.values())


def is_katib_image(image: str) -> bool:
    """`katib`, `katib:latest`, `registry.example/team/katib:v1`..."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return name == "katib"


def container_job(pod: dict, container: dict, *, pod_dir: str, working_dir: str | None,
                  resolved: dict[tuple[str, int], list[tuple[str, int]]]) -> dict:
    """The one-container Job manifest the local runner runs for `container` of `pod`.
    `resolved`: (host, port) → [(ip, port), ...] of the services the container names."""
    volumes = volume_dirs(pod, pod_dir)
    mapped = mounts(container, volumes)
    spec = pod.get("spec") or {}
    out = {k: v for k, v in container.items() if k not in ("command", "args", "env", "workingDir")}
    for field in ("command", "args"):
        if container.get(field) is not None:
            out[field] = [rewrite(a, mapped) if isinstance(a, str) else a for a in container[field]]
    env = [dict(e, value=rewrite(e["value"], mapped)) if isinstance(e, dict) and isinstance(e.get("value"), str)
           else e for e in container.get("env") or ()]
    env.append({"name": "HOSTNAME", "value": (pod.get("metadata") or {}).get("name", "")})
    if spec.get("shareProcessNamespace"):
        env.append({"name": PIDS_ENV, "value": os.path.join(pod_dir, "pids")})
    if resolved:
        env.append({"name": RESOLVE_ENV, "value": ",".join(
            f"{h}:{p}=" + "|".join(f"{ip}:{port}" for ip, port in addresses)
            for (h, p), addresses in sorted(resolved.items()))})
    out["env"] = env
    if container.get("workingDir"):
        out["workingDir"] = rewrite(str(container["workingDir"]), mapped)
    elif is_katib_image(str(container.get("image") or "")):
        out["workingDir"] = KATIB_ROOT
    elif working_dir is not None:
        out["workingDir"] = working_dir
    pod_spec = {"containers": [out]}
    if spec.get("terminationGracePeriodSeconds") is not None:
        pod_spec["terminationGracePeriodSeconds"] = spec["terminationGracePeriodSeconds"]
    job_spec: dict = {"template": {"spec": pod_spec}}
    if spec.get("activeDeadlineSeconds") is not None:
        job_spec["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": dict(pod.get("metadata") or {}), "spec": job_spec}
