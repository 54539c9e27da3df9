"""Protobuf request bodies: kubectl's typed `create` commands (namespace, configmap, secret,
serviceaccount, role, rolebinding, clusterrole, clusterrolebinding) send built-in objects as
`application/vnd.kubernetes.protobuf` and never retry with JSON. The real kubectl against the
API, then the decoder on hand-built bytes for what kubectl does not send (malformed input,
unknown fields, negative numbers, times, managed fields)."""
from __future__ import annotations

import base64
import json

import pytest

from katib.apiserver import negotiation, protobuf
from katib.apiserver.status import ApiError
from tests.apiserver_fixture import api_in_process  # noqa: F401 (fixture)


def get(api, *args) -> dict:
    return json.loads(api.kubectl("get", *args, "-o", "json").stdout)


def test_kubectl_create_commands_make_the_objects_they_describe(api_in_process, tmp_path):
    api = api_in_process
    blob = bytes(range(256)) * 2            # not UTF-8: kubectl puts it in binaryData
    (tmp_path / "blob.bin").write_bytes(blob)
    (tmp_path / "app.conf").write_text("a=1\n")
    steps = [
        (["create", "namespace", "team-a"], "namespace/team-a created"),
        (["create", "configmap", "settings", "-n", "team-a", "--from-literal=mode=fast", "--from-literal=empty=",
          f"--from-file={tmp_path / 'app.conf'}", f"--from-file={tmp_path / 'blob.bin'}"], "configmap/settings created"),
        (["create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=token=s3cr3t"], "secret/creds created"),
        (["create", "secret", "generic", "typed", "-n", "team-a", "--type=example.com/kind", "--from-literal=k=v"],
         "secret/typed created"),
        (["create", "serviceaccount", "trainer", "-n", "team-a"], "serviceaccount/trainer created"),
        (["create", "role", "reader", "-n", "team-a", "--verb=get,list", "--resource=pods,jobs.batch",
          "--resource-name=one"], "role.rbac.authorization.k8s.io/reader created"),
        (["create", "rolebinding", "readers", "-n", "team-a", "--role=reader", "--serviceaccount=team-a:trainer",
          "--user=alice"], "rolebinding.rbac.authorization.k8s.io/readers created"),
        (["create", "clusterrole", "health", "--verb=get", "--non-resource-url=/healthz"],
         "clusterrole.rbac.authorization.k8s.io/health created"),
        (["create", "clusterrole", "monitoring", "--aggregation-rule=example.com/aggregate=true"],
         "clusterrole.rbac.authorization.k8s.io/monitoring created"),
        (["create", "clusterrolebinding", "health-all", "--clusterrole=health", "--group=devs"],
         "clusterrolebinding.rbac.authorization.k8s.io/health-all created"),
    ]
    for args, said in steps:
        assert said in api.kubectl(*args).stdout

    assert get(api, "namespace", "team-a")["metadata"]["name"] == "team-a"
    cm = get(api, "configmap", "settings", "-n", "team-a")
    assert cm["data"] == {"mode": "fast", "empty": "", "app.conf": "a=1\n"}
    assert base64.b64decode(cm["binaryData"]["blob.bin"]) == blob
    assert cm["metadata"]["namespace"] == "team-a" and "generateName" not in cm["metadata"]
    creds = get(api, "secret", "creds", "-n", "team-a")
    assert base64.b64decode(creds["data"]["token"]) == b"s3cr3t"
    assert get(api, "secret", "typed", "-n", "team-a")["type"] == "example.com/kind"
    assert get(api, "serviceaccount", "trainer", "-n", "team-a")["metadata"]["name"] == "trainer"
    assert get(api, "role", "reader", "-n", "team-a")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["one"], "verbs": ["get", "list"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "resourceNames": ["one"], "verbs": ["get", "list"]}]
    binding = get(api, "rolebinding", "readers", "-n", "team-a")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert sorted(binding["subjects"], key=lambda s: s["kind"]) == [
        {"kind": "ServiceAccount", "name": "trainer", "namespace": "team-a"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    assert get(api, "clusterrole", "health")["rules"] == [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]
    assert get(api, "clusterrole", "monitoring")["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate": "true"}}]}
    assert get(api, "clusterrolebinding", "health-all")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]

    # the created objects are ordinary ones afterwards: label (a JSON patch), a second create collides
    api.kubectl("label", "configmap", "settings", "-n", "team-a", "tier=gold")
    assert get(api, "configmap", "settings", "-n", "team-a")["metadata"]["labels"] == {"tier": "gold"}
    again = api.kubectl("create", "namespace", "team-a", check=False)
    assert again.returncode == 1 and 'namespaces "team-a" already exists' in again.stderr


def test_validation_still_applies_to_protobuf_bodies(api_in_process):
    out = api_in_process.kubectl("create", "namespace", "Bad_Name", check=False)
    assert out.returncode == 1
    assert 'The Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in out.stderr


