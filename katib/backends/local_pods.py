"""The pod kubelet of `katib.py --fake serve --api-only`: every admitted Pod → local processes →
the Pod's status.

Each container of a pod runs as one local-runner job keyed `<ns>/<pod>/<container>` (the
wrapper of local_wrapper: it outlives katib, writes the exit status, and after a restart is
re-attached or reported lost, never started twice), in spec order, with what pod_plan gives
it (volumes, process view, service addresses). Its output is `kubectl logs POD -c CONTAINER`.
The Pod's status follows as a kubelet writes it: Pending, Running with each container's
`running` state, then `terminated` ones (exit code, reason Completed/Error/..., message) and
phase Succeeded when every container exited 0, else Failed (restartPolicy is not applied: one
attempt per container). A deleted Pod's processes are stopped (TERM, then KILL after its grace
period) and their directories removed."""
from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from katib.backends import env_sources
from katib.backends import local_outcome as lo
from katib.backends import local_wrapper as lw
from katib.backends import pod_plan
from katib.backends.base import DELETED, WatchEvent
from katib.backends.local_process import StartError
from katib.clock import Clock, rfc3339
from katib.errors import Conflict, NotFound

logger = logging.getLogger(__name__)
_PID_WAIT = 5.0   # seconds a started container may take to record its PID (the wrapper's fork)


def pod_key(pod: dict) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class PodState:
    pod: dict
    containers: list[str]
    started: dict[str, float] = field(default_factory=dict)      # container → start time
    ended: dict[str, lo.JobOutcome] = field(default_factory=dict)
    start_time: float | None = None


