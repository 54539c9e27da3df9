"""Pods in the fake cluster (`katib.py --fake serve --api-only`): the job controllers create the
pods of Jobs, TFJobs and PyTorchJobs through the API, the pod kubelet runs every container as a
local process (emptyDir volumes as per-pod directories, the shared process view), pod and job
status follow, `kubectl get pods` and `kubectl logs` work, and a restart never runs a pod twice."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.apiserver_fixture import start_api_server


def apply(server, obj):
    server.kubectl("apply", "-f", "-", input=json.dumps(obj))


def get(server, what: str) -> dict:
    return json.loads(server.kubectl("get", *what.split(), "-o", "json").stdout)


def wait_for(server, what: str, test, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        got = get(server, what)
        if test(got):
            return got
        assert time.monotonic() < deadline, json.dumps(got, indent=1)[:4000] + server.output()[-3000:]
        time.sleep(0.1)


def pods_of(server, selector: str) -> list[dict]:
    return get(server, f"pods -l {selector}")["items"]


def job(name: str, script: str, **pod_spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", **pod_spec, "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", script],
                 **({"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]} if "volumes" in pod_spec else {})}]}}}}


def finished(obj: dict) -> bool:
    return any(c["type"] in ("Complete", "Failed", "Succeeded") and c["status"] == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pods")
    server = start_api_server(tmp, api_only=True, db=tmp / "fake.db")
    yield server
    assert server.stop() == 0, server.output()


def test_a_jobs_pod_runs_with_its_volume_and_reports_status_and_logs(server):
    apply(server, job("vol", "echo one > /scratch/f; cat /scratch/f; echo two; echo three",
                      volumes=[{"name": "scratch", "emptyDir": {}}]))
    done = wait_for(server, "job vol", finished)
    assert done["status"]["succeeded"] == 1 and done["status"]["conditions"][0]["type"] == "Complete"
    [pod] = pods_of(server, "job-name=vol")
    meta = pod["metadata"]
    assert meta["name"].startswith("vol-") and meta["labels"]["controller-uid"] == done["metadata"]["uid"]
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "vol",
                                        "uid": done["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
    assert pod["status"]["phase"] == "Succeeded"
    [cs] = pod["status"]["containerStatuses"]
    assert cs["name"] == "main" and cs["state"]["terminated"]["exitCode"] == 0
    assert cs["state"]["terminated"]["reason"] == "Completed"
    table = server.kubectl("get", "pods", "-l", "job-name=vol").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == [meta["name"], "0/1", "Completed", "0"]
    # the volume is the pod's own directory: the file written under /scratch is read back
    assert server.kubectl("logs", meta["name"]).stdout == "one\ntwo\nthree\n"
    assert server.kubectl("logs", meta["name"], "-c", "main", "--tail", "1").stdout == "three\n"
    wrong = server.kubectl("logs", meta["name"], "-c", "nope", check=False)
    assert wrong.returncode == 1 and "container nope is not valid for pod" in wrong.stderr
    volume = server.work_dir / "pods" / f"default_{meta['name']}" / "volumes" / "scratch" / "f"
    assert volume.read_text() == "one\n"


def test_a_failed_container_fails_pod_and_job_with_its_exit_code(server):
    apply(server, job("bad", "echo about to fail; exit 3"))
    done = wait_for(server, "job bad", finished)
    [cond] = done["status"]["conditions"]
    assert cond["type"] == "Failed" and "container main: exit code 3: about to fail" in cond["message"], cond
    [pod] = pods_of(server, "job-name=bad")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "Error" in server.kubectl("get", "pods", "-l", "job-name=bad").stdout


def test_logs_follow_streams_until_the_container_ends(server):
    apply(server, job("slow", "for i in 1 2 3; do echo line $i; sleep 0.3; done"))
    [pod] = wait_for(server, "pods -l job-name=slow",
                     lambda got: got["items"] and got["items"][0].get("status", {}).get("phase") == "Running")["items"]
    followed = server.kubectl("logs", "-f", pod["metadata"]["name"], timeout=30)
    assert followed.stdout == "line 1\nline 2\nline 3\n"


def test_shared_process_namespace_lists_the_pods_top_level_processes(server):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shared", "namespace": "default"},
           "spec": {"shareProcessNamespace": True, "restartPolicy": "Never", "containers": [
               {"name": "first", "image": "none", "command": ["sh", "-c", "echo $$$$; sleep 0.5"]},
               {"name": "second", "image": "none", "command": ["sh", "-c", "echo $$$$; cat $KATIB_POD_PIDS_FILE"]}]}}
    apply(server, pod)
    wait_for(server, "pod shared", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    first = server.kubectl("logs", "shared", "-c", "first").stdout.split()
    second = server.kubectl("logs", "shared", "-c", "second").stdout.split()
    assert second[1:] == [first[0], second[0]], (first, second)   # both containers' PIDs, in start order


def test_tfjob_replicas_are_labelled_get_tf_config_and_the_master_decides(server):
    script = "echo $TF_CONFIG; sleep {}"
    tfjob = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "tf", "namespace": "default"},
             "spec": {"tfReplicaSpecs": {role: {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {
                 "containers": [{"name": "tensorflow", "image": "none",
                                 "command": ["sh", "-c", script.format(pause)]}]}}}
                 for role, pause in (("Chief", "0.2"), ("Worker", "60"))}}}
    apply(server, tfjob)
    done = wait_for(server, "tfjob tf", finished)
    assert [c["type"] for c in done["status"]["conditions"]] == ["Created", "Running", "Succeeded"]
    pods = {p["metadata"]["name"]: p for p in pods_of(server, "tf-job-name=tf")}
    assert set(pods) <= {"tf-chief-0", "tf-worker-0"} and "tf-chief-0" in pods
    chief = pods["tf-chief-0"]["metadata"]["labels"]
    assert chief == {"group-name": "kubeflow.org", "job-name": "tf", "tf-job-name": "tf", "tf-replica-type": "chief",
                     "tf-replica-index": "0", "job-role": "master"}
    config = json.loads(server.kubectl("logs", "tf-chief-0").stdout)
    assert config["task"] == {"type": "chief", "index": 0} and sorted(config["cluster"]) == ["chief", "worker"]
    # the worker still ran when the chief succeeded: deleted (cleanPodPolicy Running)
    wait_for(server, "pods -l tf-job-name=tf", lambda got: [p["metadata"]["name"] for p in got["items"]] == ["tf-chief-0"])


def test_pytorchjob_master_and_workers_get_their_rank(server):
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "pt", "namespace": "default"},
               "spec": {"pytorchReplicaSpecs": {role: {"replicas": n, "restartPolicy": "Never", "template": {"spec": {
                   "containers": [{"name": "pytorch", "image": "none",
                                   "command": ["sh", "-c", f"echo $RANK/$WORLD_SIZE $MASTER_ADDR; sleep {pause}"]}]}}}
                   for role, n, pause in (("Master", 1, 1), ("Worker", 2, 0))}}}
    apply(server, pytorch)
    wait_for(server, "pytorchjob pt", finished)
    pods = {p["metadata"]["name"]: p for p in pods_of(server, "pytorch-job-name=pt")}
    assert pods["pt-master-0"]["metadata"]["labels"]["job-role"] == "master"
    assert "job-role" not in pods["pt-worker-1"]["metadata"]["labels"]
    assert pods["pt-worker-1"]["metadata"]["labels"]["pytorch-replica-index"] == "1"
    assert server.kubectl("logs", "pt-master-0").stdout == "0/3 127.0.0.1\n"
    assert server.kubectl("logs", "pt-worker-1").stdout == "2/3 127.0.0.1\n"


def test_deleting_a_job_stops_its_pod(server):
    apply(server, job("long", "sleep 60"))
    wait_for(server, "pods -l job-name=long", lambda got: got["items"] and
             got["items"][0].get("status", {}).get("phase") == "Running")
    server.kubectl("delete", "job", "long")
    wait_for(server, "pods -l job-name=long", lambda got: not got["items"])
    deadline = time.monotonic() + 10
    while any(d.name.startswith("default_long-") for d in (server.work_dir / "containers").iterdir()):
        assert time.monotonic() < deadline, "the container's process and directory outlive its pod"
        time.sleep(0.1)


def test_a_restart_reattaches_running_pods_and_never_runs_one_twice(tmp_path):
    runs, gate, later = tmp_path / "runs", tmp_path / "gate", tmp_path / "later"
    first = start_api_server(tmp_path, api_only=True, db=tmp_path / "fake.db")
    try:   # "once" runs across the restart; "ended" ends while the fake is down
        apply(first, job("once", f"echo once >> {runs}; while [ ! -e {later} ]; do sleep 0.05; done; echo finished"))
        apply(first, job("ended", f"echo ended >> {runs}; while [ ! -e {gate} ]; do sleep 0.05; done; exit 4"))
        wait_for(first, "pods", lambda got: len(got["items"]) == 2 and all(
            p.get("status", {}).get("phase") == "Running" for p in got["items"]))
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    gate.touch()
    deadline = time.monotonic() + 10
    while not list((tmp_path / "fake.db.d" / "containers").glob("default_ended-*/exit")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = start_api_server(tmp_path, api_only=True, db=tmp_path / "fake.db")
    try:
        failed = wait_for(second, "job ended", finished)
        assert "exit code 4" in failed["status"]["conditions"][0]["message"]
        [pod] = pods_of(second, "job-name=once")
        assert pod["status"]["phase"] == "Running" and not finished(get(second, "job once"))
        later.touch()
        wait_for(second, "job once", finished)
        assert sorted(runs.read_text().split()) == ["ended", "once"]   # each ran exactly once
        second.kubectl("delete", "job", "ended")
        wait_for(second, "pods -l job-name=ended", lambda got: not got["items"])
        assert second.kubectl("logs", pod["metadata"]["name"]).stdout == "finished\n"
    finally:
        assert second.stop() == 0, second.output()
    ended = [p.name for p in (tmp_path / "fake.db.d" / "pods").iterdir() if p.name.startswith("default_ended-")]
    assert ended == [], "the deleted pod's directory stays"


def test_a_pod_with_a_volume_kind_that_cannot_run_here_fails_saying_so(server):
    apply(server, job("cm", "true", volumes=[{"name": "scratch", "configMap": {"name": "katib-config"}}]))
    done = wait_for(server, "job cm", finished)
    assert "volume scratch: only emptyDir volumes" in done["status"]["conditions"][0]["message"]


def test_a_pods_env_from_secrets_and_configmaps_is_filled_in_and_a_missing_one_fails_it(server):
    server.kubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cr3t")
    server.kubectl("create", "configmap", "knobs", "--from-literal=LR=0.1")
    with_env = job("env", 'echo "$TOKEN $LR"')
    with_env["spec"]["template"]["spec"]["containers"][0].update(
        env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        envFrom=[{"configMapRef": {"name": "knobs"}}])
    apply(server, with_env)
    assert wait_for(server, "job env", finished)["status"]["succeeded"] == 1
    [pod] = pods_of(server, "job-name=env")
    assert server.kubectl("logs", pod["metadata"]["name"]).stdout == "s3cr3t 0.1\n"
    missing = job("noenv", "true")
    missing["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent"}}}]
    apply(server, missing)
    [cond] = wait_for(server, "job noenv", finished)["status"]["conditions"]
    assert cond["type"] == "Failed" and "couldn't find key absent in Secret default/creds" in cond["message"], cond


def test_mount_paths_are_rewritten_as_whole_paths_only():
    from katib.backends.pod_plan import rewrite
    mapped = {"/var/log/katib": "/pods/p/volumes/metrics-volume", "/var/log": "/elsewhere"}
    assert rewrite("python3 t.py 1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$$$.pid",
                   mapped) == ("python3 t.py 1>/pods/p/volumes/metrics-volume/metrics.log 2>&1 && echo completed > "
                               "/pods/p/volumes/metrics-volume/$$$$.pid")
    assert rewrite("-path=/var/log/katib", mapped) == "-path=/pods/p/volumes/metrics-volume"
    assert rewrite("/var/log/other", mapped) == "/elsewhere/other"
    for untouched in ("/var/log/katibx/a", "/opt/var/log/katib/a", "./var/log/katib"):
        assert rewrite(untouched, {"/var/log/katib": "/v"}) == untouched


def test_a_katib_image_runs_in_the_checkout_and_services_are_resolved():
    from katib.backends.pod_plan import KATIB_ROOT, container_job, services_in
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": []}}
    sidecar = {"name": "c", "image": "registry.example/katib:v1", "command": ["python", "-m", "collector"],
               "args": ["-s", "katib.kubeflow.svc:443"]}
    [ref] = services_in(sidecar)
    assert (ref.host, ref.name, ref.namespace, ref.port) == ("katib.kubeflow.svc", "katib", "kubeflow", 443)
    [container] = container_job(pod, sidecar, pod_dir="/d", working_dir="/w", resolved={
        ("katib.kubeflow.svc", 443): [("127.0.0.1", 4443), ("127.0.0.2", 4444)]})["spec"]["template"]["spec"]["containers"]
    assert container["workingDir"] == KATIB_ROOT and (Path(KATIB_ROOT) / "collector" / "__main__.py").exists()
    assert {"name": "KATIB_RESOLVE", "value": "katib.kubeflow.svc:443=127.0.0.1:4443|127.0.0.2:4444"} in container["env"]
    other = container_job(pod, dict(sidecar, image="busybox"), pod_dir="/d", working_dir="/w", resolved={})
    assert other["spec"]["template"]["spec"]["containers"][0]["workingDir"] == "/w"


def test_a_crash_between_two_pods_of_a_tfjob_creates_the_rest_in_the_same_cluster(tmp_path):
    tfjob = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "tf", "namespace": "default"},
             "spec": {"tfReplicaSpecs": {role: {"replicas": n, "restartPolicy": "Never", "template": {"spec": {
                 "containers": [{"name": "tensorflow", "image": "none",
                                 "command": ["sh", "-c", f"echo $TF_CONFIG; sleep {pause}"]}]}}}
                 for role, n, pause in (("Chief", 1, 1), ("Worker", 2, 0))}}}
    first = start_api_server(tmp_path, api_only=True, db=tmp_path / "fake.db", env={"KATIB_FAILPOINTS": "pod-created"})
    try:
        # the failpoint may kill the server before it answers: the TFJob is stored before its pods
        first.kubectl("apply", "-f", "-", input=json.dumps(tfjob), check=False)
        assert first.proc.wait(30) == -signal.SIGKILL   # the failpoint, after the first pod
    finally:
        first.stop()
    second = start_api_server(tmp_path, api_only=True, db=tmp_path / "fake.db")
    try:
        wait_for(second, "tfjob tf", finished)
        pods = {p["metadata"]["name"] for p in pods_of(second, "tf-job-name=tf")}
        assert pods == {"tf-chief-0", "tf-worker-0", "tf-worker-1"}
        configs = [json.loads(second.kubectl("logs", name).stdout) for name in sorted(pods)]
        assert len({json.dumps(c["cluster"], sort_keys=True) for c in configs}) == 1, configs
        assert len(configs[0]["cluster"]["worker"]) == 2
    finally:
        assert second.stop() == 0, second.output()
