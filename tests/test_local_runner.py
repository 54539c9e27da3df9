"""Local runner: real processes, real process groups, real crashes.

Nothing here sleeps: jobs hand pids to the test and wait for it through named pipes, and the
test waits on the runner's own wait() (or on a pidfd) with a timeout."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from katib.backends import local_process as lp
from katib.backends import local_wrapper as lw
from katib.backends.local_outcome import DEADLINE_MESSAGE, JobOutcome, batch_job_status
from katib.backends.local_runner import LocalRunner
from katib.backends.local_wrapper import dir_name, key_of
from katib.clock import FakeClock, rfc3339

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ helpers

def make_job(command: list[str] | None = None, *, args=None, env=None, working_dir=None,
             deadline=None, grace=None, name: str = "trial-1") -> dict:
    container: dict = {"name": "training", "image": "docker.io/kubeflowkatib/mxnet-mnist"}
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    if env is not None:
        container["env"] = env
    if working_dir is not None:
        container["workingDir"] = working_dir
    pod_spec: dict = {"containers": [container], "restartPolicy": "Never"}
    if grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"template": {"spec": pod_spec}}}
    if deadline is not None:
        job["spec"]["activeDeadlineSeconds"] = deadline
    return job


def sh(script: str, **kw) -> dict:
    return make_job(["sh", "-c", script], **kw)


def wait_for(runner: LocalRunner, *keys: str, timeout: float = 5.0) -> dict[str, JobOutcome]:
    """Outcomes of exactly these keys, each reported once."""
    seen: dict[str, JobOutcome] = {}
    end = time.monotonic() + timeout
    while set(keys) - set(seen):
        remaining = end - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no outcome for {sorted(set(keys) - set(seen))} within {timeout}s")
        for outcome in runner.wait(remaining):
            assert outcome.key not in seen, f"{outcome.key} reported twice"
            seen[outcome.key] = outcome
    assert set(seen) == set(keys)
    return seen


def run(runner: LocalRunner, job: dict, key: str = "default/trial-1") -> JobOutcome:
    runner.start(key, job)
    return wait_for(runner, key)[key]


class Fifo:
    """A named pipe between the test and a job. The test holds it open read-write, so neither
    side's open() blocks and nothing written is lost before the other side opens it."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def read(self, timeout: float = 5.0) -> str:
        """The next complete line(s) the job wrote."""
        data = b""
        end = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            if not _readable(self.fd, end - time.monotonic()):
                pytest.fail(f"nothing from the job on {self.path.name} within {timeout}s")
            data += os.read(self.fd, 4096)
        return data.decode()

    def write(self, text: str = "go\n") -> None:
        os.write(self.fd, text.encode())

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def fifo(tmp_path):
    made = []

    def make(name: str = "fifo") -> Fifo:
        made.append(Fifo(tmp_path / name))
        return made[-1]

    yield make
    for f in made:
        f.close()


