"""KubeBackend (katib/backends/kube.py): the Backend contract over real HTTPS to the fake's
Kubernetes API (katib/apiserver, in this process over a FakeBackend), through a TCP proxy that
can cut every connection (a dropped watch stream is a real dropped connection); plus the HTTP
error mapping on the `kubernetes` client's ApiException objects and the configuration loading."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest
from kubernetes.client.exceptions import ApiException

from tests.backend_contract import *  # noqa: F401,F403  (the contract tests run here)
from tests.backend_contract import make, take
from katib.apiserver.server import ApiServer
from katib.backends.fake import FakeBackend
from katib.backends.kube import ConfigError, KubeBackend, load_configuration, resource_path
from katib.backends.kube_errors import error_from_api_exception
from katib.backends.resources import RESOURCES
from katib.errors import (AlreadyExists, Conflict, Expired, Forbidden, Invalid, NotFound, PermanentError,
                          TemporaryError)


class Proxy:
    """A TCP forwarder on a free loopback port; `drop()` cuts every open connection."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.refuse = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.drop()


class Cluster:
    """An ApiServer over a FakeBackend whose admission the test can swap."""

    def __init__(self, tmp):
        self.admit = None
        self.fake = FakeBackend(admit=lambda op, new, old: self.admit(op, new, old) if self.admit else new)
        # a real cluster's versions never are "0" (which a watch reads as "any version")
        self.fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        self.server = ApiServer(self.fake, host="127.0.0.1", port=0, state_dir=tmp, kubeconfig=tmp / "kubeconfig")
        self.server.start()
        self.proxy = Proxy(self.server.port)

    def backend(self) -> KubeBackend:
        configuration = load_configuration(str(self.server.kubeconfig))
        configuration.refresh_api_key_hook = None   # it would reload the host from the kubeconfig
        configuration.host = f"https://127.0.0.1:{self.proxy.port}"
        return KubeBackend(configuration)

    def compact(self):
        """Forget the watch history (an etcd compaction): the fake's and the API's cache."""
        self.fake.expire_watches()
        cache = self.server.cache
        with cache._lock:
            cache.floor = cache.latest_rv
            cache._entries.clear()

    def stop(self):
        self.proxy.close()
        self.server.stop()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kube-api")   # the CA and token, made once, reused


@pytest.fixture
def cluster(state_dir):
    """A fresh cluster per test (a list across namespaces sees only this test's objects)."""
    c = Cluster(state_dir)
    yield c
    c.stop()


@pytest.fixture
def backend(cluster):
    b = cluster.backend()
    yield b
    cluster.admit = None
    b.close()


@pytest.fixture
def backend_factory(cluster, backend):
    def factory(*, admit):
        cluster.admit = admit
        return backend
    return factory


@pytest.fixture
def namespace():
    return f"ns-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def other_namespace():
    return f"other-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settle():
    """Subscriptions deliver on their own threads: wait until nothing arrived for a while."""
    def wait():
        time.sleep(0.25)
    return wait


@pytest.fixture
def compact(cluster):
    return cluster.compact


@pytest.fixture
def drop_watches(cluster):
    return cluster.proxy.drop


# ---- beyond the contract ------------------------------------------------------------------------
def test_paths_follow_the_resource_table():
    assert resource_path(RESOURCES["Trial"], "ns", "t", "status") == \
        "/apis/kubeflow.org/v1alpha3/namespaces/ns/trials/t/status"
    assert resource_path(RESOURCES["ConfigMap"], "ns") == "/api/v1/namespaces/ns/configmaps"
    assert resource_path(RESOURCES["Namespace"], None, "n") == "/api/v1/namespaces/n"
    assert resource_path(RESOURCES["Job"]) == "/apis/batch/v1/jobs"


def test_served_kinds_come_from_discovery(backend, monkeypatch):
    """A cluster without the training-operator CRDs: kubeflow.org/v1 is not found, TFJob and
    PyTorchJob are not served (and not watched)."""
    assert {"Experiment", "Trial", "Suggestion", "Job", "Lease", "TFJob"} <= backend.served_kinds()
    real = backend._call

    def without_training_operator(method, path, **kw):
        if path == "/apis/kubeflow.org/v1":
            raise NotFound("the server could not find the requested resource")
        return real(method, path, **kw)
    monkeypatch.setattr(backend, "_call", without_training_operator)
    kinds = backend.served_kinds(refresh=True)
    assert {"Experiment", "Trial", "Job"} <= kinds and not {"TFJob", "PyTorchJob"} & kinds
    with pytest.raises(NotFound):
        backend.watch("TFJob", "")


