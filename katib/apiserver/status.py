"""`Status` objects: how the API server says what went wrong (and how a delete went right).

`ApiError` carries an HTTP code, a Kubernetes reason and details; `from_exception` turns the
backend's katib.errors into them as kube-apiserver would answer: 404 NotFound, 409
AlreadyExists/Conflict, 422 Invalid with one cause per field error (kubectl prints each)."""
from __future__ import annotations

from katib.backends.resources import Resource
from katib.errors import AlreadyExists, Conflict, FieldError, Forbidden, Invalid, NotFound, TemporaryError

# FieldError.kind (Kubernetes' field.ErrorType text) → the cause reason (field.ErrorType).
CAUSE_REASONS = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Unsupported value": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Duplicate value": "FieldValueDuplicate",
    "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany",
    "Not found": "FieldValueNotFound",
    "Internal error": "InternalError",
}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        return failure(self.code, self.reason, self.message, details=self.details)


def failure(code: int, reason: str, message: str, *, details: dict | None = None) -> dict:
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason}
    if details:
        out["details"] = details
    out["code"] = code
    return out


def success(res: Resource, name: str, uid: str | None) -> dict:
    details = {"name": name, "group": res.group, "kind": res.plural}
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def not_found_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    details={"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource "
                                             f"({method})")


def cause(fe: FieldError) -> dict:
    text = str(fe)
    prefix = f"{fe.path}: "
    return {"reason": CAUSE_REASONS.get(fe.kind, "FieldValueInvalid"),
            "message": text[len(prefix):] if text.startswith(prefix) else text, "field": fe.path}


def invalid(res: Resource | None, name: str, errors: list[FieldError], *, kind: str = "") -> ApiError:
    kind = res.kind if res is not None else (kind or "Object")
    qualified = f"{kind}.{res.group}" if res is not None and res.group else kind
    listed = ", ".join(str(e) for e in errors)
    message = f'{qualified} "{name}" is invalid: ' + (f"[{listed}]" if len(errors) > 1 else listed)
    details = {"name": name, "group": res.group if res is not None else "", "kind": kind,
               "causes": [cause(e) for e in errors]}
    return ApiError(422, "Invalid", message, details=details)


def from_exception(err: Exception, res: Resource | None, name: str = "") -> ApiError:
    """The Status error for a backend exception; anything unexpected is re-raised."""
    if isinstance(err, ApiError):
        return err
    status = getattr(err, "api_status", None)
    if isinstance(status, dict):   # an admission webhook's answer, relayed as it is
        return ApiError(int(status.get("code") or 500), str(status.get("reason") or ""), str(status.get("message")),
                        details=status.get("details"))
    details = {"name": name, "group": res.group, "kind": res.plural} if res is not None and name else None
    if isinstance(err, NotFound):
        return ApiError(404, "NotFound", str(err), details=details)
    if isinstance(err, AlreadyExists):
        return ApiError(409, "AlreadyExists", str(err), details=details)
    if isinstance(err, Conflict):
        return ApiError(409, "Conflict", str(err), details=details)
    if isinstance(err, Invalid):
        return invalid(res, name or err.name, err.errors, kind=err.kind)
    if isinstance(err, Forbidden):
        return ApiError(403, "Forbidden", str(err), details=details)
    if isinstance(err, TemporaryError):
        return ApiError(503, "ServiceUnavailable", str(err),
                        details={"retryAfterSeconds": max(1, int(err.delay))})
    raise err