class PodKubelet:
    """Runs the Pods of a FakeBackend; `close()` leaves running containers running."""

    def __init__(self, backend, runner, *, pods_dir: Path, clock: Clock | None = None,
                 working_dir: str | None = None, on_fatal=None, resolve_service=None):
        self.backend = backend
        self._lookup = env_sources.backend_lookup(backend)   # Secrets and ConfigMaps for env
        self.runner = runner
        self.pods_dir = Path(pods_dir).absolute()
        self.clock = clock or Clock()
        self.working_dir = working_dir
        self.on_fatal = on_fatal
        self.resolve_service = resolve_service   # (backend, ns, name, port) → [(ip, port), ...]
        self._pods: dict[str, PodState] = {}
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe = backend.subscribe(self._on_event, kinds=("Pod",), readonly=True)

    # ------------------------------------------------------------------ events
    def _on_event(self, event: WatchEvent) -> None:
        pod = event.object
        if event.type == DELETED or pod["metadata"].get("deletionTimestamp"):
            self._inbox.put(("delete", pod_key(pod), None))
        elif not finished(pod):
            self._inbox.put(("add", pod_key(pod), pod))

    def output_path(self, namespace: str, name: str, container: str) -> Path:
        return self.runner.output_path(f"{namespace}/{name}/{container}")

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> None:
        """After a restart: containers that ended meanwhile get their outcome, running ones
        are watched again, pods not (fully) started start; leftovers of deleted pods go."""
        outcomes = self.runner.recover()
        running = self.runner.running()
        pods = {pod_key(p): p for p in self.backend.list("Pod")}
        for outcome in outcomes:
            ns, name, _ = outcome.key.split("/", 2)
            if f"{ns}/{name}" not in pods:
                self.runner.forget(outcome.key)
        for key in running:
            ns, name, _ = key.split("/", 2)
            if f"{ns}/{name}" not in pods:
                self.runner.forget(key)
        if self.pods_dir.is_dir():   # volumes of pods deleted while we were down
            for entry in self.pods_dir.iterdir():
                if lw.key_of_dir(entry.name) not in pods:
                    shutil.rmtree(entry, ignore_errors=True)
        for key, pod in pods.items():
            if finished(pod) or pod["metadata"].get("deletionTimestamp"):
                continue
            state = self._track(key, pod)
            for container in state.containers:
                ckey = f"{key}/{container}"
                if ckey in running:
                    state.started[container] = running[ckey]
            for outcome in outcomes:
                ns, name, container = outcome.key.split("/", 2)
                if f"{ns}/{name}" == key and container in state.containers:
                    state.started.setdefault(container, outcome.start_time)
                    state.ended[container] = outcome
            self._inbox.put(("resume", key, None))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pod-kubelet", daemon=True)
        self._thread.start()

    def close(self, *, kill: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._unsubscribe()
        if kill:
            self.runner.kill_all(reason=lo.INTERRUPTED)
        self.runner.close()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        what, key, pod = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(what, key, pod)
                for outcome in self.runner.wait(timeout=0.05):
                    self._ended(outcome)
        except Exception as exc:  # noqa: BLE001 - one line to on_fatal, never a silent stop
            logger.exception("pod kubelet stopped")
            if self.on_fatal is not None:
                self.on_fatal(f"pod kubelet: {lo_describe(exc)}")

    def _handle(self, what: str, key: str, pod: dict | None) -> None:
        if what == "delete":
            state = self._pods.pop(key, None)
            names = state.containers if state else []
            for container in names:
                self.runner.forget(f"{key}/{container}")
            shutil.rmtree(self._pod_dir(key), ignore_errors=True)
            return
        if what == "add":
            if key in self._pods:
                return
            self._track(key, pod)
        state = self._pods.get(key)
        if state is not None:
            self._start_pod(key, state)

    def _track(self, key: str, pod: dict) -> PodState:
        names = [c.get("name") or "" for c in (pod.get("spec") or {}).get("containers") or ()]
        state = self._pods[key] = PodState(pod=pod, containers=names)
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            if (status.get("state") or {}).get("running") or (status.get("state") or {}).get("terminated"):
                state.started.setdefault(status.get("name"), self.clock.now())
        return state

    def _pod_dir(self, key: str) -> Path:
        return self.pods_dir / lw.dir_name(key)

    # ------------------------------------------------------------------ starting
    def _start_pod(self, key: str, state: PodState) -> None:
        pod = state.pod
        pod_dir = self._pod_dir(key)
        pod_dir.mkdir(parents=True, exist_ok=True)
        try:
            for volume in pod_plan.volume_dirs(pod, str(pod_dir)).values():
                os.makedirs(volume, exist_ok=True)
        except StartError as err:
            self._fail_unstarted(key, state, str(err))
            return
        state.start_time = state.start_time or self.clock.now()
        for container in (pod.get("spec") or {}).get("containers") or ():
            name = container.get("name") or ""
            if name in state.started:
                continue
            ckey = f"{key}/{name}"
            try:
                container = env_sources.resolve(container, pod["metadata"].get("namespace") or "default",
                                                self._lookup)
                job = pod_plan.container_job(pod, container, pod_dir=str(pod_dir), working_dir=self.working_dir,
                                             resolved=self._resolve(container))
            except StartError as err:
                job = None
                message = str(err)
            now = self.clock.now()
            if job is None:
                state.started[name] = now
                state.ended[name] = lo.JobOutcome(key=ckey, succeeded=False, exit_code=None, reason="StartError",
                                                  message=message, start_time=now, completion_time=now)
                continue
            self.runner.start(ckey, job)
            state.started[name] = now
            if (pod.get("spec") or {}).get("shareProcessNamespace"):
                self._record_pid(pod_dir, ckey)
        self._write_status(key, state)

    def _resolve(self, container: dict) -> dict:
        out = {}
        if self.resolve_service is None:
            return out
        for ref in pod_plan.services_in(container):
            try:
                out[(ref.host, ref.port)] = self.resolve_service(self.backend, ref.namespace, ref.name, ref.port)
            except Exception as err:  # noqa: BLE001 - not resolvable now: as a DNS miss
                logger.info("service %s:%d not resolvable for a pod: %s", ref.host, ref.port, err)
        return out

    def _record_pid(self, pod_dir: Path, ckey: str) -> None:
        """Append the container's top-level PID to the pod's process view (pod_plan)."""
        pgid_file = self.runner.output_path(ckey).parent / "pgid"
        end = time.monotonic() + _PID_WAIT
        while (pid := lw.read_int(pgid_file)) is None:
            if time.monotonic() > end or (self.runner.output_path(ckey).parent / "exit").exists() \
                    or not pgid_file.parent.exists():
                return
            time.sleep(0.002)
        with open(pod_dir / "pids", "a") as fh:
            fh.write(f"{pid}\n")

    def _fail_unstarted(self, key: str, state: PodState, message: str) -> None:
        now = self.clock.now()
        for name in state.containers:
            state.started.setdefault(name, now)
            state.ended.setdefault(name, lo.JobOutcome(key=f"{key}/{name}", succeeded=False, exit_code=None,
                                                       reason="StartError", message=message, start_time=now,
                                                       completion_time=now))
        self._write_status(key, state)

    # ------------------------------------------------------------------ outcomes
    def _ended(self, outcome: lo.JobOutcome) -> None:
        ns, name, container = outcome.key.split("/", 2)
        key = f"{ns}/{name}"
        state = self._pods.get(key)
        if state is None or outcome.reason == lo.INTERRUPTED:
            return
        state.ended[container] = outcome
        self._write_status(key, state)

    def _write_status(self, key: str, state: PodState) -> None:
        status = pod_status(state, self.clock.now())
        ns, _, name = key.partition("/")
        for attempt in range(5):
            try:
                current = self.backend.get("Pod", ns, name)
            except NotFound:
                self._pods.pop(key, None)
                return
            if current["metadata"].get("uid") != state.pod["metadata"].get("uid"):
                return
            current["status"] = {**(current.get("status") or {}), **status}
            try:
                self.backend.update_status(current)
                break
            except Conflict:
                if attempt == 4:
                    raise
        if status["phase"] in ("Succeeded", "Failed"):
            self._pods.pop(key, None)


def pod_status(state: PodState, now: float) -> dict:
    """The Pod's status from what ran: phase, startTime and one containerStatus per container."""
    statuses = []
    for name in state.containers:
        image = next((c.get("image") or "" for c in state.pod["spec"].get("containers") or ()
                      if c.get("name") == name), "")
        entry = {"name": name, "image": image, "imageID": "", "restartCount": 0, "started": False, "ready": False}
        outcome = state.ended.get(name)
        if outcome is not None:
            terminated = {"exitCode": outcome.exit_code if outcome.exit_code is not None else 128,
                          "reason": container_reason(outcome), "startedAt": rfc3339(outcome.start_time),
                          "finishedAt": rfc3339(outcome.completion_time)}
            if outcome.message and not outcome.succeeded:
                terminated["message"] = outcome.message
            entry["state"] = {"terminated": terminated}
        elif name in state.started:
            entry.update(started=True, ready=True, state={"running": {"startedAt": rfc3339(state.started[name])}})
        else:
            entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
        statuses.append(entry)
    done = len(state.ended) == len(state.containers)
    if done:
        phase = "Succeeded" if all(o.succeeded for o in state.ended.values()) else "Failed"
    else:
        phase = "Running" if state.started else "Pending"
    ready = phase == "Running" and all(s["ready"] for s in statuses)
    status = {"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                              "lastTransitionTime": rfc3339(now)}],
              "containerStatuses": statuses}
    if state.start_time is not None:
        status["startTime"] = rfc3339(state.start_time)
    return status


def container_reason(outcome: lo.JobOutcome) -> str:
    """A terminated container's reason as a kubelet names it (Completed, Error, OOMKilled...),
    ours when the local runner decided it (StartError, ProcessLost, DeadlineExceeded)."""
    if outcome.succeeded:
        return "Completed"
    return outcome.reason or "Error"


def lo_describe(exc: BaseException) -> str:
    from katib.backends.kubelet import describe_failure
    return describe_failure(exc)