def exits_within(pid: int, timeout: float = 5.0) -> bool:
    """True once the process has ended (a zombie has ended)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return _readable(fd, timeout)
    finally:
        os.close(fd)


def _readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def is_running(pid: int) -> bool:
    info = lw.proc_info(pid)
    return info is not None and info.running


@pytest.fixture
def runners(tmp_path):
    """Factory of runners on one root; every job still running at the end is killed."""
    made: list[LocalRunner] = []

    def make(**kw) -> LocalRunner:
        made.append(LocalRunner(tmp_path / "jobs", **kw))
        return made[-1]

    yield make
    for r in made:
        r.kill_all()
        r.close()
    for d in (tmp_path / "jobs").glob("*"):  # jobs of runners "crashed" on purpose
        if not (d / "exit").exists():
            for pid in lw.find_writers(d / "output.log"):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runner(runners) -> LocalRunner:
    return runners()


# ---------------------------------------------------------------------- pure: manifest → launch

@pytest.mark.parametrize("text, expected", [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$$(A)", "$(A)"),            # escaped reference
    ("$$$$.pid", "$$.pid"),       # what the upstream pod webhook relies on
    ("$(MISSING)", "$(MISSING)"),  # undefined: left as written
    ("$(A", "$(A"),               # unterminated
    ("$A", "$A"),                 # only $(...) is a reference
    ("cost: 5$", "cost: 5$"),      # trailing operator
    ("$()", "$()"),
    ("$($(A))", "$($(A))"),       # the name runs to the first ')'; "$(A" is not defined
])
def test_expand_follows_kubernetes(text, expected):
    assert lp.expand(text, {"A": "1", "B": "2"}) == expected


def test_env_values_see_earlier_variables_only():
    env = lp.build_env({"name": "c", "env": [
        {"name": "LATER_REF", "value": "$(B)"}, {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-b"}, {"name": "EMPTY"}]})
    assert env == {"LATER_REF": "$(B)", "A": "a", "B": "a-b", "EMPTY": ""}


def test_plan_launch_appends_args_and_expands_both():
    spec = lp.plan_launch(make_job(["python3", "$(SCRIPT)"], args=["--lr=$(LR)", "$$(LR)"],
                                   env=[{"name": "SCRIPT", "value": "/opt/m.py"},
                                        {"name": "LR", "value": "0.01"}],
                                   deadline=30, grace=2))
    assert spec.argv == ["python3", "/opt/m.py", "--lr=0.01", "$(LR)"]
    assert (spec.active_deadline_seconds, spec.grace_period_seconds) == (30.0, 2.0)


@pytest.mark.parametrize("job, message", [
    (make_job(None, args=["--lr=0.1"]), "no command given"),
    (make_job(["true"], env=[{"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
     "env P: valueFrom is not supported"),
    (make_job(["true"], env=[{"name": "A=B", "value": "x"}]), "invalid env entry"),
    (make_job("python main.py"), "command must be a list of strings"),
    ({"kind": "MPIJob", "spec": {}}, "Invalid Katib Training Job kind MPIJob"),
    ({"kind": "Job", "spec": {"template": {"spec": {"containers": []}}}}, "has no containers"),
    ({"kind": "TFJob", "spec": {}}, "TFJob has no spec.tfReplicaSpecs"),
    (make_job(["true"], deadline="10"), "activeDeadlineSeconds must be a non-negative number"),
])
def test_plan_launch_refuses_what_cannot_run_locally(job, message):
    with pytest.raises(lp.StartError, match=message):
        lp.plan_launch(job)


def test_env_from_is_refused():
    job = make_job(["true"])
    job["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "x"}}]
    with pytest.raises(lp.StartError, match="envFrom is not supported"):
        lp.plan_launch(job)


def _training_job(kind: str, replicas: dict) -> dict:
    field = {"TFJob": "tfReplicaSpecs", "PyTorchJob": "pytorchReplicaSpecs"}[kind]
    return {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {field: {
        role: {"replicas": 1, "template": {"spec": {"containers": containers}}}
        for role, containers in replicas.items()}}}


@pytest.mark.parametrize("kind, replicas, expected", [
    ("TFJob", {"PS": [{"name": "tensorflow", "command": ["ps"]}],
               "Worker": [{"name": "tensorflow", "command": ["worker"]}],
               "Chief": [{"name": "sidecar", "command": ["side"]},
                         {"name": "tensorflow", "command": ["chief"]}]}, ["chief"]),
    ("TFJob", {"PS": [{"name": "tensorflow", "command": ["ps"]}],
               "Worker": [{"name": "tensorflow", "command": ["worker"]}]}, ["worker"]),
    ("PyTorchJob", {"Worker": [{"name": "pytorch", "command": ["worker"]}],
                    "Master": [{"name": "pytorch", "command": ["master"]}]}, ["master"]),
    ("PyTorchJob", {"Master": [{"name": "other", "command": ["first"]}]}, ["first"]),
])
def test_training_operator_jobs_run_every_replica_master_first(kind, replicas, expected):
    spec = lp.plan_launch(_training_job(kind, replicas))
    assert spec.argv[:2] == [sys.executable, lp.REPLICA_LAUNCHER]
    planned = json.loads(spec.argv[2])
    assert planned["kind"] == kind
    assert planned["replicas"][0]["argv"] == expected
    assert sorted(r["type"] for r in planned["replicas"]) == sorted(replicas)
    assert spec.executables == tuple(r["argv"][0] for r in planned["replicas"])


@pytest.mark.parametrize("key, name", [
    ("default/random-example-fm2g6jpj", "default_random-example-fm2g6jpj"),
    ("kubeflow/a.b", "kubeflow_a.b"),
    ("odd_key/..", "odd%5Fkey_.."),
    ("..", "%2E."),
    ("über/x y", "%C3%BCber_x%20y"),
])
def test_job_directory_names_are_safe_and_reversible(key, name):
    assert dir_name(key) == name
    assert key_of(name) == key


@pytest.mark.parametrize("key", ["", "x" * 300])
def test_unusable_keys_are_refused(key):
    with pytest.raises(ValueError):
        dir_name(key)


# ---------------------------------------------------------------------------- pure: job status

def _outcome(**over) -> JobOutcome:
    base = dict(key="default/t", succeeded=True, exit_code=0, reason="Completed", message="",
                start_time=1_600_000_000.0, completion_time=1_600_000_042.0)
    return JobOutcome(**{**base, **over})


NOW = 1_600_000_050.0


@pytest.mark.parametrize("outcome, started, expected", [
    (None, False, {}),
    (None, True, {"startTime": rfc3339(NOW), "active": 1}),
    (_outcome(), True, {
        "startTime": "2020-09-13T12:26:40Z", "completionTime": "2020-09-13T12:27:22Z",
        "succeeded": 1, "conditions": [{"type": "Complete", "status": "True",
                                        "lastProbeTime": rfc3339(NOW),
                                        "lastTransitionTime": rfc3339(NOW)}]}),
    (_outcome(succeeded=False, exit_code=143, reason="DeadlineExceeded", message=DEADLINE_MESSAGE),
     True, {"startTime": "2020-09-13T12:26:40Z", "failed": 1, "conditions": [{
         "type": "Failed", "status": "True", "lastProbeTime": rfc3339(NOW),
         "lastTransitionTime": rfc3339(NOW), "reason": "DeadlineExceeded",
         "message": "Job was active longer than specified deadline"}]}),
])
def test_job_status_is_what_the_job_controller_writes(outcome, started, expected):
    assert batch_job_status(outcome, started, NOW) == expected


def test_job_status_of_a_running_job_can_keep_its_start_time():
    assert batch_job_status(None, True, NOW, start_time=1_600_000_000.0)["startTime"] == "2020-09-13T12:26:40Z"


# ---------------------------------------------------------------------------- running processes

def test_success_is_completed_and_leaves_the_files(runner, tmp_path):
    job = make_job([PY, "-c", "print('hello')"])
    outcome = run(runner, job)
    assert (outcome.succeeded, outcome.exit_code, outcome.reason, outcome.message) == \
        (True, 0, "Completed", "")
    assert outcome.start_time <= outcome.completion_time
    d = tmp_path / "jobs" / "default_trial-1"
    assert runner.output_path("default/trial-1") == d / "output.log"
    assert (d / "output.log").read_text() == "hello\n"
    assert json.loads((d / "job.json").read_text()) == job
    assert (d / "exit").read_text().strip() == "0"
    record = json.loads((d / "pid").read_text())
    assert record["boot_id"] == lw.boot_id() and isinstance(record["starttime"], int)


# `$$$$`: Kubernetes turns `$$` into `$` before the shell sees the command.
@pytest.mark.parametrize("script, code, message", [
    ("exit 3", 3, "exit code 3"),
    ("echo start; echo 'ValueError: bad lr' >&2; echo; exit 1", 1, "exit code 1: ValueError: bad lr"),
    ("kill -9 $$$$", 137, "killed by signal 9 (SIGKILL)"),
    ("kill -TERM $$$$", 143, "killed by signal 15 (SIGTERM)"),
    ("trian.py --lr=0.1", 127, "exit code 127: command not found: sh: 1: trian.py: not found"),
    ("touch plain; ./plain", 126, "exit code 126: command not executable: sh: 1: ./plain: Permission denied"),
])
def test_failure_says_how_the_command_ended_and_where_its_output_is(runner, script, code, message):
    outcome = run(runner, sh(script))
    output = runner.output_path("default/trial-1")
    assert (outcome.succeeded, outcome.exit_code, outcome.reason, outcome.message) == \
        (False, code, "Error", f"{message}; output: {output}")


def test_an_interpreter_that_cannot_be_executed_is_named(runner, tmp_path):
    """The wrapper's exec (setsid) fails: exit 126/127 with its own line naming the command."""
    script = tmp_path / "script.sh"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    outcome = run(runner, make_job([str(script)]))
    assert outcome.reason == "Error" and outcome.exit_code in (126, 127)
    assert outcome.message.startswith(f"exit code {outcome.exit_code}: command not")
    assert str(script) in outcome.message


