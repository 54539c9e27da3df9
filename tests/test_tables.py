"""Table responses: Katib's printer columns evaluated as kube-apiserver does, ages as kubectl shows them."""
from __future__ import annotations

import re

import pytest

from katib.apiserver import tables
from katib.clock import parse_rfc3339

NOW = parse_rfc3339("2026-01-10T12:00:00Z")


def experiment(name="e", created="2026-01-10T11:54:48Z", conditions=None):
    obj = {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
           "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created, "resourceVersion": "7"},
           "spec": {}}
    if conditions is not None:
        obj["status"] = {"conditions": [{"type": t, "status": s} for t, s in conditions]}
    return obj


def test_experiment_table_has_upstreams_columns_last_condition_and_age():
    result = tables.table("Experiment", [experiment(conditions=[("Created", "True"), ("Running", "True")]),
                                         experiment("fresh", created="2026-01-10T12:00:00Z")], now=NOW)
    assert result["kind"] == "Table" and result["apiVersion"] == "meta.k8s.io/v1"
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in result["columnDefinitions"]] == [
        ("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "date", "", 0)]
    assert result["columnDefinitions"][1]["description"] == \
        "Custom resource definition column (in JSONPath format): .status.conditions[-1:].type"
    assert [r["cells"] for r in result["rows"]] == [["e", "Running", "5m12s"], ["fresh", None, "0s"]]


def test_suggestion_numbers_in_string_columns_are_printed_as_text():
    obj = {"metadata": {"name": "s", "creationTimestamp": "2026-01-07T12:00:00Z"}, "spec": {"requests": 3},
           "status": {"suggestionCount": 2, "conditions": [{"type": "Running", "status": "True"}]}}
    (row,) = tables.table("Suggestion", [obj], now=NOW)["rows"]
    assert row["cells"] == ["s", "Running", "True", "3", "2", "3d"]


def test_trial_columns():
    obj = {"metadata": {"name": "t"}, "status": {"conditions": [{"type": "Created", "status": "True"},
                                                                {"type": "Succeeded", "status": "False"}]}}
    result = tables.table("Trial", [obj], now=NOW)
    assert [c["name"] for c in result["columnDefinitions"]] == ["Name", "Type", "Status", "Age"]
    assert result["rows"][0]["cells"] == ["t", "Succeeded", "False", None]


def test_include_object_metadata_object_none():
    obj = experiment()
    meta = tables.table("Experiment", [obj], now=NOW)["rows"][0]["object"]
    assert meta == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
    assert tables.table("Experiment", [obj], include_object="Object", now=NOW)["rows"][0]["object"] is obj
    assert "object" not in tables.table("Experiment", [obj], include_object="None", now=NOW)["rows"][0]
    with pytest.raises(ValueError, match="includeObject must be one of None, Metadata, Object"):
        tables.table("Experiment", [obj], include_object="All")


def test_list_metadata_is_carried():
    result = tables.table("Trial", [], list_meta={"resourceVersion": "9", "continue": "abc", "selfLink": "x"})
    assert result["metadata"] == {"resourceVersion": "9", "continue": "abc"}
    assert result["rows"] == []


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (312, "5m12s"), (599, "9m59s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (49 * 3600, "2d1h"), (8 * 86400, "8d"), (729 * 86400, "729d"),
    (730 * 86400, "2y"), (731 * 86400, "2y1d"), (8 * 365 * 86400, "8y"),
])
def test_human_duration_is_apimachinerys(seconds, text):
    assert tables.human_duration(seconds) == text


def test_date_cells_of_bad_timestamps():
    assert tables.cell_for_value("date", "yesterday", NOW) == "<invalid>"
    assert tables.cell_for_value("date", 5, NOW) is None
    assert tables.cell_for_value("integer", 2.0, NOW) == 2
    assert tables.cell_for_value("string", {"a": 1}, NOW) == '{"a":1}'
    assert tables.cell_for_value("string", 0.5, NOW) == "0.5"
    assert tables.cell_for_value("string", 1e21, NOW) == "1e+21"
    assert tables.cell_for_value("boolean", "true", NOW) is None


@pytest.mark.parametrize("path, data, found", [
    (".status.conditions[-1:].type", {"status": {"conditions": []}}, []),
    (".status.conditions[-1:].type", {"status": {"conditions": [{"type": "A"}, {"type": "B"}]}}, ["B"]),
    (".status.conditions[0:1].type", {"status": {"conditions": [{"type": "A"}, {"type": "B"}]}}, ["A"]),
    (".status.conditions[0].type", {"status": {"conditions": [{"type": "A"}, {"type": "B"}]}}, ["A"]),
    (".status.conditions[*].type", {"status": {"conditions": [{"type": "A"}, {"type": "B"}]}}, ["A", "B"]),
    ("{.spec.requests}", {"spec": {"requests": 0}}, [0]),
    (".spec.missing.deeper", {"spec": {}}, []),
    (".spec.requests.x", {"spec": {"requests": 3}}, []),
])
def test_jsonpath(path, data, found):
    assert tables.evaluate(tables.parse_jsonpath(path), data) == found


def test_unsupported_jsonpath_is_refused():
    with pytest.raises(ValueError, match="unsupported JSONPath"):
        tables.parse_jsonpath(".items[?(@.a==1)]")


def test_job_columns_follow_kube_apiservers_printer():
    job = {"metadata": {"name": "j", "creationTimestamp": "2026-01-10T11:00:00Z"},
           "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "c", "image": "img"}]}}},
           "status": {"succeeded": 1, "startTime": "2026-01-10T11:00:00Z", "completionTime": "2026-01-10T11:01:05Z",
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    result = tables.table("Job", [job, {"metadata": {"name": "k"}, "spec": {"parallelism": 2}}], now=NOW)
    names = [(c["name"], c["priority"]) for c in result["columnDefinitions"]]
    assert names[:5] == [("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0)]
    assert result["rows"][0]["cells"][:5] == ["j", "Complete", "1/1", "65s", "60m"]
    assert result["rows"][1]["cells"][:5] == ["k", "Running", "0/1 of 2", "", "<unknown>"]


def test_pod_columns():
    pod = {"metadata": {"name": "p", "creationTimestamp": "2026-01-10T11:59:00Z"},
           "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"ready": True, "restartCount": 1, "state": {"running": {}}},
               {"ready": False, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    (row,) = tables.table("Pod", [pod], now=NOW)["rows"]
    assert row["cells"][:5] == ["p", "1/2", "CrashLoopBackOff", 3, "60s"]


def test_other_kinds_get_name_and_age():
    result = tables.table("ClusterRole", [{"metadata": {"name": "r", "creationTimestamp": "2026-01-09T12:00:00Z"}}],
                          now=NOW)
    assert [c["name"] for c in result["columnDefinitions"]] == ["Name", "Age"]
    assert result["rows"][0]["cells"] == ["r", "24h"]


def test_kubectl_get_prints_katibs_columns(tmp_path):
    from tests.kubectl_probe import ProbeServer

    probe = ProbeServer()
    probe.start()
    try:
        base = "/apis/kubeflow.org/v1alpha3/namespaces/default"
        created = tables._dt.datetime.fromtimestamp(tables.time.time() - 312, tables._dt.timezone.utc)
        probe.store[f"{base}/experiments/random-example"] = experiment(
            "random-example", created=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            conditions=[("Created", "True"), ("Running", "True")])
        probe.store[f"{base}/suggestions/random-example"] = {
            "apiVersion": "kubeflow.org/v1alpha3", "kind": "Suggestion",
            "metadata": {"name": "random-example", "namespace": "default"}, "spec": {"requests": 3}}
        experiments = probe.kubectl(tmp_path, "get", "experiments")
        suggestions = probe.kubectl(tmp_path, "get", "suggestions")
    finally:
        probe.stop()
    assert experiments.returncode == 0, experiments.stderr
    header, row = [line.split() for line in experiments.stdout.splitlines()]
    assert (header, row[:2]) == (["NAME", "STATUS", "AGE"], ["random-example", "Running"])
    assert re.fullmatch(r"5m1[2-9]s", row[2]), row  # created 312 s ago; kubectl takes its time to start
    assert [line.split() for line in suggestions.stdout.splitlines()] == [
        ["NAME", "TYPE", "STATUS", "REQUESTED", "ASSIGNED", "AGE"], ["random-example", "3"]]  # empty cells: blank
