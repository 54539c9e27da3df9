"""Local runner: the process manager of the fake kubelet. Job manifest → local process → outcome.

The glue watches Job objects, calls `start`/`stop`/`forget`, calls `wait()` in a loop (or
`poll()` regularly: deadlines, kill escalation and the output cap only advance inside those
calls) and writes `job_status(outcome, ...)` to the Job. Independent of the object store.

Everything a restarted katib needs is on disk, one directory per job under `root`:
  job.json      the manifest, written before anything runs
  pid           {"pid", "starttime", "boot_id", "start_time", "deadline", "grace"} of the wrapper
  pgid          pid (= process group and session id) of the command, written by the wrapper
  output.log    stdout and stderr of the command, merged in order
  exit          exit status of the command (128+N for signal N), written atomically by the wrapper
  kill          {"reason", "message", "time"}, written before the runner signals the job
  outcome.json  outcomes the runner decided itself (StartError, ProcessLost)
  work/         the default working directory
The wrapper (local_wrapper.spawn) leads a session of its own, so jobs survive katib's death;
`recover()` re-attaches to them and never starts anything.

Output cap: output.log keeps its first `max_output_bytes`, then one marker line; later output
is discarded. Like kubelet's log rotation this is enforced by the runner, about every
`output_check_interval` seconds and when the job ends, so the file can briefly exceed the cap
(by what the job writes in that interval, or while katib is down).

Differences from a Kubernetes Job: one attempt (backoffLimit and restartPolicy are not
applied); one process for TFJob/PyTorchJob (the master-like replica); the image is ignored, so
`command` is required; `valueFrom`/`envFrom` are refused; a workingDir must already exist; the
environment is katib's own (or `base_env`) plus the container's `env`; a process that leaves
its session escapes stop() and the deadline."""
from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from katib.backends import local_process as lp
from katib.backends import local_wrapper as lw
from katib.clock import Clock, rfc3339

logger = logging.getLogger(__name__)

DEADLINE_EXCEEDED = "DeadlineExceeded"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
_KILL_MESSAGES = {"Deleted": "Job was deleted"}
_LOST = ("the job's wrapper process ended without recording an exit status "
         "(it was killed, or the machine restarted); what it started was killed")


@dataclass
class JobOutcome:
    key: str
    succeeded: bool
    exit_code: int | None
    reason: str   # Completed | Error | DeadlineExceeded | ProcessLost | StartError | Deleted
    message: str
    start_time: float
    completion_time: float


def job_status(outcome: JobOutcome | None, started: bool, now: float, *,
               start_time: float | None = None) -> dict:
    """batch/v1 Job `status` as the Job controller would write it. Not started → `{}`;
    running → startTime (`start_time`, else `now`) and active=1; finished → counts and a
    Complete or Failed condition (completionTime only on success, as Kubernetes does)."""
    if outcome is None:
        if not started:
            return {}
        return {"startTime": rfc3339(now if start_time is None else start_time), "active": 1}
    condition = {"type": "Complete" if outcome.succeeded else "Failed", "status": "True",
                 "lastProbeTime": rfc3339(now), "lastTransitionTime": rfc3339(now)}
    status: dict = {"startTime": rfc3339(outcome.start_time)}
    if outcome.succeeded:
        status["completionTime"] = rfc3339(outcome.completion_time)
        status["succeeded"] = 1
    else:
        condition["reason"] = outcome.reason
        condition["message"] = outcome.message
        status["failed"] = 1
    status["conditions"] = [condition]
    return status


@dataclass
class _Kill:
    reason: str
    message: str
    at: float              # clock time of the request; KILL follows `grace` seconds later
    term_sent: bool = False
    kill_sent: bool = False


