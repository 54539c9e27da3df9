"""Local runner: the process manager of the fake kubelet. Job manifest → local process → outcome.

The glue (katib.backends.kubelet) watches Job objects, calls `start`/`stop`/`forget`, calls
`wait()` in a loop (or `poll()` regularly: deadlines, kill escalation and the output cap only
advance inside those calls) and writes `local_outcome.batch_job_status(outcome, ...)` to the
Job. Independent of the object store. An OSError from start() or wait() means the runner's own
files cannot be written (a full or read-only disk): the caller cannot go on.

Everything a restarted katib needs is on disk, one directory per job under `root`:
  job.json      the manifest, written before anything runs
  pid           {"pid", "starttime", "boot_id", "start_time", "deadline", "grace"} of the wrapper
  pgid          pid (= process group and session id) of the command, written by the wrapper
  output.log    stdout and stderr of the command, merged in order
  exit          exit status of the command (128+N for signal N), written atomically by the wrapper
  kill          {"reason", "message", "time"}, written before the runner signals the job
  outcome.json  outcomes the runner decided itself (StartError, ProcessLost, an unrecorded exit)
  work/         the default working directory
  previous-<f>  what was at the File collector path before the job started (moved aside)
  metrics-volume/  the collector's mount directory of this job (katib.backends.local_pod)
  sidecar.log, sidecar.out, sidecar.exit  the metrics-collector sidecar's (local_pod_launcher)
The wrapper (local_wrapper.spawn) leads a session of its own, so jobs survive katib's death;
`recover()` re-attaches to them and never starts anything. A job killed with reason
`Interrupted` (katib stopping) is forgotten, here or at the next start: it runs again.

Output cap: output.log keeps its first `max_output_bytes`, then one marker line; later output
is discarded. Like kubelet's log rotation this is enforced by the runner, about every
`output_check_interval` seconds and when the job ends, so the file can briefly exceed the cap
(by what the job writes in that interval, or while katib is down).

Differences from a Kubernetes Job: one attempt (backoffLimit and restartPolicy are not
applied); a TFJob/PyTorchJob is one process group running every replica (local_replicas);
the image is ignored, so `command` is required; `envFrom` and `valueFrom` are refused (the
kubelets fill in Secret and ConfigMap references first: katib.backends.env_sources); a
workingDir must already exist; the environment is katib's own (or `base_env`) plus the
container's `env`; a process that leaves its session escapes stop() and the deadline."""
from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from katib.backends import local_jobs as lj
from katib.backends import local_outcome as lo
from katib.backends import local_process as lp
from katib.backends import local_wrapper as lw
from katib.backends.local_outcome import JobOutcome
from katib.clock import Clock

logger = logging.getLogger(__name__)


