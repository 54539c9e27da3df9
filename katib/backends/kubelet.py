"""The fake backend's kubelet: Job objects → local processes → Job status (+ metrics).

On a cluster, a pod runs the trial and a collector sidecar reports its metrics before the
pod ends. Here `LocalKubelet` runs the Job's container command through the local runner, and
when it ends has the local collector (local_collector) store its metrics *before* it marks the
Job finished — so the trial controller never sees a finished Job whose metrics are still on
the way. Each job runs as its pod would (local_pod): the collector's mount directory mapped
onto the job's own directory, a PrometheusMetric or Custom collector as a sidecar process.
Which waiting job may start (the concurrency cap, one job per shared File collector path or
Prometheus port) is local_queue's decision. A kubelet thread that cannot go on (a full or read-only disk, a DB
that refuses writes) reports one line to `on_fatal` and stops, instead of dying silently.
`complete_job` is shared with the test kubelet."""
from __future__ import annotations

import collections
import logging
import queue
import threading
from pathlib import Path

from katib import failpoints
from katib.api.jobs import JOB_KINDS, pod_templates
from katib.backends import env_sources
from katib.backends import local_jobs as lj
from katib.backends import local_outcome as lo
from katib.backends import local_pod
from katib.backends import local_process as lp
from katib.backends import ports
from katib.backends.base import ADDED, DELETED, WatchEvent
from katib.backends.fake_store import clone
from katib.backends.local_collector import collect_metrics
from katib.backends.local_queue import Blocked, Entry, StartQueue
from katib.clock import Clock
from katib.errors import Conflict, NotFound

logger = logging.getLogger(__name__)

__all__ = ["JOB_KINDS", "LocalKubelet", "complete_job", "job_key", "write_job_status"]
_WRITE_ATTEMPTS = 5


class KubeletFailure(Exception):
    """A kubelet thread cannot go on; str() is the one line for on_fatal."""


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


