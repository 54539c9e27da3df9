"""GET /api/v1/namespaces/{ns}/pods/{name}/log: a container's output as plain text, as
kube-apiserver answers `kubectl logs POD -c CONTAINER [--tail N] [-f]`.

The output comes from the node (`Context.pod_log(namespace, pod, container)` → its path). Query
parameters: `container` (needed when the pod has several), `tailLines`, `limitBytes`, `follow`
(the answer streams until the container has terminated and its output is sent). `previous`,
`sinceSeconds`, `sinceTime` and `timestamps` are not supported (400)."""
from __future__ import annotations

import asyncio
import os

from aiohttp import web

from katib.apiserver.status import ApiError, bad_request
from katib.errors import NotFound

FOLLOW_POLL = 0.2
_CHUNK = 64 * 1024


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"{name}: invalid value {value!r}: must be an integer") from None
    if number < 0 or (name == "limitBytes" and number == 0):
        raise bad_request(f"{name}: Invalid value: {number}: must be greater than {'0' if name == 'limitBytes' else 'or equal to 0'}")
    return number


def tail(data: bytes, lines: int) -> bytes:
    if lines == 0:
        return b""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
        return b"\n".join(parts[-lines:]) + b"\n" if parts else b""
    return b"\n".join(parts[-lines:])


def _terminated(pod: dict, container: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == container:
            return bool((status.get("state") or {}).get("terminated"))
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


async def serve(request: web.Request, ctx, target) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        from katib.apiserver.status import method_not_allowed
        raise method_not_allowed(request.method)
    for unsupported in ("previous", "sinceSeconds", "sinceTime", "timestamps"):
        if request.query.get(unsupported) not in (None, "", "false"):
            raise bad_request(f"{unsupported} is not supported by this server (katib.py --fake)")
    try:
        pod = ctx.backend.get("Pod", target.namespace, target.name)
    except NotFound:
        raise ApiError(404, "NotFound", f'pods "{target.name}" not found',
                       details={"name": target.name, "kind": "pods"}) from None
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or ()]
    container = request.query.get("container") or ""
    if not container:
        if len(names) != 1:
            raise bad_request(f"a container name must be specified for pod {target.name}, "
                              f"choose one of: [{' '.join(names)}]")
        container = names[0]
    if container not in names:
        raise bad_request(f"container {container} is not valid for pod {target.name}")
    if ctx.pod_log is None:
        raise bad_request(f"pod {target.name}: this server runs no pods (katib.py --fake serve --api-only does)")
    path = ctx.pod_log(target.namespace, target.name, container)
    if not os.path.exists(path):
        raise bad_request(f'container "{container}" in pod "{target.name}" is waiting to start: ContainerCreating')
    tail_lines, limit = _int(request, "tailLines"), _int(request, "limitBytes")
    follow = request.query.get("follow") in ("true", "1", "True")
    with open(path, "rb") as fh:
        data = fh.read()
        if tail_lines is not None:
            data = tail(data, tail_lines)
        if limit is not None:
            data = data[:limit]
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = len(data)
        await response.write(data)
        while not ctx.stopping() and (limit is None or sent < limit):
            chunk = fh.read(_CHUNK)
            if chunk:
                if limit is not None:
                    chunk = chunk[:limit - sent]
                sent += len(chunk)
                await response.write(chunk)
                continue
            try:
                done = _terminated(ctx.backend.get("Pod", target.namespace, target.name, readonly=True), container)
            except NotFound:
                done = True
            if done:
                rest = fh.read()
                if rest:
                    await response.write(rest if limit is None else rest[:limit - sent])
                break
            await asyncio.sleep(FOLLOW_POLL)
        await response.write_eof()
        return response
