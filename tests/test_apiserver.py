"""The HTTPS API in this process (tests/apiserver_fixture.start_in_process) over an in-memory
FakeBackend: the `kubernetes` client's CustomObjectsApi, patches, selectors, paging, the status
subresource, delete options, watch (resume, 410, bookmarks, initial-events-end, timeouts) and
bad input — every refusal a Status, never a 500 or a hang, the store unchanged."""
from __future__ import annotations

import http.client
import json
import socket
import urllib.parse

import pytest
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from tests.apiserver_fixture import api_in_process  # noqa: F401 (fixture)
from tests.experiments import shell_experiment

EXP = "/apis/kubeflow.org/v1alpha3/namespaces/default/experiments"
CM = "/api/v1/namespaces/default/configmaps"


class Http:
    def __init__(self, api):
        self.api = api
        parsed = urllib.parse.urlparse(api.url)
        self.host, self.port = parsed.hostname, parsed.port

    def conn(self, timeout: float = 10) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.api.ssl_context(), timeout=timeout)

    def request(self, method: str, path: str, body=None, *, content_type: str = "application/json",
                token: str | None = None, headers: dict | None = None) -> tuple[int, dict | str]:
        conn = self.conn()
        data = body if isinstance(body, (bytes, type(None))) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        hdrs = {"Authorization": f"Bearer {self.api.token if token is None else token}",
                "Content-Type": content_type, **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read().decode()
        conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw

    def watch(self, path: str, *, count: int, timeout: float = 10) -> list[dict]:
        """The first `count` events of a watch (fewer if the server ends the stream)."""
        conn = self.conn(timeout)
        conn.request("GET", path, headers={"Authorization": f"Bearer {self.api.token}"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        events = []
        try:
            while len(events) < count:
                line = resp.readline()
                if not line:
                    break
                events.append(json.loads(line))
        finally:
            conn.close()
        return events


@pytest.fixture
def api(api_in_process):
    return api_in_process


@pytest.fixture
def h(api):
    return Http(api)


def configmap(name: str, labels: dict | None = None, data: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}}, "data": data or {"a": "1"}}


def experiment(name: str = "e1", **over) -> dict:
    exp = shell_experiment(name, script="", parallel=1, max_trials=2, x_max=11)
    exp["spec"].update(over)
    return exp


def store_snapshot(api) -> list:
    return [(o["kind"], o["metadata"]["name"], o["metadata"]["resourceVersion"])
            for kind in ("Experiment", "ConfigMap") for o in api.backend.list(kind)]


# ---- the kubernetes client ---------------------------------------------------------------------
def test_custom_objects_api_create_get_list_patch_watch_delete(api):
    co = api.custom_objects()
    args = ("kubeflow.org", "v1alpha3", "default", "experiments")
    created = co.create_namespaced_custom_object(*args, experiment("c1"))
    assert created["metadata"]["uid"]
    assert created["spec"]["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"   # admission defaulted it
    got = co.get_namespaced_custom_object(*args, "c1")
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    listed = co.list_namespaced_custom_object(*args)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c1"]
    patched = co.patch_namespaced_custom_object(*args, "c1", {"metadata": {"labels": {"x": "y"}}})
    assert patched["metadata"]["labels"] == {"x": "y"}
    json_patched = co.patch_namespaced_custom_object(
        *args, "c1", [{"op": "replace", "path": "/spec/maxTrialCount", "value": 3}],
        _content_type="application/json-patch+json")
    assert json_patched["spec"]["maxTrialCount"] == 3 and json_patched["metadata"]["generation"] == 2
    status = co.patch_namespaced_custom_object_status(*args, "c1", {"status": {"trials": 7}})
    assert status["status"] == {"trials": 7} and status["metadata"]["generation"] == 2

    w = k8s_watch.Watch()
    seen = []
    for event in w.stream(co.list_namespaced_custom_object, *args, resource_version=listed["metadata"]["resourceVersion"],
                          timeout_seconds=5):
        seen.append((event["type"], event["object"]["metadata"].get("labels")))
        if len(seen) == 3:
            w.stop()
    assert [t for t, _ in seen] == ["MODIFIED", "MODIFIED", "MODIFIED"] and seen[0][1] == {"x": "y"}

    co.delete_namespaced_custom_object(*args, "c1")
    with pytest.raises(ApiException) as err:
        co.get_namespaced_custom_object(*args, "c1")
    assert err.value.status == 404 and json.loads(err.value.body)["reason"] == "NotFound"
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(*args, experiment("c2", maxTrialCount=0, parallelTrialCount=0))
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert {c["field"] for c in body["details"]["causes"]} >= {"spec.maxTrialCount", "spec.parallelTrialCount"}


def test_watch_expired_resource_version_raises_410_in_the_client(api):
    co = api.custom_objects()
    api.server.cache.floor = api.server.cache.latest_rv = max(api.server.cache.latest_rv, 50)
    with pytest.raises(ApiException) as err:
        for _ in k8s_watch.Watch().stream(co.list_namespaced_custom_object, "kubeflow.org", "v1alpha3", "default",
                                          "experiments", resource_version="3", timeout_seconds=5):
            pass
    assert err.value.status == 410


# ---- writes, patches, conflicts ------------------------------------------------------------------
def test_create_conflict_and_already_exists(h):
    code, cm = h.request("POST", CM, configmap("one"))
    assert code == 201
    code, body = h.request("POST", CM, configmap("one"))
    assert code == 409 and body["reason"] == "AlreadyExists"
    stale = dict(cm, data={"b": "2"})
    code, _ = h.request("PUT", f"{CM}/one", stale)
    assert code == 200
    code, body = h.request("PUT", f"{CM}/one", stale)   # the same (now stale) resourceVersion
    assert code == 409 and body["reason"] == "Conflict"


def test_strategic_merge_patch_merges_lists_by_key(h):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                                   {"name": "b", "image": "y"}]}}
    assert h.request("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "L", "value": "2"}]},
                                     {"name": "b", "$patch": "delete"}],
                      "$setElementOrder/containers": [{"name": "a"}]}}
    code, out = h.request("PATCH", "/api/v1/namespaces/default/pods/p", patch,
                          content_type="application/strategic-merge-patch+json")
    assert code == 200
    assert out["spec"]["containers"] == [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"},
                                                                             {"name": "L", "value": "2"}]}]
    code, body = h.request("PATCH", f"{EXP}/none", {"spec": {}}, content_type="application/strategic-merge-patch+json")
    assert code == 415   # custom resources take merge, JSON and apply patches only


