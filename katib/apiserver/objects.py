"""Object handlers: get, list, create, update, patch (merge, strategic, JSON, apply), delete and
deletecollection, and the status subresource, over the Backend protocol.

The backend's calls block (a lock, a database write): they run on the default executor, so one
slow write never stalls the watches streaming on the event loop. A PATCH reads, patches and
writes with the read resourceVersion as precondition, retrying on conflict as kube-apiserver
does; the name, namespace and kind an object is sent under must be those of the URL (400)."""
from __future__ import annotations

import asyncio
import base64
import contextvars
import json
from functools import partial

from aiohttp import web

from katib.apiserver import negotiation as media, patches
from katib.apiserver.selectors import parse_field_selector, parse_label_selector
from katib.apiserver.status import ApiError, bad_request, from_exception, invalid, success
from katib.errors import Conflict, FieldError, NotFound

PATCH_RETRIES = 5
PROPAGATIONS = ("Foreground", "Background", "Orphan")
CUSTOM_GROUPS = ("kubeflow.org",)   # served as custom resources: no strategic merge patch


def route(method: str, target):
    if target.name is None:
        return {"GET": list_objects, "HEAD": list_objects, "POST": create_object,
                "DELETE": delete_collection}.get(method)
    return {"GET": get_object, "HEAD": get_object, "PUT": update_object, "PATCH": patch_object,
            "DELETE": delete_object}.get(method)


async def call(ctx, target, fn, *args, **kwargs):
    """Run a blocking backend call off the loop; its katib.errors become Status errors."""
    try:   # in this request's context: admission warnings reach its list (app.warnings_middleware)
        return await asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run,
                                                                partial(fn, *args, **kwargs))
    except Exception as err:  # noqa: BLE001 - re-raised unless it is a backend answer
        raise from_exception(err, target.res, target.name or "") from None


def respond(request, ctx, target, obj: dict, *, status: int = 200) -> web.Response:
    from katib.apiserver.app import json_response
    if media.wants_table(request.headers.get("Accept")):
        return json_response(render_table(ctx, target.res.kind, [obj], request), status=status)
    return json_response(obj, status=status)


def render_table(ctx, kind: str, items: list[dict], request, *, list_meta: dict | None = None) -> dict:
    include = request.query.get("includeObject", "Metadata")
    if include not in ("None", "Metadata", "Object"):
        raise bad_request(f'includeObject: Unsupported value: "{include}": supported values: "Metadata", '
                          f'"None", "Object"')
    make = getattr(ctx.tables, "table", None) or media.minimal_table
    return make(kind, items, include_object=include, list_meta=list_meta)


async def read_body(request) -> object:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("the request body is empty")
    return media.decode_body(raw, media.content_type(request.headers.get("Content-Type")))


def check_identity(target, obj, *, name_required: bool) -> dict:
    """`obj` is an object of the URL's kind, in its namespace, with its name (filled when absent)."""
    res = target.res
    if not isinstance(obj, dict):
        raise bad_request(f"the body must be a JSON object of kind {res.kind}, not {type(obj).__name__}")
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind != res.kind or api_version != res.api_version:
        raise bad_request(f"the object provided is of kind {kind!r} and apiVersion {api_version!r}: this URL "
                          f"takes kind {res.kind!r}, apiVersion {res.api_version!r}")
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise invalid(res, "", [FieldError("metadata", "must be an object", type(meta).__name__)])
    if res.namespaced:
        ns = meta.get("namespace")
        if ns and ns != target.namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        meta["namespace"] = target.namespace
    if target.name is not None:
        if meta.get("name") and meta["name"] != target.name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                              f"({target.name})")
        meta["name"] = target.name
    elif name_required and not meta.get("name") and not meta.get("generateName"):
        raise invalid(res, "", [FieldError("metadata.name", "name or generateName is required",
                                           kind="Required value")])
    return obj


# ---- reads -------------------------------------------------------------------------------------
async def get_object(request, ctx, target):
    obj = await call(ctx, target, ctx.backend.get, target.res.kind, target.namespace or "", target.name)
    return respond(request, ctx, target, obj)


def selected(request, target):
    """The predicate of the request's label and field selectors (400 when one does not parse)."""
    try:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields, _ = parse_field_selector(request.query.get("fieldSelector"))
    except ValueError as err:
        raise bad_request(str(err)) from None
    return lambda obj: labels(obj) and fields(obj)


def _continue_token(rv: int, key: tuple) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": list(key)}).encode()).decode()


