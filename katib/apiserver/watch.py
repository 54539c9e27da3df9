"""Watch: a chunked stream of `{"type": ..., "object": ...}` lines from the watch cache.

Where it starts: `resourceVersion` unset or "0" → ADDED for every current object, then changes;
`sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan`) → the same ADDED events,
then a BOOKMARK annotated `k8s.io/initial-events-end: "true"` (what `kubectl wait` and
client-go's watch-list wait for); a number → the changes after it, or one ERROR event with a
410 Expired Status when the cache no longer reaches back that far. A resourceVersion the cache
has not reached within RV_WAIT seconds is answered 504 `Too large resource version` (as
kube-apiserver does; clients relist). BOOKMARKs every BOOKMARK_SECONDS with allowWatchBookmarks;
the stream ends after timeoutSeconds (default 30-60 minutes)."""
from __future__ import annotations

import asyncio
import json
import random

from aiohttp import web

from katib.apiserver import negotiation as media
from katib.apiserver.status import ApiError, bad_request, failure, invalid
from katib.apiserver.watchcache import Expired
from katib.backends.base import ADDED, DELETED, MODIFIED
from katib.errors import FieldError

RV_WAIT = 3.0
BOOKMARK_SECONDS = 10.0
DEFAULT_TIMEOUT = (1800, 3600)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def parse_rv(text: str | None) -> int | None:
    if text in (None, "", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f'invalid resource version "{text}"') from None
    if value < 0:
        raise bad_request(f'invalid resource version "{text}"')
    return value


def too_large(rv: int, current: int) -> ApiError:
    return ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {current}",
                    details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                             "retryAfterSeconds": 1})


async def check_resource_version(request, ctx) -> int | None:
    """A resourceVersion in a list or watch must have been reached (504 after RV_WAIT if not)."""
    rv = parse_rv(request.query.get("resourceVersion"))
    if rv is not None and not await ctx.cache.wait_until(rv, RV_WAIT):
        raise too_large(rv, ctx.cache.latest_rv)
    return rv


def _flag(request, name: str) -> bool:
    return (request.query.get(name) or "").lower() in ("1", "true")


def _timeout(request) -> float:
    text = request.query.get("timeoutSeconds")
    if text is None:
        return float(random.randint(*DEFAULT_TIMEOUT))
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"timeoutSeconds: Invalid value: {text!r}: must be an integer") from None
    return float(value) if value > 0 else float(random.randint(*DEFAULT_TIMEOUT))


class _Filter:
    def __init__(self, target, match):
        self.kind = target.res.kind
        self.namespace = target.namespace
        self.match = match

    def wanted(self, obj: dict | None) -> bool:
        return (obj is not None and obj.get("kind") == self.kind
                and (self.namespace is None or obj["metadata"].get("namespace") == self.namespace)
                and self.match(obj))

    def event(self, entry) -> str | None:
        """The event type this watcher sees for a cache entry (None: not for it)."""
        now = entry.type != DELETED and self.wanted(entry.object)
        if entry.previous is None:
            if entry.type == DELETED:
                return DELETED if self.wanted(entry.object) else None
            return entry.type if now else None
        before = self.wanted(entry.previous)
        if entry.type == DELETED:
            return DELETED if before or self.wanted(entry.object) else None
        if now:
            return MODIFIED if before else ADDED
        return DELETED if before else None


async def serve(request, ctx, target) -> web.StreamResponse:
    from katib.apiserver.objects import render_table, selected, snapshot
    if target.name is not None:
        name_match = selected(request, target)
        match = lambda o: o["metadata"].get("name") == target.name and name_match(o)  # noqa: E731
    else:
        match = selected(request, target)
    table = media.wants_table(request.headers.get("Accept"))
    bookmarks = _flag(request, "allowWatchBookmarks")
    initial = request.query.get("sendInitialEvents")
    if initial is not None and initial.lower() in ("1", "true"):
        if request.query.get("resourceVersionMatch") != "NotOlderThan":
            raise invalid(None, "", [FieldError("resourceVersionMatch", "sendInitialEvents requires setting "
                                                "resourceVersionMatch to NotOlderThan", kind="Forbidden")],
                          kind="ListOptions.meta.k8s.io")
        send_initial = True
    else:
        send_initial = False
    timeout = _timeout(request)
    rv = await check_resource_version(request, ctx)
    snapshot_items = None
    if send_initial or rv is None:
        rv, snapshot_items = await snapshot(ctx, target, match)
    response = web.StreamResponse(status=200, headers={"Content-Type": media.JSON})
    response.enable_chunked_encoding()
    await response.prepare(request)
    stream = _Stream(response, ctx, target, table=table, request=request, render_table=render_table)
    try:
        for obj in snapshot_items or ():
            await stream.send(ADDED, obj)
        if send_initial:
            await stream.bookmark(rv, initial_end=True)
        await _follow(stream, ctx, _Filter(target, match), rv, timeout=timeout, bookmarks=bookmarks)
    except (ConnectionResetError, ConnectionError):
        pass
    return response


async def _follow(stream, ctx, flt: _Filter, rv: int, *, timeout: float, bookmarks: bool) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_bookmark = loop.time() + BOOKMARK_SECONDS
    cursor = rv
    while not ctx.stopping():
        try:
            entries = ctx.cache.since(cursor)
        except Expired as err:
            await stream.error(failure(410, "Expired", str(err)))
            return
        for entry in entries:
            kind = flt.event(entry)
            if kind is not None:
                await stream.send(kind, entry.object)
            cursor = entry.rv
        if entries:
            continue
        now = loop.time()
        if now >= deadline:
            return
        if bookmarks and now >= next_bookmark:
            await stream.bookmark(cursor)
            next_bookmark = now + BOOKMARK_SECONDS
        wait = min(deadline, next_bookmark if bookmarks else deadline) - now
        await ctx.cache.wait(cursor, max(wait, 0.01))


class _Stream:
    def __init__(self, response, ctx, target, *, table: bool, request, render_table):
        self.response = response
        self.ctx = ctx
        self.target = target
        self.table = table
        self.request = request
        self.render_table = render_table

    async def _write(self, event: dict) -> None:
        await self.response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    async def send(self, kind: str, obj: dict) -> None:
        if self.table:
            obj = self.render_table(self.ctx, self.target.res.kind, [obj], self.request)
        await self._write({"type": kind, "object": obj})

    async def bookmark(self, rv: int, *, initial_end: bool = False) -> None:
        meta: dict = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        res = self.target.res
        await self._write({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                                          "metadata": meta}})

    async def error(self, status: dict) -> None:
        await self._write({"type": "ERROR", "object": status})
