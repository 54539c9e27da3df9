"""The collector program (`python -m collector`) and the observation API, with real processes,
real TLS and a real SQLite file: it waits for the trainer, reports with the trial's token, keeps
its report while katib is down and delivers it once katib is back, exactly once."""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from katib.db import ObservationStore, connect
from katib.webhook import observations as obs
from katib.webhook.server import WebhookServer, certificates
from collector.report import deliver, spool

ROOT = Path(__file__).resolve().parent.parent
T = "2026-01-02T03:04:05Z"


@pytest.fixture
def katib(tmp_path):
    """An observation API on a free port; `.start()`/`.stop()` can be called again later."""
    class Katib:
        def __init__(self):
            self.db = connect(f"sqlite:///{tmp_path / 'k.db'}")
            self.db.create_tables()
            self.store = ObservationStore(self.db)
            self.key = obs.CollectorKey.load_or_create(tmp_path / "collector.key")
            self.certs = certificates(tmp_path / "certs", ["127.0.0.1"])
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.server = None

        @property
        def url(self):
            return f"https://127.0.0.1:{self.port}"

        def start(self):
            self.server = WebhookServer({}, api=obs.handlers(self.store, self.key), host="127.0.0.1",
                                        port=self.port, certs=self.certs)
            self.server.start()

        def stop(self):
            if self.server is not None:
                self.server.stop()
                self.server = None

        def token_file(self, trial):
            path = tmp_path / f"{trial}.token"
            path.write_text(self.key.trial_token(trial))
            return str(path)

        def call(self, op, body, token):
            ctx = ssl.create_default_context(cafile=str(self.certs.files.ca_cert))
            req = urllib.request.Request(f"{self.url}{obs.PREFIX}/{op}", data=json.dumps(body).encode(),
                                         method="POST", headers={"Authorization": f"Bearer {token}"} if token else {})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

    k = Katib()
    yield k
    k.stop()
    k.db.close()


def trainer(tmp_path, *, lines, succeed=True, delay=0.0):
    """A training process writing its metrics file, then (on success) the pid marker, as the
    rewritten training command of a pod does."""
    metrics = tmp_path / "m" / "metrics.log"
    metrics.parent.mkdir(exist_ok=True)
    body = "".join(f"echo '{line}'; " for line in lines)
    end = f"echo completed > {metrics.parent}/$$.pid" if succeed else "exit 3"
    proc = subprocess.Popen(["sh", "-c", f"sleep {delay}; ({body}) > {metrics} && {end}"])
    return proc, metrics


def collector(katib, metrics, trial, pid, *extra, token_file=None):
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "-t", trial, "-m", "accuracy;loss", "-path", str(metrics),
         "-s", f"127.0.0.1:{katib.port}", "-token-file", token_file or katib.token_file(trial),
         "-ca-file", str(katib.certs.files.ca_cert), "-wait-pid", str(pid), "-p", "0.1", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def values(katib, trial):
    return [(log.name, log.value) for log in katib.store.get(trial)]


def test_waits_for_the_trainer_then_reports(katib, tmp_path):
    katib.start()
    lines = ["epoch 1 starting", f"{T} accuracy=0.5 loss=0.25", f"{T} accuracy=0.75"]
    proc, metrics = trainer(tmp_path, lines=lines, delay=0.5)
    col = collector(katib, metrics, "t1", proc.pid)
    out, err = col.communicate(timeout=60)
    proc.wait()
    assert col.returncode == 0, err
    assert values(katib, "t1") == [("accuracy", "0.5"), ("loss", "0.25"), ("accuracy", "0.75")]
    # the training output is in the file, not in any container log: the collector echoes it (§3.1)
    echoed = err.splitlines()
    assert [line for line in echoed if line in lines] == lines, err
    assert list((metrics.parent / ".katib-spool").iterdir()) == []  # delivered, nothing left


def test_failed_training_is_not_reported(katib, tmp_path):
    katib.start()
    proc, metrics = trainer(tmp_path, lines=[f"{T} accuracy=0.5"], succeed=False)
    col = collector(katib, metrics, "t2", proc.pid)
    _, err = col.communicate(timeout=60)
    proc.wait()
    assert col.returncode == 1 and f"Process {proc.pid} hadn't completed" in err
    assert values(katib, "t2") == []


