"""Leader election (katib/leader.py) on the FakeBackend with a fake clock: client-go's rules."""
from __future__ import annotations

import threading

import pytest

from katib.backends.fake import FakeBackend
from katib.clock import FakeClock
from katib.errors import Conflict, TemporaryError
from katib.leader import LeaderElector, micro_time, timings

NS = "kubeflow"


class Candidate:
    """An elector with a log of its callbacks."""

    def __init__(self, backend, clock, identity, **kw):
        self.log: list[str] = []
        self.elector = LeaderElector(backend, namespace=NS, identity=identity, lease_duration=15, clock=clock,
                                     jitter=0, on_started_leading=lambda: self.log.append("started"),
                                     on_stopped_leading=lambda why: self.log.append("stopped: " + why), **kw)

    def tick(self):
        return self.elector.tick()


class SkewedClock(FakeClock):
    """Another host: its wall clock is `skew` seconds off, its monotonic clock follows `base`."""

    def __init__(self, base: FakeClock, skew: float):
        self.base, self.skew = base, skew

    def now(self):
        return self.base.now() + self.skew

    def monotonic(self):
        return self.base.monotonic() + 1000.0   # another origin: only differences count


@pytest.fixture
def world():
    clock = FakeClock()
    return FakeBackend(clock=clock), clock


def lease(backend):
    return backend.get("Lease", NS, "katib")["spec"]


def test_timings_follow_client_go_proportions():
    assert timings(15) == (10.0, 2.0)
    with pytest.raises(ValueError):
        timings(0)


def test_first_candidate_creates_the_lease_and_leads(world):
    backend, clock = world
    a = Candidate(backend, clock, "a")
    assert a.tick() == 2.0
    assert a.log == ["started"] and a.elector.leading
    spec = lease(backend)
    assert spec == {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": micro_time(clock.now()),
                    "renewTime": micro_time(clock.now()), "leaseTransitions": 0}


def test_standby_waits_for_the_lease_duration_from_the_last_renewal_it_saw(world):
    backend, clock = world
    a, b = Candidate(backend, clock, "a"), Candidate(backend, clock, "b")
    a.tick()
    for _ in range(20):   # a renews every 2s: b never takes over
        clock.advance(2)
        a.tick()
        b.tick()
    assert b.log == [] and lease(backend)["holderIdentity"] == "a"
    acquired = lease(backend)["acquireTime"]
    assert lease(backend)["renewTime"] == micro_time(clock.now()) and acquired != micro_time(clock.now())
    # a dies (no release). b saw the last renewal now; it takes over only 15s later.
    b.tick()
    clock.advance(14.9)
    b.tick()
    assert b.log == []
    clock.advance(0.1)
    b.tick()
    assert b.log == ["started"]
    spec = lease(backend)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == micro_time(clock.now())


def test_expiry_is_judged_by_the_local_monotonic_clock_not_by_wall_clocks(world):
    backend, clock = world
    a = Candidate(backend, clock, "a")
    a.tick()
    # b's wall clock is an hour ahead: the renewTime looks ancient to it, but it has not seen
    # the lease unchanged for 15s of its own time, so it must not take over.
    b = Candidate(backend, SkewedClock(clock, 3600), "b")
    b.tick()
    clock.advance(2)
    a.tick()
    clock.advance(2)
    assert b.tick() and b.log == []
    # and one whose wall clock is an hour behind takes over 15s after a stops renewing
    c = Candidate(backend, SkewedClock(clock, -3600), "c")
    c.tick()
    clock.advance(15)
    c.tick()
    assert c.log == ["started"]


def test_losing_a_race_is_a_conflict_not_a_second_leader(world):
    backend, clock = world
    a, b = Candidate(backend, clock, "a"), Candidate(backend, clock, "b")
    a.tick()
    b.tick()
    clock.advance(15)
    # a renews between b's read and b's write: b's update carries a stale resourceVersion
    real_get = backend.get

    def get_then_renew(*args, **kw):
        obj = real_get(*args, **kw)
        backend.get = real_get
        a.tick()
        return obj

    backend.get = get_then_renew
    b.tick()
    assert b.log == [] and not b.elector.leading and lease(backend)["holderIdentity"] == "a"


def test_leader_stops_when_it_cannot_renew_within_the_deadline(world):
    backend, clock = world
    a = Candidate(backend, clock, "a")
    a.tick()
    backend.inject("get", kind="Lease", error=TemporaryError("connection refused"), times=None)
    clock.advance(2)
    a.tick()
    clock.advance(7.9)
    a.tick()
    assert a.elector.leading and a.log == ["started"]
    clock.advance(0.1)          # 10s since the last successful renew
    assert a.elector.check() is False
    assert a.log[-1].startswith("stopped: leader election lost: no renewal of lease kubeflow/katib "
                                "within 10s")
    backend.clear_injections()   # the API is back: a lost leader never leads again (restart)
    clock.advance(2)
    a.tick()
    assert not a.elector.leading and a.log.count("started") == 1


def test_the_deadline_applies_while_a_renewal_is_blocked(world):
    """A renew stuck on a dead connection: the watchdog's check() still ends the leadership."""
    backend, clock = world
    a = Candidate(backend, clock, "a")
    a.tick()
    clock.advance(10)
    assert a.elector.check() is False and a.log[-1].startswith("stopped:")


def test_leader_that_sees_another_holder_stops_at_once(world):
    backend, clock = world
    a = Candidate(backend, clock, "a")
    a.tick()
    obj = backend.get("Lease", NS, "katib")
    obj["spec"]["holderIdentity"] = "intruder"
    backend.update(obj)
    clock.advance(2)
    a.tick()
    assert not a.elector.leading and a.log[-1] == "stopped: lost the lease kubeflow/katib: " \
                                                   "the lease is held by intruder"


def test_release_lets_the_standby_take_over_at_its_next_try(world):
    backend, clock = world
    a, b = Candidate(backend, clock, "a"), Candidate(backend, clock, "b")
    a.tick()
    b.tick()
    assert a.elector.release() is True
    spec = lease(backend)
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    clock.advance(2)
    b.tick()
    assert b.log == ["started"] and lease(backend)["leaseTransitions"] == 1
    assert a.elector.release() is False   # not ours any more


def test_conflict_on_create_means_another_candidate_was_first(world):
    backend, clock = world
    backend.inject("create", kind="Lease", error=Conflict("raced"))
    a = Candidate(backend, clock, "a")
    a.tick()
    assert a.log == []


def test_run_loops_in_real_time_and_stops():
    backend = FakeBackend()
    started = threading.Event()
    el = LeaderElector(backend, namespace=NS, identity="r", lease_duration=1.5,
                       on_started_leading=started.set)
    stop = threading.Event()
    t = threading.Thread(target=el.run, args=(stop,), daemon=True)
    t.start()
    assert started.wait(5)
    first = lease(backend)["renewTime"]
    threading.Event().wait(0.5)
    assert lease(backend)["renewTime"] != first   # renewed every 0.2s
    stop.set()
    t.join(5)
    assert not t.is_alive() and el.release()
