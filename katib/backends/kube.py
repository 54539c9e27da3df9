"""KubeBackend: the Backend protocol on a real API server, through the `kubernetes` client.

Objects stay unstructured dicts (Jobs, TFJobs, PyTorchJobs included): requests are built from
the resource table (katib/backends/resources.py) and sent with the client's ApiClient, which
brings the kubeconfig / in-cluster authentication and TLS. HTTP answers become katib.errors
in kube_errors. Watches are streamed JSON lines; a dropped stream just ends (the caller
watches again from the last version it saw, after a growing delay when streams keep dropping),
410 Gone is Expired (the caller relists)."""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from typing import Callable, Iterable, Iterator
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from katib.backends.base import ADDED, BOOKMARK, DELETED, MODIFIED, Handler, WatchEvent
from katib.backends.kube_errors import error_from_api_exception, error_from_status
from katib.backends.resources import RESOURCES, Resource
from katib.clock import Clock
from katib.errors import Conflict, Expired, FieldError, Invalid, KatibError, NotFound, TemporaryError

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = (5.0, 30.0)       # (connect, read) seconds for ordinary requests
WATCH_CONNECT_TIMEOUT = 5.0
DROP_BACKOFF = (0.0, 0.2, 0.5, 1.0, 2.0, 5.0)   # before re-watching after consecutive drops
LIST_PAGE = 500
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class ConfigError(KatibError):
    """The cluster's configuration cannot be loaded (one line: which file, what is wrong)."""


