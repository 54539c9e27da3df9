"""`katib.py --fake run` as a user meets it: failure reasons on screen, exit codes, Ctrl-C during
start-up, --db parents, -o json's one shape, --seed, --parallel, and a worker that cannot go on.
Real subprocesses and SQLite files, except where the progress loop is driven directly."""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from katib.cli import run as run_cli

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{{{.Trial}}}}
  namespace: {{{{.NameSpace}}}}
spec:
  template:
    spec:
      containers:
      - name: t
        image: local
        command: ["sh", "-c", {script}]
      restartPolicy: Never
"""


def experiment(name: str = "exp", *, script: str = "echo accuracy=0.5", algorithm: str = "random",
               parallel: int = 2, max_trials: int = 2, max_failed: int = 5) -> dict:
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment", "metadata": {"name": name},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                     "algorithm": {"algorithmName": algorithm},
                     "parallelTrialCount": parallel, "maxTrialCount": max_trials,
                     "maxFailedTrialCount": max_failed,
                     "parameters": [{"name": "--lr", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.01", "max": "0.05"}}],
                     "trialTemplate": {"goTemplate": {"rawTemplate": TEMPLATE.format(script=json.dumps(script))}}}}


def write(tmp_path: Path, *docs: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def katib(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "katib.py", "--fake", "run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


# -- failure reasons on screen ---------------------------------------------------------

def test_failing_trials_show_exit_code_logs_and_no_success_line_exit_1(tmp_path):
    path = write(tmp_path, experiment(script="echo oops-$$; echo bad input >&2; exit 2", max_trials=3, max_failed=5))
    done = katib(str(path), "--db", str(tmp_path / "k.db"), "-q")
    assert done.returncode == 1, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("exp-")]
    assert len(rows) == 3 and all(r.split()[1] == "Failed" and r.endswith("Error: exit code 2: bad input") for r in rows)
    logs = [line.split("output: ", 1)[1] for line in done.stdout.splitlines() if "output: " in line]
    assert len(logs) == 3 and all("oops-" in Path(log).read_text() for log in logs)
    assert "No trial succeeded: 3 of 3 trial(s) ended with Error: exit code 2: bad input." in done.stdout
    assert "Traceback" not in done.stderr


def test_suggestion_failure_message_is_shown_exit_1(tmp_path):
    exp = experiment(algorithm="enas")  # admitted; cannot suggest yet
    del exp["spec"]["parameters"]
    exp["spec"]["nasConfig"] = {
        "graphConfig": {"numLayers": 2, "inputSizes": [32, 32, 3], "outputSizes": [10]},
        "operations": [{"operationType": "convolution", "parameters": [
            {"name": "filter_size", "parameterType": "categorical", "feasibleSpace": {"list": ["3", "5"]}}]}]}
    path = write(tmp_path, exp)
    done = katib(str(path), "--db", str(tmp_path / "k.db"), "-q")
    assert done.returncode == 1, done.stderr
    assert "Suggestion failed: Validation failed: algorithm enas is not implemented" in done.stdout
    assert "No trial succeeded: the Suggestion failed." in done.stdout


def test_all_trials_failed_is_exit_1_even_when_the_experiment_succeeded(tmp_path):
    path = write(tmp_path, experiment(script="echo loss=1", max_trials=2, max_failed=5))
    done = katib(str(path), "--db", str(tmp_path / "k.db"), "-o", "json", "-q")
    [result] = json.loads(done.stdout)
    assert result["experiment"]["status"]["conditions"][-1]["type"] == "Succeeded"  # max trials reached
    assert done.returncode == 1


# -- --db, -o json, --seed ---------------------------------------------------------------

def test_db_parent_directories_are_created_and_json_is_a_list_for_one(tmp_path):
    db = tmp_path / "runs" / "deep" / "x.db"
    done = katib(str(write(tmp_path, experiment())), "--db", str(db), "-o", "json", "-q")
    assert done.returncode == 0, done.stderr
    assert db.is_file() and (db.parent / "x.db.d" / "jobs").is_dir()
    result = json.loads(done.stdout)
    assert isinstance(result, list) and [sorted(r) for r in result] == [["experiment", "trials"]]
    assert result[0]["experiment"]["metadata"]["name"] == "exp" and len(result[0]["trials"]) == 2


def test_json_is_the_same_shape_for_several_experiments(tmp_path):
    path = write(tmp_path, experiment("one"), experiment("two", max_trials=1))
    done = katib(str(path), "--db", str(tmp_path / "k.db"), "-o", "json", "-q")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [(r["experiment"]["metadata"]["name"], len(r["trials"])) for r in result] == [("one", 2), ("two", 1)]


def assignments(tmp_path: Path, db: str, seed: str) -> list:
    done = katib(str(write(tmp_path, experiment(parallel=1, max_trials=3))), "--db", str(tmp_path / db),
                 "--seed", seed, "-o", "json", "-q")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    return sorted((t["metadata"]["name"], t["spec"]["parameterAssignments"][0]["value"]) for t in result["trials"])


def test_same_seed_same_search_other_seed_another(tmp_path):
    first = assignments(tmp_path, "a.db", "11")
    assert assignments(tmp_path, "b.db", "11") == first
    other = assignments(tmp_path, "c.db", "12")
    assert {v for _, v in other}.isdisjoint({v for _, v in first})


# -- --parallel ------------------------------------------------------------------------------

def args_for(tmp_path: Path, **over) -> argparse.Namespace:
    base = dict(fake=True, run_db=str(tmp_path / "k.db"), db=None, work_dir=None, namespace="default",
                seed=None, parallel=None)
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize("parallel, expected", [(3, 3), (None, run_cli.os.cpu_count())])
def test_parallel_cap_reaches_the_control_plane(tmp_path, monkeypatch, parallel, expected):
    import katib.runtime

    seen = {}

    class Recorder:
        def __init__(self, **kwargs):
            seen.update(kwargs)
    monkeypatch.setattr(katib.runtime, "FakeControlPlane", Recorder)
    plane, _, _ = run_cli.open_control_plane(args_for(tmp_path, parallel=parallel, seed=5), [])
    assert isinstance(plane, Recorder) and (seen["max_parallel"], seen["seed"]) == (expected, 5)


def test_parallel_trial_count_beyond_the_cap_is_said_once_and_honoured(tmp_path):
    # Two trials at once would collide on the lock directory and fail.
    script = f"mkdir {tmp_path}/lock || exit 9; sleep 0.2; rmdir {tmp_path}/lock; echo accuracy=0.5"
    path = write(tmp_path, experiment(script=script, parallel=1000000000, max_trials=3))
    done = katib(str(path), "--db", str(tmp_path / "k.db"), "--parallel", "1", "-o", "json")
    assert done.stderr.count("parallelTrialCount 1000000000 > --parallel 1: at most 1 trials run at once") == 1
    assert done.returncode == 0, done.stdout
    [result] = json.loads(done.stdout)
    assert result["experiment"]["status"]["trialsSucceeded"] == 3


@pytest.mark.parametrize("parallel, named, said", [(3, False, True), (1, False, False), (3, True, False)])
def test_a_shared_file_collector_path_is_said_to_serialise_trials(tmp_path, parallel, named, said):
    """Said when the template does not name the path's directory (a script hard-codes it);
    a command that names it gets a directory per trial (local_pod) and runs in parallel."""
    (tmp_path / "m").mkdir()
    (tmp_path / "train.sh").write_text(f"echo accuracy=0.5 >> {tmp_path}/m/m.log\n")
    script = f"echo accuracy=0.5 >> {tmp_path}/m/m.log" if named else f"sh {tmp_path}/train.sh"
    exp = experiment(script=script, parallel=parallel, max_trials=2)
    exp["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"kind": "File", "path": f"{tmp_path}/m/m.log"}}}
    done = katib(str(write(tmp_path, exp)), "--db", str(tmp_path / "k.db"), "--parallel", "4")
    assert done.returncode == 0, done.stderr
    line = f"trials run one at a time: they all write the File collector's {tmp_path}/m/m.log"
    assert (line in done.stderr) is said


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_parallel_must_be_a_positive_integer(tmp_path, value):
    done = katib(str(write(tmp_path, experiment())), "--db", str(tmp_path / "k.db"), "--parallel", value)
    assert done.returncode == 2 and "--parallel" in done.stderr and "Traceback" not in done.stderr


# -- Ctrl-C during start-up ------------------------------------------------------------------

@pytest.mark.parametrize("command, said", [("run", run_cli.INTERRUPTED), ("serve", "interrupted during start-up")])
def test_ctrl_c_while_the_database_server_does_not_answer(tmp_path, command, said):
    """A MySQL "server" that accepts and never speaks: start-up blocks in the connect."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    path = write(tmp_path, experiment())
    file_arg = [str(path)] if command == "run" else ["--apply", str(path), "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen([sys.executable, "katib.py", "--fake", command, *file_arg, "--db",
                             f"mysql://u:p@127.0.0.1:{port}/katib"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        server.settimeout(60)
        conn, _ = server.accept()     # katib is inside the connect now
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        conn.close()
    finally:
        server.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert said in err and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert time.monotonic() - sent < 4   # at once, not after the 5 s connect timeout


@pytest.mark.parametrize("delay", [0.03, 0.06, 0.1, 0.25, 0.5, 0.8, 1.2])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_without_traceback(tmp_path, delay):
    """Python starts in ~10 ms, katib's modules load until ~100 ms, then the DB opens, the
    experiment is applied and recovery runs: the delays land in each of these. The process
    starts with SIGINT at its default, as from a terminal (a shell's background job, which the
    suite may be, ignores it, and Python then never installs its handler)."""
    path = write(tmp_path, experiment(script="sleep 60; echo accuracy=1"))
    proc = subprocess.Popen([sys.executable, "katib.py", "--fake", "run", str(path), "--db", str(tmp_path / "k.db")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)   # the point is a moment we do not choose
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ours = (str(ROOT / "katib.py"), str(ROOT / "katib") + "/")
    python_start_up = proc.returncode == -signal.SIGINT or (proc.returncode == 1 and "Fatal Python error" in err)
    if python_start_up and delay < 0.05 and not any(path in err for path in ours):
        # It came before katib.py ran: the process just ended, silently, or with Python's own
        # "Fatal Python error" of its start-up (`site` importing), which no code of ours can catch.
        return
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_a_start_up_ctrl_c_swallowed_on_the_way_still_stops_the_run(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised inside a finalizer is printed and dropped by Python: the run
    must stop all the same, not go on as if no Ctrl-C had come."""
    class Plane:
        read_only = False
        stopped = None

        def __init__(self):
            self.failed, self.failure = threading.Event(), None
            self.backend = self

        def start(self):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)              # the handler runs here and raises...
            except KeyboardInterrupt:
                pass                       # ...and the exception is lost
        def get(self, kind, ns, name):    # an experiment that is over: no wait would stop
            return exp_state(running=0, succeeded=1, done=True)

        def stop(self, *, kill_jobs):
            Plane.stopped = kill_jobs

    exp = {"metadata": {"namespace": "default", "name": "exp"}, "spec": {}}
    monkeypatch.setattr(run_cli, "open_control_plane", lambda args, paths, read_only_ok: (Plane(), [exp], []))
    monkeypatch.setattr(run_cli, "apply_all", lambda *a, **k: True)
    monkeypatch.setattr(run_cli, "print_results", lambda *a: 0)
    previous = signal.getsignal(signal.SIGINT)
    args = args_for(tmp_path, file="exp.yaml", quiet=True, output="table")
    assert run_cli.run(args) == 130
    assert Plane.stopped is True and signal.getsignal(signal.SIGINT) is previous


# -- the progress loop ----------------------------------------------------------------------

class StubPlane:
    """What wait_for reads: backend.get, runner.running, clock.now, failed/failure."""

    def __init__(self, states: list[dict], *, interrupted: threading.Event, passes: int = 50):
        self.states = list(states)
        self.interrupted, self.passes = interrupted, passes   # Ctrl-C after that many passes
        self.failed = threading.Event()
        self.failure = None
        self.backend = self
        self.runner = self
        self.clock = self

    def get(self, kind, ns, name):
        self.passes -= 1
        if self.passes <= 0:
            self.interrupted.set()
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def running(self):
        return {"default/exp-a": 100.0}

    def now(self):
        return 165.0

    def fail(self, message):
        self.failure = message
        self.failed.set()


def exp_state(*, running: int, succeeded: int = 0, done: bool = False) -> dict:
    cond = "Succeeded" if done else "Running"
    return {"metadata": {"namespace": "default", "name": "exp"},
            "spec": {"objective": {"objectiveMetricName": "accuracy"}, "maxTrialCount": 2},
            "status": {"conditions": [{"type": cond, "status": "True"}], "trialsRunning": running,
                       "trialsSucceeded": succeeded, "runningTrialList": ["exp-a"] if running else []}}


def drive(states, *, heartbeat: float) -> tuple[int | None, list[str]]:
    stream, interrupted = io.StringIO(), threading.Event()
    code = run_cli.wait_for(StubPlane(states, interrupted=interrupted), [("default", "exp")],
                            interrupted=interrupted, quiet=False, stream=stream, heartbeat=heartbeat, poll=0.001)
    return code, stream.getvalue().splitlines()


def test_interrupted_wait_says_so_and_exits_130():
    code, lines = drive([exp_state(running=1)], heartbeat=1e9)
    assert code == 130 and lines[-1] == run_cli.INTERRUPTED


def test_without_a_tty_lines_come_on_change_and_as_heartbeat():
    states = [exp_state(running=1)] * 5 + [exp_state(running=1, succeeded=1)] * 5 + [exp_state(running=0, succeeded=2, done=True)]
    code, lines = drive(states, heartbeat=1e9)
    assert code is None
    assert len(lines) == 3   # one per change, none while nothing happens
    assert "1 running (oldest 1m05s)" in lines[0]
    code, lines = drive(states, heartbeat=0)
    assert len(lines) == 11  # every pass is due a heartbeat


def test_a_failed_worker_stops_the_wait_with_exit_2():
    interrupted = threading.Event()
    plane = StubPlane([exp_state(running=1)], interrupted=interrupted, passes=3)
    plane.fail("local kubelet: cannot write /x/jobs: [Errno 28] No space left on device")
    stream = io.StringIO()
    code = run_cli.wait_for(plane, [("default", "exp")], interrupted=interrupted, quiet=True,
                            stream=stream, poll=0.001)
    assert code == 2
    assert stream.getvalue() == "error: local kubelet: cannot write /x/jobs: [Errno 28] No space left on device\n"


def test_run_stops_with_exit_2_when_a_worker_of_the_plane_fails(tmp_path, monkeypatch, capsys):
    from katib.runtime import FakeControlPlane

    start = FakeControlPlane.start
    seen = {}

    def start_then_fail(self):
        start(self)
        seen["plane"] = self
        self.fail("database is full: /some/k.db")
    monkeypatch.setattr(FakeControlPlane, "start", start_then_fail)
    path = write(tmp_path, experiment(script="sleep 60; echo accuracy=1"))
    code = run_cli.run(argparse.Namespace(**{**vars(args_for(tmp_path)), "file": str(path), "output": "table",
                                              "quiet": True}))
    assert code == 2
    assert "error: database is full: /some/k.db" in capsys.readouterr().err
    assert seen["plane"].runner.running() == {}   # its trial processes were stopped


# -- an assignment that cannot become a Job, end to end ----------------------------------------

def test_unrenderable_trials_fail_with_their_reason_and_the_run_ends(tmp_path, capsys):
    """The template (a ConfigMap) breaks after admission: every trial fails with the decoder's
    words, the experiment ends on maxFailedTrialCount, and run's table says why (exit 1)."""
    exp = experiment(parallel=2, max_trials=4, max_failed=1)
    good = exp["spec"]["trialTemplate"]["goTemplate"].pop("rawTemplate")
    exp["spec"]["trialTemplate"]["goTemplate"]["templateSpec"] = {
        "configMapName": "tmpl", "configMapNamespace": "default", "templatePath": "job.yaml"}
    exp["metadata"]["namespace"] = "default"
    plane, _, _ = run_cli.open_control_plane(args_for(tmp_path), [])
    try:
        plane.backend.create({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "tmpl", "namespace": "default"}, "data": {"job.yaml": good}})
        assert run_cli.apply_all(plane, [exp], source="test", quiet=True)
        cm = plane.backend.get("ConfigMap", "default", "tmpl")
        cm["data"]["job.yaml"] = good + "\n  oops: [unclosed\n"
        plane.backend.update(cm)
        plane.start()
        assert run_cli.wait_for(plane, [("default", "exp")], interrupted=threading.Event(), quiet=True) is None
        code = run_cli.print_results(plane, [("default", "exp")], "table")
    finally:
        plane.stop(kill_jobs=True)
    out = capsys.readouterr().out
    assert code == 1
    assert "Experiment default/exp: Failed (ExperimentFailed)" in out
    rows = [line for line in out.splitlines() if line.startswith("exp-")]
    assert len(rows) == 2 and all("InvalidTrialTemplate: spec.trialTemplate cannot be rendered" in r for r in rows)
    assert "No trial succeeded: 2 of 2 trial(s) ended with InvalidTrialTemplate: spec.trialTemplate" in out


def test_serve_stops_with_exit_2_when_a_worker_of_the_plane_fails(tmp_path, monkeypatch, capsys):
    from katib.cli import serve
    from katib.runtime import FakeControlPlane

    start = FakeControlPlane.start

    def start_then_fail(self):
        start(self)
        self.fail("local kubelet: cannot write /x: [Errno 28] No space left on device")
    monkeypatch.setattr(FakeControlPlane, "start", start_then_fail)
    # A safety net, not a wait: if the failure were missed, serve would run until this SIGINT (exit 0).
    net = threading.Timer(20, os.kill, (os.getpid(), signal.SIGINT))
    net.start()
    try:
        code = serve.run(argparse.Namespace(**{**vars(args_for(tmp_path)), "apply": [], "verbose": False,
                                               "listen": "127.0.0.1:0", "kubeconfig": None, "api_only": False}))
    finally:
        net.cancel()
    assert code == 2
    assert "error: local kubelet: cannot write /x: [Errno 28] No space left on device" in capsys.readouterr().err


def test_admission_warnings_are_printed_once_per_experiment(tmp_path, monkeypatch, capsys):
    from katib.api import validation

    def warnings(exp):
        return [f"spec.objective.objectiveMetricName: {exp['spec']['objective']['objectiveMetricName']} "
                "can never match the default filter"]
    monkeypatch.setattr(validation, "experiment_warnings", warnings, raising=False)
    plane, _, _ = run_cli.open_control_plane(args_for(tmp_path), [])
    try:
        exps = [experiment("one"), experiment("two")]
        for exp in exps:
            exp["metadata"]["namespace"] = "default"
        assert run_cli.apply_all(plane, exps, source="f.yaml", quiet=True)
    finally:
        plane.stop()
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: f.yaml: Experiment default/{n}: spec.objective.objectiveMetricName: accuracy "
                   "can never match the default filter" for n in ("one", "two")]


@pytest.mark.parametrize("db, work", [("runs/k.db", "runs/k.db.d"), ("sqlite:///runs/k.db", "runs/k.db.d"),
                                      ("sqlite:////abs/k.db?mode=rwc", "/abs/k.db.d"),
                                      ("mysql://u:p@127.0.0.1/katib", "katib-work")])
def test_the_work_directory_sits_beside_a_database_file(tmp_path, db, work):
    args = args_for(tmp_path, run_db=db)
    assert run_cli.db_location(args) == (db, Path(work))


# -- ConfigMaps and Secrets beside the experiment ----------------------------------------

# the trial checks the env it got, then reports
ENV_TEMPLATE = TEMPLATE.format(script=json.dumps(
    'test "$TOKEN/$BASE" = s3cr3t/0.5 && echo accuracy={{range .HyperParameters}}{{.Value}}{{end}}')).replace(
    "      restartPolicy: Never", """        env:
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: creds, key: token}}
        envFrom:
        - configMapRef: {name: knobs}
      restartPolicy: Never""")


def test_run_stores_the_files_configmaps_and_secrets_for_templates_and_env(tmp_path):
    exp = experiment(max_trials=2, parallel=1)
    exp["spec"]["trialTemplate"] = {"goTemplate": {"templateSpec": {
        "configMapName": "templates", "configMapNamespace": "default", "templatePath": "job.yaml"}}}
    docs = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "knobs"}, "data": {"BASE": "0.5"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "templates"},
             "data": {"job.yaml": ENV_TEMPLATE}}, exp]
    path = write(tmp_path, *docs)
    done = katib(str(path), "--db", str(tmp_path / "k.db"), "-o", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    [result] = json.loads(done.stdout)
    assert [t["status"]["conditions"][-1]["type"] for t in result["trials"]] == ["Succeeded", "Succeeded"]
    assert "[Secret default/creds] created" in done.stderr and "[ConfigMap default/knobs] created" in done.stderr
    again = katib(str(path), "--db", str(tmp_path / "k.db"), "-q")     # the same file: replaced, continued
    assert again.returncode == 0, again.stderr
    docs[0]["type"] = "kubernetes.io/basic-auth"                          # a Secret's type cannot change
    bad = katib(str(write(tmp_path, *docs, name="bad.yaml")), "--db", str(tmp_path / "k.db"), "-q")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [f"{tmp_path / 'bad.yaml'}: Secret default/creds is invalid:",
                                       '  type: Invalid value: "kubernetes.io/basic-auth": field is immutable']
