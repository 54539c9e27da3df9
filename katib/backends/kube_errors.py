"""HTTP answers of an API server as katib.errors (STYLE §4: only the kube backend does this).

404 NotFound; 409 AlreadyExists or Conflict by the Status' reason; 422 Invalid with every cause
as a FieldError (kubectl's wording kept: `field: message`); 400 Invalid (a malformed request,
e.g. a resourceVersion that is not one); 410 Gone Expired; 403 Forbidden; 401 PermanentError
(a wrong token does not heal); 429, 5xx and connection failures TemporaryError (after the
server's Retry-After / retryAfterSeconds when it gave one)."""
from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from katib.errors import (
    AlreadyExists, Conflict, Expired, FieldError, Forbidden, Invalid, KatibError, NotFound, PermanentError,
    TemporaryError)


def status_of(exc: ApiException) -> dict:
    """The Status object an error answer carried ({} when the body is not one)."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {"message": str(body).strip()[:500]}
    return doc if isinstance(doc, dict) else {}


def error_from_status(code: int, status: dict, *, what: str = "", retry_after: str | None = None) -> KatibError:
    """The katib error for an HTTP status code and the Status object that came with it."""
    message = status.get("message") or f"HTTP {code}" + (f" on {what}" if what else "")
    reason = status.get("reason") or ""
    details = status.get("details") or {}
    if code == 404:
        return NotFound(message)
    if code == 409:
        return AlreadyExists(message) if reason == "AlreadyExists" else Conflict(message)
    if code in (400, 422):
        causes = details.get("causes") or []
        errors = [FieldError(c.get("field") or "", c.get("message") or c.get("reason") or "", kind="")
                  for c in causes if isinstance(c, dict)]
        if not errors:
            errors = [FieldError(details.get("name") or "request", message, kind="")]
        return _Invalid(message, errors, kind=details.get("kind") or "", name=details.get("name") or "")
    if code == 410:
        return Expired(message)
    if code == 403:
        return Forbidden(message)
    if code == 401:
        return PermanentError(f"the API server refused our credentials (401 Unauthorized): {message}",
                              reason="Unauthorized")
    if code == 429 or code >= 500 or code == 0:
        return TemporaryError(message, delay=_delay(details.get("retryAfterSeconds"), retry_after))
    return PermanentError(f"HTTP {code} {reason}: {message}")


class _Invalid(Invalid):
    """Invalid whose text is the server's message (it already names kind and name)."""

    def __init__(self, message: str, errors: list[FieldError], *, kind: str, name: str):
        super().__init__(errors, kind=kind, name=name)
        self.args = (message,)

    def __str__(self) -> str:
        return self.args[0]


def _delay(seconds, header: str | None) -> float:
    for value in (seconds, header):
        try:
            if value is not None and float(value) > 0:
                return min(float(value), 30.0)
        except (TypeError, ValueError):
            pass
    return 1.0


def error_from_api_exception(exc: ApiException) -> KatibError:
    """An ApiException (the `kubernetes` client's error) as a katib error."""
    headers = exc.headers or {}
    retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not exc.status:   # the client's own failures (TLS, request building): status 0
        return TemporaryError(f"cannot reach the API server: {' '.join(str(exc.reason or exc).split())}")
    return error_from_status(int(exc.status), status_of(exc), retry_after=retry_after)