def _read_continue(token: str) -> tuple[int, tuple]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), tuple(str(p) for p in data["start"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("continue key is not valid") from None


def _limit(request) -> int:
    text = request.query.get("limit", "0") or "0"
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"limit: Invalid value: {text!r}: must be an integer") from None
    return max(value, 0)


async def snapshot(ctx, target, match) -> tuple[int, list[dict]]:
    """The matching objects in key order and a resourceVersion that covers all of them."""
    before = ctx.cache.latest_rv
    items = await call(ctx, target, ctx.backend.list, target.res.kind, target.namespace or None)
    items = [o for o in items if match(o)]
    rv = max([before] + [int(o["metadata"].get("resourceVersion") or 0) for o in items])
    items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return rv, items


async def list_objects(request, ctx, target):
    from katib.apiserver.app import json_response
    from katib.apiserver.watch import check_resource_version
    match = selected(request, target)
    limit = _limit(request)
    await check_resource_version(request, ctx)
    rv, items = await snapshot(ctx, target, match)
    token = request.query.get("continue")
    if token:
        rv, start = _read_continue(token)
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
    list_meta: dict = {"resourceVersion": str(rv)}
    if limit and len(items) > limit:
        last = items[limit - 1]["metadata"]
        list_meta["continue"] = _continue_token(rv, (last.get("namespace", ""), last["name"]))
        list_meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    if media.wants_table(request.headers.get("Accept")):
        return json_response(render_table(ctx, target.res.kind, items, request, list_meta=list_meta))
    return json_response({"apiVersion": target.res.api_version, "kind": target.res.kind + "List",
                          "metadata": list_meta, "items": items})


# ---- writes ------------------------------------------------------------------------------------
def check_dry_run(values: list[str]) -> None:
    """The `dryRun` values of a write: "All" (each) or none; 400 for any other."""
    for value in values:
        if value != "All":
            raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')


def dry_run(request) -> dict:
    """Keyword arguments for the backend's write: `dry_run=True` for a dry run, else none (a
    backend that does not know dry runs is never asked for one)."""
    return {"dry_run": True} if request.query.getall("dryRun", []) else {}


async def create_object(request, ctx, target):
    obj = check_identity(target, await read_body(request), name_required=True)
    name = obj["metadata"].get("name") or ""
    created = await call(ctx, target.__class__(target.res, target.namespace, name, None, False),
                         ctx.backend.create, obj, **dry_run(request))
    return respond(request, ctx, target, created, status=201)


async def update_object(request, ctx, target):
    obj = check_identity(target, await read_body(request), name_required=True)
    write = ctx.backend.update_status if target.subresource == "status" else ctx.backend.update
    return respond(request, ctx, target, await call(ctx, target, write, obj, **dry_run(request)))


async def patch_object(request, ctx, target):
    kind = media.content_type(request.headers.get("Content-Type"))
    if kind == media.APPLY_CBOR or kind not in media.PATCH_TYPES:
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                    f"accepted media types include: {', '.join(media.PATCH_TYPES)}")
    if kind == media.STRATEGIC and target.res.group in CUSTOM_GROUPS:
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                                                    "media types include: " + ", ".join(
                                                        t for t in media.PATCH_TYPES if t != media.STRATEGIC))
    body = await read_body(request)
    manager = request.query.get("fieldManager", "")
    if kind == media.APPLY:
        if not manager:
            raise invalid(None, "", [FieldError("fieldManager", "is required for apply patch",
                                                kind="Required value")], kind="PatchOptions.meta.k8s.io")
        body = check_identity(target, body, name_required=True)
    for attempt in range(PATCH_RETRIES):
        try:
            live = await call(ctx, target, ctx.backend.get, target.res.kind, target.namespace or "", target.name)
        except ApiError as err:
            if err.code == 404 and kind == media.APPLY and target.subresource is None:
                created = patches.apply_configuration(None, body, manager=manager)
                return respond(request, ctx, target,
                               await call(ctx, target, ctx.backend.create, created, **dry_run(request)), status=201)
            raise
        new, pinned = _patched(target, live, body, kind, manager)
        write = ctx.backend.update_status if target.subresource == "status" else ctx.backend.update
        try:
            return respond(request, ctx, target, await call(ctx, target, write, new, **dry_run(request)))
        except ApiError as err:
            if err.reason != "Conflict" or pinned or attempt == PATCH_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _patched(target, live: dict, body, kind: str, manager: str) -> tuple[dict, bool]:
    """The object after the patch, and whether the patch itself pinned a resourceVersion."""
    try:
        if kind == media.JSON_PATCH:
            new = patches.json_patch(live, body)
        elif kind == media.APPLY:
            new = patches.apply_configuration(live, body, manager=manager,
                                              subresource=target.subresource or "")
        elif not isinstance(body, dict):
            raise patches.PatchError("a merge patch must be a JSON object")
        elif kind == media.MERGE:
            new = patches.merge_patch(live, body)
        else:
            new = patches.strategic_merge(live, body)
    except patches.PatchError as err:
        raise invalid(target.res, target.name, [FieldError("patch", str(err), kind="")]) from None
    if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
        raise bad_request("the patch leaves no object with metadata")
    meta = new["metadata"]
    for field, want in (("name", target.name), ("namespace", live["metadata"].get("namespace"))):
        if meta.get(field) != want:
            raise bad_request(f"the patch may not change metadata.{field}")
    if new.get("kind") != live["kind"] or new.get("apiVersion") != live["apiVersion"]:
        raise bad_request("the patch may not change kind or apiVersion")
    sent_rv = meta.get("resourceVersion")
    pinned = sent_rv is not None and sent_rv != live["metadata"].get("resourceVersion")
    if not pinned:
        meta["resourceVersion"] = live["metadata"]["resourceVersion"]
    return new, pinned or (kind != media.APPLY and isinstance(body, dict)
                           and "resourceVersion" in (body.get("metadata") or {}))


