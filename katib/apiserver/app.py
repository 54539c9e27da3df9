"""The aiohttp application: authentication, Status errors, discovery, OpenAPI and the routing of
/api/v1/... and /apis/<group>/<version>/... to the object handlers (`objects`, `watch`).

Every request must carry the bearer token (401 otherwise, /healthz included: a local API that
starts processes is not for other users of the machine). Bodies over MAX_BODY bytes get 413."""
from __future__ import annotations

import hmac
import json
import logging
import threading
from dataclasses import dataclass, field

from aiohttp import web

from katib.apiserver import discovery, objects, watch
from katib.apiserver.status import ApiError, bad_request, failure, method_not_allowed, not_found_resource
from katib.backends.resources import Resource

logger = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024   # kube-apiserver's limit for a request body
PATHS = discovery.by_path()
CONTEXT = web.AppKey("context", object)


@dataclass
class Context:
    backend: object
    cache: object
    token: str
    tables: object = None     # module with table(kind, objects, *, include_object, list_meta)
    openapi: object = None    # module with v3_index(), v3_document(group, version), maybe v2()
    pod_log: object = None    # (namespace, pod, container) → path of its output (podlogs), if pods run
    stop: threading.Event = field(default_factory=threading.Event)

    def stopping(self) -> bool:
        return self.stop.is_set()


@dataclass(frozen=True)
class Target:
    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool


def json_response(data, *, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        content_type=content_type)


def status_response(err: ApiError) -> web.Response:
    return json_response(err.status(), status=err.code)


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as err:
        return status_response(err)
    except web.HTTPRequestEntityTooLarge:
        return status_response(ApiError(413, "RequestEntityTooLarge",
                                        f"the request body is larger than {MAX_BODY} bytes"))
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return json_response(failure(err.status, err.reason.replace(" ", ""), err.text or err.reason),
                             status=err.status)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception as err:  # noqa: BLE001 - a bug must still answer as a Status
        logger.exception("%s %s failed", request.method, request.path)
        return json_response(failure(500, "InternalError", f"internal error: {type(err).__name__}: {err}"),
                             status=500)


@web.middleware
async def warnings_middleware(request: web.Request, handler):
    """Admission webhooks' warnings as `Warning: 299 - "..."` headers, as kube-apiserver sends them."""
    from katib.backends.fake_webhooks import collect_warnings

    found = collect_warnings()
    response = await handler(request)
    if found and not response.prepared:
        for text in dict.fromkeys(found):
            response.headers.add("Warning", '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler):
    ctx: Context = request.app[CONTEXT]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), ctx.token.encode()):
        return json_response(failure(401, "Unauthorized", "Unauthorized"), status=401)
    return await handler(request)


def build_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[warnings_middleware, errors_middleware, auth_middleware],
                          client_max_size=MAX_BODY)
    app[CONTEXT] = ctx
    for path in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(path, health)
        app.router.add_get(path + "/{check:.*}", health)
    app.router.add_get("/version", version)
    app.router.add_get("/api", api_root)
    app.router.add_get("/apis", apis_root)
    app.router.add_get("/openapi/v2", openapi_v2)
    app.router.add_get("/openapi/v3", openapi_v3_index)
    app.router.add_get("/openapi/v3/{path:.+}", openapi_v3_document)
    app.router.add_route("*", "/api/{version}", group_version)
    app.router.add_route("*", "/apis/{group}", group_root)
    app.router.add_route("*", "/apis/{group}/{version}", group_version)
    app.router.add_route("*", "/api/{version}/{rest:.+}", resource_request)
    app.router.add_route("*", "/apis/{group}/{version}/{rest:.+}", resource_request)
    app.router.add_route("*", "/{rest:.*}", unknown_path)
    return app


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def version(request: web.Request) -> web.Response:
    return json_response(discovery.VERSION)


async def api_root(request: web.Request) -> web.Response:
    return json_response(discovery.api_versions(request.host))


async def apis_root(request: web.Request) -> web.Response:
    return json_response(discovery.api_group_list())


async def group_root(request: web.Request) -> web.Response:
    _only_get(request)
    doc = discovery.api_group(request.match_info["group"])
    if doc is None:
        raise not_found_resource()
    return json_response(doc)


async def group_version(request: web.Request) -> web.Response:
    _only_get(request)
    group = request.match_info.get("group", "")
    doc = discovery.api_resource_list(group, request.match_info["version"])
    if doc is None or (not group and request.path.startswith("/apis/")):
        raise not_found_resource()
    return json_response(doc)


async def unknown_path(request: web.Request) -> web.Response:
    raise not_found_resource()


async def openapi_v2(request: web.Request) -> web.Response:
    spec = request.app[CONTEXT].openapi
    fn = getattr(spec, "v2", None)
    doc = fn() if fn is not None else None
    if doc is None:
        raise not_found_resource()
    return json_response(doc)


async def openapi_v3_index(request: web.Request) -> web.Response:
    spec = request.app[CONTEXT].openapi
    if spec is None:
        raise not_found_resource()
    return json_response(spec.v3_index())


async def openapi_v3_document(request: web.Request) -> web.Response:
    spec = request.app[CONTEXT].openapi
    parts = request.match_info["path"].strip("/").split("/")
    if spec is None:
        raise not_found_resource()
    if parts[0] == "api" and len(parts) == 2:
        doc = spec.v3_document("", parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        doc = spec.v3_document(parts[1], parts[2])
    else:
        doc = None
    if doc is None:
        raise not_found_resource()
    return json_response(doc)


def _only_get(request: web.Request) -> None:
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed(request.method)


def parse_target(group: str, version: str, rest: str) -> Target:
    """The resource, namespace, name and subresource a request path addresses (404 if none)."""
    segs = [s for s in rest.split("/")]
    if any(not s for s in segs):
        raise not_found_resource()
    is_watch = segs[0] == "watch"
    if is_watch:
        segs = segs[1:]
    namespace = None
    if (len(segs) >= 3 and segs[0] == "namespaces"
            and not (group == "" and len(segs) == 3 and segs[2] in ("status", "finalize"))):
        namespace, segs = segs[1], segs[2:]
    if not segs or len(segs) > 3:
        raise not_found_resource()
    res = PATHS.get((group, version, segs[0]))
    if res is None or (namespace is not None and not res.namespaced):
        raise not_found_resource()
    name = segs[1] if len(segs) > 1 else None
    sub = segs[2] if len(segs) > 2 else None
    if sub is not None and not ((sub == "status" and res.has_status) or (sub == "log" and res.kind == "Pod")):
        raise not_found_resource()
    if res.namespaced and name is not None and namespace is None:
        raise not_found_resource()
    return Target(res, namespace, name, sub, is_watch)


async def resource_request(request: web.Request) -> web.StreamResponse:
    ctx: Context = request.app[CONTEXT]
    target = parse_target(request.match_info.get("group", ""), request.match_info["version"],
                          request.match_info["rest"])
    method = request.method
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        objects.check_dry_run(request.query.getall("dryRun", []))
    if target.subresource == "log" and not target.watch:
        from katib.apiserver import podlogs
        return await podlogs.serve(request, ctx, target)
    if method in ("GET", "HEAD") and (target.watch or _flag(request.query.get("watch"))):
        return await watch.serve(request, ctx, target)
    if target.watch:
        raise method_not_allowed(method)
    handler = objects.route(method, target)
    if handler is None:
        raise method_not_allowed(method)
    return await handler(request, ctx, target)


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")