def test_a_very_long_output_path_is_left_out_of_the_message(tmp_path):
    from katib.backends.local_outcome import with_output

    assert with_output("exit code 2", tmp_path / "o.log") == f"exit code 2; output: {tmp_path / 'o.log'}"
    assert with_output("exit code 2", Path("/" + "x" * 400)) == "exit code 2"


def test_env_and_var_expansion_reach_the_process(runner):
    job = make_job([PY, "-c", "import os, sys; print(sys.argv[1:], os.environ['B'], os.environ['LR'])"],
                   args=["--lr=$(LR)", "$$(LR)", "$(NOPE)"],
                   env=[{"name": "LR", "value": "0.01"}, {"name": "B", "value": "[$(LR)]"}])
    assert run(runner, job).succeeded
    assert runner.output_path("default/trial-1").read_text() == \
        "['--lr=0.01', '$(LR)', '$(NOPE)'] [0.01] 0.01\n"


def test_args_are_passed_without_a_shell(runner):
    job = make_job([PY, "-c", "import sys; print(sys.argv[1:])"], args=["a b", "'c'", "$HOME", "*"])
    assert run(runner, job).succeeded
    assert runner.output_path("default/trial-1").read_text() == """['a b', "'c'", '$HOME', '*']\n"""


def test_working_dir_defaults_to_a_per_job_directory(runner, tmp_path):
    run(runner, sh("pwd; touch made-here"))
    work = tmp_path / "jobs" / "default_trial-1" / "work"
    assert runner.output_path("default/trial-1").read_text() == f"{work}\n"
    assert (work / "made-here").exists()


