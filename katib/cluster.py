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


def parse_listen(text: str, flag: str = "--health-listen") -> tuple[str, int]:
    """HOST:PORT (HOST may be empty: all interfaces) → (host, port); ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{flag} {text}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


# -- webhooks and the observation API (every replica serves them; the Service picks one) ---------
WEBHOOK_SECRET = "katib-webhook"
WEBHOOK_CONFIGURATIONS = (("MutatingWebhookConfiguration", "katib-mutating-webhook-config"),
                          ("ValidatingWebhookConfiguration", "katib-validating-webhook-config"))
_SECRET_FILES = ("ca.crt", "tls.crt", "tls.key", "collector.key")


def shared_certificates(backend, *, namespace: str, service: str, cert_dir: str):
    """The webhook server's certificate and the collectors' key, the same on every replica: the
    first replica generates them and stores them in the Secret `katib-webhook`; the others, and
    restarts, read it. A `cert_dir` that already holds tls.crt/tls.key (a mounted Secret,
    cert-manager) is used as it is. Returns (Certificates, CollectorKey)."""
    import base64
    import os
    from pathlib import Path

    from katib.errors import AlreadyExists, NotFound
    from katib.webhook.observations import CollectorKey
    from katib.webhook.server import certificates

    directory = Path(cert_dir)
    hosts = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local"]
    if (directory / "tls.crt").exists() and (directory / "tls.key").exists():
        return certificates(directory, hosts), CollectorKey.load_or_create(directory / "collector.key")

    def write(data: dict) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _SECRET_FILES:
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64decode(data[name]))

    try:
        write(backend.get("Secret", namespace, WEBHOOK_SECRET).get("data") or {})
    except NotFound:
        certs = certificates(directory, hosts)                     # generated into cert_dir
        key = CollectorKey.load_or_create(directory / "collector.key")
        data = {name: base64.b64encode((directory / name).read_bytes()).decode() for name in _SECRET_FILES}
        try:
            backend.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": {"name": WEBHOOK_SECRET, "namespace": namespace}, "data": data})
            return certs, key
        except AlreadyExists:  # another replica was first: use its
            write(backend.get("Secret", namespace, WEBHOOK_SECRET).get("data") or {})
    except KeyError as err:
        raise ClusterUnusable(f"Secret {namespace}/{WEBHOOK_SECRET} has no {err.args[0]}: delete it to have "
                              f"it made again") from None
    return certificates(directory, hosts), CollectorKey.load_or_create(directory / "collector.key")


def patch_ca_bundle(backend, ca_pem: bytes) -> list[str]:
    """Put our CA into every webhook of Katib's two webhook configurations (as upstream's
    controller does at start); returns the configurations changed. A missing one is skipped."""
    import base64

    from katib.errors import Conflict, NotFound

    bundle = base64.b64encode(ca_pem).decode()
    changed = []
    for kind, name in WEBHOOK_CONFIGURATIONS:
        for _ in range(5):
            try:
                obj = backend.get(kind, "", name)
            except NotFound:
                logger.warning("%s %s not found: its caBundle is not set (kubectl apply -k config/)", kind, name)
                break
            hooks = obj.get("webhooks") or []
            if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
                break
            for hook in hooks:
                hook.setdefault("clientConfig", {})["caBundle"] = bundle
            try:
                backend.update(obj)
                changed.append(name)
                break
            except Conflict:
                continue
    return changed


class _LeaderStore:
    """The observation store of the leader's database; a standby (no database open) answers
    503 and the collector retries, reaching the leader through the Service eventually."""

    def __init__(self, plane: ClusterControlPlane):
        self.plane = plane

    def __getattr__(self, op):
        from katib.db import ObservationStore
        from katib.errors import TemporaryError

        if self.plane.db is None:
            raise TemporaryError("this replica is not the leader: the observation store is elsewhere")
        return getattr(ObservationStore(self.plane.db), op)


def start_webhooks(backend, plane: ClusterControlPlane, *, host: str, port: int, cert_dir: str,
                   namespace: str, service: str = "katib"):
    """The HTTPS server of the experiment and pod webhooks and of the observation API, with the
    shared certificate, and the CA patched into the webhook configurations. Returns the server."""
    from katib.errors import NotFound
    from katib.runtime import get_configmap_from_backend
    from katib.webhook import experiment, observations, pod
    from katib.webhook.server import WebhookServer

    certs, key = shared_certificates(backend, namespace=namespace, service=service, cert_dir=cert_dir)
    get_configmap = get_configmap_from_backend(lambda: backend)

    def config():
        cm = get_configmap(namespace, "katib-config")
        from katib.config import KatibConfig
        return KatibConfig.from_configmap(cm) if cm is not None else plane.config

    def namespace_labels(ns: str) -> dict | None:
        try:
            return (backend.get("Namespace", "", ns).get("metadata") or {}).get("labels") or {}
        except NotFound:
            return None

    def get_trial(ns: str, name: str) -> dict | None:
        try:
            return backend.get("Trial", ns, name)
        except NotFound:
            return None

    ca_pem = certs.ca_bundle()
    report_address = f"{service}.{namespace}.svc:443"

    def sidecar_env(trial: dict) -> list[dict]:
        env = [{"name": "KATIB_COLLECTOR_TOKEN", "value": key.trial_token(trial["metadata"]["name"])}]
        if ca_pem:
            env.append({"name": "KATIB_CA_PEM", "value": ca_pem.decode()})
        return env

    handlers = {
        "/mutate-experiments": lambda body: experiment.mutate(body, katib_namespace=namespace),
        "/validate-experiments": lambda body: experiment.validate(
            body, config=config(), get_configmap=get_configmap, namespace_labels=namespace_labels,
            katib_namespace=namespace),
        "/mutate-pods": lambda body: pod.mutate(body, get_trial=get_trial, config=config(),
                                                report_address=report_address, sidecar_env=sidecar_env),
    }
    server = WebhookServer(handlers, api=observations.handlers(_LeaderStore(plane), key), host=host, port=port,
                           certs=certs)
    server.start()
    if ca_pem:
        for name in patch_ca_bundle(backend, ca_pem):
            logger.info("caBundle of %s set", name)
    return server


def advertise(backend, *, namespace: str, service: str, ip: str, port: int) -> None:
    """Publish ip:port as an address of the Service's Endpoints (`--advertise-address`): how a
    fake cluster, which has no endpoints controller, finds the webhooks of this replica. Each
    replica adds its own subset (replicas listen on different ports) and removes it at stop."""
    from katib.errors import NotFound

    try:
        ports = (backend.get("Service", namespace, service).get("spec") or {}).get("ports") or []
    except NotFound:
        ports = []
    names = [p.get("name") or "" for p in ports] or ["webhook"]
    subset = {"addresses": [{"ip": ip}], "ports": [{"name": n, "port": port, "protocol": "TCP"} for n in names]}
    _edit_endpoints(backend, namespace, service,
                    lambda subsets: [s for s in subsets if not _is_ours(s, ip, port)] + [subset])


def withdraw(backend, *, namespace: str, service: str, ip: str, port: int) -> None:
    """Remove what `advertise` published (best effort: a failure is logged)."""
    try:
        _edit_endpoints(backend, namespace, service,
                        lambda subsets: [s for s in subsets if not _is_ours(s, ip, port)])
    except Exception as err:  # noqa: BLE001 - stopping: the next start replaces a stale entry
        logger.warning("Endpoints %s/%s: our address %s:%s not withdrawn: %s", namespace, service, ip, port, err)


def _is_ours(subset: dict, ip: str, port: int) -> bool:
    return ([a.get("ip") for a in subset.get("addresses") or ()] == [ip]
            and {p.get("port") for p in subset.get("ports") or ()} == {port})


def _edit_endpoints(backend, namespace: str, service: str, edit) -> None:
    from katib.errors import AlreadyExists, Conflict, NotFound

    for _ in range(10):
        try:
            obj = backend.get("Endpoints", namespace, service)
        except NotFound:
            obj = None
        subsets = edit(list((obj or {}).get("subsets") or []))
        try:
            if obj is None:
                backend.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {
                    "name": service, "namespace": namespace, "labels": {"app": service}}, "subsets": subsets})
            elif subsets != (obj.get("subsets") or []):
                obj["subsets"] = subsets
                backend.update(obj)
            return
        except (Conflict, AlreadyExists):
            continue
    raise ClusterUnusable(f"Endpoints {namespace}/{service} kept changing: our address is not published")
