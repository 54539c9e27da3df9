"""`katib.py --fake run FILE --db DB` while a real `katib.py --fake serve` holds DB: applied and
followed through the server's Kubernetes API (HTTPS, bearer token, the kubeconfig serve wrote),
with the result a local run prints; Ctrl-C stops the following only; no API answering means the
refusal naming the holder, as before."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.apiserver_fixture import start_api_server
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent


def run_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "katib.py"), "--fake", "run", *args]


def test_run_goes_through_the_serve_that_holds_the_database(tmp_path):
    db = tmp_path / "x.db"
    server = start_api_server(tmp_path, db=db)
    try:
        done = subprocess.run(run_cmd("examples/random-example.yaml", "--db", str(db), "-o", "json"), cwd=ROOT,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        [result] = json.loads(done.stdout)   # the shape of a local run
        assert sorted(result) == ["experiment", "trials"]
        exp = result["experiment"]
        assert exp["metadata"]["name"] == "random-example"
        assert exp["status"]["conditions"][-1]["type"] == "Succeeded"
        assert len(result["trials"]) == exp["spec"]["maxTrialCount"] == 12
        assert all(t["status"]["conditions"][-1]["type"] == "Succeeded" for t in result["trials"])
        metrics = {m["name"] for t in result["trials"] for m in t["status"]["observation"]["metrics"]}
        assert metrics == {"Validation-accuracy", "Train-accuracy"}
        assert f"through the API at {server.url}" in done.stderr and "in use by another" not in done.stderr
        # the trials ran in the server: its work directory has their jobs
        assert len(list((tmp_path / "x.db.d" / "jobs").iterdir())) == 12
        # again, as a table: continued, the same result, exit 0
        again = subprocess.run(run_cmd("examples/random-example.yaml", "--db", str(db)), cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "Experiment default/random-example: Succeeded" in again.stdout
        assert "Output of the best trial: " in again.stdout
        assert server.proc.poll() is None
    finally:
        assert server.stop() == 0, server.output()


def test_ctrl_c_stops_following_and_the_experiment_keeps_running_in_the_server(tmp_path):
    db = tmp_path / "x.db"
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(shell_experiment("slow", script="sleep 3;", parallel=2, max_trials=2, x_max=20)))
    server = start_api_server(tmp_path, db=db)
    try:
        follower = subprocess.Popen(run_cmd(str(path), "--db", str(db)), cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        line = follower.stderr.readline()
        assert line.startswith("[default/slow] created (db: "), line + follower.stderr.read()
        time.sleep(0.5)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 130, err
        assert "stopped following: the experiment keeps running in the serve" in err and "Traceback" not in err
        server.kubectl("wait", "--for=condition=Succeeded", "experiment/slow", "--timeout=60s")
        trials = json.loads(server.kubectl("get", "trials", "-l", "experiment=slow", "-o", "json").stdout)["items"]
        assert [t["status"]["conditions"][-1]["type"] for t in trials] == ["Succeeded", "Succeeded"]
    finally:
        server.stop()


def test_without_an_answering_api_the_run_is_refused_naming_the_holder(tmp_path):
    """A kubeconfig left by a serve that has gone, while another process holds the database."""
    from katib.db import acquire_control, connect

    db = tmp_path / "x.db"
    server = start_api_server(tmp_path, db=db)
    server.stop()
    assert server.kubeconfig.is_file()
    lease = acquire_control(connect(str(db)), command="katib.py --fake run other.yaml")
    try:
        path = tmp_path / "exp.json"
        path.write_text(json.dumps(shell_experiment("e", script="", parallel=1, max_trials=1, x_max=20)))
        done = subprocess.run(run_cmd(str(path), "--db", str(db)), cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert line.startswith(f"error: database {db} is in use by another katib process: pid ")
        assert line.endswith("(katib.py --fake run other.yaml)")
    finally:
        lease.release()


def test_a_serve_that_goes_away_while_followed_is_one_error_line_exit_2(tmp_path):
    db = tmp_path / "x.db"
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(shell_experiment("slow", script="sleep 2;", parallel=1, max_trials=2, x_max=20)))
    server = start_api_server(tmp_path, db=db)
    try:
        follower = subprocess.Popen(run_cmd(str(path), "--db", str(db)), cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        line = follower.stderr.readline()
        assert line.startswith("[default/slow] created"), line + follower.stderr.read()
        server.kill()
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 2, err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: the API at {server.url}: cannot reach the API server"), err
        assert "Traceback" not in err and out == ""
    finally:
        server.kill()
