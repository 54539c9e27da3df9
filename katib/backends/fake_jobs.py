"""The job controllers of the fake cluster (`--fake serve --api-only`): Job, TFJob and PyTorchJob
→ Pods (created through the API's write path, so admission webhooks see them) → the job's status.

Pods are named and labelled as their controllers do:
  batch/v1 Job   generateName `<job>-`; labels controller-uid=<job uid>, job-name=<job>;
  TFJob          `<job>-<type>-<index>`; labels group-name=kubeflow.org, job-name, tf-job-name,
                 tf-replica-type, tf-replica-index (type lower-cased), job-role=master on the
                 chief/master (else worker 0) and the env TF_CONFIG;
  PyTorchJob     `<job>-<type>-<index>`; labels group-name, job-name, pytorch-job-name,
                 pytorch-replica-type, pytorch-replica-index, job-role=master on the Master, and
                 MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK/PYTHONUNBUFFERED.
Every pod has a controller ownerReference to its job (so the pod webhook finds the trial,
and deleting the job deletes its pods). Addresses are 127.0.0.1 with a free port per replica
(ports.free_ports), chosen once at pod creation; a pod created after a restart (the
controller died between two pods of a job) gets the addresses the existing pods were given.

Status (local_outcome.job_status, as the local kubelet writes it): the job runs once its pods
exist; a batch Job completes when its pod Succeeded and fails when it Failed (one pod, no
retries: backoffLimit is not applied); a TFJob/PyTorchJob succeeds when its master pod
Succeeded, fails when any of its pods Failed, and then its other running pods are deleted
(cleanPodPolicy Running). A failure's reason and message are the failed container's. A pod the
API refuses (a webhook's denial) fails the job with reason FailedCreate and the refusal; a
webhook that cannot be called is retried."""
from __future__ import annotations

import json
import logging
import queue
import threading
import time

from katib import failpoints
from katib.api.jobs import JOB_KINDS
from katib.backends import local_outcome as lo
from katib.backends.base import DELETED, WatchEvent
from katib.backends.local_process import _KINDS, _REPLICA_SPECS
from katib.backends.local_replicas import operator_env
from katib.backends.ports import free_ports
from katib.clock import Clock, parse_rfc3339
from katib.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound, TemporaryError

logger = logging.getLogger(__name__)
_PREFIX = {"TFJob": "tf", "PyTorchJob": "pytorch"}
_RETRY = 1.0


def job_key(kind: str, namespace: str, name: str) -> tuple[str, str, str]:
    return kind, namespace, name


def replicas(job: dict) -> list[tuple[str, int, dict, bool]]:
    """(type, index, pod template, is master) of every pod of a TFJob/PyTorchJob, master first."""
    kind = job["kind"]
    _, roles = _KINDS[kind]
    specs = (job.get("spec") or {}).get(_REPLICA_SPECS[kind]) or {}
    by_role = {str(r).lower(): r for r in specs}
    master = next((by_role[r] for r in roles if r in by_role), next(iter(specs), None))
    out = []
    for role in sorted(specs, key=lambda r: r != master):
        count = (specs[role] or {}).get("replicas", 1)
        for index in range(count if isinstance(count, int) and not isinstance(count, bool) else 1):
            out.append((str(role), index, (specs[role] or {}).get("template") or {}, role == master and index == 0))
    return out


