"""Two controller replicas with leader election against `katib.py --fake serve --api-only` (the
stand-in cluster): one leads, the other stands by; SIGKILL of the leader mid-run (no release),
the standby takes over within the lease duration (plus its retry period: expiry is judged from
when it saw the last renewal), and the experiment finishes with exactly maxTrialCount trials,
none duplicated (one job directory per trial on the cluster's kubelet).

Topology: the api-only fake and both replicas open the same database; the fake holds the
database's control lock (it owns the objects), the replicas do not take it — the Lease decides
who reconciles. Katib's admission is installed from config/; both replicas serve the webhooks
and the observation API and publish their addresses as the Service's Endpoints. The SIGKILLed
leader's address stays there (the fake has no endpoints controller): the fake's webhook calls
and the collectors' reports (a standby answers 503 to a report) go on to the next address."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.apiserver_fixture import start_api_server
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent
LEASE = 3.0
RETRY = LEASE * 2 / 15


class Replica:
    def __init__(self, identity: str, kubeconfig: Path, db: Path, cwd: Path, *extra: str):
        self.identity = identity
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "katib.py"), "serve", "--kubeconfig", str(kubeconfig), "--leader-elect",
             "--lease-duration", str(LEASE), "--identity", identity, "--db", str(db), *extra],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append((time.monotonic(), line))

    def said(self, pattern: str) -> float | None:
        for t, line in list(self.lines):
            if re.search(pattern, line):
                return t
        return None

    def wait_for(self, pattern: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.said(pattern)
            if t is not None:
                return t
            if self.proc.poll() is not None:
                time.sleep(0.2)
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.identity} did not say {pattern!r}:\n{self.output()}")

    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _trials(api, name):
    items = api.list_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "trials",
                                              label_selector=f"experiment={name}")["items"]
    return items


def _condition(obj):
    conds = (obj.get("status") or {}).get("conditions") or []
    return conds[-1]["type"] if conds else None


def _lease(server):
    from kubernetes import client
    return client.CoordinationV1Api(server.api_client()).read_namespaced_lease("katib", "kubeflow").spec


@pytest.fixture
def cluster(tmp_path):
    server = start_api_server(tmp_path, api_only=True, db=tmp_path / "shared.db")
    server.kubectl("apply", "-k", str(ROOT / "config"))
    server.kubectl("label", "namespace", "default", "katib-metricscollector-injection=enabled")
    replicas: list[Replica] = []
    try:
        yield server, replicas
    finally:
        for r in replicas:
            r.stop()
        server.stop()


def test_one_leader_then_failover_after_sigkill_with_exactly_max_trials(cluster, tmp_path):
    server, replicas = cluster
    api = server.custom_objects()
    webhooks = ("--webhook-listen", "127.0.0.1:0", "--advertise-address", "127.0.0.1", "--cert-dir")
    a = Replica("replica-a", server.kubeconfig, server.db, tmp_path, *webhooks, str(tmp_path / "certs-a"))
    replicas.append(a)
    a.wait_for(r"^leading: lease kubeflow/katib acquired as replica-a")
    b = Replica("replica-b", server.kubeconfig, server.db, tmp_path, *webhooks, str(tmp_path / "certs-b"))
    replicas.append(b)
    b.wait_for(r"^waiting to lead")
    b.wait_for(r"^webhooks: https://")
    assert _lease(server).holder_identity == "replica-a"

    exp = shell_experiment("failover", script="sleep 1;", parallel=2, max_trials=6, x_max=30)
    api.create_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "experiments", exp)
    # mid-run: trials exist, some finished, not all
    deadline = time.monotonic() + 60
    while True:
        trials = _trials(api, "failover")
        done = [t for t in trials if _condition(t) == "Succeeded"]
        if done and len(done) < 6:
            break
        assert time.monotonic() < deadline, f"no trial finished:\n{a.output()}\n{b.output()}\n{server.output()}"
        time.sleep(0.1)
    assert b.said("^leading") is None, "the standby led while the leader was alive"
    killed_at = time.time()
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    killed = time.monotonic()

    took_over = b.wait_for(r"^leading: lease kubeflow/katib acquired as replica-b", timeout=30)
    # expiry by b's clock: at most LEASE after the last renewal it saw, which it saw at most one
    # retry late, and it tries once per retry period (with client-go's jitter up to 1.2x)
    assert took_over - killed <= LEASE + 3.5 * RETRY + 1.0, f"takeover took {took_over - killed:.1f}s"
    spec = _lease(server)
    assert spec.holder_identity == "replica-b" and spec.lease_transitions == 1

    deadline = time.monotonic() + 90
    while True:
        got = api.get_namespaced_custom_object("kubeflow.org", "v1alpha3", "default", "experiments", "failover")
        if _condition(got) == "Succeeded":
            break
        assert time.monotonic() < deadline, f"not finished: {got.get('status')}\n{b.output()}"
        time.sleep(0.2)
    trials = _trials(api, "failover")
    values = [int(t["spec"]["parameterAssignments"][0]["value"]) for t in trials]
    assert len(values) == 6 and len(set(values)) == 6, values    # 6 trials, no assignment twice
    assert all(_condition(t) == "Succeeded" for t in trials)
    assert got["status"]["trialsSucceeded"] == 6
    runs = [p.name for p in (server.work_dir / "containers").iterdir() if p.name.endswith("_main")]
    # no job's pod ran twice; a trial whose pod the webhook missed as the leader died (it was
    # mid-review) ran its job once more, and says so
    rerun = [t for t in trials if "katib.kubeflow.org/rerun-of-job" in (t["metadata"].get("annotations") or {})]
    assert len(runs) == 6 + len(rerun), sorted(runs)
    best = got["status"]["currentOptimalTrial"]
    assert float(best["observation"]["metrics"][0]["value"]) == float(f"0.{max(values)}")
    # who reconciled when: every Event names its replica (source.host); the standby wrote none
    # before the leader died (second precision: the kill's second is allowed)
    from katib.clock import rfc3339
    events = server.core().list_namespaced_event("default").items
    by = {r: [e for e in events if e.source and e.source.host == r] for r in ("replica-a", "replica-b")}
    assert by["replica-a"] and by["replica-b"], [(e.source, e.reason) for e in events]
    early = [(e.reason, e.first_timestamp) for e in by["replica-b"] if e.first_timestamp.timestamp() < int(killed_at)]
    assert early == [], f"the standby reconciled before the leader died (killed {rfc3339(killed_at)}): {early}"
    assert b.stop() == 0
    assert "released lease kubeflow/katib" in b.output()


def test_a_leader_that_loses_the_api_exits_at_once(cluster, tmp_path):
    """The cluster goes away under a leader: it cannot renew, and exits 1 with one line
    within the renew deadline (2/3 of the lease), instead of reconciling blind."""
    server, replicas = cluster
    a = Replica("replica-a", server.kubeconfig, server.db, tmp_path)
    replicas.append(a)
    a.wait_for("^leading")
    server.kill()
    stopped = time.monotonic()
    a.proc.wait(LEASE * 2 / 3 + 5)
    assert a.proc.returncode == 1
    assert time.monotonic() - stopped < LEASE * 2 / 3 + 3
    errors = [line for _, line in a.lines if line.startswith("error:")]
    assert len(errors) == 1 and "leader election lost" in errors[0], a.output()


def test_cli_errors_are_one_line_exit_2(tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("clusters: [oops\n")
    for args, expected in (
            (["--kubeconfig", str(tmp_path / "missing")], "error: kubeconfig .*missing: no such file"),
            (["--kubeconfig", str(bad)], "error: cannot load the cluster configuration from .*kubeconfig"),
    ):
        out = subprocess.run([sys.executable, str(ROOT / "katib.py"), "serve", *args], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and re.match(expected, out.stderr) and out.stderr.count("\n") == 1, out.stderr


def test_an_unreachable_api_server_is_exit_2(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = tmp_path / "kc"
    kc.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    out = subprocess.run([sys.executable, str(ROOT / "katib.py"), "serve", "--kubeconfig", str(kc)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith(f"error: cannot reach the API server https://127.0.0.1:{port}")
    assert out.stderr.count("\n") == 1, out.stderr