def test_jobs_are_unstructured_dicts_and_lists_carry_kind(backend, namespace):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": namespace},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x", "unknownField": 1}]}}}}
    backend.create(job)
    tf = backend.create({"kind": "TFJob", "metadata": {"name": "tf", "namespace": namespace},
                         "spec": {"tfReplicaSpecs": {"Worker": {"replicas": 2}}}})
    assert tf["apiVersion"] == "kubeflow.org/v1" and tf["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 2
    [listed] = backend.list("Job", namespace)
    assert listed["kind"] == "Job" and listed["apiVersion"] == "batch/v1"
    assert listed["spec"]["template"]["spec"]["containers"][0]["unknownField"] == 1


def test_invalid_carries_every_cause_as_a_field_error(backend, cluster, namespace):
    from katib.errors import FieldError

    def refuse(op, new, old):
        raise Invalid([FieldError("spec.maxTrialCount", "must be greater than 0", 0),
                       FieldError("spec.objective", "must be specified", kind="Required value")],
                      kind="Experiment", name=new["metadata"]["name"])
    cluster.admit = refuse
    with pytest.raises(Invalid) as info:
        backend.create(make("Experiment", namespace, "bad"))
    assert [str(e) for e in info.value.errors] == [
        "spec.maxTrialCount: Invalid value: 0: must be greater than 0",
        "spec.objective: Required value: must be specified"]
    assert str(info.value).startswith('Experiment.kubeflow.org "bad" is invalid: [')


def test_lists_page_through_limit_and_continue(backend, namespace, monkeypatch):
    from katib.backends import kube
    monkeypatch.setattr(kube, "LIST_PAGE", 2)
    for i in range(5):
        backend.create(make("ConfigMap", namespace, f"c{i}"))
    items, version = backend.list_with_version("ConfigMap", namespace)
    assert [o["metadata"]["name"] for o in items] == [f"c{i}" for i in range(5)] and version.isdigit()


def test_an_unreachable_server_is_a_temporary_error(cluster, namespace):
    configuration = load_configuration(str(cluster.server.kubeconfig))
    configuration.refresh_api_key_hook = None
    configuration.host = f"https://127.0.0.1:{_free_port()}"
    with pytest.raises(TemporaryError, match="cannot reach the API server"):
        KubeBackend(configuration).get("Trial", namespace, "x")


def test_a_wrong_token_is_permanent(cluster, namespace):
    configuration = load_configuration(str(cluster.server.kubeconfig))
    configuration.refresh_api_key_hook = None
    configuration.api_key = {"BearerToken": "Bearer wrong"}
    with pytest.raises(PermanentError, match="401"):
        KubeBackend(configuration).get("Trial", namespace, "x")


def test_a_watch_through_a_cut_connection_ends_and_resumes_without_loss(backend, cluster, namespace):
    """Mid-stream drops, several times: the stream ends each time, a re-watch from the last
    version seen delivers every change exactly once."""
    _, version = backend.list_with_version("Trial", namespace)
    got = []
    for i in range(3):
        backend.create(make("Trial", namespace, f"t{i}"))
        [event] = take(backend.watch("Trial", version, namespace=namespace, timeout=10), 1)
        got.append(event)
        version = event.object["metadata"]["resourceVersion"]
        cluster.proxy.drop()
    assert [e.object["metadata"]["name"] for e in got] == ["t0", "t1", "t2"]


def test_a_watch_expired_mid_stream_raises_expired(backend, cluster, namespace):
    _, version = backend.list_with_version("Trial", namespace)
    backend.create(make("Trial", namespace, "a"))
    cluster.compact()
    with pytest.raises(Expired):
        list(backend.watch("Trial", version, namespace=namespace, timeout=5))


def test_informers_over_the_kube_backend_relist_after_a_drop_and_410(backend, cluster, namespace):
    """The controllers' informer on KubeBackend: after a cut and a compaction it holds exactly
    the objects the cluster holds."""
    from katib.controllers.informer import Informer

    informer = Informer(backend, "ConfigMap", namespace=namespace)
    stop = threading.Event()
    thread = threading.Thread(target=informer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        backend.create(make("ConfigMap", namespace, "a"))
        _until(lambda: {o["metadata"]["name"] for o in informer.list()} == {"a"})
        cluster.proxy.drop()
        backend.create(make("ConfigMap", namespace, "b"))
        _until(lambda: {o["metadata"]["name"] for o in informer.list()} == {"a", "b"})
        cluster.compact()
        cluster.proxy.drop()
        backend.delete("ConfigMap", namespace, "a")
        backend.create(make("ConfigMap", namespace, "c"))
        _until(lambda: {o["metadata"]["name"] for o in informer.list()} == {"b", "c"})
    finally:
        stop.set()
        cluster.proxy.drop()
        thread.join(10)


def test_watches_that_keep_dropping_back_off_and_a_refused_connection_is_temporary(backend, cluster, namespace,
                                                                                   monkeypatch):
    from katib.backends import kube
    monkeypatch.setattr(kube, "DROP_BACKOFF", (0.0, 0.5, 1.0))
    _, version = backend.list_with_version("Trial", namespace)
    dropping = threading.Event()

    def dropper():
        while not dropping.wait(0.15):
            cluster.proxy.drop()
    threading.Thread(target=dropper, daemon=True).start()
    took = []
    try:
        for _ in range(3):
            t0 = time.monotonic()
            assert list(backend.watch("Trial", version, namespace=namespace)) == []   # ended by the cut
            took.append(time.monotonic() - t0)
    finally:
        dropping.set()
    assert took[0] < 0.5 and took[1] >= 0.5 and took[2] >= 1.0, took
    backend.create(make("Trial", namespace, "after"))
    assert [e.object["metadata"]["name"] for e in take(backend.watch("Trial", version, namespace=namespace,
                                                                     timeout=10), 1)] == ["after"]
    assert backend._drops == {}   # a stream that delivered resets the backoff
    cluster.proxy.refuse = True
    cluster.proxy.drop()
    with pytest.raises(TemporaryError, match="cannot reach the API server"):
        list(backend.watch("Trial", version, namespace=namespace, timeout=1))


def _until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the error mapping on ApiException objects ---------------------------------------------------
def _exc(code: int, reason: str = "", *, causes=None, retry=None, body=None) -> ApiException:
    exc = ApiException(status=code, reason=reason)
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": f"msg {code}",
              "reason": reason, "code": code, "details": {"name": "x", "kind": "trials"}}
    if causes:
        status["details"]["causes"] = causes
    if retry:
        status["details"]["retryAfterSeconds"] = retry
    exc.body = json.dumps(status) if body is None else body
    return exc


@pytest.mark.parametrize("exc, error", [
    (_exc(404, "NotFound"), NotFound),
    (_exc(409, "AlreadyExists"), AlreadyExists),
    (_exc(409, "Conflict"), Conflict),
    (_exc(410, "Expired"), Expired),
    (_exc(403, "Forbidden"), Forbidden),
    (_exc(401, "Unauthorized"), PermanentError),
    (_exc(400, "BadRequest"), Invalid),
    (_exc(429, "TooManyRequests"), TemporaryError),
    (_exc(500, "InternalError"), TemporaryError),
    (_exc(503, "ServiceUnavailable", body="<html>bad gateway</html>"), TemporaryError),
    (_exc(504, "Timeout"), TemporaryError),
    (ApiException(status=0, reason="SSLError certificate verify failed"), TemporaryError),
])
def test_http_statuses_map_to_katib_errors(exc, error):
    mapped = error_from_api_exception(exc)
    assert isinstance(mapped, error)
    if error is AlreadyExists:
        assert not isinstance(mapped, Conflict)


def test_conflict_is_not_already_exists():
    assert not isinstance(error_from_api_exception(_exc(409, "Conflict")), AlreadyExists)


def test_invalid_keeps_every_cause_and_the_message():
    mapped = error_from_api_exception(_exc(422, "Invalid", causes=[
        {"reason": "FieldValueInvalid", "message": "Invalid value: 0: must be greater than 0",
         "field": "spec.maxTrialCount"},
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.objective"}]))
    assert isinstance(mapped, Invalid)
    assert [str(e) for e in mapped.errors] == ["spec.maxTrialCount: Invalid value: 0: must be greater than 0",
                                               "spec.objective: Required value"]
    assert str(mapped) == "msg 422"


def test_retry_after_sets_the_delay():
    assert error_from_api_exception(_exc(429, "TooManyRequests", retry=7)).delay == 7
    exc = _exc(503, "ServiceUnavailable")
    exc.headers = {"Retry-After": "3"}
    assert error_from_api_exception(exc).delay == 3
    assert error_from_api_exception(_exc(500, "InternalError")).delay == 1


# ---- configuration -----------------------------------------------------------------------------
def test_configuration_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"kubeconfig .*missing: no such file"):
        load_configuration(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text("clusters: [oops\n")
    with pytest.raises(ConfigError, match="cannot load the cluster configuration from .*bad") as info:
        load_configuration(str(bad))
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ConfigError):
        load_configuration(str(empty))


def test_in_cluster_configuration_is_used_inside_a_pod(tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    ca.write_text("not really a CA")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    configuration = load_configuration(None)
    assert configuration.host == "https://10.0.0.1:443"
    assert configuration.get_api_key_with_prefix("BearerToken").lower() == "bearer sa-token"


def test_list_is_in_creation_order(backend, namespace, other_namespace):  # noqa: F811 (replaces the contract's)
    """An API server lists in key order (namespace, then name), not in the fake's creation
    order: the contract's version of this test documents FakeBackend only. The same writes,
    the order a real cluster gives."""
    for ns, name in ((namespace, "c"), (other_namespace, "z"), (namespace, "a"), (namespace, "b")):
        backend.create(make("Trial", ns, name))
    backend.update({**backend.get("Trial", namespace, "c"), "spec": {"v": 2}})
    backend.delete("Trial", namespace, "b")
    backend.create(make("Trial", namespace, "b"))
    assert [o["metadata"]["name"] for o in backend.list("Trial", namespace)] == ["a", "b", "c"]
    everywhere = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in backend.list("Trial")]
    assert everywhere == sorted(everywhere) and len(everywhere) == 4