def test_server_side_apply_removes_fields_the_manager_dropped(h):
    path = f"{CM}/applied?fieldManager=me"
    code, _ = h.request("PATCH", path, configmap("applied", data={"a": "1", "b": "2"}),
                        content_type="application/apply-patch+yaml")
    assert code == 201
    code, out = h.request("PATCH", path, configmap("applied", data={"a": "3"}), content_type="application/apply-patch+yaml")
    assert code == 200 and out["data"] == {"a": "3"}
    assert [m["manager"] for m in out["metadata"]["managedFields"]] == ["me"]
    code, out = h.request("PATCH", path, configmap("applied", data={"a": "3", "c": "5"}),
                          content_type="application/apply-patch+yaml")
    assert code == 200 and out["data"] == {"a": "3", "c": "5"}
    code, out = h.request("PATCH", path, configmap("applied", data={"a": "3"}), content_type="application/apply-patch+yaml")
    assert code == 200 and out["data"] == {"a": "3"}   # the record of the second apply was kept
    code, body = h.request("PATCH", f"{CM}/applied", configmap("applied"), content_type="application/apply-patch+yaml")
    assert code == 422 and body["details"]["causes"][0]["field"] == "fieldManager"


def test_status_subresource_and_delete_options(h):
    assert h.request("POST", EXP, experiment("s1"))[0] == 201
    code, exp = h.request("GET", f"{EXP}/s1/status")
    assert code == 200
    exp["status"] = {"trials": 1}
    code, out = h.request("PUT", f"{EXP}/s1/status", exp)
    assert code == 200 and out["status"] == {"trials": 1}
    code, body = h.request("DELETE", f"{EXP}/s1", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                   "preconditions": {"uid": "not-it"}})
    assert code == 409 and "Precondition failed" in body["message"]
    code, body = h.request("DELETE", f"{EXP}/s1?propagationPolicy=Sideways")
    assert code == 422
    code, body = h.request("DELETE", f"{EXP}/s1", {"propagationPolicy": "Foreground"})
    assert code == 200 and h.request("GET", f"{EXP}/s1")[0] == 404


