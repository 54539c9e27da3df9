"""ApiServer: the HTTPS API on its own thread and asyncio loop, beside the control plane.

At start it makes (or reuses) the certificates and the token in `state_dir`, binds
(port 0 picks a free one), and writes the kubeconfig naming the bound URL. `stop()` ends the
open watches, closes the listener and returns once the thread is gone."""
from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import ipaddress
import logging
import threading
from pathlib import Path

from aiohttp import web

from katib.apiserver.app import Context, build_app
from katib.apiserver.credentials import ensure_token, write_kubeconfig
from katib.apiserver.tls import ensure_certificates
from katib.apiserver.watchcache import WatchCache

logger = logging.getLogger(__name__)
WORKERS = 32   # threads for backend calls (see _serve)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) → (host, port); ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:6443")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--listen {text!r}: the port must be a number") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--listen {text!r}: the port must be between 0 and 65535")
    return host, number


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def url_host(host: str) -> str:
    """The host as a client should dial it: a wildcard address becomes loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class ApiServer:
    def __init__(self, backend, *, host: str, port: int, state_dir: Path, kubeconfig: Path):
        self.host, self.port = host, port
        self.state_dir = Path(state_dir)
        self.kubeconfig = Path(kubeconfig)
        self.tls = ensure_certificates(self.state_dir, [host])
        self.token = ensure_token(self.state_dir)
        self.cache = WatchCache(backend)
        self.ctx = Context(backend=backend, cache=self.cache, token=self.token,
                           tables=_optional("katib.apiserver.tables"), openapi=_optional("katib.apiserver.openapi"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"https://{url_host(self.host)}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="apiserver", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self.cache.close()
            raise self._error
        write_kubeconfig(self.kubeconfig, server=self.url, ca_pem=self.tls.ca_pem(), token=self.token)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # Backend calls run on this pool. A write waiting for an admission webhook holds a thread
        # while that webhook may call back into this API: enough threads that those callbacks
        # are not queued behind the writes waiting for them (asyncio's default is cores + 4).
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS,
                                                                        thread_name_prefix="apiserver"))
        try:
            loop.run_until_complete(self._bind())
        except BaseException as err:  # noqa: BLE001 - reported to start()
            self._error = err if isinstance(err, OSError) else RuntimeError(str(err))
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _bind(self) -> None:
        self._runner = web.AppRunner(build_app(self.ctx), access_log=None, shutdown_timeout=1.0,
                                     handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls.server_context(),
                           reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server is not None else ()
        if sockets:
            self.port = sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.ctx.stop.set()
        self.cache.close()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
