"""How a local job ended, in words: exit status → JobOutcome → batch/v1 Job status. Pure.

The local runner decides outcomes (an exit status, a kill it requested, a start it could not
make); this module names them as a Kubernetes Job would (reason `Error`, `DeadlineExceeded`,
...) with a message precise enough to act on — `exit code 2`, `killed by signal 9 (SIGKILL)`,
a command that was not found — ending with where the job's output is. The kubelet writes
`batch_job_status(outcome, ...)` to the Job; the trial controller copies reason and message
into the trial's Failed condition."""
from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from katib.backends.local_wrapper import START_ERROR_EXIT, WRAPPER_TAG
from katib.clock import rfc3339

DEADLINE_EXCEEDED = "DeadlineExceeded"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"   # Kubernetes' Job controller
INTERRUPTED = "Interrupted"   # katib stopped the job when it stopped: it runs again at the next start
KILL_MESSAGES = {
    "Deleted": "Job was deleted",
    INTERRUPTED: "katib stopped while the job ran; it runs again when katib starts",
}
MAX_OUTPUT_POINTER = 300      # longer output paths are left out of messages
MAX_LAST_LINE = 200           # characters of the output's last line quoted in a failure message
LOST = ("the job's wrapper process ended without recording an exit status in {exit} (it was "
        "killed, the machine restarted, or the file could not be written: a full or read-only "
        "disk); what it started was killed")
UNRECORDED = "; the status could not be recorded in {exit} (a full or read-only disk?)"
# Lines a shell, setsid or env print when a command cannot be executed (exit 127 / 126).
_EXEC_FAILURE_HINTS = ("not found", "No such file", "Permission denied", "cannot execute",
                       "failed to execute", "Exec format error")


@dataclass
class JobOutcome:
    key: str
    succeeded: bool
    exit_code: int | None
    reason: str   # Completed | Error | DeadlineExceeded | ProcessLost | StartError | Deleted
    message: str
    start_time: float
    completion_time: float


def kill_message(reason: str) -> str:
    return KILL_MESSAGES.get(reason, f"Job was stopped: {reason}")


def deadline_message(active_deadline_seconds: float) -> str:
    return f"{DEADLINE_MESSAGE} (activeDeadlineSeconds: {active_deadline_seconds:g})"


def describe_exit(code: int, *, output_tail: str = "") -> str:
    """A non-zero exit status in words. 128+N is how the wrapper's shell reports a command
    killed by signal N (a command that exits with such a code itself reads the same)."""
    if code in (126, 127):
        what = "not found" if code == 127 else "not executable"
        line = _exec_failure_line(output_tail)
        detail = f": {line}" if line else " (the shell's status for a command that cannot run)"
        return f"exit code {code}: command {what}{detail}"
    if code == START_ERROR_EXIT:
        return f"exit code {code}: the working directory could not be entered"
    if 128 < code < 128 + signal.NSIG:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = ""
        if name:
            return f"killed by signal {code - 128} ({name})"
    line = _last_line(output_tail)
    return f"exit code {code}: {line}" if line else f"exit code {code}"


def _last_line(tail: str) -> str:
    """The command's last words, which usually say why it failed (a Python traceback ends
    with the exception); capped, since they go into a condition message. The wrapper's own
    complaints (it shares the log) are reported by their own note, not as the command's."""
    lines = [line.strip() for line in tail.splitlines()
             if line.strip() and not line.startswith(WRAPPER_TAG + ":")]
    return lines[-1][:MAX_LAST_LINE] if lines else ""


def _exec_failure_line(tail: str) -> str:
    """The last output line that says which command could not run, e.g. `sh: 1: trian.py: not found`."""
    for line in reversed(tail.splitlines()):
        if any(hint in line for hint in _EXEC_FAILURE_HINTS):
            return line.strip()[:200]
    return ""


def with_output(message: str, output: Path | None) -> str:
    """`message; output: <path>` — where to look next, unless the path is unreasonably long."""
    if output is None or len(str(output)) > MAX_OUTPUT_POINTER:
        return message
    return f"{message}; output: {output}" if message else f"output: {output}"


def exited(key: str, code: int, *, kill: dict | None, output: Path | None, output_tail: str = "",
           note: str = "", start_time: float, completion_time: float) -> JobOutcome:
    """The outcome of a job whose command ended with `code`; a kill the runner requested
    (`{"reason", "message"}`) decides the reason over the status it caused. `note` follows
    the message (before the output pointer)."""
    if kill is not None:
        reason, message, ok = kill["reason"], with_output(kill["message"] + note, output), False
    elif code == 0:
        reason, message, ok = "Completed", note.lstrip("; "), True
    else:
        reason, ok = "Error", False
        message = with_output(describe_exit(code, output_tail=output_tail) + note, output)
    return JobOutcome(key=key, succeeded=ok, exit_code=code, reason=reason, message=message,
                      start_time=start_time, completion_time=completion_time)


def batch_job_status(outcome: JobOutcome | None, started: bool, now: float, *,
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


def job_status(kind: str, outcome: JobOutcome | None, started: bool, now: float, *,
               start_time: float | None = None) -> dict:
    """The status the job's controller would write: batch_job_status for a Job; for a TFJob or
    PyTorchJob the operators' conditions (Created, Running, then Succeeded or Failed, each
    with the operator's reason), which the trial controller reads by the last condition's type."""
    if kind not in ("TFJob", "PyTorchJob"):
        return batch_job_status(outcome, started, now, start_time=start_time)
    if not started and outcome is None:
        return {}
    begun = outcome.start_time if outcome is not None else (now if start_time is None else start_time)

    def condition(ctype: str, reason: str, message: str, at: float) -> dict:
        return {"type": ctype, "status": "True", "reason": reason, "message": message,
                "lastUpdateTime": rfc3339(at), "lastTransitionTime": rfc3339(at)}

    conditions = [condition("Created", f"{kind}Created", f"{kind} is created.", begun),
                  condition("Running", f"{kind}Running", f"{kind} is running.", begun)]
    status: dict = {"startTime": rfc3339(begun), "replicaStatuses": {}}
    if outcome is not None:
        conditions[-1]["status"] = "False"
        if outcome.succeeded:
            conditions.append(condition("Succeeded", f"{kind}Succeeded", f"{kind} successfully completed.", now))
        else:
            conditions.append(condition("Failed", outcome.reason, outcome.message, now))
        status["completionTime"] = rfc3339(outcome.completion_time)
    status["conditions"] = conditions
    return status


FINISHED = ("Complete", "Failed", "Succeeded")


def finished(job: dict) -> bool:
    """The job has its outcome: a true Complete/Failed (Job) or Succeeded/Failed (operators)."""
    return any(c.get("type") in FINISHED and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or ())