def test_a_kind_not_decoded_is_refused_with_the_way_to_send_it(api_in_process):
    out = api_in_process.kubectl("create", "deployment", "web", "--image=nginx", check=False)
    assert out.returncode == 1
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "send apps/v1 Deployment as application/json" in err and "kubectl apply -f -" in err
    assert api_in_process.kubectl("get", "deployments").stdout == ""


# ---- the decoder on hand-built bytes ------------------------------------------------------------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: bytes | str | int | bool) -> bytes:
    if isinstance(value, (bool, int)):
        return varint(number << 3) + varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes, *extra: bytes) -> bytes:
    return protobuf.MAGIC + field(1, field(1, api_version) + field(2, kind)) + field(2, raw) + b"".join(extra)


def entry(key: str, value: str | bytes) -> bytes:
    return field(1, key) + field(2, value)


def test_decodes_every_kind_of_field_and_leaves_out_empty_ones():
    time = field(1, 1_700_000_000) + field(2, 5)
    managed = field(1, "kubectl") + field(2, "Update") + field(4, time) + field(6, "FieldsV1") + \
        field(7, field(1, b'{"f:data":{}}'))
    meta = (field(1, "cm") + field(2, "") + field(3, "ns") + field(7, 0) + field(8, b"") +
            field(10, -1) + field(11, entry("app", "x")) + field(11, entry("empty", "")) +
            field(12, entry("note", "hi")) + field(13, field(1, "Job") + field(3, "j") + field(5, "batch/v1") +
                                                      field(6, True) + field(7, False)) +
            field(14, "example.com/keep") + field(17, managed) + field(99, "a field from a newer schema"))
    body = envelope("v1", "ConfigMap", field(1, meta) + field(2, entry("k", "v")) + field(3, entry("b", b"\xff\x00")) +
                    field(4, False))
    assert negotiation.decode_body(body, protobuf.MEDIA) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "ns", "deletionGracePeriodSeconds": -1,
                     "labels": {"app": "x", "empty": ""}, "annotations": {"note": "hi"},
                     "ownerReferences": [{"kind": "Job", "name": "j", "apiVersion": "batch/v1", "controller": True,
                                          "blockOwnerDeletion": False}],
                     "finalizers": ["example.com/keep"],
                     "managedFields": [{"manager": "kubectl", "operation": "Update", "time": "2023-11-14T22:13:20Z",
                                        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]},
        "data": {"k": "v"}, "binaryData": {"b": base64.b64encode(b"\xff\x00").decode()}, "immutable": False}


def test_a_later_value_of_a_field_replaces_an_earlier_one_and_map_keys_merge():
    body = envelope("v1", "Secret", field(3, "Opaque") + field(3, "kubernetes.io/tls") +
                    field(2, entry("a", b"1")) + field(2, entry("b", b"2")) + field(2, entry("a", b"3")))
    got = protobuf.decode(body)
    assert got["type"] == "kubernetes.io/tls"
    assert got["data"] == {"a": base64.b64encode(b"3").decode(), "b": base64.b64encode(b"2").decode()}


@pytest.mark.parametrize("body, status, words", [
    (b'{"kind": "Namespace"}', 400, "does not start with the bytes k8s"),
    (protobuf.MAGIC + b"\x0a\x05ab", 400, "field 1 is 5 bytes long, past the end of the data"),
    (protobuf.MAGIC + b"\x08\xff", 400, "a varint runs past the end of the data"),
    (protobuf.MAGIC + b"\x08" + b"\xff" * 11, 400, "a varint is longer than 10 bytes"),
    (protobuf.MAGIC + b"\x0b", 400, "field 1 has wire type 3, which is not supported"),
    (protobuf.MAGIC + b"\x00", 400, "field number 0"),
    (protobuf.MAGIC + field(2, b""), 400, "without the object's kind"),
    (envelope("v1", "Namespace", field(1, field(1, b"\xff\xfe"))), 400, "not a valid Namespace in protobuf: "
                                                                       "name: a string is not UTF-8"),
    (envelope("v1", "ConfigMap", field(4, "yes")), 400, "immutable: expected a varint, found wire type 2"),
    (envelope("v1", "ConfigMap", field(1, field(8, field(1, 10 ** 15)))), 400, "out of range"),
    (envelope("v1", "Namespace", b"", field(3, "gzip")), 415, 'protobuf content encoding "gzip" is not supported'),
    (envelope("batch/v1", "Job", b""), 415, "send batch/v1 Job as application/json"),
    (envelope("v2", "Namespace", b""), 415, "send v2 Namespace as application/json"),
])
def test_malformed_or_unknown_bodies_are_refused_with_the_reason(body, status, words):
    with pytest.raises(ApiError) as caught:
        negotiation.decode_body(body, protobuf.MEDIA)
    assert caught.value.code == status
    assert words in caught.value.message and "\n" not in caught.value.message
