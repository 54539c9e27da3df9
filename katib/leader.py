"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Every candidate runs the same loop over the Backend protocol (get/create/update):
  * the Lease's spec says who leads: holderIdentity, leaseDurationSeconds, acquireTime,
    renewTime, leaseTransitions;
  * a candidate judges a lease held by another expired by its OWN monotonic clock, counted from
    when it last saw the lease record change (client-go's observedTime), never by comparing the
    renewTime written by another machine with its wall clock: clocks of two hosts may disagree;
  * writes carry the resourceVersion read: of two candidates racing for an expired lease one
    gets Conflict and has lost that round;
  * the leader renews every `retry_period`; if no renew succeeded for `renew_deadline`
    (the API is unreachable, or slow), or it sees another holder, it has lost the lease and
    must stop at once (`on_stopped_leading`): a standby may take over `lease_duration` after
    it last saw a renew, and renew_deadline < lease_duration leaves the old leader the
    difference to stop in;
  * a clean shutdown releases the lease (holder "", leaseDurationSeconds 1): a standby takes
    over at its next try instead of waiting for the lease to expire.

`tick()` is one step of the loop and returns the seconds until the next one: tests drive it
on a FakeClock; `run(stop)` loops on real time."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import random
import socket
import threading
from typing import Callable

from katib.clock import Clock
from katib.errors import AlreadyExists, Conflict, KatibError, NotFound

logger = logging.getLogger(__name__)

LEASE_API_VERSION = "coordination.k8s.io/v1"
DEFAULT_LEASE_NAME = "katib"   # the Lease config/rbac.yaml grants
JITTER = 1.2  # client-go's JitterFactor for the acquire loop


def default_identity() -> str:
    """hostname_pid: unique per process, readable in `kubectl get lease -o yaml`."""
    return f"{socket.gethostname()}_{os.getpid()}"


def micro_time(ts: float) -> str:
    """metav1.MicroTime text (RFC 3339 with microseconds, UTC)."""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timings(lease_duration: float) -> tuple[float, float]:
    """(renew_deadline, retry_period) for a lease duration, in client-go's proportions
    (15s → 10s, 2s): the deadline two thirds of the lease, a retry every 2/15 of it."""
    if lease_duration <= 0:
        raise ValueError(f"the lease duration must be positive: {lease_duration}")
    return lease_duration * 2 / 3, lease_duration * 2 / 15


class LeaderElector:
    """One candidate. Callbacks run on the thread that calls tick()/run()/check():
    `on_started_leading()` once the lease is ours, `on_stopped_leading(reason)` once it is lost
    (it should end the process: a restart is the recovery), `on_new_leader(identity)` whenever
    the observed holder changes."""

    def __init__(self, backend, *, namespace: str, name: str = DEFAULT_LEASE_NAME,
                 identity: str | None = None, lease_duration: float = 15.0,
                 renew_deadline: float | None = None, retry_period: float | None = None,
                 clock: Clock | None = None, jitter: float = JITTER,
                 on_started_leading: Callable[[], None] | None = None,
                 on_stopped_leading: Callable[[str], None] | None = None,
                 on_new_leader: Callable[[str], None] | None = None):
        deadline, retry = timings(lease_duration)
        self.renew_deadline = deadline if renew_deadline is None else renew_deadline
        self.retry_period = retry if retry_period is None else retry_period
        if not 0 < self.retry_period < self.renew_deadline < lease_duration:
            raise ValueError("leader election needs 0 < retry period < renew deadline < lease duration")
        self.backend = backend
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = float(lease_duration)
        self.clock = clock or Clock()
        self.jitter = jitter
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._lock = threading.RLock()
        self._observed: dict | None = None       # the lease spec as last seen
        self._observed_time = 0.0                # monotonic time when it last changed
        self._observed_rv = ""
        self._leader = ""                        # holder as last seen
        self.leading = False
        self.lost: str | None = None             # why leadership ended (then we never lead again)
        self._last_renew = 0.0                   # monotonic start of the last successful renew
        self._rng = random.Random()

    # -- one round of client-go's tryAcquireOrRenew ------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """Take or renew the lease if it is ours, free or expired; False if another holds it
        or the write lost a race. Backend errors (unreachable API...) propagate."""
        now = self.clock.now()
        try:
            lease = self.backend.get("Lease", self.namespace, self.name)
        except NotFound:
            try:
                created = self.backend.create(self._lease_object(None, self._record(now, now, 0)))
            except (AlreadyExists, Conflict):
                return False
            self._observe(created)
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired():
            return False
        if holder == self.identity and self.leading:
            record = self._record(_acquired(spec, now), now, int(spec.get("leaseTransitions") or 0))
        else:  # a new term: ours after a restart, another's expired, or released
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            record = self._record(now, now, transitions)
        try:
            updated = self.backend.update(self._lease_object(lease, record))
        except (Conflict, NotFound):
            return False
        self._observe(updated)
        return True

    def _expired(self) -> bool:
        return self._observed_time + self.lease_duration <= self.clock.monotonic()

    def _record(self, acquire: float | str, renew: float, transitions: int) -> dict:
        return {"holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, int(round(self.lease_duration))),
                "acquireTime": acquire if isinstance(acquire, str) else micro_time(acquire),
                "renewTime": micro_time(renew), "leaseTransitions": transitions}

    def _lease_object(self, current: dict | None, spec: dict) -> dict:
        if current is None:
            return {"apiVersion": LEASE_API_VERSION, "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        obj = dict(current)
        obj["spec"] = {**(current.get("spec") or {}), **spec}
        return obj

    def _observe(self, lease: dict) -> None:
        spec = dict(lease.get("spec") or {})
        if spec != self._observed:
            self._observed = spec
            self._observed_time = self.clock.monotonic()
        self._observed_rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        holder = spec.get("holderIdentity") or ""
        if holder != self._leader:
            self._leader = holder
            if holder:
                logger.info("lease %s/%s is held by %s", self.namespace, self.name, holder)
            if self._on_new_leader is not None:
                self._on_new_leader(holder)

    @property
    def leader(self) -> str:
        """The holder as last observed ("" if none)."""
        return self._leader

    # -- the loop --------------------------------------------------------------------------
    def tick(self) -> float:
        """One step: acquire (when standing by) or renew (when leading). Returns the delay
        until the next step; after the lease is lost, always `retry_period` and nothing else."""
        with self._lock:
            if self.lost is not None:
                return self.retry_period
            if not self.leading:
                return self._try_acquire()
            return self._try_renew()

    def _try_acquire(self) -> float:
        try:
            won = self.try_acquire_or_renew()
        except KatibError as err:
            logger.info("lease %s/%s: cannot reach the API: %s", self.namespace, self.name, err)
            won = False
        if won:
            self.leading = True
            self._last_renew = self.clock.monotonic()
            logger.info("became the leader (lease %s/%s, identity %s)", self.namespace, self.name, self.identity)
            if self._on_started is not None:
                self._on_started()
            return self.retry_period
        return self.retry_period * (1 + self._rng.random() * self.jitter if self.jitter else 1)

    def _try_renew(self) -> float:
        started = self.clock.monotonic()
        try:
            ok = self.try_acquire_or_renew()
            why = f"the lease is held by {self._leader}" if not ok else ""
        except KatibError as err:
            ok, why = False, f"cannot renew: {err}"
        if ok:
            self._last_renew = started
        elif self._leader and self._leader != self.identity:
            self._lose(f"lost the lease {self.namespace}/{self.name}: {why}")
        else:
            self.check(why)
        return self.retry_period

    def check(self, why: str = "") -> bool:
        """Whether we still lead; loses the lease once the renew deadline has passed (call it
        from any thread: a renew blocked on a dead connection cannot delay the verdict)."""
        with self._lock:
            if self.leading and self.clock.monotonic() - self._last_renew >= self.renew_deadline:
                detail = f" ({why})" if why else ""
                self._lose(f"leader election lost: no renewal of lease {self.namespace}/{self.name} "
                           f"within {self.renew_deadline:g}s{detail}")
            return self.leading

    def _lose(self, reason: str) -> None:
        if not self.leading:
            return
        self.leading = False
        self.lost = reason
        logger.error("%s", reason)
        if self._on_stopped is not None:
            self._on_stopped(reason)

    def run(self, stop: threading.Event) -> None:
        """tick() until `stop`; a watchdog thread applies the renew deadline meanwhile."""
        watchdog = threading.Thread(target=self._watchdog, args=(stop,), daemon=True, name="lease-watchdog")
        watchdog.start()
        while not stop.is_set() and self.lost is None:
            stop.wait(self.tick())

    def _watchdog(self, stop: threading.Event) -> None:
        while not stop.wait(min(0.1, self.retry_period)) and self.lost is None:
            self.check()

    def release(self) -> bool:
        """Give the lease up (clean shutdown) if we hold it: holder "", leaseDurationSeconds 1,
        as client-go's ReleaseOnCancel. True if released."""
        with self._lock:
            if not self.leading:
                return False
            self.leading = False
            self.lost = "released"
            try:
                lease = self.backend.get("Lease", self.namespace, self.name)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return False
                now = micro_time(self.clock.now())
                lease = {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                                           "acquireTime": now, "renewTime": now}}
                self.backend.update(lease)
            except KatibError as err:
                logger.warning("could not release lease %s/%s: %s", self.namespace, self.name, err)
                return False
            logger.info("released lease %s/%s", self.namespace, self.name)
            return True


def _acquired(spec: dict, now: float) -> str | float:
    return spec.get("acquireTime") or now
