"""The fake API calls the admission webhooks registered in it, as kube-apiserver does.

The Mutating and Validating WebhookConfigurations stored in the fake (what `kubectl apply -k
config/` installs) are read once and re-read after they change. For a write, `covering(op, res,
sub)` gives the webhooks whose rules name it; the FakeBackend calls `mutate` (mutating webhooks
in turn, configurations by name, each webhook's JSON patch applied before the next is called)
and later `validate` — both outside its lock, since a webhook may read the API while it
answers. namespaceSelector and objectSelector decide per object; an AdmissionReview in the first
of the webhook's admissionReviewVersions we speak (v1, v1beta1) goes over HTTPS, verified
against its caBundle (the system's CAs without one) for the host name of its `url`, or
`<service>.<namespace>.svc` for a `service` reference; the call is bounded by timeoutSeconds
(default 10). A failed call (unreachable, timed out, not an AdmissionReview answer) follows
failurePolicy: Fail refuses the write with 500 `failed calling webhook ...`, Ignore logs it and
goes on. A refusal becomes the webhook's Status with kube-apiserver's `admission webhook "<name>"
denied the request: ` prefix; warnings go to the request's `admission_warnings()` list.

A `service` reference is resolved as kube-apiserver's service resolver does, through objects in
the fake: the Service's port whose `port` is the reference's (default 443), then the Endpoints
of the same name: an address of the subset port with that port's name (`katib.py serve
--advertise-address` publishes them for its Service; nothing else does in the fake).

A dry run's reviews say `dryRun: true`; every configuration declares sideEffects None or
NoneOnDryRun (its validation refuses the others), so every webhook is called for one.

Not done: reinvocationPolicy (no second pass), matchConditions (CEL), webhooks on the
deletions garbage collection does, and calls to the validating webhooks in parallel (they are
called in turn)."""
from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import logging
import random
import ssl
import threading
import time
import uuid
from urllib.parse import urlsplit

import jsonpatch
import urllib3

from katib.backends.resources import Resource
from katib.backends.webhook_rules import (
    CallFailed, Hook, configuration_errors, denied_status, hooks_of, read_answer, review)
from katib.errors import Forbidden, Invalid, FieldError, KatibError, NotFound, TemporaryError

logger = logging.getLogger(__name__)

CONFIG_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_WARNINGS: contextvars.ContextVar[list | None] = contextvars.ContextVar("admission_warnings", default=None)
_DRY_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("admission_dry_run", default=False)


@contextlib.contextmanager
def dry_run_reviews(dry_run: bool):
    """Within: the reviews sent say whether the write is a dry run."""
    token = _DRY_RUN.set(dry_run)
    try:
        yield
    finally:
        _DRY_RUN.reset(token)


def admission_warnings() -> list[str] | None:
    return _WARNINGS.get()


def collect_warnings() -> list[str]:
    """Start collecting the admission warnings of what runs in this context (a request);
    returns the list they are appended to."""
    found: list[str] = []
    _WARNINGS.set(found)
    return found


class WebhookDenied(Forbidden):
    """A webhook refused the write; `api_status` is the Status to answer with."""

    def __init__(self, status: dict):
        super().__init__(status["message"])
        self.api_status = status


class WebhookInvalid(Invalid):
    """A webhook refused the write with a 422 Invalid Status (field causes kept)."""

    def __init__(self, status: dict):
        details = status.get("details") or {}
        errors = [FieldError(c.get("field") or "", c.get("message") or "", kind="")
                  for c in details.get("causes") or () if isinstance(c, dict)]
        super().__init__(errors, kind=details.get("kind") or "", name=details.get("name") or "")
        self.api_status = status
        self.args = (status["message"],)

    def __str__(self) -> str:
        return self.args[0]


class WebhookFailed(TemporaryError):
    """A webhook with failurePolicy Fail could not be called: 500 InternalError, retried."""

    def __init__(self, message: str):
        super().__init__(message, delay=1.0)
        self.api_status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": f"Internal error occurred: {message}", "reason": "InternalError",
                           "details": {"causes": [{"message": message}]}, "code": 500}


def checking_configurations(admit, kinds):
    """`admit` (FakeBackend's in-process admission, for `kinds`), plus kube-apiserver's
    validation of webhook configurations."""
    def admission(operation: str, new: dict, old: dict | None) -> dict:
        if new.get("kind") in CONFIG_KINDS:
            errors = configuration_errors(new)
            if errors:
                raise Invalid(errors, kind=new["kind"], name=(new.get("metadata") or {}).get("name") or "")
            return new
        if admit is None or (kinds is not None and new.get("kind") not in kinds):
            return new
        return admit(operation, new, old)
    return admission


def refusal(hook: Hook, status: dict | None) -> KatibError:
    full = denied_status(hook.name, status)
    return WebhookInvalid(full) if full["code"] == 422 else WebhookDenied(full)