def test_katib_down_during_the_report_then_back(katib, tmp_path):
    proc, metrics = trainer(tmp_path, lines=[f"{T} accuracy=0.5 loss=0.25"])
    col = collector(katib, metrics, "t3", proc.pid, "-deadline", "60")
    time.sleep(2.0)  # katib is not listening yet: the collector retries
    assert col.poll() is None
    spooled = list((metrics.parent / ".katib-spool").glob("report-*.json"))
    assert len(spooled) == 1
    katib.start()
    _, err = col.communicate(timeout=60)
    proc.wait()
    assert col.returncode == 0, err
    assert "retrying" in err
    assert values(katib, "t3") == [("accuracy", "0.5"), ("loss", "0.25")]


def test_a_report_whose_answer_was_lost_is_not_stored_twice(katib, tmp_path):
    katib.start()
    directory = tmp_path / "spool"
    path = spool(directory, "t4", [{"time_stamp": T, "metric": {"name": "accuracy", "value": "0.5"}}])
    copy = tmp_path / "copy.json"
    shutil.copy(path, copy)
    token = katib.key.trial_token("t4")
    ca = str(katib.certs.files.ca_cert)
    assert deliver(katib.url, directory, token=token, ca_file=ca) == 1
    shutil.copy(copy, path)  # as if the answer never arrived: the same report is sent again
    assert deliver(katib.url, directory, token=token, ca_file=ca) == 1
    assert values(katib, "t4") == [("accuracy", "0.5")]


def test_deadline_keeps_the_report_and_says_where(katib, tmp_path):
    proc, metrics = trainer(tmp_path, lines=[f"{T} accuracy=0.5"])
    col = collector(katib, metrics, "t5", proc.pid, "-deadline", "1.5")
    _, err = col.communicate(timeout=60)
    proc.wait()
    assert col.returncode == 1
    assert "could not report to https://127.0.0.1:" in err and "the report is kept in" in err
    [kept] = list((metrics.parent / ".katib-spool").glob("report-*.json"))
    assert json.loads(kept.read_text())["observation_log"]["metric_logs"][0]["metric"]["value"] == "0.5"


def test_another_trials_token_is_refused(katib, tmp_path):
    katib.start()
    proc, metrics = trainer(tmp_path, lines=[f"{T} accuracy=0.5"])
    col = collector(katib, metrics, "t6", proc.pid, token_file=katib.token_file("someone-else"))
    _, err = col.communicate(timeout=60)
    proc.wait()
    assert col.returncode == 1 and "HTTP 403" in err and "kept in" in err
    assert values(katib, "t6") == []


def test_observation_api_get_delete_and_scoping(katib):
    katib.start()
    token = katib.key.trial_token("t7")
    logs = [{"time_stamp": "2026-01-02T03:04:05Z", "metric": {"name": "accuracy", "value": "0.5"}},
            {"time_stamp": "2026-01-02T03:05:05Z", "metric": {"name": "loss", "value": "0.1"}}]
    assert katib.call("report", {"trial_name": "t7", "observation_log": {"metric_logs": logs}}, token) == \
        (200, {"written": 2})
    code, answer = katib.call("get", {"trial_name": "t7", "start_time": "2026-01-02T03:05:00Z"}, token)
    assert code == 200 and answer["observation_log"]["metric_logs"] == [logs[1]]
    code, answer = katib.call("get", {"trial_name": "t7", "metric_name": "accuracy"}, token)
    assert answer["observation_log"]["metric_logs"] == [logs[0]]
    assert katib.call("get", {"trial_name": "t7"}, katib.key.trial_token("t8"))[0] == 403
    assert katib.call("get", {"trial_name": "t7"}, None)[0] == 401
    assert katib.call("delete", {"trial_name": "t7"}, token) == (200, {"deleted": 2})
    assert values(katib, "t7") == []


@pytest.mark.parametrize("body,reason", [
    ({"observation_log": {"metric_logs": []}}, "trial_name: required"),
    ({"trial_name": "t9"}, "observation_log: required"),
    ({"trial_name": "t9", "observation_log": {"metric_logs": {}}}, "metric_logs: must be a list"),
    ({"trial_name": "t9", "observation_log": {"metric_logs": [{"time_stamp": T}]}}, "metric_logs[0].metric: required"),
    ({"trial_name": "t9", "observation_log": {"metric_logs": [{"time_stamp": T, "metric": {"name": "", "value": "1"}}]}},
     "metric.name: required"),
    ({"trial_name": "t9", "observation_log": {"metric_logs": [{"time_stamp": "yesterday",
                                                               "metric": {"name": "a", "value": "1"}}]}},
     "Error parsing start time yesterday"),
    ({"trial_name": "t9", "report_id": 5, "observation_log": {"metric_logs": []}}, "report_id: must be a string"),
])
def test_bad_payloads_get_400_with_the_reason(katib, body, reason):
    katib.start()
    code, answer = katib.call("report", body, katib.key.trial_token("t9"))
    assert code == 400 and reason in answer["error"]
    assert values(katib, "t9") == []


