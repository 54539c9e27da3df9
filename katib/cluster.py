"""Wiring of `katib.py serve` on a cluster: KubeBackend → (leader election) → DB + observation
store → the controllers' Manager. No local kubelet: the cluster runs the jobs.

The database here is Katib's DB service (observation logs, as upstream's katib-db), shared by
every replica and, in the test topology, with `katib.py --fake serve --api-only` whose kubelet
collects the trials' metrics into it. So this process does not take the database's control
lock (katib.db.control: that lock says which process owns the *objects* of a fake cluster,
and the api-only fake holds it); which replica reconciles is decided by the Lease instead,
and a replica opens the database only once it leads (a standby touches nothing)."""
from __future__ import annotations

import logging
import threading

from katib.errors import KatibError

logger = logging.getLogger(__name__)


class ClusterUnusable(KatibError):
    """The cluster cannot run Katib's controllers (unreachable, no Experiment CRD...)."""


def connect_cluster(kubeconfig: str | None, *, identity: str = ""):
    """A KubeBackend on the cluster, checked to answer and to serve Katib's kinds;
    ConfigError or ClusterUnusable with one line otherwise. `identity` goes into the Events
    this replica records (source.host), as client-go's recorder names its node."""
    from katib.backends.kube import KubeBackend, load_configuration

    configuration = load_configuration(kubeconfig)
    backend = KubeBackend(configuration, event_host=identity)
    try:
        kinds = backend.served_kinds()
    except KatibError as err:
        backend.close()
        raise ClusterUnusable(f"cannot reach the API server {configuration.host}: {err}") from None
    missing = [k for k in ("Experiment", "Suggestion", "Trial") if k not in kinds]
    if missing:
        backend.close()
        raise ClusterUnusable(f"the cluster at {configuration.host} has no {', '.join(missing)} resource "
                              f"(kubeflow.org/v1alpha3): install Katib's CRDs first (kubectl apply -k config/)")
    return backend


class ClusterControlPlane:
    """The controllers on a cluster. `start()` opens the database and starts reconciling (call
    it once this replica leads); `failed`/`failure` as FakeControlPlane's."""

    def __init__(self, backend, *, db_url: str | None, status_interval: float = 0.2, seed: int | None = None,
                 clock=None):
        from katib.clock import Clock
        from katib.config import KatibConfig

        self.backend = backend
        self.db_url = db_url
        self.clock = clock or Clock()
        self.config = KatibConfig.load(None)
        self.status_interval = status_interval
        self.seed = seed
        self.failure: str | None = None
        self.failed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.db = None
        self.manager = None

    def fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
        self.failed.set()

    def start(self) -> None:
        from katib.controllers.context import Context
        from katib.controllers.manager import Manager
        from katib.controllers.suggestion import SuggestionWorkers
        from katib.db import ObservationStore, connect
        from katib.runtime import get_configmap_from_backend

        self.db = connect(self.db_url)
        observations = ObservationStore(self.db)
        ctx = Context(backend=self.backend, db=self.db, clock=self.clock, config=self.config,
                      get_configmap=get_configmap_from_backend(lambda: self.backend),
                      status_interval=self.status_interval, seed=self.seed, observations=observations)
        ctx.suggestion_executor = SuggestionWorkers()  # algorithm calls off the reconcile thread
        self.manager = Manager(ctx, on_fatal=self.fail)
        self.manager.start()
        self._thread = threading.Thread(target=self._run, name="manager", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from katib.runtime import one_line
        try:
            self.manager.run(self._stop, poll=0.1)
        except BaseException as err:  # noqa: BLE001 - the thread must not die silently
            logger.exception("the controllers stopped")
            self.fail(f"the controllers stopped: {one_line(err)}")

    def stop(self) -> None:
        self._stop.set()
        if self.manager is not None:
            self.manager.queue.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.manager is not None:
            self.manager.close()
        if self.db is not None:
            try:
                self.db.close()
            except Exception:  # noqa: BLE001
                logger.debug("db close failed", exc_info=True)



class HealthServer:
    """Plain HTTP /healthz and /readyz for the Deployment's probes (config/deployment.yaml's
    `health` port): healthz 200 while no worker has failed, readyz 200 once the cluster
    answered (a standby is ready: it serves nothing that needs the lease). `port` 0 picks a
    free one (see `.port`)."""

    def __init__(self, host: str, port: int, *, healthy, ready):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        checks = {"/healthz": healthy, "/readyz": ready, "/livez": healthy}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                check = checks.get(self.path.split("?", 1)[0])
                if check is None:
                    code, text = 404, "not found"
                else:
                    code, text = (200, "ok") if check() else (503, "not ok")
                body = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # probes every few seconds: not worth a log line
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (HOST may be empty: all interfaces) → (host, port); ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--health-listen {text}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)
