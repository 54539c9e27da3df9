"""Which registered admission webhooks a request reaches, and what their answers mean, as
kube-apiserver decides it (admissionregistration.k8s.io/v1). Pure: no I/O.

`hooks_of(configuration, mutating=...)` reads the webhooks of a Mutating/Validating
WebhookConfiguration; `Hook.selects(...)` matches a request against its rules (operations,
apiGroups, apiVersions, resources with `*`, `<resource>/<sub>`, `*/*` and `<resource>/*`, scope),
its namespaceSelector and its objectSelector (metav1.LabelSelector: matchLabels and
matchExpressions In/NotIn/Exists/DoesNotExist); `review(...)` builds the AdmissionReview to send
and `read_answer(...)` checks the one that comes back (CallFailed when it is not a valid answer);
`denied_status(...)` is the Status kube-apiserver answers for a refusal; `configuration_errors`
is what its validation refuses in a configuration (names, admissionReviewVersions, sideEffects,
failurePolicy, matchPolicy, timeoutSeconds, clientConfig)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from katib.backends.resources import Resource
from katib.errors import FieldError

REVIEW_VERSIONS = ("v1", "v1beta1")   # what we can send, in order of preference
DEFAULT_TIMEOUT = 10                   # seconds (admissionregistration v1's default)
USER = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
_OPTIONS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


class CallFailed(Exception):
    """The webhook could not be called or gave no usable answer; its failurePolicy decides."""


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A metav1.LabelSelector against labels; None or {} selects everything. ValueError for an
    unknown operator (the webhook call then fails: kube-apiserver cannot evaluate it either)."""
    if not selector:
        return True
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"{op!r} is not a valid label selector operator")
        if not ok:
            return False
    return True


def _listed(values, value: str) -> bool:
    return "*" in (values or ()) or value in (values or ())


def _resource_listed(patterns, resource: str, sub: str) -> bool:
    for pattern in patterns or ():
        main, _, psub = pattern.partition("/")
        if not sub and not psub and main in ("*", resource):
            return True
        if sub and psub and main in ("*", resource) and psub in ("*", sub):
            return True
    return False


def rule_matches(rule: dict, operation: str, res: Resource, subresource: str = "") -> bool:
    """One RuleWithOperations against a request (scope "*" when unset)."""
    scope = rule.get("scope") or "*"
    if scope == "Namespaced" and not res.namespaced or scope == "Cluster" and res.namespaced:
        return False
    return (_listed(rule.get("operations"), operation) and _listed(rule.get("apiGroups"), res.group)
            and _listed(rule.get("apiVersions"), res.version)
            and _resource_listed(rule.get("resources"), res.plural, subresource))


