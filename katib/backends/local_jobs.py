"""One job as the local runner watches it: its start record, re-attaching to it after a
restart, its outcome as the runner records it, killing it (TERM, then KILL after the
grace period), and the verdict of its metrics-collector sidecar (local_pod_launcher).

Every function works on one job directory (see local_runner) and the job's processes; the
runner's tables and locks stay in local_runner."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from katib.backends import local_outcome as lo
from katib.backends import local_process as lp
from katib.backends import local_wrapper as lw
from katib.backends.local_outcome import JobOutcome
from katib.backends.local_pod import SIDECAR_EXIT, SIDECAR_LOG

logger = logging.getLogger(__name__)


@dataclass
class Kill:
    reason: str
    message: str
    at: float              # clock time of the request; KILL follows `grace` seconds later
    term_sent: bool = False
    kill_sent: bool = False


@dataclass
class WatchedJob:
    key: str
    dir: Path
    pid: int
    pidfd: int
    start_time: float
    deadline: float | None   # clock time
    grace: float
    kill: Kill | None = None
    forget: bool = False
    pgid: int | None = None

    @property
    def forgotten(self) -> bool:
        """Removed without an outcome when it ends: forget() or an Interrupted kill."""
        return self.forget or (self.kill is not None and self.kill.reason == lo.INTERRUPTED)


# ------------------------------------------------------------------------------------ starting

def working_dir(path: Path, requested: str | None) -> str:
    """The job's working directory: its own `work/` unless the container names one, which must
    exist (a relative one is taken from `work/`, an absolute one as it is). OSError: `work/`
    cannot be created."""
    default = path / "work"
    if requested is None:
        default.mkdir(exist_ok=True)
        return str(default)
    full = os.path.join(default, requested)
    if not os.path.isdir(full):
        raise lp.StartError(f"workingDir {requested} does not exist on this machine")
    return full


def spawn(path: Path, work_dir: str, argv: list[str], env: dict[str, str]) -> int:
    try:
        return lw.spawn(job_dir=path, work_dir=work_dir, argv=argv, env=env)
    except (OSError, ValueError) as e:
        raise lp.StartError(f"cannot start the job: {e}") from None


def start_record(pid: int, *, spec: lp.LaunchSpec, now: float, default_grace: float) -> dict:
    """What the `pid` file holds: enough to re-attach to the wrapper and keep its deadline."""
    info = lw.proc_info(pid)
    deadline = (None if spec.active_deadline_seconds is None
                else now + spec.active_deadline_seconds)
    grace = default_grace if spec.grace_period_seconds is None else spec.grace_period_seconds
    return {"pid": pid, "starttime": info.starttime if info else None,
            "boot_id": lw.boot_id(), "start_time": now, "deadline": deadline, "grace": grace}


def undo_start(path: Path, pidfd: int | None) -> None:
    """A start that could not be recorded: kill what it spawned, remove what it wrote."""
    if pidfd is not None:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        lw.reap(pidfd, block=True)
        os.close(pidfd)
        lw.kill_orphan(path, {})
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------- recovering

def record_from_proc(path: Path, wrappers: Callable[[], dict[str, int]], *, now: float) -> dict:
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
    start = lw.mtime(path / "job.json") or now
    return {"pid": pid, "starttime": info.starttime, "boot_id": lw.boot_id(),
            "start_time": start, "deadline": None if ads is None else start + ads,
            "grace": grace}


def attach(key: str, path: Path, record: dict, *, start_time: float,
           default_grace: float) -> WatchedJob | None:
    """The running wrapper `record` names, to be watched again; None when it is gone."""
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
    job = WatchedJob(key=key, dir=path, pid=pid, pidfd=pidfd, start_time=start_time,
                     deadline=record.get("deadline"), grace=default_grace if grace is None else grace)
    kill = lw.read_json(path / "kill")
    if kill is not None:  # katib died while stopping it: carry on
        job.kill = Kill(reason=kill["reason"], message=kill["message"], at=kill["time"])
    logger.info("[%s] re-attached to running job, wrapper pid %d", key, pid)
    return job


# ------------------------------------------------------------------------------------ outcomes

def exited(key: str, path: Path, code: int, *, kill: Kill | None, start_time: float,
           completion_time: float, note: str = "") -> JobOutcome:
    """The outcome of an exit status; the kill record on disk (or, when it could not be
    written, the one in memory) names the reason of a kill the runner asked for."""
    recorded = lw.read_json(path / "kill")
    if recorded is None and kill is not None:
        recorded = {"reason": kill.reason, "message": kill.message}
    log = path / "output.log"
    return lo.exited(key, code, kill=recorded, output=log, note=note,
                     output_tail=lw.tail(log) if code != 0 and kill is None else "",
                     start_time=start_time, completion_time=completion_time)


def decided(key: str, path: Path, *, reason: str, message: str, start_time: float, now: float,
            log: bool = False) -> JobOutcome:
    """An outcome no exit file tells: persisted so every later recover() agrees; `log`: also
    appended to the job's output."""
    outcome = JobOutcome(key=key, succeeded=False, exit_code=None, reason=reason,
                         message=lo.with_output(message, path / "output.log"),
                         start_time=start_time, completion_time=max(start_time, now))
    persist(path, outcome)
    if log:
        try:
            with open(path / "output.log", "a") as f:
                f.write(f"[katib] {reason}: {message}\n")
        except OSError as e:  # the outcome is recorded; the copy in the output is a courtesy
            logger.warning("cannot append to %s: %s", path / "output.log", e.strerror)
    return outcome


