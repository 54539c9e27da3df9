"""The fake backend's kubelet: Job objects → local processes → Job status + metrics.

On a cluster, a pod runs the trial and a collector sidecar reports its metrics before the
pod ends. Here `LocalKubelet` runs the Job's container command as a local process, and when it
ends parses its metrics (StdOut or File collector, the same parser as the sidecar) into the DB
*before* it marks the Job finished — so the trial controller never sees a finished Job whose
metrics are still on the way. `complete_job` is shared with the test kubelet."""
from __future__ import annotations

import collections
import copy
import logging
import queue
import threading
from pathlib import Path

from katib import failpoints
from katib.backends.base import ADDED, DELETED, WatchEvent
from katib.backends.local_runner import job_status
from katib.api.jobs import pod_templates
from katib.clock import Clock
from katib.errors import Conflict, NotFound

logger = logging.getLogger(__name__)

JOB_KINDS = ("Job", "TFJob", "PyTorchJob")


def job_key(job: dict) -> str:
    meta = job["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def owning_trial(backend, job: dict) -> dict | None:
    meta = job["metadata"]
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == "Trial":
            try:
                return backend.get("Trial", meta.get("namespace", ""), ref["name"])
            except NotFound:
                return None
    return None


def collect_metrics(db, trial: dict, *, output: Path | None) -> int:
    """Parse the trial's metrics as its collector kind says and store them; returns how many.

    Idempotent: the trial's previous logs are replaced, so a restart that re-reads the same
    output never duplicates an observation."""
    from collector.parse import parse_lines
    from katib.db import replace_observation_log

    spec = trial.get("spec") or {}
    objective = spec.get("objective") or {}
    names = [objective.get("objectiveMetricName", "")] + list(objective.get("additionalMetricNames") or [])
    collector = spec.get("metricsCollector") or {}
    kind = (collector.get("collector") or {}).get("kind", "StdOut")
    source = collector.get("source") or {}
    filters = (source.get("filter") or {}).get("metricsFormat") or None
    if kind == "StdOut":
        path = output
    elif kind == "File":
        path = Path((source.get("fileSystemPath") or {}).get("path", ""))
    else:
        if kind != "None":
            logger.warning("metrics collector kind %s cannot run locally; no metrics for %s",
                           kind, trial["metadata"]["name"])
        return 0
    lines = read_lines(path)
    logs = parse_lines(lines, names, filters)
    replace_observation_log(db, trial["metadata"]["name"], logs)
    return len(logs)


def read_lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().split("\n")
    except OSError:
        return []


def complete_job(backend, db, job: dict, status: dict, *, output: Path | None) -> None:
    """Store the trial's metrics, then write the Job's final status."""
    trial = owning_trial(backend, job)
    if trial is not None and any(c.get("type") == "Complete" and c.get("status") == "True"
                                 for c in status.get("conditions") or ()):
        collect_metrics(db, trial, output=output)
        failpoints.hit("metrics-stored")  # crash tests: metrics in the DB, Job not yet finished
    write_job_status(backend, job, status)


def write_job_status(backend, job: dict, status: dict, *, unless_finished: bool = False) -> None:
    """Write the Job's status (retrying conflicts); `unless_finished`: leave a Job that already
    has conditions alone (a "started" report must not overwrite the outcome)."""
    meta = job["metadata"]
    for _ in range(5):
        try:
            current = backend.get(job["kind"], meta.get("namespace", ""), meta["name"])
        except NotFound:
            return
        if current.get("metadata", {}).get("uid") != meta.get("uid"):
            return  # a new job of the same name: this outcome is not its
        if unless_finished and (current.get("status") or {}).get("conditions"):
            return
        current["status"] = status
        try:
            backend.update_status(current)
            return
        except Conflict:
            continue


class LocalKubelet:
    """Runs every Job created in the backend as a local process group."""

    def __init__(self, backend, db, runner, *, clock: Clock | None = None, working_dir: str | None = None,
                 max_running: int | None = None, on_fatal=None):
        self.backend = backend
        self.max_running = max_running   # at most this many jobs run at once (None: no limit)
        self.on_fatal = on_fatal         # called with one line when a kubelet thread cannot go on
        self.working_dir = working_dir
        self.db = db
        self.runner = runner
        self.clock = clock or Clock()
        self._jobs: dict[str, dict] = {}
        self._started: collections.deque[str] = collections.deque()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._to_start: queue.Queue[str | None] = queue.Queue()
        self._starter_thread = threading.Thread(target=self._starter, name="local-kubelet-starter", daemon=True)
        self._starter_thread.start()
        self._unsubscribe = backend.subscribe(self.on_event, kinds=JOB_KINDS)

    def on_event(self, event: WatchEvent) -> None:
        job = event.object
        key = job_key(job)
        if event.type == DELETED or job["metadata"].get("deletionTimestamp"):
            with self._lock:
                self._jobs.pop(key, None)
            self.runner.stop(key, reason="Deleted")
            return
        if event.type == ADDED and not job.get("status", {}).get("conditions"):
            self.launch(key, job)

    def launch(self, key: str, job: dict) -> None:
        """Queue the job for the starter thread: spawning takes milliseconds, which the thread
        that created the Job (the controllers) should not spend."""
        with self._lock:
            if key in self._jobs:
                return
            self._jobs[key] = job
        self._to_start.put(key)

    def _starter(self) -> None:
        while True:
            key = self._to_start.get()
            if key is None:
                return
            with self._lock:
                job = self._jobs.get(key)
            if job is None:
                continue  # deleted before it started
            try:
                self.runner.start(key, self.local_job(job))
            except Exception:
                logger.exception("could not start job %s", key)
                continue
            with self._lock:
                deleted = key not in self._jobs
            if deleted:  # the Job went away while it was being started
                self.runner.stop(key, reason="Deleted")
                continue
            self._started.append(key)

    def local_job(self, job: dict) -> dict:
        """The job as run here: containers without workingDir run in katib's working directory
        (a container image's WORKDIR has no local equivalent), so relative paths work."""
        if self.working_dir is None:
            return job
        job = copy.deepcopy(job)
        for template in pod_templates(job):
            for container in (template.get("spec") or {}).get("containers") or ():
                container.setdefault("workingDir", self.working_dir)
        return job

    def recover(self) -> None:
        """After a restart: outcomes of jobs that ended while we were down, re-attach to the
        ones still running, and start the ones that never started."""
        for outcome in self.runner.recover():
            self._finish(outcome)
        for kind in JOB_KINDS:
            for job in self.backend.list(kind):
                if job.get("status", {}).get("conditions") or job["metadata"].get("deletionTimestamp"):
                    continue
                self.launch(job_key(job), job)  # runner.start never re-runs a job it has a directory for

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="local-kubelet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            outcomes = self.runner.wait(timeout=0.02 if not self._started else 0)
            self._mark_started(skip={o.key for o in outcomes})  # already over: report only that
            for outcome in outcomes:
                self._finish(outcome)

    def _mark_started(self, skip: set[str]) -> None:
        while self._started:
            key = self._started.popleft()
            if key in skip:
                continue
            with self._lock:
                job = self._jobs.get(key)
            if job is not None:
                write_job_status(self.backend, job, job_status(None, True, self.clock.now()),
                                 unless_finished=True)

    def _finish(self, outcome) -> None:
        with self._lock:
            job = self._jobs.pop(outcome.key, None)
        if job is None:
            ns, _, name = outcome.key.partition("/")
            job = self._find(ns, name)
            if job is None or (job.get("status") or {}).get("conditions"):
                return
        try:
            complete_job(self.backend, self.db, job, job_status(outcome, True, self.clock.now()),
                         output=self.runner.output_path(outcome.key))
        except Exception:
            logger.exception("could not record the outcome of job %s", outcome.key)

    def _find(self, ns: str, name: str) -> dict | None:
        for kind in JOB_KINDS:
            try:
                return self.backend.get(kind, ns, name)
            except NotFound:
                continue
        return None

    def close(self, *, kill: bool = False) -> None:
        self._to_start.put(None)
        self._starter_thread.join(timeout=5)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._unsubscribe()
        if kill:
            # Interrupted, not failed: stop the processes and forget them, so that the next
            # start runs these jobs again instead of reporting them as killed.
            with self._lock:
                keys = list(self._jobs)
            self.runner.kill_all(reason="Interrupted")
            for key in keys:
                self.runner.forget(key)
        self.runner.close()