def resolve_service(backend, namespace: str, name: str, port: int = 443) -> tuple[str, int]:
    """(address, port) serving port `port` of Service namespace/name, through its Endpoints
    (one of them at random, as a Service picks); CallFailed naming what is missing."""
    return random.choice(service_addresses(backend, namespace, name, port))


def service_addresses(backend, namespace: str, name: str, port: int = 443) -> list[tuple[str, int]]:
    try:
        service = backend.get("Service", namespace, name, readonly=True)
    except NotFound:
        raise CallFailed(f'service "{name}" not found') from None
    ports = [p for p in (service.get("spec") or {}).get("ports") or () if p.get("port") == port]
    if not ports:
        raise CallFailed(f'service "{name}" has no port {port}')
    port_name = ports[0].get("name") or ""
    try:
        endpoints = backend.get("Endpoints", namespace, name, readonly=True)
    except NotFound:
        endpoints = {}
    choices = []
    for subset in endpoints.get("subsets") or ():
        for ep_port in subset.get("ports") or ():
            if (ep_port.get("name") or "") == port_name and ep_port.get("port"):
                choices += [(a["ip"], int(ep_port["port"])) for a in subset.get("addresses") or () if a.get("ip")]
    if not choices:
        raise CallFailed(f'no endpoints available for service "{name}"')
    random.shuffle(choices)
    return choices


