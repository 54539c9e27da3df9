"""Reporting collected metrics to the katib process, never losing them.

A report is first written to the spool directory (atomically, with a report id), then sent to
`POST <server>/observations/v1alpha3/report` with the trial's bearer token. It leaves the spool
only when katib has answered 200. Connection errors, timeouts and 5xx answers are retried with
exponential backoff (0.5 s doubling to 10 s) until the deadline; a report spooled by an earlier
run that died is sent first. The report id makes a retry harmless: katib applies an id once.
A 4xx answer (bad payload, wrong credential) is not retried: it would never succeed.

`$KATIB_RESOLVE` (`host:port=ip:port|ip:port...,...`, set by katib's local pod kubelet in place
of cluster DNS and a Service) sends a request for host:port to one of the addresses listed, the
next one at each attempt (as a Service spreads connections over its endpoints); TLS still
verifies the certificate for host."""
from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Callable

PATH = "/observations/v1alpha3/report"


class ReportError(RuntimeError):
    """The report could not be delivered; str() says why and where it is spooled."""


def server_url(address: str) -> str:
    """`-s` as upstream passes it (`host:port`) or a URL; https unless http:// is given."""
    address = address.strip().rstrip("/")
    if address.startswith(("https://", "http://")):
        return address
    return "https://" + address


def spool(directory: Path, trial_name: str, metric_logs: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    report_id = str(uuid.uuid4())
    body = {"trial_name": trial_name, "report_id": report_id, "observation_log": {"metric_logs": metric_logs}}
    path = directory / f"report-{report_id}.json"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def pending(directory: Path) -> list[Path]:
    return sorted(directory.glob("report-*.json"), key=lambda p: p.stat().st_mtime) if directory.is_dir() else []


def resolve_map(text: str | None) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """`host:port=ip:port|ip:port,...` → {(host, port): [(ip, port), ...]}; malformed parts are ignored."""
    out: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for item in (text or "").split(","):
        name, sep, targets = item.strip().partition("=")
        host, _, port = name.rpartition(":")
        addresses = []
        for target in targets.split("|"):
            ip, _, tport = target.strip().rpartition(":")
            if ip and tport.isdigit():
                addresses.append((ip, int(tport)))
        if sep and host and port.isdigit() and addresses:
            out[(host, int(port))] = addresses
    return out


class _ResolvedHTTPS(urllib.request.HTTPSHandler):
    """Connects to the `attempt`-th address $KATIB_RESOLVE lists for the URL's host (cycling),
    verifying the certificate for the host."""

    def __init__(self, resolved: dict, context: ssl.SSLContext | None, attempt: int):
        super().__init__(context=context)
        self._resolved, self._context, self._attempt = resolved, context, attempt

    def https_open(self, req):
        resolved, context, attempt = self._resolved, self._context, self._attempt

        class Connection(http.client.HTTPSConnection):
            def connect(self):
                choices = resolved.get((self.host, self.port)) or [(self.host, self.port)]
                sock = socket.create_connection(choices[attempt % len(choices)], self.timeout)
                self.sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=self.host)
        return self.do_open(Connection, req)


def _send(url: str, body: bytes, *, token: str, context: ssl.SSLContext | None, timeout: float,
          attempt: int = 0) -> tuple[int, str]:
    resolved = resolve_map(os.environ.get("KATIB_RESOLVE"))
    opener = urllib.request.build_opener(_ResolvedHTTPS(resolved, context, attempt)) if resolved else None
    request = urllib.request.Request(url + PATH, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with (opener.open(request, timeout=timeout) if opener is not None
              else urllib.request.urlopen(request, context=context, timeout=timeout)) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def deliver(address: str, directory: Path, *, token: str, ca_file: str | None = None, ca_pem: str | None = None,
            deadline: float = 600.0,
            log: Callable[[str], None] = lambda _msg: None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Send every spooled report; returns how many were delivered. ReportError when one is
    refused or the deadline (seconds from now) passes first; what is left stays spooled."""
    url = server_url(address)
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=ca_file, cadata=ca_pem or None)
    end = time.monotonic() + deadline
    delivered = 0
    for path in pending(directory):
        body = path.read_bytes()
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                status, text = _send(url, body, token=token, context=context, attempt=attempt - 1,
                                     timeout=max(1.0, min(30.0, end - time.monotonic())))
                problem = None if status == 200 else f"HTTP {status}: {text.strip()[:300]}"
            except (OSError, urllib.error.URLError) as err:  # refused, reset, timeout, TLS
                status, problem = 0, f"{getattr(err, 'reason', err)}"
            if status == 200:
                path.unlink()
                delivered += 1
                break
            if 400 <= status < 500 and status not in (408, 429):
                raise ReportError(f"katib refused the report ({problem}); it is kept in {path}")
            left = end - time.monotonic()
            if left <= 0:
                raise ReportError(f"could not report to {url} within {deadline:g}s after {attempt} attempt(s) "
                                  f"(last: {problem}); the report is kept in {path}")
            log(f"report attempt {attempt} failed ({problem}); retrying in {min(delay, left):.1f}s")
            sleep(min(delay, left))
            delay = min(delay * 2, 10.0)
    return delivered
