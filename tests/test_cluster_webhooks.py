"""`katib.py serve --webhook-listen` on a cluster (the stand-in `--fake serve --api-only`):
the webhooks and the observation API over HTTPS with a certificate shared by the replicas
through the Secret katib-webhook, whose CA is patched into config/'s webhook configurations."""
from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from katib.webhook.observations import CollectorKey
from tests.apiserver_fixture import start_api_server

ROOT = Path(__file__).resolve().parent.parent


def start_controller(server, tmp_path, name, *extra):
    proc = subprocess.Popen([sys.executable, str(ROOT / "katib.py"), "serve", "--kubeconfig", str(server.kubeconfig),
                             "--db", str(tmp_path / "cluster.db"), "--webhook-listen", "127.0.0.1:0",
                             "--cert-dir", str(tmp_path / name), *extra],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    output: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "".join(output)
        output.append(line)
        if line.startswith("webhooks: https://"):
            threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True).start()
            return proc, line.split()[1], output
    raise AssertionError("".join(output))


def post(url, path, body, ca, token=None):
    ctx = ssl.create_default_context(cafile=str(ca))
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_webhooks_served_with_a_shared_certificate_and_patched_ca(tmp_path):
    server = start_api_server(tmp_path / "cluster", api_only=True, db=tmp_path / "cluster.db")
    first = second = None
    try:
        server.kubectl("apply", "-f", str(ROOT / "config" / "webhooks.yaml"))
        first, url, out = start_controller(server, tmp_path, "certs-1")
        ca = tmp_path / "certs-1" / "ca.crt"
        secret = json.loads(server.kubectl("get", "secret", "-n", "kubeflow", "katib-webhook", "-o", "json").stdout)
        assert sorted(secret["data"]) == ["ca.crt", "collector.key", "tls.crt", "tls.key"]
        assert base64.b64decode(secret["data"]["ca.crt"]) == ca.read_bytes()
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            for config in json.loads(server.kubectl("get", kind, "-o", "json").stdout)["items"]:
                bundles = {base64.b64decode(h["clientConfig"]["caBundle"]) for h in config["webhooks"]}
                assert bundles == {ca.read_bytes()}, config["metadata"]["name"]

        # a second replica reads the same certificate and key
        second, url2, _ = start_controller(server, tmp_path, "certs-2")
        assert (tmp_path / "certs-2" / "ca.crt").read_bytes() == ca.read_bytes()
        assert (tmp_path / "certs-2" / "collector.key").read_bytes() == \
            (tmp_path / "certs-1" / "collector.key").read_bytes()

        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": str(uuid.uuid4()), "operation": "CREATE", "namespace": "default",
            "kind": {"group": "kubeflow.org", "version": "v1alpha3", "kind": "Experiment"},
            "object": {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
                       "metadata": {"name": "bad", "namespace": "default"}, "spec": {"maxTrialCount": 0}}}}
        for target in (url, url2):  # either replica answers (the Service picks one)
            code, answer = post(target, "/validate-experiments", review, ca)
            assert code == 200 and answer["response"]["allowed"] is False
            assert "spec.maxTrialCount" in answer["response"]["status"]["message"]

        key = CollectorKey.load_or_create(tmp_path / "certs-1" / "collector.key")
        report = {"trial_name": "t-1", "report_id": "r1", "observation_log": {"metric_logs": [
            {"time_stamp": "2026-01-01T00:00:00Z", "metric": {"name": "accuracy", "value": "0.5"}}]}}
        assert post(url, "/observations/v1alpha3/report", report, ca, key.trial_token("t-1")) == (200, {"written": 1})
        assert post(url2, "/observations/v1alpha3/report", report, ca, key.trial_token("t-1")) == (200, {"written": 0})
        assert post(url, "/observations/v1alpha3/report", report, ca, key.trial_token("t-2"))[0] == 403
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                proc.wait(15)
        server.stop()