class Webhooks:
    """The webhook dispatcher of one FakeBackend (see the module docstring)."""

    def __init__(self, backend):
        self._backend = backend
        self._cache: tuple[Hook, ...] | None = None
        self._generation = 0
        self._pools: dict[tuple, urllib3.HTTPSConnectionPool] = {}
        self._pools_lock = threading.Lock()
        backend.subscribe(self._changed, CONFIG_KINDS, readonly=True)

    def _changed(self, _event) -> None:
        self._generation += 1
        self._cache = None

    def _hooks(self) -> tuple[Hook, ...]:
        cached = self._cache
        if cached is not None:
            return cached
        generation = self._generation
        hooks: list[Hook] = []
        for kind in CONFIG_KINDS:
            configs = sorted(self._backend.list(kind), key=lambda c: c["metadata"]["name"])
            for config in configs:
                hooks += hooks_of(config, mutating=kind == CONFIG_KINDS[0])
        found = tuple(hooks)
        if generation == self._generation:
            self._cache = found
        return found

    def covering(self, operation: str, res: Resource, subresource: str = "") -> tuple[Hook, ...]:
        """The webhooks whose rules name this operation (mutating ones first); () for most writes."""
        if res.kind in CONFIG_KINDS:
            return ()   # kube-apiserver never calls webhooks about webhook configurations
        return tuple(h for h in self._hooks() if h.covers(operation, res, subresource))

    # ---- admission -----------------------------------------------------------------------------
    def mutate(self, hooks, operation: str, res: Resource, obj: dict | None, old: dict | None, *,
               subresource: str = "") -> dict | None:
        """`obj` after every selected mutating webhook (a DELETE's webhooks only allow or deny)."""
        labels = _NamespaceLabels(self._backend, res, obj, old)
        for hook in hooks:
            if hook.mutating:
                answer = self._call(hook, operation, res, subresource, obj, old, labels)
                if answer is not None and answer.patch and obj is not None:
                    obj = self._patched(hook, obj, answer.patch)
        return obj

    def validate(self, hooks, operation: str, res: Resource, obj: dict | None, old: dict | None, *,
                 subresource: str = "") -> None:
        labels = _NamespaceLabels(self._backend, res, obj, old)
        for hook in hooks:
            if not hook.mutating:
                self._call(hook, operation, res, subresource, obj, old, labels)

    def _patched(self, hook: Hook, obj: dict, patch: list) -> dict:
        try:
            out = jsonpatch.apply_patch(obj, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as err:
            raise WebhookFailed(f'failed calling webhook "{hook.name}": the patch cannot be applied: {err}') \
                from None
        meta, before = out.get("metadata") if isinstance(out, dict) else None, obj.get("metadata") or {}
        if not isinstance(meta, dict) or any(out.get(k) != obj.get(k) for k in ("apiVersion", "kind")) or \
                any(meta.get(k) != before.get(k) for k in ("name", "namespace", "generateName")):
            raise WebhookFailed(f'admission webhook "{hook.name}" may not change the kind, apiVersion, name '
                                f'or namespace of the object')
        return out

    def _call(self, hook: Hook, operation, res, subresource, obj, old, labels):
        """The webhook's answer (None when it does not select the object or failed with Ignore);
        raises the refusal, or WebhookFailed when it failed with failurePolicy Fail."""
        try:
            if not hook.selects(res, obj, old, labels.get()):
                return None
            answer = self._post(hook, operation, res, subresource, obj, old)
        except (CallFailed, ValueError, KatibError, OSError) as err:
            return self._failed(hook, err)
        sink = _WARNINGS.get()
        if sink is not None:
            sink.extend(answer.warnings)
        if not answer.allowed:
            raise refusal(hook, answer.status)
        return answer

    def _failed(self, hook: Hook, err: BaseException):
        message = f'failed calling webhook "{hook.name}": {err}'
        if hook.failure_policy == "Ignore":
            logger.warning("%s (failurePolicy Ignore: admitted without it)", message)
            return None
        raise WebhookFailed(message)

    def _post(self, hook: Hook, operation, res, subresource, obj, old):
        version = hook.review_version()
        meta = (obj or old or {}).get("metadata") or {}
        uid = str(uuid.uuid4())
        body = review(version, uid=uid, operation=operation, res=res, subresource=subresource,
                      name=str(meta.get("name") or ""), namespace=str(meta.get("namespace") or ""), obj=obj, old=old,
                      dry_run=_DRY_RUN.get())
        addresses, hostname, path, ca = self._target(hook)
        timeout = hook.timeout
        deadline = time.monotonic() + timeout
        for i, (host, port) in enumerate(addresses):
            url = f"https://{hostname}:{port}{path}?timeout={timeout:g}s"
            try:
                response = self._pool(host, port, hostname, ca).urlopen(
                    "POST", f"{path}?timeout={timeout:g}s", body=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    timeout=urllib3.Timeout(total=max(0.05, deadline - time.monotonic())), retries=False,
                    redirect=False)
                break
            except urllib3.exceptions.NewConnectionError as err:
                # An address nobody listens on (a replica that died): the next one, as an
                # endpoints controller would have dropped it. Only a refused connection.
                if i == len(addresses) - 1 or time.monotonic() >= deadline:
                    raise CallFailed(f'failed to call webhook: Post "{url}": {_why(err)}') from None
            except urllib3.exceptions.HTTPError as err:
                raise CallFailed(f'failed to call webhook: Post "{url}": {_why(err)}') from None
        if response.status != 200:
            text = response.data[:300].decode("utf-8", "replace").strip()
            raise CallFailed(f'Post "{url}": the server responded with HTTP {response.status}: {text}')
        return read_answer(response.data, version=version, uid=uid, mutating=hook.mutating)

    def _target(self, hook: Hook) -> tuple[list[tuple[str, int]], str, str, str | None]:
        """(addresses to dial, host name the certificate must carry, path, CA PEM or None)."""
        config = hook.client_config
        bundle = config.get("caBundle")
        try:
            ca = base64.b64decode(bundle, validate=True).decode() if bundle else None
        except (ValueError, UnicodeDecodeError):
            raise CallFailed("clientConfig.caBundle is not base64-encoded PEM") from None
        if config.get("url"):
            parts = urlsplit(str(config["url"]))
            if parts.scheme != "https" or not parts.hostname:
                raise CallFailed(f"clientConfig.url {config['url']!r}: must be an https URL")
            return [(parts.hostname, parts.port or 443)], parts.hostname, parts.path or "/", ca
        service = config.get("service")
        if not isinstance(service, dict) or not service.get("name") or not service.get("namespace"):
            raise CallFailed("clientConfig: one of url or service (name, namespace) is required")
        port = int(service.get("port") or 443)
        addresses = service_addresses(self._backend, service["namespace"], service["name"], port)
        path = service.get("path") or "/"
        return addresses, f"{service['name']}.{service['namespace']}.svc", path, ca

    def _pool(self, host: str, port: int, hostname: str, ca: str | None) -> urllib3.HTTPSConnectionPool:
        key = (host, port, hostname, ca)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
                pool = urllib3.HTTPSConnectionPool(host, port, ssl_context=context, server_hostname=hostname,
                                                   assert_hostname=hostname, maxsize=8, block=False)
                if len(self._pools) > 64:
                    self._pools.pop(next(iter(self._pools))).close()
                self._pools[key] = pool
        return pool


def _why(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    text = " ".join(str(reason).split())
    if isinstance(err, urllib3.exceptions.TimeoutError) or "timed out" in text:
        return f"context deadline exceeded ({text})"
    return text


class _NamespaceLabels:
    """The labels of the request's Namespace, read once and only when a selector needs them."""

    def __init__(self, backend, res: Resource, obj, old):
        self._backend, self._res = backend, res
        self._namespace = ((obj or old or {}).get("metadata") or {}).get("namespace") or ""
        self._labels: dict | None = None

    def get(self) -> dict:
        if self._labels is None:
            self._labels = {}
            if self._res.namespaced and self._namespace:
                try:
                    ns = self._backend.get("Namespace", "", self._namespace, readonly=True)
                    self._labels = (ns.get("metadata") or {}).get("labels") or {}
                except NotFound:
                    pass
        return self._labels
