"""Waiting for the training process to end (metrics-collection.md §4).

In a pod with `shareProcessNamespace: true`, the processes to watch are the top-level process
of every other container: parent PID 0, not PID 1 (the pause container), not this process.
`-wait-pid PID` names the process instead (for a collector started beside its trainer on one
machine). `$KATIB_POD_PIDS_FILE` (set by katib's local pod kubelet) names a file listing the
pod's top-level PIDs, one per line: the pod's process view on a host shared with other pods. When a watched process is gone, the marker `<dir>/<pid>.pid` must say `completed`
(the rewritten training command writes it only on success); without a marker directory the end
of the process is enough."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable


class WaitError(RuntimeError):
    pass


def top_level_pids(proc: Path = Path("/proc")) -> list[int]:
    me = os.getpid()
    listed = os.environ.get("KATIB_POD_PIDS_FILE")
    if listed:
        try:
            text = Path(listed).read_text()
        except OSError:
            return []
        return sorted({int(w) for w in text.split() if w.isdigit() and int(w) != me})
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in (1, me):
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields and fields[1] == "0":  # ppid
            pids.append(int(entry.name))
    return sorted(pids)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not yet reaped) has ended
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wait_for(pids: list[int], *, marker_dir: str | None, poll: float = 1.0, timeout: float | None = None,
             sleep: Callable[[float], None] = time.sleep) -> int:
    """Block until the first of `pids` has ended correctly; returns it. WaitError when it ended
    without its `completed` marker, or on timeout."""
    if not pids:
        raise WaitError("no training process to wait for")
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        for pid in pids:
            if alive(pid):
                continue
            if marker_dir is not None:
                marker = Path(marker_dir) / f"{pid}.pid"
                try:
                    done = marker.read_text().strip() == "completed"
                except OSError:
                    done = False
                if not done:
                    raise WaitError(f"Process {pid} hadn't completed")
            return pid
        if end is not None and time.monotonic() >= end:
            raise WaitError("Timed out waiting for PID to complete")
        sleep(poll)