@dataclass
class _Job:
    key: str
    dir: Path
    pid: int
    pidfd: int
    start_time: float
    deadline: float | None   # clock time
    grace: float
    kill: _Kill | None = None
    forget: bool = False
    pgid: int | None = None


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
        self._running: dict[str, _Job] = {}
        self._by_fd: dict[int, _Job] = {}
        self._done: set[str] = set()
        self._outcomes: list[JobOutcome] = []
        self._closed = False
        self._next_check = time.monotonic() + output_check_interval
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        lw._wrapper_script()  # fail now, not at the first job, if a tool is missing

    # ------------------------------------------------------------------ public API

    def output_path(self, key: str) -> Path:
        return self._dir(key) / "output.log"

    def running(self) -> dict[str, float]:
        """key → start time of every job being watched."""
        with self._lock:
            return {k: j.start_time for k, j in self._running.items()}

    def start(self, key: str, job: dict) -> None:
        """Run the job unless this key already ran or runs (here or before a restart)."""
        path = self._dir(key)
        with self._lock:
            if self._closed:
                raise RuntimeError("the local runner is closed")
            if key in self._running or key in self._done:
                return
            if path.exists():
                outcome = self._recover_one(key, path, lw.find_wrappers)
                if outcome is not None:
                    self._finish_outcome(outcome)
                if path.exists():  # re-attached, or finished: never run twice
                    self._wake()
                    return
            outcome = self._launch(key, path, job)
            if outcome is not None:
                self._finish_outcome(outcome)
            self._wake()

    def stop(self, key: str, *, reason: str = "Deleted") -> None:
        """TERM the job's process group now, KILL it after the grace period; keep its files."""
        with self._lock:
            job = self._running.get(key)
            if job is not None:
                self._begin_kill(job, reason, _KILL_MESSAGES.get(reason, f"Job was stopped: {reason}"))
                self._wake()

    def forget(self, key: str) -> None:
        """Remove the job's directory; a running job is stopped first and removed when it ends
        (without an outcome)."""
        with self._lock:
            job = self._running.get(key)
            if job is not None:
                job.forget = True
                self._begin_kill(job, "Deleted", _KILL_MESSAGES["Deleted"])
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
                self._begin_kill(job, reason, _KILL_MESSAGES.get(reason, f"Job was stopped: {reason}"))
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

    def _launch(self, key: str, path: Path, job: dict) -> JobOutcome | None:
        """Create the job directory and spawn the wrapper; a StartError becomes the outcome."""
        now = self._clock.now()
        manifest = json.dumps(job).encode()
        path.mkdir()
        # job.json and pid are written in place (a rename costs as much as the write here):
        # a torn one reads as absent, and recover() then finds the wrapper through /proc.
        lw.write_file(path / "job.json", manifest)
        try:
            spec = lp.plan_launch(job)
            env = {**self._base_env, **spec.env}
            work_dir = self._working_dir(path, spec.working_dir)
            lp.check_executable(spec.argv[0], path=env.get("PATH", os.defpath), cwd=work_dir)
            pid = lw.spawn(job_dir=path, work_dir=work_dir, argv=spec.argv, env=env)
        except (lp.StartError, OSError, ValueError) as e:
            message = str(e) if isinstance(e, lp.StartError) else f"cannot start the job: {e}"
            return self._decided(key, path, reason="StartError", message=message,
                                 start_time=now, log=True)
        info = lw.proc_info(pid)
        deadline = (None if spec.active_deadline_seconds is None
                    else now + spec.active_deadline_seconds)
        grace = self._grace if spec.grace_period_seconds is None else spec.grace_period_seconds
        record = {"pid": pid, "starttime": info.starttime if info else None,
                  "boot_id": lw.boot_id(), "start_time": now, "deadline": deadline, "grace": grace}
        lw.write_file(path / "pid", json.dumps(record).encode())
        self._watch(_Job(key=key, dir=path, pid=pid, pidfd=os.pidfd_open(pid), start_time=now,
                         deadline=deadline, grace=grace))
        logger.debug("[%s] started, wrapper pid %d", key, pid)
        return None

    def _working_dir(self, path: Path, working_dir: str | None) -> str:
        default = path / "work"
        if working_dir is None:
            default.mkdir(exist_ok=True)
            return str(default)
        full = os.path.join(default, working_dir)  # an absolute workingDir stays as it is
        if not os.path.isdir(full):
            raise lp.StartError(f"workingDir {working_dir} does not exist on this machine")
        return full

    def _watch(self, job: _Job) -> None:
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
            record = self._record_from_proc(path, wrappers)
        start_time = record.get("start_time") or lw.mtime(path / "job.json") or self._clock.now()
        code = lw.read_int(path / "exit")
        if code is not None:
            return self._exited(key, path, code, start_time=start_time,
                                completion_time=max(start_time, lw.mtime(path / "exit") or 0.0))
        if record.get("pid") and record.get("boot_id") == lw.boot_id():
            if self._attach(key, path, record, start_time) is not None:
                return None
            code = lw.read_int(path / "exit")  # it may have ended just now
            if code is not None:
                return self._exited(key, path, code, start_time=start_time,
                                    completion_time=self._clock.now())
        self._kill_orphan(path, record)
        return self._decided(key, path, reason="ProcessLost", start_time=start_time,
                             message=_LOST)

    def _record_from_proc(self, path: Path, wrappers: Callable[[], dict[str, int]]) -> dict:
        """A crash between spawn and writing `pid`: find the wrapper by its command line."""
        pid = wrappers().get(str(path))
        info = lw.proc_info(pid) if pid else None
        if info is None:
            return {}
        try:
            spec = lp.plan_launch(lw.read_json(path / "job.json") or {})
            ads, grace = spec.active_deadline_seconds, spec.grace_period_seconds
        except lp.StartError:
            ads = grace = None
        start = lw.mtime(path / "job.json") or self._clock.now()
        return {"pid": pid, "starttime": info.starttime, "boot_id": lw.boot_id(),
                "start_time": start, "deadline": None if ads is None else start + ads,
                "grace": grace}

    def _attach(self, key: str, path: Path, record: dict, start_time: float) -> _Job | None:
        pid = record["pid"]
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        info = lw.proc_info(pid)  # read after opening: a match means the pidfd is the wrapper's
        if info is None or info.starttime != record.get("starttime") or not info.running:
            if info is not None and info.starttime == record.get("starttime"):
                lw.reap(pidfd)  # our own zombie (a runner of this process was dropped)
            os.close(pidfd)
            return None
        grace = record.get("grace")
        job = _Job(key=key, dir=path, pid=pid, pidfd=pidfd, start_time=start_time,
                   deadline=record.get("deadline"), grace=self._grace if grace is None else grace)
        kill = lw.read_json(path / "kill")
        if kill is not None:  # katib died while stopping it: carry on
            job.kill = _Kill(reason=kill["reason"], message=kill["message"], at=kill["time"])
        self._watch(job)
        logger.info("[%s] re-attached to running job, wrapper pid %d", key, pid)
        return job

    def _kill_orphan(self, path: Path, record: dict) -> None:
        """The wrapper is gone but what it started may still run: kill its session if it is
        provably this job's (same boot, session leader, started after the wrapper), and every
        process still writing to this job's output.log (covers a wrapper that died before
        recording the session)."""
        if record.get("boot_id", lw.boot_id()) != lw.boot_id():
            return
        pgid = lw.read_int(path / "pgid")
        info = lw.proc_info(pgid) if pgid else None
        if info and info.session == pgid and info.starttime >= (record.get("starttime") or 0):
            logger.info("killing process group %d left behind by a lost job in %s", pgid, path)
            lw.signal_group(pgid, signal.SIGKILL)
        for pid in lw.find_writers(path / "output.log"):
            logger.info("killing process %d left behind by a lost job in %s", pid, path)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

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
                        self._begin_kill(job, DEADLINE_EXCEEDED, DEADLINE_MESSAGE)
                    else:
                        timers.append(job.deadline - now)
                if job.kill is not None:
                    timers.append(self._advance_kill(job, now))
            fds = list(self._by_fd)
        if fds and self._max_output is not None:
            due = self._next_check - time.monotonic()
            if due <= 0:
                for job in jobs:
                    self._cap_output(job.dir)
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

    def _ended(self, job: _Job) -> None:
        """The wrapper exited: turn its exit file into an outcome."""
        lw.reap(job.pidfd)
        with self._lock:
            # Unregister before closing: once closed, a start() in another thread may get the
            # same fd number for its new job, which must not be unregistered here.
            del self._by_fd[job.pidfd]
            os.close(job.pidfd)
        if self._max_output is not None:
            self._cap_output(job.dir)
        code = lw.read_int(job.dir / "exit")
        with self._lock:
            del self._running[job.key]
            if job.forget:
                shutil.rmtree(job.dir, ignore_errors=True)
                return
            if code is None:  # the wrapper was killed under our eyes
                self._kill_orphan(job.dir, lw.read_json(job.dir / "pid") or {})
                outcome = self._decided(job.key, job.dir, reason="ProcessLost",
                                        start_time=job.start_time, message=_LOST)
            else:
                outcome = self._exited(job.key, job.dir, code, start_time=job.start_time,
                                       completion_time=self._clock.now())
            self._finish_outcome(outcome)

    def _begin_kill(self, job: _Job, reason: str, message: str) -> None:
        """Record why the job is being killed (so a restart reports it), then TERM it."""
        if job.kill is not None or (job.dir / "exit").exists():
            return  # already being killed, or over: then it keeps its own outcome
        job.kill = _Kill(reason=reason, message=message, at=self._clock.now())
        lw.write_atomic(job.dir / "kill", json.dumps(
            {"reason": reason, "message": message, "time": job.kill.at}).encode())
        self._advance_kill(job, job.kill.at)

    def _advance_kill(self, job: _Job, now: float) -> float:
        """TERM once the group is known, KILL after the grace period; seconds until next action."""
        kill = job.kill
        if job.pgid is None:
            job.pgid = lw.read_int(job.dir / "pgid")
        if (job.dir / "exit").exists():
            return 1.0  # already over: the pidfd reports it; never signal a finished group
        info = lw.proc_info(job.pgid) if job.pgid else None
        if info is None or info.pgrp != job.pgid:
            return 0.01  # the command is not forked yet, or has not yet called setsid
        if not kill.term_sent:
            lw.signal_group(job.pgid, signal.SIGTERM)
            kill.term_sent = True
        if now >= kill.at + job.grace:
            if not kill.kill_sent:
                lw.signal_group(job.pgid, signal.SIGKILL)
                kill.kill_sent = True
            return 1.0
        return kill.at + job.grace - now

    def _cap_output(self, path: Path) -> None:
        """Keep the first max_output_bytes of output.log, then the marker, nothing more."""
        log = path / "output.log"
        try:
            if log.stat().st_size <= self._max_output:
                return
            marker = (f"\n[katib] output.log reached {self._max_output} bytes; "
                      "later output was discarded\n").encode()
            fd = os.open(log, os.O_WRONLY)
            try:  # pwrite then truncate: anything appended meanwhile is cut off too
                os.pwrite(fd, marker, self._max_output)
                os.ftruncate(fd, self._max_output + len(marker))
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ outcomes

    def _exited(self, key: str, path: Path, code: int, *, start_time: float,
                completion_time: float) -> JobOutcome:
        kill = lw.read_json(path / "kill")
        if kill is not None:
            reason, message, ok = kill["reason"], kill["message"], False
        elif code == 0:
            reason, message, ok = "Completed", "", True
        else:
            reason, message, ok = "Error", f"exit code {code}", False
        return JobOutcome(key=key, succeeded=ok, exit_code=code, reason=reason, message=message,
                          start_time=start_time, completion_time=completion_time)

    def _decided(self, key: str, path: Path, *, reason: str, message: str, start_time: float,
                 log: bool = False) -> JobOutcome:
        """An outcome no exit file tells: persist it so every later recover() agrees."""
        outcome = JobOutcome(key=key, succeeded=False, exit_code=None, reason=reason,
                             message=message, start_time=start_time,
                             completion_time=max(start_time, self._clock.now()))
        record = asdict(outcome)
        del record["key"]
        lw.write_atomic(path / "outcome.json", json.dumps(record).encode())
        if log:
            with open(path / "output.log", "a") as f:
                f.write(f"[katib] {reason}: {message}\n")
        return outcome

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
