"""Server-side dry runs (`dryRun=All`, `kubectl ... --dry-run=server`): every write is admitted
and checked as the real one would be, the answer is the object the write would leave, and
nothing is stored, persisted or sent to a watch."""
from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from tests.apiserver_fixture import api_in_process, api_server  # noqa: F401 (fixtures)
from tests.test_apiserver import CM, EXP, Http, configmap, experiment

DRY = "?dryRun=All"


@pytest.fixture
def h(api_in_process):
    return Http(api_in_process)


def everything(api) -> list:
    """Every stored object, whole: a dry run must leave all of it as it was."""
    return [o for kind in ("Experiment", "ConfigMap", "Namespace") for o in api.backend.list(kind)]


def no_events_since(h, path: str, rv: str) -> bool:
    return h.watch(f"{path}?watch=1&resourceVersion={rv}&timeoutSeconds=1", count=1, timeout=10) == []


def test_a_dry_run_create_is_admitted_and_answered_but_not_stored(h, api_in_process):
    api = api_in_process
    code, seed = h.request("POST", CM, configmap("seed"))
    assert code == 201
    before = everything(api)
    code, got = h.request("POST", EXP + DRY, experiment("dry"))
    assert code == 201, got
    assert got["metadata"]["name"] == "dry" and got["metadata"]["uid"] and got["metadata"]["creationTimestamp"]
    assert "resourceVersion" not in got["metadata"]
    assert got["spec"]["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"   # defaulted by admission
    assert everything(api) == before
    assert no_events_since(h, EXP, seed["metadata"]["resourceVersion"])
    # refused as the real create would be, with every field error
    code, status = h.request("POST", EXP + DRY, experiment("bad", maxTrialCount=0, parallelTrialCount=-1))
    assert code == 422 and len(status["details"]["causes"]) == 2, status
    # and the same name is still free for the real one
    assert h.request("POST", EXP, experiment("dry"))[0] == 201


def test_dry_run_updates_patches_and_status_change_nothing(h, api_in_process):
    api = api_in_process
    code, live = h.request("POST", EXP, experiment("e1"))
    assert code == 201
    rv = live["metadata"]["resourceVersion"]
    before = everything(api)

    changed = json.loads(json.dumps(live))
    changed["spec"]["maxTrialCount"] = 5
    code, got = h.request("PUT", f"{EXP}/e1{DRY}", changed)
    assert code == 200, got
    assert got["spec"]["maxTrialCount"] == 5 and got["metadata"]["generation"] == 2
    assert got["metadata"]["resourceVersion"] == rv

    code, got = h.request("PATCH", f"{EXP}/e1{DRY}", {"metadata": {"labels": {"team": "a"}}},
                          content_type="application/merge-patch+json")
    assert code == 200 and got["metadata"]["labels"] == {"team": "a"}, got

    code, got = h.request("PATCH", f"{EXP}/e1{DRY}", {"spec": {"maxTrialCount": -1}},
                          content_type="application/merge-patch+json")
    assert code == 422, got

    code, got = h.request("PUT", f"{EXP}/e1/status{DRY}", {**live, "status": {"trials": 7}})
    assert code == 200 and got["status"] == {"trials": 7}, got

    apply = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "default"},
             "data": {"k": "v"}}
    code, got = h.request("PATCH", f"{CM}/applied{DRY}&fieldManager=me", yaml.safe_dump(apply),
                          content_type="application/apply-patch+yaml")
    assert code == 201 and got["data"] == {"k": "v"}, got

    assert everything(api) == before
    assert no_events_since(h, EXP, rv) and no_events_since(h, CM, rv)


def test_a_dry_run_delete_leaves_the_object_and_its_dependents(h, api_in_process):
    api = api_in_process
    code, owner = h.request("POST", CM, configmap("owner"))
    assert code == 201
    dependent = configmap("dependent")
    dependent["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                                 "uid": owner["metadata"]["uid"]}]
    assert h.request("POST", CM, dependent)[0] == 201
    held = configmap("held")
    held["metadata"]["finalizers"] = ["example.com/keep"]
    code, held = h.request("POST", CM, held)
    assert code == 201
    before = everything(api)

    code, got = h.request("DELETE", f"{CM}/owner{DRY}")
    assert code == 200 and got["kind"] == "Status" and got["status"] == "Success", got
    assert got["details"]["uid"] == owner["metadata"]["uid"]
    code, got = h.request("DELETE", f"{CM}/held", {"dryRun": ["All"]})   # in DeleteOptions
    assert code == 200 and got["metadata"]["deletionTimestamp"], got      # what the finalizer would hold
    code, got = h.request("DELETE", f"{CM}{DRY}")                          # the whole collection
    assert code == 200 and {o["metadata"]["name"] for o in got["items"]} == {"owner", "dependent", "held"}

    assert everything(api) == before
    assert no_events_since(h, CM, held["metadata"]["resourceVersion"])


@pytest.mark.parametrize("method, path, body, words", [
    ("POST", f"{CM}?dryRun=Some", configmap("x"), 'dryRun: Unsupported value: "Some": supported values: "All"'),
    ("POST", f"{CM}?dryRun=All&dryRun=", configmap("x"), 'dryRun: Unsupported value: ""'),
    ("DELETE", f"{CM}/seed", {"dryRun": ["Later"]}, 'dryRun: Unsupported value: "Later"'),
    ("DELETE", f"{CM}/seed", {"dryRun": "All"}, "DeleteOptions.dryRun must be a list of strings"),
])
def test_an_unknown_dry_run_value_is_refused_before_anything_is_done(h, api_in_process, method, path, body, words):
    assert h.request("POST", CM, configmap("seed"))[0] == 201
    before = everything(api_in_process)
    code, status = h.request(method, path, body)
    assert code == 400 and words in status["message"], status
    assert everything(api_in_process) == before


def test_kubectl_server_dry_runs_persist_nothing(api_server, tmp_path):
    """The `katib.py --fake serve` process on its SQLite database, with kubectl's own dry runs."""
    exp = experiment("kx")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))

    def rows() -> list:
        with sqlite3.connect(api_server.db) as conn:
            return conn.execute("select kind, namespace, name, resource_version, body from objects "
                                "order by kind, namespace, name").fetchall()

    before = rows()
    said = api_server.kubectl("apply", "--dry-run=server", "-f", str(path)).stdout
    assert "experiment.kubeflow.org/kx created (server dry run)" in said
    assert "created (server dry run)" in api_server.kubectl("create", "namespace", "team", "--dry-run=server").stdout
    assert rows() == before
    assert "No resources found" in api_server.kubectl("get", "experiments").stderr

    api_server.kubectl("apply", "-f", str(path))
    api_server.kubectl("wait", "--for=condition=Succeeded", "experiment/kx", "--timeout=60s")
    assert "labeled (server dry run)" in api_server.kubectl("label", "experiment", "kx", "a=b",
                                                            "--dry-run=server").stdout
    assert "deleted" in api_server.kubectl("delete", "experiment", "kx", "--dry-run=server").stdout
    (body,) = [json.loads(r[4]) for r in rows() if r[0] == "Experiment"]
    assert "labels" not in body["metadata"] and "deletionTimestamp" not in body["metadata"]
    assert api_server.kubectl("get", "experiment", "kx", "-o", "name").stdout.strip() == "experiment.kubeflow.org/kx"
