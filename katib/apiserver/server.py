"""ApiServer: the HTTPS API on its own thread and asyncio loop, beside the control plane.

At start it makes (or reuses) the certificates and the token in `state_dir`, binds
(port 0 picks a free one), and writes the kubeconfig naming the bound URL. `stop()` ends the
open watches, closes the listener and returns once the thread is gone."""
from __future__ import annotations

import importlib
import ipaddress
import logging
from pathlib import Path

from katib.apiserver.app import Context, build_app
from katib.apiserver.credentials import ensure_token, write_kubeconfig
from katib.apiserver.serving import AppThread
from katib.apiserver.tls import ensure_certificates
from katib.apiserver.watchcache import WatchCache

logger = logging.getLogger(__name__)
WORKERS = 32   # threads for backend calls (see ApiServer.__init__)


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
    def __init__(self, backend, *, host: str, port: int, state_dir: Path, kubeconfig: Path, pod_log=None):
        """`pod_log(namespace, pod, container)`: where a container's output is (pods/log)."""
        self.host, self.port = host, port
        self.state_dir = Path(state_dir)
        self.kubeconfig = Path(kubeconfig)
        self.tls = ensure_certificates(self.state_dir, [host])
        self.token = ensure_token(self.state_dir)
        self.cache = WatchCache(backend)
        self.ctx = Context(backend=backend, cache=self.cache, token=self.token,
                           tables=_optional("katib.apiserver.tables"), openapi=_optional("katib.apiserver.openapi"),
                           pod_log=pod_log)
        # Backend calls run on the loop's pool. A write waiting for an admission webhook holds a
        # thread while that webhook may call back into this API: enough threads that those
        # callbacks are not queued behind the writes waiting for them (asyncio's default is cores + 4).
        self._serving = AppThread(build_app(self.ctx), host=host, port=port, ssl_context=self.tls.server_context(),
                                  name="apiserver", workers=WORKERS)

    @property
    def url(self) -> str:
        return f"https://{url_host(self.host)}:{self.port}"

    def start(self) -> None:
        try:
            self._serving.start()
        except BaseException:
            self.cache.close()
            raise
        self.port = self._serving.port
        write_kubeconfig(self.kubeconfig, server=self.url, ca_pem=self.tls.ca_pem(), token=self.token)

    def stop(self) -> None:
        self.ctx.stop.set()
        self.cache.close()
        self._serving.stop()
