"""Job → trial-relevant condition (controllers.md §3.3), and the job a runSpec describes. Pure."""
from __future__ import annotations

import functools
import json


NONE, RUNNING, SUCCEEDED, FAILED = "", "Running", "Succeeded", "Failed"


def evaluate(job: dict) -> tuple[str, str]:
    """(condition, message) of a batch Job, TFJob or PyTorchJob; NONE when it has no status.
    A failure's message names its reason too (what the trial's Failed condition shows)."""
    status = job.get("status")
    if status is None:
        return NONE, ""
    conditions = status.get("conditions") or []
    if job.get("kind") == "Job":
        for c in conditions:
            if c.get("status") != "True":
                continue
            if c.get("type") == "Complete":
                return SUCCEEDED, c.get("message", "")
            if c.get("type") == "Failed":
                return FAILED, describe(c)
        return RUNNING, ""
    if not conditions:
        return RUNNING, ""
    last = conditions[-1]
    if last.get("type") == FAILED:
        return FAILED, describe(last)
    return last.get("type", ""), last.get("message", "")


def describe(condition: dict) -> str:
    """A failure condition in words, reason first: "Error: exit code 2", "DeadlineExceeded:
    ..."; either part alone when the other is empty."""
    return ": ".join(part for part in (condition.get("reason"), condition.get("message")) if part)


@functools.lru_cache(maxsize=1024)
def _decoded(run_spec: str) -> str:
    from katib.api.templates import decode_job

    return json.dumps(decode_job(run_spec))


def decode_run_spec(run_spec: str) -> dict:
    """The job object of a trial's runSpec (a fresh dict each call). A runSpec is decoded once:
    when the trial is created, and then on each of its reconciles, from this cache."""
    return json.loads(_decoded(run_spec))