def test_key_file_is_private_and_stable(tmp_path):
    key = obs.CollectorKey.load_or_create(tmp_path / "k" / "collector.key")
    assert os.stat(tmp_path / "k" / "collector.key").st_mode & 0o777 == 0o600
    again = obs.CollectorKey.load_or_create(tmp_path / "k" / "collector.key")
    assert key.trial_token("a") == again.trial_token("a") != again.trial_token("b")
    assert obs.CollectorKey.load_or_create(tmp_path / "other.key").trial_token("a") != key.trial_token("a")


EXPORTER = r"""
import http.server, sys, threading, time
state = {"accuracy": "0.1"}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("# HELP accuracy validation accuracy\n# TYPE accuracy gauge\n"
                f"accuracy{{split=\"val\"}} {state['accuracy']}\nloss 0.5 1700000000000\nother 7\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
for value in ("0.2", "0.3", "0.4", "0.5"):
    time.sleep(0.4)
    state["accuracy"] = value
time.sleep(0.4)
"""


def test_prometheus_metrics_are_scraped_while_the_trainer_runs(katib, tmp_path):
    katib.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "exporter.py"
    script.write_text(EXPORTER)
    proc = subprocess.Popen([sys.executable, str(script), str(port)])
    col = subprocess.Popen(
        [sys.executable, "-m", "collector", "-t", "p1", "-m", "accuracy;loss", "-kind", "PrometheusMetric",
         "-url", f"http://127.0.0.1:{port}/metrics", "-s", f"127.0.0.1:{katib.port}",
         "-token-file", katib.token_file("p1"), "-ca-file", str(katib.certs.files.ca_cert),
         "-spool", str(tmp_path / "spool"), "-wait-pid", str(proc.pid), "-p", "0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = col.communicate(timeout=60)
    proc.wait()
    assert col.returncode == 0, err
    got = values(katib, "p1")
    accuracy = [v for name, v in got if name == "accuracy"]
    assert accuracy[-1] == "0.5" and accuracy == sorted(set(accuracy))  # each change once, in order
    assert len(accuracy) >= 3
    assert [v for name, v in got if name == "loss"] == ["0.5"]  # own timestamp: recorded once
    assert all(name in ("accuracy", "loss") for name, _ in got)


def test_katib_resolve_names_the_service_addresses_tried_in_turn(katib, tmp_path):
    """$KATIB_RESOLVE (the local pod kubelet's stand-in for cluster DNS): the report for
    katib.kubeflow.svc:443 goes to the listed addresses in turn (the first refuses), and the
    certificate must be for the service name."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]   # nothing listens here once closed
    for hosts, delivered in ((["katib.kubeflow.svc"], True), (["other.example"], False)):
        certs = certificates(tmp_path / hosts[0], hosts)
        server = WebhookServer({}, api=obs.handlers(katib.store, katib.key), host="127.0.0.1", port=0, certs=certs)
        server.start()
        try:
            proc, metrics = trainer(tmp_path, lines=[f"{T} accuracy=0.5"])
            proc.wait()
            env = {**os.environ, "KATIB_RESOLVE": f"katib.kubeflow.svc:443=127.0.0.1:{dead}|127.0.0.1:{server.port}"}
            col = subprocess.run(
                [sys.executable, "-m", "collector", "-t", "t-svc", "-m", "accuracy", "-path", str(metrics),
                 "-s", "katib.kubeflow.svc:443", "-token-file", katib.token_file("t-svc"),
                 "-ca-file", str(certs.files.ca_cert), "-wait-pid", str(proc.pid), "-p", "0.1", "-deadline", "3"],
                cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        finally:
            server.stop()
        assert (col.returncode == 0) == delivered, col.stderr
        if delivered:
            assert "report attempt 1 failed" in col.stderr and values(katib, "t-svc") == [("accuracy", "0.5")]
        else:
            assert "CERTIFICATE_VERIFY_FAILED" in col.stderr or "certificate" in col.stderr, col.stderr