def load_configuration(kubeconfig: str | None = None, *, context: str | None = None) -> k8s.Configuration:
    """A client Configuration: from `kubeconfig` if given, else in-cluster when running in a
    pod (KUBERNETES_SERVICE_HOST), else the default kubeconfig ($KUBECONFIG, ~/.kube/config)."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig:
            if not os.path.isfile(kubeconfig):
                raise ConfigError(f"kubeconfig {kubeconfig}: no such file")
            if not os.access(kubeconfig, os.R_OK):
                raise ConfigError(f"kubeconfig {kubeconfig}: not readable")
            k8s_config.load_kube_config(config_file=kubeconfig, context=context,
                                        client_configuration=configuration, persist_config=False)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(context=context, client_configuration=configuration,
                                        persist_config=False)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - yaml, base64, file errors...: all mean an unusable config
        where = kubeconfig or ("the in-cluster service account" if os.environ.get("KUBERNETES_SERVICE_HOST")
                               else os.environ.get("KUBECONFIG") or "~/.kube/config")
        text = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(f"cannot load the cluster configuration from {where}: {text}") from None
    return configuration


def resource_path(res: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
    if res.namespaced and namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    path = f"{base}/{res.plural}"
    if name is not None:
        path += "/" + quote(name, safe="")
    if subresource:
        path += "/" + subresource
    return path


def selector_text(labels: dict[str, str] | str | None) -> str | None:
    if not labels:
        return None
    if isinstance(labels, str):
        return labels
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _resource(kind: str) -> Resource:
    res = RESOURCES.get(kind)
    if res is None:
        raise NotFound(f'the server doesn\'t have a resource type "{kind}"')
    return res


def _resolve(obj: dict) -> Resource:
    return _resource(obj.get("kind") or "")


class KubeBackend:
    """The Backend protocol over HTTPS to an API server. Thread-safe (urllib3's pool)."""

    def __init__(self, configuration: k8s.Configuration | None = None, *, api_client: k8s.ApiClient | None = None,
                 event_source: str = "katib-controller", event_host: str = "", clock: Clock | None = None,
                 request_timeout: tuple[float, float] = REQUEST_TIMEOUT):
        if api_client is None:
            configuration = configuration or load_configuration()
            configuration.retries = False          # callers retry (work queue, informers)
            configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 64)
            api_client = k8s.ApiClient(configuration)
        self.api = api_client
        self.host = api_client.configuration.host
        self.clock = clock or Clock()
        self.request_timeout = request_timeout
        self._event_source = {"component": event_source, **({"host": event_host} if event_host else {})}
        self._served: frozenset[str] | None = None
        self._events_lock = threading.Lock()
        self._events: dict[tuple, str] = {}   # aggregation key -> name of the Event we wrote
        self._drops: dict[str, int] = {}      # kind -> consecutive watches that ended by a drop
        self._closed = threading.Event()      # ends the subscriptions' threads

    def close(self) -> None:
        self._closed.set()
        self.api.close()

    # ---- transport --------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body=None,
              timeout=None, content_type: str = "application/json"):
        """One request; returns the urllib3 response (not read) of a 2xx answer, raises the
        katib error of any other, TemporaryError when the server cannot be reached."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            query = list(query or [])
            self.api.update_params_for_auth(headers, query, ["BearerToken"], path, method, body)
            url = self.api.configuration.host.rstrip("/") + path
            if query:
                url += "?" + urlencode(query)
            answer = self.api.rest_client.request(method, url, headers=headers, body=body,
                                                  _request_timeout=timeout or self.request_timeout)
        except ApiException as err:
            raise error_from_api_exception(err) from None
        except _TRANSPORT_ERRORS as err:
            raise TemporaryError(f"cannot reach the API server {self.host}: {_reason(err)}") from None
        resp = answer.response
        if 200 <= resp.status < 300:
            return resp
        try:
            data = resp.data
        except _TRANSPORT_ERRORS:
            data = b""
        finally:
            resp.release_conn()
        exc = ApiException(status=resp.status, reason=resp.reason)
        exc.body, exc.headers = data, resp.headers
        raise error_from_api_exception(exc)

    def _call(self, method: str, path: str, **kw) -> dict:
        resp = self._send(method, path, **kw)
        try:
            data = resp.data
        except _TRANSPORT_ERRORS as err:
            raise TemporaryError(f"the API server {self.host} dropped the answer: {_reason(err)}") from None
        finally:
            resp.release_conn()
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise TemporaryError(f"the API server {self.host} sent a body that is not JSON") from None

    # ---- reads ------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str, *, readonly: bool = False) -> dict:
        res = _resource(kind)
        return self._call("GET", resource_path(res, namespace, name))

    def list(self, kind: str, namespace: str | None = None, *,
             labels: dict[str, str] | str | None = None) -> list[dict]:
        return self.list_with_version(kind, namespace, labels=labels, _check_served=False)[0]

    def list_with_version(self, kind: str, namespace: str | None = None, *,
                          labels: dict[str, str] | str | None = None,
                          _check_served: bool = True) -> tuple[list[dict], str]:
        """Every page of the list (limit/continue); the version is the first page's, which
        every later page is consistent with."""
        res = self._served_resource(kind) if _check_served else _resource(kind)
        query = [("limit", str(LIST_PAGE))]
        selector = selector_text(labels)
        if selector:
            query.append(("labelSelector", selector))
        items: list[dict] = []
        version = None
        token = None
        while True:
            page = self._call("GET", resource_path(res, namespace or None),
                              query=query + ([("continue", token)] if token else []))
            meta = page.get("metadata") or {}
            if version is None:
                version = str(meta.get("resourceVersion") or "")
            for item in page.get("items") or ():
                items.append({"apiVersion": res.api_version, "kind": res.kind, **item})
            token = meta.get("continue")
            if not token:
                return items, version

    # ---- writes -----------------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        res = _resolve(obj)
        body = {"apiVersion": res.api_version, **obj}
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        ns = meta.get("namespace") if res.namespaced else None
        if res.namespaced and not ns:   # a path needs one: refuse as the fake does
            raise Invalid([FieldError("metadata.namespace", "", kind="Required value")], kind=res.kind,
                          name=str(meta.get("name") or ""))
        return self._call("POST", resource_path(res, ns), body=body)

    def update(self, obj: dict) -> dict:
        res = _resolve(obj)
        meta = obj.get("metadata") or {}
        return self._call("PUT", resource_path(res, meta.get("namespace"), meta.get("name") or ""),
                          body={"apiVersion": res.api_version, **obj})

    def update_status(self, obj: dict) -> dict:
        res = _resolve(obj)
        meta = obj.get("metadata") or {}
        if not res.has_status:
            raise NotFound(f"the server could not find the requested resource ({res.plural}/status)")
        return self._call("PUT", resource_path(res, meta.get("namespace"), meta.get("name") or "", "status"),
                          body={"apiVersion": res.api_version, **obj})

    def delete(self, kind: str, namespace: str, name: str, *, propagation: str = "Background") -> None:
        res = _resource(kind)
        self._call("DELETE", resource_path(res, namespace, name),
                   body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation})

    def record_event(self, obj: dict, *, type: str, reason: str, message: str) -> None:
        """A core/v1 Event about `obj`, identical repeats folded into `count` as client-go's
        recorder does. Best effort: a failure is logged, not raised."""
        if type not in ("Normal", "Warning"):
            raise ValueError(f"event type must be one of ('Normal', 'Warning'), not {type!r}")
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        involved = {k: v for k, v in {
            "apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", "")}.items() if v}
        key = (ns, involved.get("kind"), involved.get("name"), involved.get("uid"), type, reason, message)
        stamp = self.clock.stamp()
        try:
            with self._events_lock:
                known = self._events.get(key)
                if known is not None and self._bump_event(ns, known, stamp):
                    return
                name = f"{involved.get('name') or 'event'}.{int(time.time() * 1e9):x}{uuid.uuid4().hex[:4]}"
                self.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
                             "involvedObject": involved, "reason": reason, "message": message, "type": type,
                             "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
                             "source": dict(self._event_source)})
                self._events[key] = name
                if len(self._events) > 4096:
                    self._events.pop(next(iter(self._events)))
        except KatibError as err:
            logger.warning("[%s/%s] event %s not recorded: %s", meta.get("namespace"), meta.get("name"), reason, err)

    def _bump_event(self, ns: str, name: str, stamp: str) -> bool:
        try:
            event = self.get("Event", ns, name)
        except NotFound:
            return False
        event.update(count=int(event.get("count") or 1) + 1, lastTimestamp=stamp)
        try:
            self.update(event)
        except (NotFound, Conflict):
            return False
        return True

    # ---- discovery --------------------------------------------------------------------------
    def served_kinds(self, *, refresh: bool = False) -> frozenset[str]:
        """The kinds of RESOURCES the server lists in discovery (a CRD not installed: absent)."""
        if self._served is not None and not refresh:
            return self._served
        served = set()
        for api_version in sorted({r.api_version for r in RESOURCES.values()}):
            group, _, version = api_version.rpartition("/")
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = self._call("GET", path)
            except NotFound:
                continue
            names = {r.get("name") for r in doc.get("resources") or () if isinstance(r, dict)}
            served |= {r.kind for r in RESOURCES.values() if r.api_version == api_version and r.plural in names}
        self._served = frozenset(served)
        return self._served

    def _served_resource(self, kind: str) -> Resource:
        res = _resource(kind)
        if res.kind not in self.served_kinds():
            raise NotFound(f'the server doesn\'t have a resource type "{res.plural}"')
        return res

    # ---- watch ------------------------------------------------------------------------------
    def watch(self, kind: str, resource_version: str, *, namespace: str | None = None,
              stop: threading.Event | None = None, timeout: float | None = None) -> Iterator[WatchEvent]:
        """See Backend.watch. The request is made at the first next(); a drop ends the stream."""
        res = self._served_resource(kind)
        return self._stream(res, str(resource_version or ""), namespace or None, stop, timeout)

    def _stream(self, res: Resource, version: str, namespace: str | None, stop: threading.Event | None,
                timeout: float | None) -> Iterator[WatchEvent]:
        drops = self._drops.get(res.kind, 0)
        if drops and stop is not None:
            if stop.wait(DROP_BACKOFF[min(drops, len(DROP_BACKOFF) - 1)]):
                return
        elif drops:
            time.sleep(DROP_BACKOFF[min(drops, len(DROP_BACKOFF) - 1)])
        if not version:   # "from now": the current version, without the initial ADDED events
            version = self._current_version(res, namespace)
        server_timeout = None if timeout is None else max(1, math.ceil(timeout))
        query = [("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true")]
        if server_timeout is not None:
            query.append(("timeoutSeconds", str(server_timeout)))
        resp = self._send("GET", resource_path(res, namespace), query=query,
                          timeout=(WATCH_CONNECT_TIMEOUT, None))
        closer = _Closer(resp, stop, None if timeout is None else time.monotonic() + server_timeout + 2)
        dropped = False
        delivered = False
        try:
            for line in _lines(resp, closer):
                event = _parse_event(line, res)
                if not delivered:   # the connection works: no backoff before the next watch
                    delivered = True
                    self._drops.pop(res.kind, None)
                yield event
            # the server ended a watch we asked no end of: a drop as far as we can tell
            dropped = timeout is None and not closer.closed_by_us
        except _Dropped:
            dropped = not closer.closed_by_us
        finally:
            closer.finish()
        if dropped and not delivered:
            self._drops[res.kind] = drops + 1

    def _current_version(self, res: Resource, namespace: str | None) -> str:
        page = self._call("GET", resource_path(res, namespace), query=[("limit", "1")])
        return str((page.get("metadata") or {}).get("resourceVersion") or "")

    def subscribe(self, handler: Handler, kinds: Iterable[str] | None = None, *,
                  readonly: bool = False) -> Callable[[], None]:
        """Deliver every later change of `kinds` (all served kinds if None) to `handler`, on a
        watch thread per kind (asynchronously, unlike the fake). Returns an unsubscribe."""
        if isinstance(kinds, str):
            kinds = (kinds,)
        wanted = sorted(self.served_kinds() if kinds is None else {_resource(k).kind for k in kinds})
        stop = _AnyEvent(self._closed)
        started = []
        for kind in wanted:
            ready = threading.Event()
            thread = threading.Thread(target=self._subscription, args=(kind, handler, stop, ready),
                                      name=f"subscribe-{kind}", daemon=True)
            thread.start()
            started.append(ready)
        for ready in started:
            ready.wait(10)
        return stop.set

    def _subscription(self, kind: str, handler: Handler, stop: threading.Event, ready: threading.Event) -> None:
        res = _resource(kind)
        version = None
        while not stop.is_set():
            try:
                if version is None:
                    version = self._current_version(res, None)
                ready.set()
                for event in self._stream(res, version, None, stop, None):
                    version = event.object["metadata"].get("resourceVersion") or version
                    if event.type != BOOKMARK and not stop.is_set():
                        try:
                            handler(event)
                        except Exception:
                            logger.exception("watch handler %r failed on %s %s", handler, event.type, kind)
            except Expired:
                logger.warning("%s subscription expired at %s: changes may have been missed", kind, version)
                version = None
            except KatibError as err:
                ready.set()
                logger.info("%s subscription: %s", kind, err)
                stop.wait(1.0)


class _AnyEvent(threading.Event):
    """Set when it is set or when `other` (the backend's close) is."""

    def __init__(self, other: threading.Event):
        super().__init__()
        self._other = other

    def is_set(self) -> bool:
        return super().is_set() or self._other.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True


class _Dropped(Exception):
    pass


class _Closer:
    """Ends a streaming response from outside: when `stop` is set or at `deadline`."""

    def __init__(self, resp, stop: threading.Event | None, deadline: float | None):
        self.resp = resp
        self.closed_by_us = False
        self._done = threading.Event()
        self._stop = stop
        self._deadline = deadline
        if stop is not None or deadline is not None:
            threading.Thread(target=self._wait, daemon=True, name="watch-closer").start()

    def _wait(self) -> None:
        while not self._done.wait(0.2):
            if (self._stop is not None and self._stop.is_set()) or (
                    self._deadline is not None and time.monotonic() > self._deadline):
                self.closed_by_us = True
                try:
                    self.resp.shutdown()
                except Exception:  # noqa: BLE001 - already closed
                    pass
                return

    def finish(self) -> None:
        self._done.set()
        try:
            self.resp.release_conn() if not self.closed_by_us else self.resp.close()
        except Exception:  # noqa: BLE001
            pass


def _lines(resp, closer: _Closer) -> Iterator[bytes]:
    buf = b""
    try:
        for chunk in resp.stream(65536, decode_content=True):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield line
    except _TRANSPORT_ERRORS as err:
        if not closer.closed_by_us:
            logger.debug("watch stream dropped: %s", _reason(err))
        raise _Dropped() from None
    if buf.strip():
        yield buf


def _parse_event(line: bytes, res: Resource) -> WatchEvent:
    try:
        doc = json.loads(line)
        kind, obj = doc["type"], doc["object"]
    except (ValueError, KeyError, TypeError):
        raise TemporaryError("the API server sent a watch event that is not JSON") from None
    if kind == "ERROR":
        code = int(obj.get("code") or 500) if isinstance(obj, dict) else 500
        raise error_from_status(code, obj if isinstance(obj, dict) else {})
    if kind not in (ADDED, MODIFIED, DELETED, BOOKMARK):
        raise TemporaryError(f"unknown watch event type {kind!r}")
    if kind != BOOKMARK:
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
    else:
        obj = {"kind": res.kind, "metadata": {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion")}}
    return WatchEvent(kind, obj)


def _reason(err: BaseException) -> str:
    inner = getattr(err, "reason", None)
    text = str(inner if inner is not None else err)
    return " ".join(text.split()) or type(err).__name__

