"""Ports for local trial processes to listen on (a PrometheusMetric endpoint, a TFJob's or
PyTorchJob's replicas), chosen here and bound later by the trainer.

Between the choice and the trainer's bind the port is free for anyone, so it is chosen where
nobody else takes ports by chance: below the kernel's ephemeral range
(net.ipv4.ip_local_port_range, from which every outgoing connection and every bind to port 0
draws theirs), at random, and only if it can be bound now. A port handed out is not handed out
again by this process for QUARANTINE seconds, so two jobs started close together never share
one. Where the range leaves no room below (or above) it, bind to port 0 as the fallback."""
from __future__ import annotations

import random
import socket
import threading
import time

QUARANTINE = 600.0
LOWEST = 15000                  # fixed ports of local services (databases, dev servers) sit lower
RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_TRIES = 64

_lock = threading.Lock()
_issued: dict[int, float] = {}  # port -> when it was handed out (time.monotonic)


def ephemeral_range(path: str | None = None) -> tuple[int, int]:
    try:
        with open(path or RANGE_FILE) as f:
            low, high = (int(x) for x in f.read().split()[:2])
        return low, high
    except (OSError, ValueError):
        return 32768, 60999      # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int, *, span: tuple[int, int] | None = None) -> list[int]:
    """`count` distinct ports that are free now and were not handed out lately."""
    low, high = ephemeral_range()
    if span is None:
        span = (LOWEST, low - 1) if low - LOWEST >= 1000 else (high + 1, 65535)
    first, last = span
    out: list[int] = []
    with _lock:
        now = time.monotonic()
        for port, when in list(_issued.items()):
            if now - when > QUARANTINE:
                del _issued[port]
        while len(out) < count:
            port = None
            if last - first >= 1000:
                for _ in range(_TRIES):
                    candidate = random.randint(first, last)
                    if candidate not in _issued and candidate not in out and _bindable(candidate):
                        port = candidate
                        break
            while port is None or port in out:
                port = _any_port()
            out.append(port)
            _issued[port] = now
    return out


def free_port() -> int:
    return free_ports(1)[0]
