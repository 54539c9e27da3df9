"""What kube-apiserver does to core kinds before storing them, in the fake: a Secret's
stringData becomes base64 data and is never stored, its type defaults to Opaque; ConfigMap and
Secret keys and values are checked; a Namespace gets phase Active and its name label. Through
the FakeBackend, and through the real kubectl against the API."""
from __future__ import annotations

import base64
import json

import pytest

from katib.backends.fake import FakeBackend
from katib.errors import Invalid
from tests.apiserver_fixture import api_in_process  # noqa: F401 (fixture)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(**fields) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, **fields}


def test_string_data_is_merged_into_data_and_not_stored():
    fake = FakeBackend()
    got = fake.create(secret(data={"a": b64("old"), "b": b64("kept")}, stringData={"a": "new", "c": "ü"}))
    assert got["data"] == {"a": b64("new"), "b": b64("kept"), "c": b64("ü")}
    assert "stringData" not in got and got["type"] == "Opaque"
    assert fake.get("Secret", "default", "s") == got
    got["stringData"] = {"b": "changed"}
    updated = fake.update(got)
    assert updated["data"]["b"] == b64("changed") and "stringData" not in updated


def test_bad_secret_fields_are_refused_each_named():
    fake = FakeBackend()
    with pytest.raises(Invalid) as err:
        fake.create(secret(data={"ok": "not base64!", "bad key": b64("x")}, stringData={"n": 5}))
    text = str(err.value)
    for expected in ('data[ok]: Invalid value: "not base64!": must be a base64-encoded string',
                     'data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric',
                     "stringData[n]: Invalid value: 5: must be a string"):
        assert expected in text, text
    with pytest.raises(Invalid, match="Too long: may not be more than 1048576 bytes"):
        fake.create(secret(stringData={"big": "x" * (1024 * 1024 + 1)}))
    fake.create(secret(type="kubernetes.io/basic-auth", stringData={"username": "u"}))
    stored = fake.get("Secret", "default", "s")
    stored["type"] = "Opaque"
    with pytest.raises(Invalid, match='type: Invalid value: "Opaque": field is immutable'):
        fake.update(stored)


def test_configmap_values_are_strings_and_binary_data_base64():
    fake = FakeBackend()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}
    with pytest.raises(Invalid) as err:
        fake.create({**cm, "data": {"n": 1, "dup": "x"}, "binaryData": {"dup": b64("x"), "raw": "%%"}})
    text = str(err.value)
    for expected in ("data[n]: Invalid value: 1: must be a string", "binaryData[raw]", "data[dup]"):
        assert expected in text, text
    assert fake.create({**cm, "data": {"k": "v"}})["data"] == {"k": "v"}


def test_a_namespace_is_active_and_carries_its_name_label():
    fake = FakeBackend()
    ns = fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"a": "b"}}})
    assert ns["status"] == {"phase": "Active"} and ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"a": "b", "kubernetes.io/metadata.name": "team"}
    ns["metadata"]["labels"] = {}            # as `kubectl label` removing every label would
    assert fake.update(ns)["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}


def test_kubectl_sees_what_a_cluster_would_store(api_in_process, tmp_path):
    api = api_in_process
    manifest = tmp_path / "s.yaml"
    manifest.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {url: 'mysql://u:p@h/k'}\n")
    api.kubectl("apply", "-f", str(manifest))
    got = json.loads(api.kubectl("get", "secret", "db", "-o", "json").stdout)
    assert got["data"] == {"url": b64("mysql://u:p@h/k")} and got["type"] == "Opaque"
    assert "stringData" not in got
    api.kubectl("create", "namespace", "team-b")
    assert api.kubectl("get", "ns", "team-b", "-o", "jsonpath={.status.phase}").stdout == "Active"
    selected = api.kubectl("get", "ns", "-l", "kubernetes.io/metadata.name=team-b", "-o", "name").stdout.split()
    assert selected == ["namespace/team-b"]


# ---- deleting a namespace deletes what is in it ------------------------------------------------
def ns_with_content(fake):
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    for name in ("a", "b"):
        fake.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "team"}})
    fake.create(secret(metadata={"name": "s", "namespace": "team"}, stringData={"k": "v"}))
    fake.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "default"}})


def test_a_namespace_goes_with_everything_in_it_and_nothing_else():
    from katib.errors import NotFound

    fake = FakeBackend()
    ns_with_content(fake)
    gone = []
    fake.subscribe(lambda e: e.type == "DELETED" and gone.append((e.object["kind"], e.object["metadata"]["name"])))
    fake.delete("Namespace", "", "team")
    assert sorted(gone) == [("ConfigMap", "a"), ("ConfigMap", "b"), ("Namespace", "team"), ("Secret", "s")]
    with pytest.raises(NotFound):
        fake.get("Namespace", "", "team")
    assert fake.list("ConfigMap", "team") == [] and [c["metadata"]["name"] for c in fake.list("ConfigMap")] == ["other"]


def test_a_finalizer_in_it_keeps_the_namespace_terminating_and_closed_to_new_content():
    from katib.errors import Forbidden

    fake = FakeBackend()
    ns_with_content(fake)
    held = fake.get("ConfigMap", "team", "a")
    held["metadata"]["finalizers"] = ["test.katib/hold"]
    fake.update(held)
    fake.delete("Namespace", "", "team")
    ns = fake.get("Namespace", "", "team")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    assert [c["metadata"]["name"] for c in fake.list("ConfigMap", "team")] == ["a"]
    with pytest.raises(Forbidden, match='configmaps "late" is forbidden: unable to create new content in '
                                        'namespace team because it is being terminated'):
        fake.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": "team"}})
    held = fake.get("ConfigMap", "team", "a")
    held["metadata"]["finalizers"] = []
    fake.update(held)
    assert [n["metadata"]["name"] for n in fake.list("Namespace")] == []


def test_an_experiments_namespace_deleted_under_the_controllers_takes_every_trial_with_it():
    from tests.world import World, make_experiment

    world = World()
    world.backend.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    world.apply(make_experiment(parallel_trial_count=2, max_trial_count=4))
    world.run_until_idle()
    world.jobs.finish_all()
    world.run_until_idle()
    assert world.trials()
    world.backend.delete("Namespace", "", "default")
    world.run_until_idle()        # the trial controller removes the trials' finalizers
    assert [n["metadata"]["name"] for n in world.backend.list("Namespace")] == []
    assert world.trials() == [] and world.backend.list("Experiment") == []
