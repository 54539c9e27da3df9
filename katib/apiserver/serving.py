"""An aiohttp application served over TLS on a thread of its own, with its own event loop:
how the Kubernetes API of `--fake serve` and the webhook server run beside the control plane."""
from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading

from aiohttp import web


class AppThread:
    """`start()` binds (port 0 picks a free one, then `.port` says which) and returns once the
    listener is up, or raises what binding raised; `stop()` closes it and waits for the thread.
    `workers` sizes the pool that `run_in_executor(None, ...)` uses (default: asyncio's)."""

    def __init__(self, app: web.Application, *, host: str, port: int, ssl_context: ssl.SSLContext,
                 name: str, workers: int | None = None):
        self.app, self.host, self.port = app, host, port
        self._ssl, self._name, self._workers = ssl_context, name, workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        if self._workers:
            loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix=self._name))
        try:
            loop.run_until_complete(self._bind())
        except BaseException as err:  # noqa: BLE001 - reported by start()
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
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server is not None else ()
        if sockets:
            self.port = sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
