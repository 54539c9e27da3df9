"""A container's environment from Secrets and ConfigMaps (envFrom, secretKeyRef,
configMapKeyRef), filled in before the container starts: the pure resolution, then real
processes under the local kubelet that print what they got, and a reference that cannot be
met failing the job with the kubelet's words."""
from __future__ import annotations

import base64

import pytest

from katib.backends import env_sources
from katib.backends.local_process import StartError, build_env
from tests.test_kubelet import finished, kubelets, make_job  # noqa: F401 (kubelets is a fixture)


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


OBJECTS = {
    ("Secret", "team", "db"): {"data": {"url": b64("mysql://u:p@h/k"), "user": b64("alice"), "raw": b64(b"\xff\x00z")}},
    ("ConfigMap", "team", "settings"): {"data": {"mode": "fast", "user": "from-cm", "bad=name": "x", "LR": "0.1"}},
}


def lookup(kind, namespace, name):
    return OBJECTS.get((kind, namespace, name))


def env_of(container: dict) -> dict[str, str]:
    return build_env(env_sources.resolve(container, "team", lookup))


def test_key_references_are_filled_in_and_decoded():
    got = env_of({"name": "main", "env": [
        {"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "WHERE", "value": "$(MODE)-$(DB_URL)"},
        {"name": "RAW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "raw"}}}]})
    assert got["DB_URL"] == "mysql://u:p@h/k" and got["MODE"] == "fast"
    assert got["WHERE"] == "fast-mysql://u:p@h/k"                 # expands against the ones before
    assert got["RAW"].encode("utf-8", "surrogateescape") == b"\xff\x00z"   # bytes kept as they are


def test_env_from_comes_first_with_its_prefix_and_the_containers_own_entries_win():
    container = {"name": "main", "envFrom": [{"configMapRef": {"name": "settings"}},
                                             {"secretRef": {"name": "db"}, "prefix": "DB_"},
                                             {"secretRef": {"name": "db"}}],
                 "env": [{"name": "mode", "value": "own"},
                         {"name": "user", "valueFrom": {"secretKeyRef": {"name": "db", "key": "none",
                                                                         "optional": True}}}]}
    resolved = env_sources.resolve(container, "team", lookup)
    assert "envFrom" not in resolved and "envFrom" in container          # the input is not changed
    got = build_env(resolved)
    assert got["DB_url"] == "mysql://u:p@h/k" and got["LR"] == "0.1"
    assert got["user"] == "alice"      # the later source wins; an optional miss leaves it
    assert got["mode"] == "own"
    assert "bad=name" not in got


@pytest.mark.parametrize("container,message", [
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
     'container main: env X: secret "nope" not found'),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]},
     "container main: env X: couldn't find key k in Secret team/db"),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]},
     "container main: env X: couldn't find key k in ConfigMap team/settings"),
    ({"envFrom": [{"configMapRef": {"name": "nope"}}]},
     'container main: envFrom[0].configMapRef: configmap "nope" not found'),
    ({"envFrom": [{"prefix": "P_"}]},
     "container main: envFrom[0]: one of configMapRef or secretRef is required"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db"}}}]},
     "container main: env X: valueFrom.secretKeyRef.key is required"),
])
def test_a_reference_that_cannot_be_met_says_what_is_missing(container, message):
    with pytest.raises(StartError) as err:
        env_sources.resolve({"name": "main", **container}, "team", lookup)
    assert str(err.value) == message


def test_optional_sources_that_are_missing_set_nothing():
    got = env_of({"name": "main", "envFrom": [{"secretRef": {"name": "nope", "optional": True}}],
                  "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k",
                                                                          "optional": True}}}]})
    assert got == {}


def test_containers_without_references_are_left_alone():
    plain = {"name": "main", "env": [{"name": "A", "value": "1"}]}
    assert env_sources.resolve(plain, "team", lookup) is plain


def test_the_local_kubelet_runs_a_job_with_its_secret_and_fails_one_whose_secret_is_missing(kubelets, tmp_path):
    k = kubelets()
    k.backend.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"},
                      "stringData": {"token": "s3cr3t"}})
    out = tmp_path / "seen"
    job = make_job("with-secret", f'echo "$TOKEN/$MODE" > {out}')
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "m", "optional": True}}}]
    k.backend.create(job)
    done = k.wait_job("with-secret", finished)
    assert done["status"].get("succeeded") == 1, done["status"]
    assert out.read_text() == "s3cr3t/\n"
    job_dir = k.runner.output_path("default/with-secret").parent
    assert "s3cr3t" in (job_dir / "job.json").read_text()    # what ran, as it ran: for the user only
    assert job_dir.stat().st_mode & 0o077 == 0
    missing = make_job("without-secret", "true")
    missing["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "gone"}}]
    k.backend.create(missing)
    [condition] = k.wait_job("without-secret", finished)["status"]["conditions"]
    assert (condition["type"], condition["reason"]) == ("Failed", "StartError")
    assert condition["message"].startswith('container training: envFrom[0].secretRef: secret "gone" not found; '
                                           'output: '), condition