def describe_failure(exc: BaseException) -> str:
    """An exception as the end of a one-line failure: OS errors name their path."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot write {exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def complete_job(backend, observations, job: dict, status: dict, *, output: Path | None,
                 job_dir: Path | None = None) -> None:
    """Store the trial's metrics in `observations` (katib.db.ObservationStore), then write the
    Job's final status. `job_dir`: where the job ran (its metrics volume, its sidecar's output)."""
    trial = owning_trial(backend, job)
    if trial is not None and any(c.get("type") in ("Complete", "Succeeded") and c.get("status") == "True"
                                 for c in status.get("conditions") or ()):
        collect_metrics(observations, trial, output=output, job=job, job_dir=job_dir)
        failpoints.hit("metrics-stored")  # crash tests: metrics in the DB, Job not yet finished
    write_job_status(backend, job, status)


def write_job_status(backend, job: dict, status: dict, *, unless_finished: bool = False) -> None:
    """Write the Job's status (retrying conflicts); `unless_finished`: leave a Job that already
    has its outcome alone (a "started" report must not overwrite it)."""
    meta = job["metadata"]
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            current = backend.get(job["kind"], meta.get("namespace", ""), meta["name"])
        except NotFound:
            return
        if current.get("metadata", {}).get("uid") != meta.get("uid"):
            return  # a new job of the same name: this outcome is not its
        if unless_finished and lo.finished(current):
            return
        current["status"] = status
        try:
            backend.update_status(current)
            return
        except Conflict:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise


class LocalKubelet:
    """Runs every Job created in the backend as a local process group."""

    def __init__(self, backend, runner, *, observations, clock: Clock | None = None,
                 working_dir: str | None = None, max_running: int | None = None, on_fatal=None,
                 observation_env=None, free_port=None):
        self.backend = backend
        self._lookup = env_sources.backend_lookup(backend)   # Secrets and ConfigMaps for env
        # trial name → env of a Custom collector reporting to the observation API (KATIB_*);
        # None: no API here, a Custom collector gets none
        self.observation_env = observation_env
        self.free_port = free_port or ports.free_port
        self.on_fatal = on_fatal         # called with one line when a kubelet thread cannot go on
        self.working_dir = working_dir
        self.observations = observations  # where collected metrics go (katib.db.ObservationStore)
        self.runner = runner
        self.clock = clock or Clock()
        self._jobs: dict[str, dict] = {}   # jobs known and not finished (waiting or running)
        self._no_sidecar: set[str] = set()  # started here without a collector sidecar
        self._queue = StartQueue(max_running)   # starter thread only
        self._inbox: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._started: collections.deque[tuple[str, float | None]] = collections.deque()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._starter_thread = threading.Thread(target=self._starter, name="local-kubelet-starter", daemon=True)
        self._starter_thread.start()
        self._unsubscribe = backend.subscribe(self.on_event, kinds=JOB_KINDS)

    # ------------------------------------------------------------------ watching Jobs

    def on_event(self, event: WatchEvent) -> None:
        job = event.object
        key = job_key(job)
        if event.type == DELETED or job["metadata"].get("deletionTimestamp"):
            with self._lock:
                self._jobs.pop(key, None)
            self._inbox.put(("discard", key))
            self.runner.stop(key, reason="Deleted")
            return
        if event.type == ADDED and not lo.finished(job):
            self.launch(key, job)

    def launch(self, key: str, job: dict, *, running: bool = False) -> None:
        """Queue the job for the starter thread: spawning takes milliseconds, which the thread
        that created the Job (the controllers) should not spend. `running`: the runner already
        runs it (re-attached after a restart)."""
        with self._lock:
            if key in self._jobs:
                return
            self._jobs[key] = job
        self._inbox.put(("running" if running else "add", key))

    def recover(self) -> None:
        """After a restart: outcomes of jobs that ended while we were down, re-attach to the
        ones still running, and queue the ones that never started, in creation order."""
        for outcome in self.runner.recover():
            self._finish(outcome)
        running = self.runner.running()
        jobs = [job for kind in JOB_KINDS for job in self.backend.list(kind)
                if not (lo.finished(job) or job["metadata"].get("deletionTimestamp"))]
        for job in sorted(jobs, key=creation_order):
            key = job_key(job)
            self.launch(key, job, running=key in running)
            if key in running and not (job.get("status") or {}).get("startTime"):
                self._started.append((key, running[key]))

    # ------------------------------------------------------------------ starting

    def _starter(self) -> None:
        try:
            while (message := self._inbox.get()) is not None:
                self._handle(*message)
                if self._inbox.empty():  # decide once per burst of messages
                    self._start_ready()
        except Exception as exc:
            self._fail("local kubelet: ", exc)

    def _handle(self, what: str, key: str) -> None:
        if what == "release":
            self._queue.release(key)
        elif what == "discard":
            self._queue.discard(key)
        else:
            with self._lock:
                job = self._jobs.get(key)
            if job is None:
                return  # deleted before it was queued
            trial = owning_trial(self.backend, job)
            plan = local_pod.plan(trial, job, job_dir=str(self.runner.job_dir(key)))
            entry = Entry(key=key, path=plan.resource, text=plan.resource_text,
                          owner=(trial or {}).get("metadata", {}).get("name", ""), trial=trial)
            (self._queue.add_running if what == "running" else self._queue.add)(entry)

    def _start_ready(self) -> None:
        ready, blocked = self._queue.take()
        for b in blocked:
            self._tell_waiting(b)
        for entry in ready:
            self._start(entry)

    def _start(self, entry: Entry) -> None:
        key = entry.key
        with self._lock:
            job = self._jobs.get(key)
        if job is None:  # deleted while it waited
            self._queue.release(key)
            return
        try:
            plan = self.local_pod(key, job, entry.trial)
            if lp.local_pod(plan.job).get("sidecar") is None:
                with self._lock:  # its end needs no sidecar verdict (no job.json to read back)
                    self._no_sidecar.add(key)
            run, error = self.with_env_sources(plan.job)
            started = self.runner.start(key, run, metrics_file=plan.real_path, start_error=error)
        except OSError as exc:
            self._queue.release(key)
            self._fail_start(key, job, exc)
        if not started:  # reported before: nothing more will come for it
            self._queue.release(key)
            return
        with self._lock:
            deleted = key not in self._jobs
        if deleted:  # the Job went away while it was being started
            self.runner.stop(key, reason="Deleted")
            return
        self._started.append((key, None))

    def _fail_start(self, key: str, job: dict, exc: OSError) -> None:
        """The job's own files cannot be written: fail it saying so, then stop starting jobs
        (the next ones would fail the same way; a rerun once there is room starts them)."""
        message = describe_failure(exc)
        now = self.clock.now()
        outcome = lo.JobOutcome(key=key, succeeded=False, exit_code=None, reason="StartError",
                                message=message, start_time=now, completion_time=now)
        with self._lock:
            self._jobs.pop(key, None)
        try:
            write_job_status(self.backend, job, lo.job_status(job["kind"], outcome, True, now))
        except Exception as second:
            raise KubeletFailure(f"cannot start job {key}: {message}; cannot record that "
                                 f"either: {describe_failure(second)}") from exc
        raise KubeletFailure(f"cannot start job {key}: {message}") from exc

    def _tell_waiting(self, blocked: Blocked) -> None:
        """Say once why a job waits: a log line and an Event on its trial (else its Job)."""
        message = blocked.message()
        logger.info("[%s] waits: %s", blocked.entry.key, message)
        ns, _, name = blocked.entry.key.partition("/")
        try:
            target = self.backend.get("Trial", ns, blocked.entry.owner)
        except NotFound:
            target = self._find(ns, name)
        if target is not None:
            self.backend.record_event(target, type="Normal", reason=blocked.reason, message=message)

    def local_pod(self, key: str, job: dict, trial: dict | None) -> local_pod.Plan:
        """The job as its pod would run (local_pod.plan). A Custom collector's trial that
        starts afresh (no job directory yet) starts with no observation logs: a job run again
        after an interruption must not add to the earlier run's reports."""
        env = None
        job_dir = self.runner.job_dir(key)
        if trial is not None and local_pod.collector(trial)[0] == "Custom" and self.observation_env is not None:
            env = self.observation_env(trial["metadata"]["name"])
            if not job_dir.exists():
                self.observations.delete(trial["metadata"]["name"])
        return local_pod.plan(trial, self.local_job(job), job_dir=str(job_dir),
                              free_port=self.free_port, observation_env=env)

    def with_env_sources(self, job: dict) -> tuple[dict, str | None]:
        """The job with its containers' Secret and ConfigMap references filled in from the
        backend (env_sources), or the job as it is and why it cannot start."""
        containers = [c for t in pod_templates(job) for c in (t.get("spec") or {}).get("containers") or ()]
        if not any(env_sources.needs_lookup(c) for c in containers):
            return job, None
        job = clone(job)
        namespace = job["metadata"].get("namespace") or "default"
        try:
            for template in pod_templates(job):
                spec = template.get("spec") or {}
                spec["containers"] = [env_sources.resolve(c, namespace, self._lookup)
                                      for c in spec.get("containers") or ()]
        except lp.StartError as err:
            return job, str(err)
        return job, None

    def local_job(self, job: dict) -> dict:
        """The job as run here: containers without workingDir run in katib's working directory
        (a container image's WORKDIR has no local equivalent), so relative paths work."""
        if self.working_dir is None:
            return job
        job = clone(job)
        for template in pod_templates(job):
            for container in (template.get("spec") or {}).get("containers") or ():
                container.setdefault("workingDir", self.working_dir)
        return job

    # ------------------------------------------------------------------ outcomes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="local-kubelet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                outcomes = self.runner.wait(timeout=0.02 if not self._started else 0)
                self._mark_started(skip={o.key for o in outcomes})  # already over: report only that
                for outcome in outcomes:
                    self._finish(outcome)
        except Exception as exc:
            self._fail("local kubelet: ", exc)

    def _mark_started(self, skip: set[str]) -> None:
        while self._started:
            key, start_time = self._started.popleft()
            if key in skip:
                continue
            with self._lock:
                job = self._jobs.get(key)
            if job is not None:
                status = lo.job_status(job["kind"], None, True, self.clock.now(), start_time=start_time)
                try:
                    write_job_status(self.backend, job, status, unless_finished=True)
                except Exception as exc:
                    raise KubeletFailure(f"cannot record that job {key} started: "
                                         f"{describe_failure(exc)}") from exc

    def _finish(self, outcome: lo.JobOutcome) -> None:
        """Metrics and status of a job that ended; then its slot and File path are free (not
        before: the next job on that path would move this one's metrics aside)."""
        if outcome.reason == lo.INTERRUPTED:  # ended without a verdict: it runs again
            self._inbox.put(("release", outcome.key))
            with self._lock:
                job = self._jobs.pop(outcome.key, None)
                self._no_sidecar.discard(outcome.key)
            if job is not None:
                self.launch(outcome.key, job)
            return
        with self._lock:
            job = self._jobs.pop(outcome.key, None)
            no_sidecar = outcome.key in self._no_sidecar
            self._no_sidecar.discard(outcome.key)
        if job is None:
            ns, _, name = outcome.key.partition("/")
            job = self._find(ns, name)
        if job is not None and not lo.finished(job):
            job_dir = self.runner.job_dir(outcome.key)
            if not no_sidecar:  # a sidecar, or a job re-attached after a restart: job.json says
                outcome = lj.sidecar_verdict(outcome, job, job_dir)
            try:
                complete_job(self.backend, self.observations, job,
                             lo.job_status(job["kind"], outcome, True, self.clock.now()),
                             output=self.runner.output_path(outcome.key), job_dir=job_dir)
            except Exception as exc:
                raise KubeletFailure(f"cannot record the outcome of job {outcome.key}: "
                                     f"{describe_failure(exc)}") from exc
        self._inbox.put(("release", outcome.key))

    def _find(self, ns: str, name: str) -> dict | None:
        for kind in JOB_KINDS:
            try:
                return self.backend.get(kind, ns, name)
            except NotFound:
                continue
        return None

    def _fail(self, prefix: str, exc: BaseException) -> None:
        """A kubelet thread stops: one line to on_fatal (the run then stops, exit 2)."""
        message = prefix + (str(exc) if isinstance(exc, KubeletFailure) else describe_failure(exc))
        logger.error("%s", message, exc_info=not isinstance(exc, KubeletFailure))
        if self.on_fatal is not None:
            self.on_fatal(message)

    def close(self, *, kill: bool = False) -> None:
        self._inbox.put(None)
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
            self.runner.kill_all(reason=lo.INTERRUPTED)
            for key in keys:
                self.runner.forget(key)
        self.runner.close()


def creation_order(job: dict) -> tuple[str, int]:
    """Jobs in the order they were created (resourceVersion breaks creation-time ties)."""
    meta = job["metadata"]
    rv = str(meta.get("resourceVersion") or "0")
    return (meta.get("creationTimestamp") or "", int(rv) if rv.isdigit() else 0)