# ---- deletes -----------------------------------------------------------------------------------
async def delete_options(request) -> dict:
    raw = await request.read()
    options: dict = {}
    if raw.strip():
        options = media.decode_body(raw, media.content_type(request.headers.get("Content-Type")),
                                    what="the DeleteOptions body")
        if not isinstance(options, dict):
            raise bad_request("the DeleteOptions body must be a JSON object")
    body_dry = options.get("dryRun") or []
    if not isinstance(body_dry, list) or not all(isinstance(v, str) for v in body_dry):
        raise bad_request("DeleteOptions.dryRun must be a list of strings")
    check_dry_run(body_dry)
    dry = {"dry_run": True} if body_dry else dry_run(request)
    policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
    orphan = request.query.get("orphanDependents") or options.get("orphanDependents")
    if policy is None and orphan is not None:
        policy = "Orphan" if str(orphan).lower() == "true" else "Background"
    policy = policy or "Background"
    if policy not in PROPAGATIONS:
        raise invalid(None, "", [FieldError("propagationPolicy", 'supported values: "Foreground", "Background", '
                                            '"Orphan", or nil', policy, kind="Unsupported value")],
                      kind="DeleteOptions")
    return {"policy": policy, "preconditions": options.get("preconditions") or {}, "dry": dry}


async def _delete_one(ctx, target, name: str, options: dict) -> dict | None:
    """Delete `name`; its state afterwards (None when gone), or the object it was."""
    one = target.__class__(target.res, target.namespace, name, None, False)
    ns = target.namespace or ""
    live = await call(ctx, one, ctx.backend.get, target.res.kind, ns, name)
    pre = options["preconditions"]
    if pre.get("uid") and pre["uid"] != live["metadata"].get("uid"):
        raise from_exception(Conflict(f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                                      f"meta: {live['metadata'].get('uid')}"), target.res, name)
    if pre.get("resourceVersion") and str(pre["resourceVersion"]) != live["metadata"].get("resourceVersion"):
        raise from_exception(Conflict(f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{live['metadata'].get('resourceVersion')}"), target.res, name)
    if options["dry"]:   # nothing deleted: the object as the deletion would leave it
        after = await call(ctx, one, ctx.backend.delete, target.res.kind, ns, name, propagation=options["policy"],
                           **options["dry"])
        return {"gone": live} if after is None else after
    await call(ctx, one, ctx.backend.delete, target.res.kind, ns, name, propagation=options["policy"])
    try:
        return await call(ctx, one, ctx.backend.get, target.res.kind, ns, name)
    except ApiError as err:
        if err.code != 404:
            raise
        return None if live is None else {"gone": live}


async def delete_object(request, ctx, target):
    from katib.apiserver.app import json_response
    options = await delete_options(request)
    after = await _delete_one(ctx, target, target.name, options)
    if after is not None and "gone" not in after:
        return respond(request, ctx, target, after)   # held by finalizers: the object, deletionTimestamp set
    uid = after["gone"]["metadata"].get("uid") if after else None
    return json_response(success(target.res, target.name, uid))


async def delete_collection(request, ctx, target):
    from katib.apiserver.app import json_response
    match = selected(request, target)
    options = await delete_options(request)
    _, items = await snapshot(ctx, target, match)
    deleted = []
    for obj in items:
        try:
            after = await _delete_one(ctx, target, obj["metadata"]["name"], options)
        except ApiError as err:
            if err.code == 404:
                continue
            raise
        deleted.append(after["gone"] if after and "gone" in after else (after or obj))
    return json_response({"apiVersion": target.res.api_version, "kind": target.res.kind + "List",
                          "metadata": {"resourceVersion": str(ctx.cache.latest_rv)}, "items": deleted})


__all__ = ["route", "NotFound"]
