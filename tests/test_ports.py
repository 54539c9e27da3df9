"""Ports chosen for local trial processes (katib.backends.ports): outside the kernel's ephemeral
range, bindable when chosen, never handed out twice in a row of jobs."""
from __future__ import annotations

import socket

from katib.backends import ports


def test_ports_come_from_below_the_ephemeral_range_and_are_bindable():
    low, _ = ports.ephemeral_range()
    got = ports.free_ports(50)
    assert all(ports.LOWEST <= p < low for p in got), got
    for p in got:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_no_port_is_handed_out_twice_within_the_quarantine():
    got = [p for _ in range(400) for p in ports.free_ports(5)]
    assert len(got) == len(set(got)) == 2000


def test_a_port_someone_listens_on_is_passed_over(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    picks = iter([busy, busy, 23456, 23457])
    monkeypatch.setattr(ports.random, "randint", lambda a, b: next(picks))
    monkeypatch.setattr(ports, "_issued", {})
    try:
        assert ports.free_ports(1, span=(1024, 65535)) in ([23456], [23457])
    finally:
        taken.close()


def test_without_room_outside_the_range_the_kernel_picks(monkeypatch, tmp_path):
    narrow = tmp_path / "range"
    narrow.write_text("1024\t65535\n")   # the whole space is ephemeral: nothing to choose from
    monkeypatch.setattr(ports, "RANGE_FILE", str(narrow))
    monkeypatch.setattr(ports.random, "randint", lambda a, b: (_ for _ in ()).throw(AssertionError("picked")))
    assert ports.ephemeral_range(str(narrow)) == (1024, 65535)
    [p] = ports.free_ports(1)
    assert 1024 <= p <= 65535


def test_an_unreadable_range_file_means_linuxs_default(tmp_path):
    assert ports.ephemeral_range(str(tmp_path / "missing")) == (32768, 60999)
    (tmp_path / "bad").write_text("x y")
    assert ports.ephemeral_range(str(tmp_path / "bad")) == (32768, 60999)
