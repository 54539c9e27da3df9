"""AdmissionReview requests and responses (admission.k8s.io/v1, and v1beta1 requests).

`read_request(body)` checks the review's shape and returns its request, or raises
MalformedReview (the server answers HTTP 400); `allow`, `patch` and `deny` build the answer in
the review's own apiVersion, echoing the request's uid as the API server requires."""
from __future__ import annotations

import base64
import json

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class MalformedReview(ValueError):
    """Not an AdmissionReview we can answer; str() says what is wrong."""


def read_request(body: bytes | str | dict) -> tuple[str, dict]:
    """(apiVersion, request) of an AdmissionReview body."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise MalformedReview(f"the body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise MalformedReview("the body is not a JSON object")
    if body.get("kind") != "AdmissionReview" or body.get("apiVersion") not in API_VERSIONS:
        raise MalformedReview(f"expected kind AdmissionReview in {' or '.join(API_VERSIONS)}, got kind "
                              f"{body.get('kind')!r} apiVersion {body.get('apiVersion')!r}")
    request = body.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("request: required, an object")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise MalformedReview("request.uid: required")
    if request.get("operation") not in OPERATIONS:
        raise MalformedReview(f"request.operation: must be one of {', '.join(OPERATIONS)}")
    for field in ("object", "oldObject"):
        if request.get(field) is not None and not isinstance(request[field], dict):
            raise MalformedReview(f"request.{field}: must be an object")
    if request.get("operation") in ("CREATE", "UPDATE") and not isinstance(request.get("object"), dict):
        raise MalformedReview("request.object: required for CREATE and UPDATE")
    return body["apiVersion"], request


def _review(api_version: str, response: dict) -> dict:
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def allow(api_version: str, request: dict) -> dict:
    return _review(api_version, {"uid": request["uid"], "allowed": True})


def patch(api_version: str, request: dict, operations: list[dict]) -> dict:
    """Allowed, with an RFC 6902 JSON patch (none when there is nothing to change)."""
    if not operations:
        return allow(api_version, request)
    encoded = base64.b64encode(json.dumps(operations).encode()).decode()
    return _review(api_version, {"uid": request["uid"], "allowed": True, "patchType": "JSONPatch",
                                 "patch": encoded})


def deny(api_version: str, request: dict, status: dict) -> dict:
    """Refused, with a metav1.Status (code, reason, message, details) the API server relays."""
    status = {k: v for k, v in status.items() if k in ("code", "reason", "message", "details", "status")}
    status.setdefault("status", "Failure")
    return _review(api_version, {"uid": request["uid"], "allowed": False, "status": status})