class LocalRunner:
    def __init__(self, root: str | Path, *, clock: Clock | None = None,
                 max_output_bytes: int | None = 50 * 2**20,
                 grace_period: float = 5.0, output_check_interval: float = 1.0,
                 base_env: Mapping[str, str] | None = None):
        self._root = Path(root).absolute()
        self._root.mkdir(parents=True, exist_ok=True)
        self._clock = clock or Clock()
        self._max_output = max_output_bytes
        self._grace = grace_period
        self._check_interval = output_check_interval
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._lock = threading.Lock()        # guards the tables below
        self._poll_lock = threading.Lock()   # one thread at a time polls the pidfds
        self._running: dict[str, lj.WatchedJob] = {}
        self._by_fd: dict[int, lj.WatchedJob] = {}
        self._done: set[str] = set()
        self._outcomes: list[JobOutcome] = []
        self._closed = False
        self._next_check = time.monotonic() + output_check_interval
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        lw._wrapper_script()  # fail now, not at the first job, if a tool is missing

    # ------------------------------------------------------------------ public API

    def output_path(self, key: str) -> Path:
        return self._dir(key) / "output.log"

    def job_dir(self, key: str) -> Path:
        """The job's directory (it may not exist yet)."""
        return self._dir(key)

    def running(self) -> dict[str, float]:
        """key → start time of every job being watched."""
        with self._lock:
            return {k: j.start_time for k, j in self._running.items()}

    def start(self, key: str, job: dict, *, metrics_file: str | None = None,
              start_error: str | None = None) -> bool:
        """Run the job unless this key already ran or runs (here or before a restart). False
        when nothing will be reported for it (its outcome was reported before). `metrics_file`:
        the File collector's path, which the job gets empty (see prepare_metrics_file).
        `start_error`: the caller found that it cannot start (a Secret it needs is missing):
        its outcome is a StartError with that message, as if plan_launch had said it.
        OSError: the job directory cannot be written; nothing runs and nothing is left."""
        path = self._dir(key)
        with self._lock:
            if self._closed:
                raise RuntimeError("the local runner is closed")
            if key in self._done:
                return False
            if key in self._running:
                return True
            if path.exists():
                outcome = self._recover_one(key, path, lw.find_wrappers)
                if outcome is not None:
                    self._finish_outcome(outcome)
                if path.exists():  # re-attached, or finished: never run twice
                    self._wake()
                    return True
            outcome = self._launch(key, path, job, metrics_file=metrics_file, start_error=start_error)
            if outcome is not None:
                self._finish_outcome(outcome)
            self._wake()
            return True

    def stop(self, key: str, *, reason: str = "Deleted") -> None:
        """TERM the job's process group now, KILL it after the grace period; keep its files."""
        with self._lock:
            job = self._running.get(key)
            if job is not None:
                lj.begin_kill(job, reason, lo.kill_message(reason), now=self._clock.now())
                self._wake()

    def forget(self, key: str) -> None:
        """Remove the job's directory; a running job is stopped first and removed when it ends
        (without an outcome)."""
        with self._lock:
            job = self._running.get(key)
            if job is not None:
                job.forget = True
                lj.begin_kill(job, "Deleted", lo.kill_message("Deleted"), now=self._clock.now())
            else:
                self._done.discard(key)
                self._outcomes = [o for o in self._outcomes if o.key != key]
                shutil.rmtree(self._dir(key), ignore_errors=True)
            self._wake()

    def poll(self) -> list[JobOutcome]:
        """Outcomes of jobs that finished since the last poll/wait; never blocks."""
        with self._poll_lock:
            if not self._closed:
                self._step(0.0)
            return self._take()

    def wait(self, timeout: float | None) -> list[JobOutcome]:
        """Block until at least one outcome is available or `timeout` seconds have passed."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._poll_lock:
            while True:
                remaining = None if end is None else max(0.0, end - time.monotonic())
                if self._closed:
                    return self._take()
                self._step(remaining)
                outcomes = self._take()
                if outcomes or remaining == 0.0:
                    return outcomes

    def recover(self) -> list[JobOutcome]:
        """After a restart: outcomes of every job that ended (or was lost) while nobody watched;
        jobs still running are watched again. Starts nothing."""
        outcomes = []
        wrappers = functools.cache(lw.find_wrappers)  # one /proc scan, and only if needed
        for entry in sorted(os.scandir(self._root), key=lambda e: e.name):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            key = lw.key_of_dir(entry.name)
            if key is None:
                continue
            path = Path(entry.path)
            with self._lock:
                if key in self._running or key in self._done:
                    continue
                outcome = self._recover_one(key, path, wrappers)
                if outcome is not None:
                    self._done.add(key)
                    outcomes.append(outcome)
        with self._lock:
            self._wake()
        logger.info("recovered %d finished job(s); watching %d running job(s)",
                    len(outcomes), len(self._running))
        return outcomes

    def kill_all(self, *, reason: str = "Deleted") -> None:
        """Stop every running job and wait (at most the grace period and a little) until
        they are gone; their outcomes are left for poll()/wait()."""
        with self._lock:
            jobs = list(self._running.values())
            for job in jobs:
                lj.begin_kill(job, reason, lo.kill_message(reason), now=self._clock.now())
        limit = time.monotonic() + max([j.grace for j in jobs], default=0.0) + 2.0
        with self._poll_lock:
            while self._running and not self._closed and time.monotonic() < limit:
                self._step(limit - time.monotonic())

    def close(self) -> None:
        """Stop watching; running jobs keep running (a later recover() finds them)."""
        with self._lock:
            if self._closed:
                return
            self._wake()
            self._closed = True
        with self._poll_lock, self._lock:
            orphans = [j.pidfd for j in self._running.values()]
            self._running.clear()
            self._by_fd.clear()
            os.close(self._wake_r)
            os.close(self._wake_w)
        if orphans:  # our own children: reap them when they end, so no zombies stay behind
            threading.Thread(target=lw.reap_all, args=(orphans,), daemon=True,
                             name="local-runner-reaper").start()

    # ------------------------------------------------------------------ starting

    def _dir(self, key: str) -> Path:
        return self._root / lw.dir_name(key)

    def _launch(self, key: str, path: Path, job: dict, *,
                metrics_file: str | None, start_error: str | None = None) -> JobOutcome | None:
        """Create the job directory and spawn the wrapper; a StartError becomes the outcome.
        An OSError writing the directory undoes the job (wrapper killed, directory removed: it
        may start again once the disk has room) and is raised."""
        now = self._clock.now()
        pidfd = None
        try:
            path.mkdir(mode=0o700)   # job.json may hold values from Secrets: the user's alone
            # job.json and pid are written in place (a rename costs as much as the write here):
            # a torn one reads as absent, and recover() then finds the wrapper through /proc.
            lw.write_file(path / "job.json", json.dumps(job).encode())
            try:
                if start_error is not None:
                    raise lp.StartError(start_error)
                spec = lp.plan_launch(job)
                env = {**self._base_env, **spec.env}
                work_dir = lj.working_dir(path, spec.working_dir)
                for executable in (spec.argv[0], *spec.executables):
                    lp.check_executable(executable, path=env.get("PATH", os.defpath), cwd=work_dir)
                env["KATIB_JOB_DIR"] = str(path)  # where a multi-replica job keeps its replicas' logs
                if metrics_file is not None:
                    lw.prepare_metrics_file(metrics_file, path)
                if spec.volume is not None:  # the pod's metrics volume: an empty directory
                    os.makedirs(spec.volume, exist_ok=True)
                pid = lj.spawn(path, work_dir, spec.argv, env)
            except lp.StartError as e:
                return lj.decided(key, path, reason="StartError", message=str(e),
                                  start_time=now, now=now, log=True)
            pidfd = os.pidfd_open(pid)
            record = lj.start_record(pid, spec=spec, now=now, default_grace=self._grace)
            lw.write_file(path / "pid", json.dumps(record).encode())
        except OSError:
            lj.undo_start(path, pidfd)
            raise
        self._watch(lj.WatchedJob(key=key, dir=path, pid=pid, pidfd=pidfd, start_time=now,
                                  deadline=record["deadline"], grace=record["grace"]))
        logger.debug("[%s] started, wrapper pid %d", key, pid)
        return None

    def _watch(self, job: lj.WatchedJob) -> None:
        self._running[job.key] = job
        self._by_fd[job.pidfd] = job

    # ------------------------------------------------------------------ recovering

    def _recover_one(self, key: str, path: Path,
                     wrappers: Callable[[], dict[str, int]]) -> JobOutcome | None:
        """Outcome of a job found on disk, or None when it is still running (then watched).
        A directory whose wrapper was never spawned (we died between mkdir and spawn: there is
        no output.log, which the spawn creates) is removed, and None returned: the job can run."""
        decided = lw.read_json(path / "outcome.json")
        if decided is not None:
            return JobOutcome(key=key, **decided)
        if not (path / "output.log").exists() and not (path / "exit").exists():
            logger.info("[%s] was never started (katib stopped before the spawn); it may start now", key)
            shutil.rmtree(path, ignore_errors=True)
            return None
        record = lw.read_json(path / "pid")
        if record is None:
            record = lj.record_from_proc(path, wrappers, now=self._clock.now())
        start_time = record.get("start_time") or lw.mtime(path / "job.json") or self._clock.now()
        code = lw.read_int(path / "exit")
        if code is None and record.get("pid") and record.get("boot_id") == lw.boot_id():
            job = lj.attach(key, path, record, start_time=start_time, default_grace=self._grace)
            if job is not None:
                self._watch(job)
                return None
            code = lw.read_int(path / "exit")  # it may have ended just now
        if code is None:
            lw.kill_orphan(path, record)
        if (lw.read_json(path / "kill") or {}).get("reason") == lo.INTERRUPTED:
            logger.info("[%s] was interrupted when katib stopped; it may start again", key)
            shutil.rmtree(path, ignore_errors=True)
            return None
        if code is not None:
            return lj.exited(key, path, code, kill=None, start_time=start_time,
                             completion_time=max(start_time, lw.mtime(path / "exit") or 0.0))
        return lj.decided(key, path, reason="ProcessLost", start_time=start_time,
                          now=self._clock.now(), message=lo.LOST.format(exit=path / "exit"))

    # ------------------------------------------------------------------ watching

    def _step(self, timeout: float | None) -> None:
        """One pass: deadlines, kills and the output cap, then wait up to `timeout` for exits."""
        now = self._clock.now()
        timers = [] if timeout is None else [timeout]
        with self._lock:
            jobs = list(self._running.values())
            for job in jobs:
                if job.kill is None and job.deadline is not None:
                    if now >= job.deadline:
                        logger.info("[%s] active deadline exceeded, killing it", job.key)
                        lj.begin_kill(job, lo.DEADLINE_EXCEEDED, now=now, message=lo.deadline_message(
                            job.deadline - job.start_time))
                    else:
                        timers.append(job.deadline - now)
                if job.kill is not None:
                    timers.append(lj.advance_kill(job, now))
            fds = list(self._by_fd)
        if fds and self._max_output is not None:
            due = self._next_check - time.monotonic()
            if due <= 0:
                for job in jobs:
                    lw.cap_output(job.dir, self._max_output)
                self._next_check = time.monotonic() + self._check_interval
                due = self._check_interval
            timers.append(due)
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        wait_ms = None if not timers else max(0, int(min(timers) * 1000 + 0.999))
        for fd, _ in poller.poll(wait_ms):
            if fd == self._wake_r:
                lw.drain(fd)
            else:
                self._ended(self._by_fd[fd])

    def _ended(self, job: lj.WatchedJob) -> None:
        """The wrapper exited: turn its exit file (or, when that could not be written, the
        wrapper's own exit status) into an outcome."""
        status = lw.reap(job.pidfd)
        with self._lock:
            # Unregister before closing: once closed, a start() in another thread may get the
            # same fd number for its new job, which must not be unregistered here.
            del self._by_fd[job.pidfd]
            os.close(job.pidfd)
        if self._max_output is not None:
            lw.cap_output(job.dir, self._max_output)
        code = lw.read_int(job.dir / "exit")
        with self._lock:
            del self._running[job.key]
            if job.forgotten:
                shutil.rmtree(job.dir, ignore_errors=True)
                if not job.forget:  # interrupted before a restart: no verdict, it runs again
                    self._outcomes.append(self._interrupted(job))
                return
            if code is None:
                self._finish_outcome(self._unrecorded(job, status))
            else:
                self._finish_outcome(lj.exited(job.key, job.dir, code, start_time=job.start_time,
                                               completion_time=self._clock.now(), kill=job.kill))

    def _unrecorded(self, job: lj.WatchedJob, status: int | None) -> JobOutcome:
        """No exit file. The wrapper exited by itself (`status`): it could not write the file;
        else it was killed under our eyes (what it started is killed too)."""
        if status is None:
            lw.kill_orphan(job.dir, lw.read_json(job.dir / "pid") or {})
            return lj.decided(job.key, job.dir, reason="ProcessLost", start_time=job.start_time,
                              now=self._clock.now(), message=lo.LOST.format(exit=job.dir / "exit"))
        outcome = lj.exited(job.key, job.dir, status, start_time=job.start_time,
                            completion_time=self._clock.now(), kill=job.kill,
                            note=lo.UNRECORDED.format(exit=job.dir / "exit"))
        lj.persist(job.dir, outcome)
        return outcome

    def _interrupted(self, job: lj.WatchedJob) -> JobOutcome:
        return JobOutcome(key=job.key, succeeded=False, exit_code=None, reason=lo.INTERRUPTED,
                          message=lo.kill_message(lo.INTERRUPTED), start_time=job.start_time,
                          completion_time=self._clock.now())

    # ------------------------------------------------------------------ outcomes

    def _finish_outcome(self, outcome: JobOutcome) -> None:
        self._done.add(outcome.key)
        self._outcomes.append(outcome)
        if outcome.succeeded:
            logger.debug("[%s] completed", outcome.key)
        else:
            logger.info("[%s] failed: %s: %s", outcome.key, outcome.reason, outcome.message)

    def _take(self) -> list[JobOutcome]:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        return outcomes

    def _wake(self) -> None:
        """Interrupt a wait() in another thread. Called with _lock held, so that close()
        cannot close the pipe in between."""
        if self._closed:
            return
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or closed
