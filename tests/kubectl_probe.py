"""A small HTTP API server for watching what the real kubectl asks for (tests only).

Serves legacy discovery from katib.backends.resources, the OpenAPI v3 documents of
katib.apiserver.openapi, and a dict store good enough for `kubectl apply` (GET → 404 or the
object, POST stores, PATCH answers the stored object). It records every request, so tests can
assert what kubectl fetched (never /openapi/v2 for validation) and how it wrote."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from katib.apiserver import openapi, tables
from katib.backends.resources import RESOURCES

KUBECTL = str(Path(sys.executable).with_name("kubectl"))


@dataclass
class Request:
    method: str
    path: str
    query: dict
    content_type: str


@dataclass
class ProbeServer:
    requests: list[Request] = field(default_factory=list)
    store: dict[str, dict] = field(default_factory=dict)
    port: int = 0

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def kubectl(self, tmp: Path, *args: str) -> subprocess.CompletedProcess:
        config = tmp / "kubeconfig"
        config.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: probe, cluster: {{server: "http://127.0.0.1:{self.port}"}}}}]
users: [{{name: probe, user: {{token: probe}}}}]
contexts: [{{name: probe, context: {{cluster: probe, user: probe, namespace: default}}}}]
current-context: probe
""")
        return subprocess.run([KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(tmp / "cache"), *args],
                              capture_output=True, text=True, timeout=60)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(Request(request.method, request.path, dict(request.query),
                                     request.headers.get("Content-Type", "")))
        answer = _discovery(request.path) or _openapi(request.path)
        if answer is not None:
            return web.json_response(answer[1], status=answer[0])
        if request.method == "POST":
            body = await request.json()
            meta = body.setdefault("metadata", {})
            meta["resourceVersion"] = "1"
            self.store[f"{request.path}/{meta.get('name')}"] = body
            return web.json_response(body, status=201)
        if request.method in ("GET", "PATCH") and request.path in self.store:
            return web.json_response(self.store[request.path])
        kind = _kind_of_collection(request.path)
        if request.method == "GET" and kind is not None:
            items = [o for key, o in sorted(self.store.items()) if key.rpartition("/")[0] == request.path]
            if "as=Table" in request.headers.get("Accept", ""):
                return web.json_response(tables.table(kind, items, list_meta={"resourceVersion": "1"},
                                                      include_object=request.query.get("includeObject", "Metadata")))
            return web.json_response({"kind": f"{kind}List", "apiVersion": RESOURCES[kind].api_version,
                                      "metadata": {"resourceVersion": "1"}, "items": items})
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                  "code": 404, "message": f"{request.path} not found"}, status=404)


def _kind_of_collection(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[-3] == "namespaces":
        parts = parts[:-3] + parts[-1:]
    api_version = "/".join(parts[1:-1])
    return next((r.kind for r in RESOURCES.values() if (r.api_version, r.plural) == (api_version, parts[-1])), None)


def _resource_list(group: str, version: str) -> dict:
    resources = []
    for r in RESOURCES.values():
        if (r.group, r.version) == (group, version):
            resources.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}".lstrip("/"),
            "resources": resources}


def _discovery(path: str) -> tuple[int, dict] | None:
    if path == "/api":
        return 200, {"kind": "APIVersions", "versions": ["v1"],
                     "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if path == "/apis":
        groups: dict[str, list[str]] = {}
        for g, v in openapi.group_versions():
            if g:
                groups.setdefault(g, []).append(v)
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[-1]}", "version": vs[-1]}} for g, vs in groups.items()]}
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        return 200, _resource_list("", parts[1])
    if parts[:1] == ["apis"] and len(parts) == 3:
        return 200, _resource_list(parts[1], parts[2])
    return None


def _openapi(path: str) -> tuple[int, dict] | None:
    if path == "/openapi/v3":
        return 200, openapi.v3_index()
    if path.startswith("/openapi/v3/"):
        rest = path.removeprefix("/openapi/v3/").split("/")
        group, version = ("", rest[-1]) if rest[0] == "api" else (rest[1], rest[-1])
        doc = openapi.v3_document(group, version)
        return (200, doc) if doc is not None else (404, {"kind": "Status", "code": 404})
    return None