# ---- selectors and paging ------------------------------------------------------------------------
def test_label_and_field_selectors_and_paging(h):
    for i, team in enumerate(["a", "b", "c", "a", "b"]):
        assert h.request("POST", CM, configmap(f"cm{i}", labels={"team": team, **({"gpu": "1"} if i % 2 else {})}))[0] == 201

    def names(query: str) -> list[str]:
        code, body = h.request("GET", f"{CM}?{query}")
        assert code == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    q = urllib.parse.quote
    assert names("labelSelector=" + q("team in (a,c)")) == ["cm0", "cm2", "cm3"]
    assert names("labelSelector=" + q("team notin (a),!gpu")) == ["cm2", "cm4"]
    assert names("labelSelector=" + q("gpu,team!=b")) == ["cm3"]
    assert names("fieldSelector=" + q("metadata.name=cm4")) == ["cm4"]
    assert names("fieldSelector=" + q("metadata.name!=cm4,metadata.namespace=default")) == ["cm0", "cm1", "cm2", "cm3"]
    code, first = h.request("GET", f"{CM}?labelSelector=team&limit=2")
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm0", "cm1"]
    assert first["metadata"]["remainingItemCount"] == 3
    code, rest = h.request("GET", f"{CM}?labelSelector=team&limit=2&continue={first['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["cm2", "cm3"]
    code, body = h.request("DELETE", f"{CM}?labelSelector=team%3Db")
    assert code == 200 and sorted(i["metadata"]["name"] for i in body["items"]) == ["cm1", "cm4"]
    assert names("labelSelector=team") == ["cm0", "cm2", "cm3"]


# ---- watch ---------------------------------------------------------------------------------------
def test_watch_resume_bookmark_initial_events_and_selectors(h, api):
    code, listed = h.request("GET", CM)
    rv = listed["metadata"]["resourceVersion"]
    h.request("POST", CM, configmap("w1", labels={"k": "v"}))
    h.request("POST", CM, configmap("w2"))
    h.request("PATCH", f"{CM}/w1", {"metadata": {"labels": None}}, content_type="application/merge-patch+json")
    h.request("DELETE", f"{CM}/w2")
    events = h.watch(f"{CM}?watch=1&resourceVersion={rv}&timeoutSeconds=2", count=4)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"), ("ADDED", "w2"), ("MODIFIED", "w1"), ("DELETED", "w2")]
    selected = h.watch(f"{CM}?watch=1&resourceVersion={rv}&labelSelector=k&timeoutSeconds=2", count=3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected] == [("ADDED", "w1"), ("DELETED", "w1")]

    initial = h.watch(f"{CM}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                      f"&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dw1&timeoutSeconds=2", count=3)
    assert [e["type"] for e in initial] == ["ADDED", "BOOKMARK"]
    assert initial[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(initial[1]["object"]["metadata"]["resourceVersion"]) >= int(events[-1]["object"]["metadata"]["resourceVersion"])
    code, body = h.request("GET", f"{CM}?watch=1&sendInitialEvents=true")
    assert code == 422


def test_watch_bookmarks_arrive_when_nothing_changes(h, monkeypatch):
    from katib.apiserver import watch
    monkeypatch.setattr(watch, "BOOKMARK_SECONDS", 0.2)
    code, listed = h.request("GET", CM)
    events = h.watch(f"{CM}?watch=1&allowWatchBookmarks=true&resourceVersion={listed['metadata']['resourceVersion']}"
                     f"&timeoutSeconds=3", count=2)
    assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]


def test_watch_from_an_expired_version_is_a_410_event(h, api):
    cache = api.server.cache
    for i in range(3):
        h.request("POST", CM, configmap(f"x{i}"))
    cache.floor = cache.latest_rv   # as if the history had been trimmed
    events = h.watch(f"{CM}?watch=1&resourceVersion=1", count=2)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_watch_history_is_bounded():
    from katib.apiserver.watchcache import Expired, WatchCache
    from katib.backends.fake import FakeBackend
    backend = FakeBackend()
    cache = WatchCache(backend, capacity=3)
    for i in range(5):
        backend.create(configmap(f"b{i}"))
    assert [e.object["metadata"]["name"] for e in cache.since(cache.floor)] == ["b2", "b3", "b4"]
    with pytest.raises(Expired):
        cache.since(1)


def test_far_future_resource_version_is_a_504_status_not_a_hang(h, monkeypatch):
    from katib.apiserver import watch
    monkeypatch.setattr(watch, "RV_WAIT", 0.3)
    for path in (f"{CM}?watch=1&resourceVersion=999999", f"{CM}?resourceVersion=999999"):
        code, body = h.request("GET", path)
        assert code == 504 and body["message"].startswith("Too large resource version: 999999")


# ---- bad input ------------------------------------------------------------------------------------
BAD = [
    ("POST", EXP, b'{"kind": "Experiment", ', "application/json", 400),
    ("POST", EXP, b"kind: [unclosed", "application/yaml", 400),
    ("POST", EXP, b"\xff\xfe", "application/json", 400),
    ("POST", EXP, b"[1, 2]", "application/json", 400),
    ("POST", EXP, json.dumps(configmap("wrong-kind")).encode(), "application/json", 400),
    ("POST", EXP, json.dumps({**experiment(), "apiVersion": "kubeflow.org/v1"}).encode(), "application/json", 400),
    ("POST", CM, json.dumps({**configmap("n"), "metadata": {"name": "n", "namespace": "other"}}).encode(),
     "application/json", 400),
    ("PUT", f"{CM}/a", json.dumps(configmap("b")).encode(), "application/json", 400),
    ("POST", EXP, json.dumps(experiment()).encode(), "application/x-protobuf", 415),
    ("POST", EXP, b"{}", "application/json", 400),
    ("PATCH", f"{EXP}/e1", b'{"metadata": {"name": "other"}}', "application/merge-patch+json", 400),
    ("PATCH", f"{EXP}/e1", b'[{"op": "test", "path": "/spec/maxTrialCount", "value": 99}]',
     "application/json-patch+json", 422),
    ("PATCH", f"{EXP}/e1", b'{"spec": {"maxTrialCount": -1}}', "application/merge-patch+json", 422),
    ("GET", f"{EXP}?labelSelector=a%20in%20(b", None, "application/json", 400),
    ("GET", f"{EXP}?labelSelector=-bad-", None, "application/json", 400),
    ("GET", f"{EXP}?fieldSelector=nonsense", None, "application/json", 400),
    ("GET", f"{EXP}?continue=garbage!", None, "application/json", 400),
    ("GET", f"{EXP}?limit=x", None, "application/json", 400),
    ("GET", f"{EXP}?resourceVersion=abc", None, "application/json", 400),
    ("GET", "/apis/kubeflow.org/v1alpha3/namespaces/default/widgets", None, "application/json", 404),
    ("GET", "/apis/nope.io/v1/things", None, "application/json", 404),
    ("GET", "/api/v1/namespaces/default/namespaces/x", None, "application/json", 404),
    ("GET", f"{EXP}/e1/scale", None, "application/json", 404),
    ("GET", "/nothing/here", None, "application/json", 404),
    ("POST", f"{EXP}/e1", b"{}", "application/json", 405),
    ("PUT", EXP, b"{}", "application/json", 405),
    ("POST", f"{EXP}?dryRun=Later", json.dumps(experiment("dry")).encode(), "application/json", 400),
]


@pytest.mark.parametrize("method,path,body,ctype,code", BAD, ids=[f"{m} {p[-40:]} {c}" for m, p, _, c, _ in
                                                                  [(b[0], b[1], None, b[4], None) for b in BAD]])
def test_bad_input_is_a_status_and_changes_nothing(h, api, method, path, body, ctype, code):
    assert h.request("POST", EXP, experiment("e1"))[0] == 201
    assert h.request("POST", CM, configmap("a"))[0] == 201
    before = store_snapshot(api)
    got, status = h.request(method, path, body, content_type=ctype)
    assert got == code, status
    assert status["kind"] == "Status" and status["status"] == "Failure" and status["code"] == code
    assert status["message"] and "\n" not in status["message"]
    assert store_snapshot(api) == before


def test_oversized_body_is_413(h, api):
    before = store_snapshot(api)
    code, status = h.request("POST", CM, configmap("big", data={"x": "y" * (4 * 1024 * 1024)}))
    assert code == 413 and status["reason"] == "RequestEntityTooLarge"
    assert store_snapshot(api) == before


def test_every_request_needs_the_token(h):
    for path in ("/version", "/healthz", "/api", EXP):
        code, status = h.request("GET", path, token="wrong")
        assert code == 401 and status["reason"] == "Unauthorized", path
    code, _ = h.request("GET", "/version")
    assert code == 200


def test_a_dropped_watch_connection_frees_the_server(h):
    conn = h.conn()
    conn.request("GET", f"{CM}?watch=1", headers={"Authorization": f"Bearer {h.api.token}"})
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    for i in range(3):
        assert h.request("POST", CM, configmap(f"after{i}"))[0] == 201
    assert h.request("GET", "/readyz")[0] == 200


def test_discovery_lists_katib_kinds_with_categories(h):
    code, apis = h.request("GET", "/apis")
    kubeflow = next(g for g in apis["groups"] if g["name"] == "kubeflow.org")
    assert {v["version"] for v in kubeflow["versions"]} == {"v1alpha3", "v1"}
    code, resources = h.request("GET", "/apis/kubeflow.org/v1alpha3")
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["experiments"]["categories"] == ["all", "kubeflow", "katib"]
    assert by_name["experiments/status"]["verbs"] == ["get", "patch", "update"]
    assert "watch" in by_name["trials"]["verbs"]
    code, core = h.request("GET", "/api/v1")
    assert {"configmaps", "namespaces", "events", "pods"} <= {r["name"] for r in core["resources"]}