def test_working_dir_is_used(runner, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    run(runner, sh("pwd", working_dir=str(tmp_path / "elsewhere")))
    assert runner.output_path("default/trial-1").read_text() == f"{tmp_path / 'elsewhere'}\n"


@pytest.mark.parametrize("job, message", [
    (make_job(None, args=["--lr=0.1"]), "no command given; the entrypoint of image "
                                        "docker.io/kubeflowkatib/mxnet-mnist is not known"),
    (make_job(["sh", "-c", "touch ran"], env=[{"name": "S", "valueFrom": {"secretKeyRef": {}}}]),
     "container training: env S: valueFrom is not supported by the local runner"),
    (make_job(["no-such-program-here"]), 'exec: "no-such-program-here": executable file not found in $PATH'),
    (make_job(["./missing.sh"]), 'exec: "./missing.sh": no such file or directory'),
    (make_job(["sh", "-c", "touch ran"], working_dir="/no/such/dir"),
     "workingDir /no/such/dir does not exist on this machine"),
])
def test_what_cannot_start_fails_with_start_error(runner, tmp_path, job, message):
    outcome = run(runner, job)
    assert (outcome.succeeded, outcome.exit_code, outcome.reason) == (False, None, "StartError")
    assert message in outcome.message
    d = tmp_path / "jobs" / "default_trial-1"
    assert json.loads((d / "job.json").read_text()) == job
    assert message in (d / "output.log").read_text()
    assert not (d / "pid").exists() and not (d / "work" / "ran").exists()


def test_a_program_installed_after_a_failed_lookup_starts_at_once(runner, tmp_path):
    """Lookups that found a program are reused for a few seconds; ones that did not, never."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    job = make_job(["late-tool"], env=[{"name": "PATH", "value": f"{bin_dir}:/usr/bin:/bin"}])
    first = run(runner, job)
    assert first.reason == "StartError" and 'exec: "late-tool": executable file not found' in first.message
    tool = bin_dir / "late-tool"
    tool.write_text("#!/bin/sh\necho installed\n")
    tool.chmod(0o755)
    runner.forget("default/trial-1")
    assert run(runner, job).succeeded
    assert runner.output_path("default/trial-1").read_text() == "installed\n"


def test_stdout_and_stderr_are_merged_in_order(runner):
    code = ("import sys\n"
            "for i in range(50):\n"
            "    s = sys.stdout if i % 2 else sys.stderr\n"
            "    s.write(f'{i}\\n'); s.flush()\n")
    assert run(runner, make_job([PY, "-c", code])).succeeded
    assert runner.output_path("default/trial-1").read_text() == "".join(f"{i}\n" for i in range(50))


def test_output_log_keeps_its_head_and_a_marker(runners):
    runner = runners(max_output_bytes=1000)
    code = "print('x' * 99)\nfor i in range(200):\n    print(f'{i:099d}')\n"  # 100-byte lines
    assert run(runner, make_job([PY, "-c", code])).succeeded
    data = runner.output_path("default/trial-1").read_bytes()
    marker = b"\n[katib] output.log reached 1000 bytes; later output was discarded\n"
    assert data == (b"x" * 99 + b"\n" + b"".join(b"%099d\n" % i for i in range(9))) + marker


def test_output_log_is_capped_while_the_job_runs(runners, fifo):
    runner = runners(max_output_bytes=1000, output_check_interval=0.05)
    written, gate = fifo("written"), fifo("gate")
    runner.start("default/trial-1",
                 sh(f"head -c 5000 /dev/zero; echo > {written.path}; read x < {gate.path}"))
    written.read()
    assert runner.wait(0.2) == []
    assert runner.output_path("default/trial-1").stat().st_size < 1100  # capped, still running
    gate.write()
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded


def test_leftovers_of_the_process_group_die_with_the_main_process(runner, fifo):
    pids = fifo("pids")
    assert run(runner, sh(f"sleep 30 & echo $! > {pids.path}; exit 0")).succeeded
    assert exits_within(int(pids.read()))


def test_deadline_kills_the_whole_process_group(runners, fifo):
    clock = FakeClock(start=time.time())
    runner = runners(clock=clock)
    pids = fifo("pids")
    runner.start("default/trial-1", sh(  # a child shell with two grandchildren
        f"sh -c 'sleep 30 & a=$!; sleep 30 & echo $$$$ $a $! > {pids.path}; wait' & wait", deadline=60))
    family = [int(p) for p in pids.read().split()]
    assert runner.wait(0) == [] and all(is_running(p) for p in family)
    clock.advance(61)
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    output = runner.output_path("default/trial-1")
    assert (outcome.succeeded, outcome.reason, outcome.message) == \
        (False, "DeadlineExceeded", "Job was active longer than specified deadline "
                                    f"(activeDeadlineSeconds: 60); output: {output}")
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert all(exits_within(p) for p in family)


def test_deadline_fires_while_waiting(runner):
    started = time.monotonic()
    outcome = run(runner, make_job(["sleep", "30"], deadline=0.2))
    assert outcome.reason == "DeadlineExceeded"
    assert 0.2 <= time.monotonic() - started < 2


def test_stop_kills_the_group_and_keeps_the_files(runner, fifo, tmp_path):
    pids = fifo("pids")
    runner.start("default/trial-1", sh(f"echo started; sleep 30 & echo $! > {pids.path}; wait"))
    grandchild = int(pids.read())
    runner.stop("default/trial-1")
    runner.stop("default/trial-1")  # idempotent
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert (outcome.succeeded, outcome.reason, outcome.message) == \
        (False, "Deleted", f"Job was deleted; output: {runner.output_path('default/trial-1')}")
    assert exits_within(grandchild)
    assert runner.output_path("default/trial-1").read_text() == "started\n"
    assert (tmp_path / "jobs" / "default_trial-1" / "job.json").exists()
    runner.stop("default/trial-1")
    runner.stop("default/never-started")
    assert runner.wait(0) == []


def test_stop_escalates_to_kill_after_the_grace_period(runner, fifo):
    ready = fifo("ready")
    code = (f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"open({str(ready.path)!r}, 'w').write('ready\\n'); time.sleep(30)")
    runner.start("default/trial-1", make_job([PY, "-c", code], grace=0.2))
    ready.read()
    runner.stop("default/trial-1", reason="Deleted")
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert (outcome.reason, outcome.exit_code) == ("Deleted", 128 + signal.SIGKILL)


def test_stopping_a_job_that_already_ended_keeps_its_outcome(runner, tmp_path):
    runner.start("default/trial-1", sh("exit 0"))
    assert exits_within(wrapper_pid(tmp_path / "jobs", "default/trial-1"))  # not yet polled
    runner.stop("default/trial-1")
    assert wait_for(runner, "default/trial-1")["default/trial-1"].reason == "Completed"


def test_a_wrapper_killed_while_watched_is_process_lost(runner, fifo, tmp_path):
    pids = fifo("pids")
    runner.start("default/trial-1", sh(f"echo $$$$ > {pids.path}; sleep 30"))
    command = int(pids.read())
    os.kill(wrapper_pid(tmp_path / "jobs", "default/trial-1"), signal.SIGKILL)
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert (outcome.succeeded, outcome.exit_code, outcome.reason) == (False, None, "ProcessLost")
    assert exits_within(command)


def test_start_is_idempotent(runners, fifo, tmp_path):
    runner = runners()
    gate = fifo("gate")
    counter = tmp_path / "counter"
    job = sh(f"echo run >> {counter}; read x < {gate.path}")
    runner.start("default/trial-1", job)
    runner.start("default/trial-1", job)  # running
    gate.write()
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded
    runner.start("default/trial-1", job)  # finished
    assert runner.wait(0.05) == []
    fresh = runners()
    fresh.start("default/trial-1", job)  # finished before this runner existed
    assert [o.reason for o in fresh.wait(1)] == ["Completed"]
    fresh.start("default/trial-1", job)
    assert fresh.wait(0.05) == []
    assert counter.read_text() == "run\n"


def test_poll_does_not_block_and_reports_each_outcome_once(runner, fifo):
    gate = fifo("gate")
    runner.start("default/slow", sh(f"read x < {gate.path}"))
    started = time.monotonic()
    assert runner.poll() == []
    assert runner.wait(0.05) == []
    assert time.monotonic() - started < 1
    assert set(runner.running()) == {"default/slow"}
    gate.write()
    assert wait_for(runner, "default/slow")["default/slow"].succeeded
    assert runner.poll() == [] and runner.running() == {}


def test_kill_all_stops_every_job(runner):
    for i in range(3):
        runner.start(f"default/t{i}", make_job(["sleep", "30"]))
    runner.kill_all()
    assert runner.running() == {}
    assert {o.key: o.reason for o in runner.poll()} == {f"default/t{i}": "Deleted" for i in range(3)}


def test_forget_removes_the_directory(runner, fifo, tmp_path):
    run(runner, sh("true"), key="default/done")
    runner.forget("default/done")
    assert not (tmp_path / "jobs" / "default_done").exists()
    runner.start("default/running", make_job(["sleep", "30"]))
    runner.forget("default/running")
    end = time.monotonic() + 5
    while runner.running() and time.monotonic() < end:
        assert runner.wait(0.05) == []  # a forgotten job reports nothing...
    assert runner.running() == {} and not (tmp_path / "jobs" / "default_running").exists()
    assert run(runner, sh("echo again"), key="default/done").succeeded  # ...and may run anew


# ------------------------------------------------------------------------------ crash and recover

CRASHING_KATIB = """
import json, sys
from katib.backends.local_runner import LocalRunner
root, key, job = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
LocalRunner(root).start(key, job)
print("started", flush=True)
sys.stdin.read()
"""


def start_in_doomed_katib(root: Path, key: str, job: dict) -> None:
    """Start a job from another katib process, then SIGKILL that process."""
    katib = subprocess.Popen([PY, "-c", CRASHING_KATIB, str(root), key, json.dumps(job)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert katib.stdout.readline() == "started\n"
    finally:
        katib.kill()
        katib.wait()
        katib.stdin.close()
        katib.stdout.close()


def wrapper_pid(root: Path, key: str) -> int:
    return json.loads((root / dir_name(key) / "pid").read_text())["pid"]


def test_recover_reattaches_to_a_job_that_outlived_katib(runners, fifo, tmp_path):
    gate = fifo("gate")
    start_in_doomed_katib(tmp_path / "jobs", "default/trial-1", sh(f"read x < {gate.path}; exit 4"))
    runner = runners()
    assert runner.recover() == []
    assert set(runner.running()) == {"default/trial-1"}
    runner.start("default/trial-1", sh("echo must not run twice"))
    gate.write()
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert (outcome.reason, outcome.exit_code) == ("Error", 4)
    assert runner.output_path("default/trial-1").read_text() == ""


def test_recover_reports_a_job_that_ended_while_katib_was_down(runners, fifo, tmp_path):
    gate = fifo("gate")
    root = tmp_path / "jobs"
    start_in_doomed_katib(root, "default/trial-1", sh(f"read x < {gate.path}; echo done"))
    gate.write()
    assert exits_within(wrapper_pid(root, "default/trial-1"))
    runner = runners()
    [outcome] = runner.recover()
    assert (outcome.key, outcome.succeeded, outcome.reason) == ("default/trial-1", True, "Completed")
    assert outcome.start_time <= outcome.completion_time
    assert runner.running() == {} and runner.recover() == []
    assert runner.output_path("default/trial-1").read_text() == "done\n"


@pytest.mark.parametrize("pgid_recorded, exit_torn", [(True, False), (False, False), (True, True)])
def test_recover_reports_process_lost_when_the_wrapper_was_killed(runners, fifo, tmp_path,
                                                                  pgid_recorded, exit_torn):
    root = tmp_path / "jobs"
    pids = fifo("pids")
    first = LocalRunner(root)
    first.start("default/trial-1", sh(f"echo $$$$ > {pids.path}; sleep 30"))
    command = int(pids.read())
    os.kill(wrapper_pid(root, "default/trial-1"), signal.SIGKILL)
    assert exits_within(wrapper_pid(root, "default/trial-1"))
    if not pgid_recorded:  # the wrapper died before it could write the command's pid
        (root / "default_trial-1" / "pgid").unlink(missing_ok=True)
    if exit_torn:  # killed between creating its exit file and writing the status
        (root / "default_trial-1" / "exit").write_text("")
    # katib "crashes": `first` is never polled or closed again until the end
    runner = runners()
    [outcome] = runner.recover()
    assert (outcome.succeeded, outcome.exit_code, outcome.reason) == (False, None, "ProcessLost")
    assert "without recording an exit status" in outcome.message
    assert exits_within(command)  # the orphaned command does not run on unmanaged
    assert runners().recover() == [outcome]  # the verdict is stable across restarts
    first.close()  # only to free its descriptors


def test_recover_after_close_reattaches_in_the_same_process(runners, fifo):
    gate = fifo("gate")
    first = runners()
    first.start("default/trial-1", sh(f"read x < {gate.path}"))
    first.close()  # katib stops: the job keeps running
    runner = runners()
    assert runner.recover() == [] and set(runner.running()) == {"default/trial-1"}
    gate.write()
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded


def test_recover_enforces_the_deadline_from_the_recorded_start(runners, fifo, tmp_path):
    start_in_doomed_katib(tmp_path / "jobs", "default/trial-1", make_job(["sleep", "30"], deadline=60))
    clock = FakeClock(start=time.time() + 30)
    runner = runners(clock=clock)
    assert runner.recover() == [] and runner.wait(0) == []
    clock.advance(31)
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert outcome.reason == "DeadlineExceeded"


def test_a_stop_in_progress_survives_a_restart(runners, fifo, tmp_path):
    ready = fifo("ready")
    code = (f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"open({str(ready.path)!r}, 'w').write('ready\\n'); time.sleep(30)")
    first = runners()
    first.start("default/trial-1", make_job([PY, "-c", code], grace=30))
    ready.read()
    first.stop("default/trial-1")  # TERM is ignored; the KILL is due in 30 s...
    first.close()                  # ...but katib stops first
    clock = FakeClock(start=time.time() + 31)
    runner = runners(clock=clock)
    assert runner.recover() == []
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert (outcome.reason, outcome.exit_code) == ("Deleted", 128 + signal.SIGKILL)


def test_recover_finds_a_wrapper_whose_pid_file_was_never_written(runners, fifo, tmp_path):
    gate = fifo("gate")
    first = runners()
    first.start("default/trial-1", sh(f"read x < {gate.path}"))
    first.close()
    (tmp_path / "jobs" / "default_trial-1" / "pid").unlink()  # as if katib died right after spawn
    runner = runners()
    assert runner.recover() == [] and set(runner.running()) == {"default/trial-1"}
    gate.write()
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded


def test_a_tfjob_runs_its_chief_locally(runner):
    job = _training_job("TFJob", {"Worker": [{"name": "tensorflow", "command": ["sh", "-c", "echo worker"]}],
                                  "Chief": [{"name": "tensorflow", "command": ["sh", "-c", "echo chief"]}]})
    assert run(runner, job).succeeded
    assert runner.output_path("default/trial-1").read_text() == "chief\n"


def test_a_job_whose_wrapper_was_never_spawned_runs_after_a_restart(runners, tmp_path):
    """katib died between creating the job directory and spawning the wrapper: the job is not
    lost (ProcessLost) but started by the next start()."""
    key = "default/trial-1"
    job = make_job(["sh", "-c", "echo ran"])
    first = runners()
    crashed_dir = first.output_path(key).parent
    crashed_dir.mkdir(parents=True)
    (crashed_dir / "job.json").write_text(json.dumps(job))
    again = runners()
    assert again.recover() == []
    again.start(key, job)
    outcome = wait_for(again, key)[key]
    assert (outcome.succeeded, outcome.reason) == (True, "Completed")
    assert again.output_path(key).read_text() == "ran\n"


# --------------------------------------------------------------- File collector path, faults

def test_a_file_collector_path_starts_empty_and_its_old_file_is_kept(runner, tmp_path):
    metrics = tmp_path / "katib" / "metrics.log"
    metrics.parent.mkdir()
    metrics.write_text("accuracy=0.5\n")   # left by an earlier trial or run
    job = sh(f"test ! -e {metrics} && echo accuracy=0.7 > {metrics}")
    runner.start("default/trial-1", job, metrics_file=str(metrics))
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded
    assert metrics.read_text() == "accuracy=0.7\n"
    moved = runner.output_path("default/trial-1").parent / "previous-metrics.log"
    assert moved.read_text() == "accuracy=0.5\n"   # moved aside, never deleted


def test_the_directory_of_a_file_collector_path_is_created(runner, tmp_path):
    metrics = tmp_path / "new" / "dir" / "m.log"
    runner.start("default/trial-1", sh(f"test -d {metrics.parent}"), metrics_file=str(metrics))
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded  # a pod gets a volume


def test_a_file_collector_path_that_cannot_be_prepared_is_a_start_error(runner, tmp_path):
    (tmp_path / "plain").write_text("a file, not a directory")
    runner.start("default/trial-1", sh("touch ran"), metrics_file=str(tmp_path / "plain" / "m.log"))
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert (outcome.reason, outcome.exit_code) == ("StartError", None)
    assert outcome.message.startswith(
        f"cannot create the directory of File collector path {tmp_path / 'plain' / 'm.log'}: ")
    assert "Not a directory" in outcome.message or "File exists" in outcome.message


def enospc(path) -> OSError:
    return OSError(28, os.strerror(28), str(path))


@pytest.mark.parametrize("failing", ["job.json", "pid"])
def test_a_start_whose_files_cannot_be_written_raises_and_leaves_nothing(runner, tmp_path, monkeypatch,
                                                                          failing):
    real = lw.write_file
    marker = tmp_path / "ran"

    def write_file(path, data):
        if path.name == failing:
            raise enospc(path)
        real(path, data)

    monkeypatch.setattr(lw, "write_file", write_file)
    fifo_path = tmp_path / "never"
    os.mkfifo(fifo_path)
    with pytest.raises(OSError, match="No space left on device") as err:
        runner.start("default/trial-1", sh(f"touch {marker}; read x < {fifo_path}"))
    assert err.value.filename.endswith(failing)
    assert not runner.output_path("default/trial-1").parent.exists()
    assert runner.running() == {} and runner.wait(0.05) == []
    assert not lw.find_writers(runner.output_path("default/trial-1"))  # a spawned wrapper was killed
    monkeypatch.setattr(lw, "write_file", real)
    assert run(runner, sh("echo ran")).succeeded  # once there is room it runs


def test_an_exit_status_the_wrapper_could_not_record_is_still_reported(runner):
    job_dir = runner.output_path("default/trial-1").parent
    outcome = run(runner, sh(f"mkdir {job_dir}/exit; exit 3"))  # the wrapper cannot write it
    assert (outcome.reason, outcome.exit_code) == ("Error", 3)
    assert outcome.message == (f"exit code 3; the status could not be recorded in {job_dir}/exit "
                               f"(a full or read-only disk?); output: {job_dir}/output.log")
    assert LocalRunner(job_dir.parent).recover() == [outcome]  # persisted: a restart agrees


def test_a_kill_that_cannot_be_recorded_still_kills(runner, fifo, monkeypatch):
    pids = fifo("pids")
    runner.start("default/trial-1", sh(f"echo $$$$ > {pids.path}; sleep 30"))
    command = int(pids.read())
    monkeypatch.setattr(lw, "write_atomic", lambda path, data: (_ for _ in ()).throw(enospc(path)))
    runner.stop("default/trial-1")
    outcome = wait_for(runner, "default/trial-1")["default/trial-1"]
    assert outcome.reason == "Deleted" and outcome.message.startswith("Job was deleted")
    assert exits_within(command)


def test_a_job_interrupted_when_katib_stopped_runs_again_after_a_restart(runners, fifo, tmp_path):
    ready = fifo("ready")
    counter = tmp_path / "counter"
    code = (f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"open({str(counter)!r}, 'a').write('run\\n'); "
            f"open({str(ready.path)!r}, 'w').write('ready\\n'); time.sleep(30)")
    job = make_job([PY, "-c", code], grace=30)
    first = runners()
    first.start("default/trial-1", job)
    ready.read()
    first.stop("default/trial-1", reason="Interrupted")  # katib stops (TERM is ignored)...
    first.close()                                        # ...and is gone before the KILL
    runner = runners(clock=FakeClock(start=time.time() + 31))
    assert runner.recover() == []
    [outcome] = wait_for(runner, "default/trial-1").values()
    assert outcome.reason == "Interrupted"             # no verdict: the kubelet starts it again
    assert not runner.output_path("default/trial-1").parent.exists()
    runner.start("default/trial-1", sh(f"echo again >> {counter}"))
    assert wait_for(runner, "default/trial-1")["default/trial-1"].succeeded
    assert counter.read_text() == "run\nagain\n"


def test_an_interrupted_job_that_ended_while_katib_was_down_is_not_a_failure(runners, tmp_path):
    first = runners()
    assert run(first, sh("exit 0")).succeeded
    job_dir = first.output_path("default/trial-1").parent
    (job_dir / "kill").write_text(json.dumps({"reason": "Interrupted", "message": "m", "time": 0}))
    runner = runners()
    assert runner.recover() == [] and not job_dir.exists()
    assert run(runner, sh("echo again")).succeeded