def persist(path: Path, outcome: JobOutcome) -> None:
    record = asdict(outcome)
    del record["key"]
    lw.write_atomic(path / "outcome.json", json.dumps(record).encode())


# ------------------------------------------------------------------------------------- killing

def begin_kill(job: WatchedJob, reason: str, message: str, *, now: float) -> None:
    """Record why the job is being killed (so a restart reports it), then TERM it. When
    the record cannot be written (a full or read-only disk) the kill goes on regardless:
    this process still knows why."""
    if job.kill is not None or lw.read_int(job.dir / "exit") is not None:
        return  # already being killed, or over: then it keeps its own outcome
    job.kill = Kill(reason=reason, message=message, at=now)
    try:
        lw.write_atomic(job.dir / "kill", json.dumps(
            {"reason": reason, "message": message, "time": now}).encode())
    except OSError as e:
        logger.warning("[%s] cannot record the kill (%s) in %s: %s", job.key, reason,
                       job.dir / "kill", e.strerror)
    advance_kill(job, now)


def advance_kill(job: WatchedJob, now: float) -> float:
    """TERM once the group is known, KILL after the grace period; seconds until next action."""
    kill = job.kill
    if job.pgid is None:
        job.pgid = lw.read_int(job.dir / "pgid")
    if lw.read_int(job.dir / "exit") is not None:
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


# ------------------------------------------------------------------------------------ sidecars

def sidecar_verdict(outcome: lo.JobOutcome, job: dict, job_dir: Path) -> lo.JobOutcome:
    """A job whose training succeeded but whose metrics-collector sidecar failed (or left no
    exit status) fails, reason MetricsCollectorFailed, naming the container and its last words."""
    if not outcome.succeeded:
        return outcome
    pod = lp.local_pod(job_with_pod(job, job_dir))
    if pod.get("sidecar") is None:
        return outcome
    log = job_dir / SIDECAR_LOG
    code = lw.read_int(job_dir / SIDECAR_EXIT)
    if code == 0:
        return outcome
    what = (f"metrics collector container {pod['sidecar']} failed: "
            + ("it ended without an exit status" if code is None
               else lo.describe_exit(code, output_tail=lw.tail(log))))
    return lo.JobOutcome(key=outcome.key, succeeded=False, exit_code=outcome.exit_code,
                         reason="MetricsCollectorFailed", message=lo.with_output(what, log),
                         start_time=outcome.start_time, completion_time=outcome.completion_time)


def job_with_pod(job: dict, job_dir: Path) -> dict:
    """The job as it was run (job.json in its directory), else as created."""
    return lw.read_json(job_dir / "job.json") or job