@dataclass(frozen=True)
class Hook:
    configuration: str
    mutating: bool
    name: str
    spec: dict = field(repr=False, compare=False)

    @property
    def failure_policy(self) -> str:
        return self.spec.get("failurePolicy") or "Fail"

    @property
    def timeout(self) -> float:
        try:
            return float(self.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        except (TypeError, ValueError):
            return float(DEFAULT_TIMEOUT)

    @property
    def client_config(self) -> dict:
        return self.spec.get("clientConfig") or {}

    def review_version(self) -> str:
        """The AdmissionReview version to send: the first of its admissionReviewVersions we speak."""
        for version in self.spec.get("admissionReviewVersions") or ():
            if version in REVIEW_VERSIONS:
                return version
        raise CallFailed(f"webhook does not accept v1 or v1beta1 AdmissionReview (admissionReviewVersions: "
                         f"{self.spec.get('admissionReviewVersions')})")

    def covers(self, operation: str, res: Resource, subresource: str = "") -> bool:
        return any(rule_matches(r, operation, res, subresource) for r in self.spec.get("rules") or ())

    def selects(self, res: Resource, obj: dict | None, old: dict | None, namespace_labels: dict | None) -> bool:
        """namespaceSelector (on the Namespace's labels; a Namespace object is judged by its own;
        cluster-scoped objects always pass) and objectSelector (new or old object's labels)."""
        ns_selector = self.spec.get("namespaceSelector")
        if res.kind == "Namespace":
            namespace_labels = _labels(obj) or _labels(old)
        if (res.namespaced or res.kind == "Namespace") and not selector_matches(ns_selector, namespace_labels or {}):
            return False
        obj_selector = self.spec.get("objectSelector")
        if not obj_selector:
            return True
        return any(o is not None and selector_matches(obj_selector, _labels(o)) for o in (obj, old))


def _labels(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def hooks_of(configuration: dict, *, mutating: bool) -> list[Hook]:
    name = (configuration.get("metadata") or {}).get("name") or ""
    return [Hook(name, mutating, str(w.get("name") or ""), w)
            for w in configuration.get("webhooks") or () if isinstance(w, dict)]


def review(version: str, *, uid: str, operation: str, res: Resource, subresource: str, name: str,
           namespace: str, obj: dict | None, old: dict | None, dry_run: bool = False) -> dict:
    """The AdmissionReview request kube-apiserver would send."""
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    gvr = {"group": res.group, "version": res.version, "resource": res.plural}
    request = {"uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
               "name": name, "operation": operation, "userInfo": USER, "object": obj, "oldObject": old,
               "dryRun": dry_run, "options": {"apiVersion": "meta.k8s.io/v1", "kind": _OPTIONS.get(operation, "")}}
    if subresource:
        request["subResource"] = request["requestSubResource"] = subresource
    if res.namespaced:
        request["namespace"] = namespace
    return {"apiVersion": f"admission.k8s.io/{version}", "kind": "AdmissionReview", "request": request}


@dataclass(frozen=True)
class Answer:
    allowed: bool
    patch: list | None = None
    status: dict | None = None
    warnings: tuple[str, ...] = ()


def read_answer(body: bytes, *, version: str, uid: str, mutating: bool) -> Answer:
    """The webhook's AdmissionReview answer; CallFailed when it is not one for our request."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise CallFailed(f"the answer is not JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "AdmissionReview" \
            or doc.get("apiVersion") != f"admission.k8s.io/{version}":
        raise CallFailed(f"expected response of kind AdmissionReview in admission.k8s.io/{version}")
    response = doc.get("response")
    if not isinstance(response, dict):
        raise CallFailed("webhook response was absent")
    if response.get("uid") != uid:
        raise CallFailed(f"expected response.uid={uid!r}, got {response.get('uid')!r}")
    warnings = tuple(str(w) for w in response.get("warnings") or () if str(w).strip())
    if response.get("allowed") is not True:
        status = response.get("status")
        return Answer(False, status=status if isinstance(status, dict) else None, warnings=warnings)
    patch = None
    if mutating and response.get("patch"):
        if response.get("patchType") != "JSONPatch":
            raise CallFailed(f"unsupported patch type {response.get('patchType')!r}")
        try:
            patch = json.loads(base64.b64decode(response["patch"], validate=True))
        except (ValueError, TypeError) as err:
            raise CallFailed(f"the patch is not base64-encoded JSON: {err}") from None
        if not isinstance(patch, list):
            raise CallFailed("the patch is not a JSON patch (a list of operations)")
    return Answer(True, patch=patch, warnings=warnings)


def denied_status(hook_name: str, status: dict | None) -> dict:
    """kube-apiserver's Status for a refusal (webhookerrors.ToStatusErr): code ≥ 400 (else 403),
    the message prefixed with `admission webhook "<name>" denied the request`."""
    status = dict(status or {})
    denied_by = f'admission webhook "{hook_name}" denied the request'
    code = status.get("code")
    if not isinstance(code, int) or code < 400:
        status["code"] = 403
    if status.get("status") in (None, "", "Success"):
        status["status"] = "Failure"
    if status.get("message"):
        status["message"] = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        status["message"] = f"{denied_by}: {status['reason']}"
    else:
        status["message"] = f"{denied_by} without explanation"
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, **{k: v for k, v in status.items()
                                                                     if k not in ("kind", "apiVersion", "metadata")}}


def configuration_errors(configuration: dict) -> list[FieldError]:
    """What kube-apiserver's validation of a v1 webhook configuration would refuse (the parts
    that decide how a webhook is called); [] when it is usable."""
    errors: list[FieldError] = []
    hooks = configuration.get("webhooks") or []
    if not isinstance(hooks, list):
        return [FieldError("webhooks", "must be a list", type(hooks).__name__)]
    names: set[str] = set()
    for i, hook in enumerate(hooks):
        at = f"webhooks[{i}]"
        if not isinstance(hook, dict):
            errors.append(FieldError(at, "must be an object", type(hook).__name__))
            continue
        name = hook.get("name")
        if not name:
            errors.append(FieldError(f"{at}.name", "", kind="Required value"))
        elif not isinstance(name, str) or name.count(".") < 2:
            errors.append(FieldError(f"{at}.name", "should be a domain with at least three segments separated "
                                                   "by dots", name))
        elif name in names:
            errors.append(FieldError(f"{at}.name", "", name, kind="Duplicate value"))
        names.add(name if isinstance(name, str) else "")
        versions = hook.get("admissionReviewVersions")
        if not versions:
            errors.append(FieldError(f"{at}.admissionReviewVersions", "must specify one of v1, v1beta1",
                                     kind="Required value"))
        elif not any(v in REVIEW_VERSIONS for v in versions):
            errors.append(FieldError(f"{at}.admissionReviewVersions", "must include at least one of v1, v1beta1",
                                     versions))
        for field_name, allowed, required in (("sideEffects", ("None", "NoneOnDryRun"), True),
                                              ("failurePolicy", ("Fail", "Ignore"), False),
                                              ("matchPolicy", ("Equivalent", "Exact"), False)):
            value = hook.get(field_name)
            if value is None and required:
                errors.append(FieldError(f"{at}.{field_name}", "must specify one of " + ", ".join(allowed),
                                         kind="Required value"))
            elif value is not None and value not in allowed:
                errors.append(FieldError(f"{at}.{field_name}", "supported values: " +
                                         ", ".join(f'"{a}"' for a in allowed), value, kind="Unsupported value"))
        timeout = hook.get("timeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 30):
            errors.append(FieldError(f"{at}.timeoutSeconds", "the timeout value must be between 1 and 30 seconds",
                                     timeout))
        config = hook.get("clientConfig") or {}
        if bool(config.get("url")) == bool(config.get("service")):
            errors.append(FieldError(f"{at}.clientConfig", "exactly one of url or service is required",
                                     kind="Required value"))
        elif config.get("url") and not str(config["url"]).startswith("https://"):
            errors.append(FieldError(f"{at}.clientConfig.url", "'https' is the only allowed URL scheme",
                                     config["url"]))
    return errors