def _owner(job: dict) -> dict:
    meta = job["metadata"]
    return {"apiVersion": job["apiVersion"], "kind": job["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _pod(job: dict, template: dict, *, name: str | None, labels: dict, env: dict | None = None) -> dict:
    meta = job["metadata"]
    tmeta = template.get("metadata") or {}
    spec = json.loads(json.dumps(template.get("spec") or {}))
    if env:
        for container in spec.get("containers") or ():
            container["env"] = list(container.get("env") or []) + [{"name": k, "value": v} for k, v in env.items()]
    spec.setdefault("restartPolicy", "Never")
    pod_meta = {"namespace": meta.get("namespace", ""), "labels": {**(tmeta.get("labels") or {}), **labels},
                "ownerReferences": [_owner(job)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if name is None:
        pod_meta["generateName"] = f"{meta['name']}-"
    else:
        pod_meta["name"] = name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _env_of(pod: dict, name: str) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or ():
        for item in container.get("env") or ():
            if item.get("name") == name:
                return item.get("value")
    return None


def known_ports(kind: str, plan: list[dict], existing: list[dict]) -> list[int] | None:
    """The ports the job's pods already created were given (TF_CONFIG's cluster, MASTER_PORT),
    so that pods created later (after a restart) join the same cluster; None if none exist."""
    for pod in existing:
        if kind == "TFJob" and (text := _env_of(pod, "TF_CONFIG")):
            cluster = json.loads(text).get("cluster") or {}
            ports = []
            for r in plan:
                addresses = cluster.get(r["type"].lower()) or []
                ports.append(int(addresses[r["index"]].rsplit(":", 1)[1]) if r["index"] < len(addresses)
                             else free_ports(1)[0])
            return ports
        if kind == "PyTorchJob" and (port := _env_of(pod, "MASTER_PORT")):
            return [int(port)] + [0] * (len(plan) - 1)
    return None


def desired_pods(job: dict, existing: list[dict] = ()) -> list[dict]:
    """The pods the job's controller creates (ports chosen now, for TF_CONFIG/MASTER_PORT,
    unless `existing` pods of the job already name them)."""
    meta = job["metadata"]
    if job["kind"] == "Job":
        template = (job.get("spec") or {}).get("template") or {}
        return [_pod(job, template, name=None, labels={"controller-uid": meta["uid"], "job-name": meta["name"]})]
    prefix = _PREFIX[job["kind"]]
    reps = replicas(job)
    plan = [{"type": t, "index": i} for t, i, _, _ in reps]
    envs = operator_env(job["kind"], plan, known_ports(job["kind"], plan, existing) or free_ports(len(reps)))
    out = []
    for (rtype, index, template, master), env in zip(reps, envs):
        labels = {"group-name": "kubeflow.org", "job-name": meta["name"], f"{prefix}-job-name": meta["name"],
                  f"{prefix}-replica-type": rtype.lower(), f"{prefix}-replica-index": str(index)}
        if master:
            labels["job-role"] = "master"
        out.append(_pod(job, template, name=f"{meta['name']}-{rtype.lower()}-{index}", labels=labels, env=env))
    return out


def selector(job: dict) -> dict:
    meta = job["metadata"]
    if job["kind"] == "Job":
        return {"controller-uid": meta["uid"]}
    return {f"{_PREFIX[job['kind']]}-job-name": meta["name"], "group-name": "kubeflow.org"}


def owned(job: dict, pods: list[dict]) -> list[dict]:
    uid = job["metadata"]["uid"]
    return [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or ())]


def _time(text: str | None, default: float) -> float:
    try:
        return parse_rfc3339(text) if text else default
    except ValueError:
        return default


def pod_outcome(pod: dict, now: float) -> lo.JobOutcome | None:
    """A finished pod as a JobOutcome (the failed container's reason and message), else None."""
    status = pod.get("status") or {}
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    start = _time(status.get("startTime"), now)
    end, reason, message, code = start, "Error", "", None
    for cs in status.get("containerStatuses") or ():
        term = (cs.get("state") or {}).get("terminated") or {}
        end = max(end, _time(term.get("finishedAt"), start))
        if term and term.get("exitCode", 0) != 0 and code is None:
            code = term.get("exitCode")
            reason = term.get("reason") or "Error"
            message = f"pod {pod['metadata']['name']} container {cs.get('name')}: {term.get('message') or reason}"
    ok = status["phase"] == "Succeeded"
    return lo.JobOutcome(key=pod["metadata"]["name"], succeeded=ok, exit_code=0 if ok else code,
                         reason="Completed" if ok else reason, message="" if ok else message,
                         start_time=start, completion_time=end)


def job_outcome(job: dict, pods: list[dict], now: float) -> lo.JobOutcome | None:
    """Batch Job: its pod's; TFJob/PyTorchJob: the first failed pod's, else the master's success."""
    outcomes = {p["metadata"]["name"]: pod_outcome(p, now) for p in pods}
    failed = [o for o in outcomes.values() if o is not None and not o.succeeded]
    if failed:
        return failed[0]
    if job["kind"] == "Job":
        return next((o for o in outcomes.values() if o is not None), None)
    master = next((p for p in pods if (p["metadata"].get("labels") or {}).get("job-role") == "master"), None)
    return outcomes.get(master["metadata"]["name"]) if master is not None else None


class JobController:
    """One thread: creates the pods of every job without them and writes job statuses."""

    def __init__(self, backend, *, clock: Clock | None = None, on_fatal=None):
        self.backend = backend
        self.clock = clock or Clock()
        self.on_fatal = on_fatal
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry: dict[tuple, float] = {}
        self._unsubscribe = backend.subscribe(self._on_event, kinds=(*JOB_KINDS, "Pod"), readonly=True)

    def _on_event(self, event: WatchEvent) -> None:
        obj = event.object
        meta = obj["metadata"]
        if obj["kind"] == "Pod":
            for ref in meta.get("ownerReferences") or ():
                if ref.get("controller") and ref.get("kind") in JOB_KINDS:
                    self._inbox.put(job_key(ref["kind"], meta.get("namespace", ""), ref["name"]))
        elif event.type != DELETED:
            self._inbox.put(job_key(obj["kind"], meta.get("namespace", ""), meta["name"]))

    def recover(self) -> None:
        for kind in JOB_KINDS:
            for job in self.backend.list(kind):
                if not lo.finished(job):
                    self._inbox.put(job_key(kind, job["metadata"].get("namespace", ""), job["metadata"]["name"]))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fake-job-controller", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._unsubscribe()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                timeout = max(0.0, min(self._retry.values(), default=time.monotonic() + 0.5) - time.monotonic())
                try:
                    key = self._inbox.get(timeout=min(timeout, 0.5))
                except queue.Empty:
                    key = None
                keys = {key} if key is not None else set()
                while True:   # a burst of events for one job: reconcile it once
                    try:
                        more = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if more is not None:
                        keys.add(more)
                now = time.monotonic()
                keys |= {k for k, at in self._retry.items() if at <= now}
                for k in keys:
                    self._retry.pop(k, None)
                    self._reconcile(*k)
        except Exception as exc:  # noqa: BLE001 - one line to on_fatal
            logger.exception("the fake job controller stopped")
            if self.on_fatal is not None:
                from katib.backends.kubelet import describe_failure
                self.on_fatal(f"job controller: {describe_failure(exc)}")

    def _reconcile(self, kind: str, namespace: str, name: str) -> None:
        try:
            job = self.backend.get(kind, namespace, name)
        except NotFound:
            return
        if job["metadata"].get("deletionTimestamp"):
            return
        pods = owned(job, self.backend.list("Pod", namespace, labels=selector(job)))
        now = self.clock.now()
        if lo.finished(job):
            self._clean_up(job, pods)
            return
        if not pods or (kind != "Job" and len(pods) < len(replicas(job))):
            try:
                pods = self._create_pods(job, pods)
            except (Forbidden, Invalid) as err:
                self._write(job, lo.job_status(kind, lo.JobOutcome(
                    key=name, succeeded=False, exit_code=None, reason="FailedCreate",
                    message=f"Error creating pods: {err}", start_time=now, completion_time=now), True, now))
                return
            except TemporaryError as err:
                logger.info("%s %s/%s: pods not created yet (%s); retrying", kind, namespace, name, err)
                self._retry[(kind, namespace, name)] = time.monotonic() + _RETRY
                return
        outcome = job_outcome(job, pods, now)
        started = min((_time((p.get("status") or {}).get("startTime"), now) for p in pods
                       if (p.get("status") or {}).get("startTime")), default=None)
        if outcome is None:
            if started is None or (job.get("status") or {}).get("startTime"):
                return
            status = lo.job_status(kind, None, True, now, start_time=started)
        else:
            status = lo.job_status(kind, outcome, True, now)
        self._write(job, status)
        if outcome is not None:
            self._clean_up(job, pods)

    def _create_pods(self, job: dict, existing: list[dict]) -> list[dict]:
        """The job's pods, creating those missing (after a restart, only those)."""
        have = {p["metadata"]["name"]: p for p in existing}
        out = []
        for pod in desired_pods(job, existing):
            name = pod["metadata"].get("name")
            if name in have:
                out.append(have[name])
                continue
            try:
                out.append(self.backend.create(pod))
            except AlreadyExists:
                out.append(self.backend.get("Pod", pod["metadata"]["namespace"], name))
            failpoints.hit("pod-created")   # crash tests: some of a job's pods exist, not all
        return out

    def _clean_up(self, job: dict, pods: list[dict]) -> None:
        """A finished TFJob/PyTorchJob: its pods still running are deleted (cleanPodPolicy Running)."""
        if job["kind"] == "Job":
            return
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                try:
                    self.backend.delete("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
                except NotFound:
                    pass

    def _write(self, job: dict, status: dict) -> None:
        from katib.backends.kubelet import write_job_status
        try:
            write_job_status(self.backend, job, status, unless_finished=True)
        except Conflict:
            self._retry[job_key(job["kind"], job["metadata"].get("namespace", ""), job["metadata"]["name"])] = \
                time.monotonic() + 0.1
