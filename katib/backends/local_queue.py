"""Which waiting jobs the local kubelet may start now. Pure: no threads, no I/O.

Two rules on top of "each Job runs once":
- at most `max_running` job processes run at once, across all experiments (None: no limit);
  the rest wait in creation order and start as slots free;
- jobs that share a resource of this machine never run at the same time: a File collector
  path the training container does not name (so it cannot be mapped onto the job's own
  directory, see local_pod), or the literal port of a PrometheusMetric endpoint. On a cluster
  each pod has its own filesystem and network; here they would read each other's metrics. A
  job whose resource is in use waits without holding a slot, and later jobs may pass it.
A waiting job is not started at all (its Job has no startTime), as a pod waiting for a node."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    key: str
    path: str | None = None    # the shared resource (local_pod.Plan.resource); None: nothing shared
    owner: str = ""            # name of the trial that owns the job
    text: str = ""             # the resource in words ("File collector path /x", ...)
    trial: dict | None = field(default=None, compare=False, hash=False, repr=False)  # the owner, as read


@dataclass(frozen=True)
class Blocked:
    """`entry` waits because `holder` (a running job) uses the same resource."""
    entry: Entry
    holder: Entry

    @property
    def reason(self) -> str:
        return "MetricsPortInUse" if (self.entry.path or "").startswith("port ") else "FileCollectorPathInUse"

    def message(self) -> str:
        what = self.entry.text or f"File collector path {self.entry.path}"
        return (f"{what} is in use by trial {self.holder.owner or self.holder.key}: "
                f"trials that share it run one at a time")


class StartQueue:
    def __init__(self, max_running: int | None = None):
        if max_running is not None and max_running < 1:
            raise ValueError(f"max_running must be at least 1, not {max_running}")
        self.max_running = max_running
        self._waiting: dict[str, Entry] = {}   # insertion order is creation order
        self._running: dict[str, Entry] = {}
        self._paths: dict[str, Entry] = {}     # File collector path → the running job using it
        self._told: set[str] = set()           # keys already reported as blocked

    def add(self, entry: Entry) -> None:
        """A job to start when the rules allow; a key already known is ignored."""
        if entry.key not in self._waiting and entry.key not in self._running:
            self._waiting[entry.key] = entry

    def add_running(self, entry: Entry) -> None:
        """A job that already runs (re-attached after a restart): it holds a slot and its path."""
        self._waiting.pop(entry.key, None)
        self._hold(entry)

    def discard(self, key: str) -> None:
        """A job deleted while it waits never starts (a running one ends through release())."""
        self._waiting.pop(key, None)
        self._told.discard(key)

    def release(self, key: str) -> None:
        """The job's process ended (or never started): its slot and path are free."""
        entry = self._running.pop(key, None)
        if entry is not None and entry.path is not None and self._paths.get(entry.path) is entry:
            del self._paths[entry.path]
        self._told.discard(key)

    def take(self) -> tuple[list[Entry], list[Blocked]]:
        """The jobs to start now, in creation order (each now counts as running), and the
        jobs that newly wait for a File collector path (each reported once)."""
        ready: list[Entry] = []
        blocked: list[Blocked] = []
        for entry in list(self._waiting.values()):
            if self.max_running is not None and len(self._running) >= self.max_running:
                break
            holder = self._paths.get(entry.path) if entry.path is not None else None
            if holder is not None:
                if entry.key not in self._told:
                    self._told.add(entry.key)
                    blocked.append(Blocked(entry, holder))
                continue
            del self._waiting[entry.key]
            self._hold(entry)
            ready.append(entry)
        return ready, blocked

    def waiting(self) -> list[str]:
        return list(self._waiting)

    def running(self) -> list[str]:
        return list(self._running)

    def _hold(self, entry: Entry) -> None:
        self._running[entry.key] = entry
        if entry.path is not None:
            self._paths.setdefault(entry.path, entry)
