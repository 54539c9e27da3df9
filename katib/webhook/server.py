"""The HTTPS webhook server (aiohttp): the experiment and pod webhooks, the observation API
(katib.webhook.observations), /healthz and /readyz.

Paths are upstream's: POST /mutate-experiments, /validate-experiments (and /mutate-pods once
sidecar injection exists). A body that is not an AdmissionReview gets HTTP 400 with the reason;
an answer is always a 200 AdmissionReview, `allowed: false` carrying the refusal. A failure to
read what validation needs (the request's Namespace) is HTTP 500, as upstream answers.

TLS (`certificates`): a directory holding `tls.crt` and `tls.key` is used as it is (cert-manager
or a Secret mounted there); an empty or missing one receives a generated `ca.crt`, `tls.crt` and
`tls.key` (reused on the next start), whose `ca.crt` is the caBundle for the webhook
configurations. It runs on its own thread with its own event loop, inside the katib process."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aiohttp import web

from katib.apiserver.serving import AppThread
from katib.apiserver.tls import TlsFiles, ensure_certificates
from katib.errors import TemporaryError
from katib.webhook.review import MalformedReview

logger = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's own request limit
Handler = Callable[[bytes], dict]  # body → AdmissionReview answer; MalformedReview → 400
ApiHandler = Callable[[bytes, "str | None"], "tuple[int, dict]"]  # body, bearer token → status, answer


@dataclass(frozen=True)
class Certificates:
    files: TlsFiles
    generated: bool

    def ca_bundle(self) -> bytes | None:
        """The PEM CA to put in webhook configurations (None for user-provided certificates
        without a ca.crt beside them)."""
        return self.files.ca_cert.read_bytes() if self.files.ca_cert.exists() else None


def certificates(cert_dir: Path | str, hosts: list[str]) -> Certificates:
    directory = Path(cert_dir)
    cert, key = directory / "tls.crt", directory / "tls.key"
    if cert.exists() or key.exists():
        if not (cert.exists() and key.exists()):
            missing = key if cert.exists() else cert
            raise ValueError(f"--cert-dir {directory}: {missing.name} is missing beside "
                             f"{(cert if missing is key else key).name}")
        return Certificates(TlsFiles(directory / "ca.crt", cert, key), generated=False)
    return Certificates(ensure_certificates(directory, hosts, name="tls"), generated=True)


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def build_app(handlers: dict[str, Handler], *, api: dict[str, ApiHandler] | None = None,
              ready: Callable[[], bool] = lambda: True) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    def api_endpoint(handler: ApiHandler):
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                status, answer = await asyncio.get_running_loop().run_in_executor(None, handler, body,
                                                                                   bearer(request))
            except TemporaryError as err:  # e.g. a standby replica: expected, the caller retries
                logger.info("%s: %s (503)", request.path, err)
                return web.json_response({"error": f"{type(err).__name__}: {err}"}, status=503)
            except Exception as err:  # noqa: BLE001 - the store failed: the caller retries
                logger.exception("%s failed", request.path)
                return web.json_response({"error": f"{type(err).__name__}: {err}"}, status=503)
            return web.json_response(answer, status=status)
        return handle

    for path, api_handler in (api or {}).items():
        app.router.add_post(path, api_endpoint(api_handler))

    def endpoint(handler: Handler):
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                answer = await asyncio.get_running_loop().run_in_executor(None, handler, body)
            except MalformedReview as err:
                return web.Response(status=400, text=f"malformed AdmissionReview: {err}\n")
            except Exception as err:  # noqa: BLE001 - e.g. the Namespace could not be read
                logger.exception("webhook %s failed", request.path)
                return web.Response(status=500, text=f"{type(err).__name__}: {err}\n")
            return web.json_response(answer)
        return handle

    for path, handler in handlers.items():
        app.router.add_post(path, endpoint(handler))

    async def healthz(_request):
        return web.Response(text="ok")

    async def readyz(_request):
        return web.Response(text="ok") if ready() else web.Response(status=503, text="not ready\n")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class WebhookServer:
    """`start()` binds (port 0 picks one: see `.port`) and serves on a thread; `stop()` ends it."""

    def __init__(self, handlers: dict[str, Handler], *, host: str, port: int, certs: Certificates,
                 api: dict[str, ApiHandler] | None = None, ready: Callable[[], bool] = lambda: True):
        self.certs = certs
        self._serving = AppThread(build_app(handlers, api=api, ready=ready), host=host, port=port,
                                  ssl_context=certs.files.server_context(), name="webhook-server")

    @property
    def host(self) -> str:
        return self._serving.host

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def start(self) -> None:
        self._serving.start()

    def stop(self) -> None:
        self._serving.stop()
