"""`katib.py --fake get` as kubectl users expect it: Katib's printer columns, kubectl's messages and
exit codes, -o wide/json/yaml/name, and reading a database that a `run` or a `serve` holds
(committed state, without taking control and without creating anything). Real SQLite files,
real `katib.py` processes, MariaDB/PostgreSQL through the db_url fixture, and the pinned real
kubectl for the side-by-side comparison."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from katib.cli import get as get_cli
from katib.cli import main
from tests.experiments import shell_experiment

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_000.0   # 2023-11-14T22:13:20Z


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - seconds_ago))


def trial(name: str, *, exp: str = "exp", ns: str = "default", cond: str | None = "Succeeded",
          metrics=(("accuracy", 0.9), ("loss", 0.1)), age: float = 30) -> dict:
    obj = {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
           "metadata": {"name": name, "namespace": ns, "labels": {"experiment": exp},
                        "creationTimestamp": stamp(age), "resourceVersion": "1"},
           "spec": {"parameterAssignments": [{"name": "--lr", "value": "0.02"}, {"name": "x", "value": "3"}]},
           "status": {}}
    if cond:
        obj["status"]["conditions"] = [{"type": "Created", "status": "True"}, {"type": cond, "status": "True"}]
    if metrics:
        obj["status"]["observation"] = {"metrics": [{"name": n, "value": v} for n, v in metrics]}
    return obj


def katib(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "katib.py"), "--fake", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# -- printing (pure) -------------------------------------------------------------------------------
def printed(kind: str, objects: list[dict], **kw) -> str:
    out = io.StringIO()
    get_cli.print_objects(kind, objects, stream=out, now=NOW, **{"output": None, "single": False,
                                                                 "namespace": "default", **kw})
    return out.getvalue()


def test_trial_table_has_katibs_printer_columns_padded_as_kubectl():
    text = printed("Trial", [trial("exp-a", age=30), trial("exp-bb", cond=None, metrics=(), age=200)])
    assert text == ("NAME     TYPE        STATUS   AGE\n"
                    "exp-a    Succeeded   True     30s\n"
                    "exp-bb                        3m20s\n")


def test_all_namespaces_puts_namespace_first_and_wide_adds_assignments_and_every_metric():
    text = printed("Trial", [trial("exp-a", ns="team")], output="wide", namespace=None)
    header, row = text.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "TYPE", "STATUS", "AGE", "ASSIGNMENTS", "METRICS"]
    assert row.split() == ["team", "exp-a", "Succeeded", "True", "30s", "--lr=0.02,x=3", "accuracy=0.9,loss=0.1"]


def test_experiment_wide_shows_the_best_trial_its_objective_and_assignments():
    exp = {"kind": "Experiment", "metadata": {"name": "exp", "namespace": "default", "creationTimestamp": stamp(4000)},
           "spec": {"objective": {"objectiveMetricName": "accuracy"}},
           "status": {"conditions": [{"type": "Running", "status": "True"}],
                      "currentOptimalTrial": {"bestTrialName": "exp-a",
                                              "parameterAssignments": [{"name": "--lr", "value": "0.02"}],
                                              "observation": {"metrics": [{"name": "loss", "value": 0.1},
                                                                          {"name": "accuracy", "value": 0.97}]}}}}
    assert printed("Experiment", [exp]).splitlines() == ["NAME   STATUS    AGE", "exp    Running   66m"]
    assert printed("Experiment", [exp], output="wide").splitlines()[1].split() == \
        ["exp", "Running", "66m", "exp-a", "accuracy=0.97", "--lr=0.02"]


def test_suggestion_columns():
    sug = {"kind": "Suggestion", "metadata": {"name": "exp", "namespace": "default", "creationTimestamp": stamp(5)},
           "spec": {"algorithmName": "random", "requests": 3},
           "status": {"suggestionCount": 2, "conditions": [{"type": "Running", "status": "True"}]}}
    assert printed("Suggestion", [sug]).splitlines() == [
        "NAME   TYPE      STATUS   REQUESTED   ASSIGNED   AGE", "exp    Running   True     3           2          5s"]


def test_json_yaml_and_name_outputs_as_kubectl(capsys):
    one = trial("exp-a")
    assert json.loads(printed("Trial", [one], output="json", single=True)) == one
    text = printed("Trial", [one, trial("exp-b")], output="json")
    assert text.startswith('{\n    "apiVersion": "v1",\n    "items": [')   # 4 spaces, keys sorted
    listed = json.loads(text)
    assert listed["kind"] == "List" and [t["metadata"]["name"] for t in listed["items"]] == ["exp-a", "exp-b"]
    assert listed["items"][0]["status"]["observation"]["metrics"][1] == {"name": "loss", "value": 0.1}
    assert yaml.safe_load(printed("Trial", [one], output="yaml", single=True)) == one
    assert printed("Trial", [one, trial("exp-b")], output="name") == \
        "trial.kubeflow.org/exp-a\ntrial.kubeflow.org/exp-b\n"
    # nothing to list: kubectl's line on stderr for tables only; an empty List for json
    assert printed("Trial", []) == "" and capsys.readouterr().err == "No resources found in default namespace.\n"
    assert printed("Trial", [], namespace=None) == "" and capsys.readouterr().err == "No resources found\n"
    assert json.loads(printed("Trial", [], output="json"))["items"] == [] and capsys.readouterr().err == ""


@pytest.mark.parametrize("spelling, kind", [("experiments", "Experiment"), ("experiment", "Experiment"),
                                            ("Experiment", "Experiment"), ("trials.kubeflow.org", "Trial"),
                                            ("suggestion.v1alpha3.kubeflow.org", "Suggestion"), ("pods", None)])
def test_resource_spellings(spelling, kind):
    assert get_cli.kind_of(spelling) == kind


# -- on a database ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_db(tmp_path_factory) -> Path:
    """A database holding one finished 3-trial experiment (run by the real katib.py)."""
    tmp = tmp_path_factory.mktemp("get")
    path = tmp / "exp.yaml"
    exp = shell_experiment("gridexp", script="echo loss=0.2;", parallel=3, max_trials=3, x_max=20)
    exp["spec"]["objective"]["additionalMetricNames"] = ["loss"]
    path.write_text(json.dumps(exp))
    done = katib("run", str(path), "--db", str(tmp / "k.db"), "-q", "-o", "json", cwd=tmp)
    assert done.returncode == 0, done.stderr
    return tmp / "k.db"


def test_get_on_a_finished_database(finished_db):
    done = katib("--db", str(finished_db), "get", "trials")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "STATUS", "AGE"] and len(lines) == 4
    assert all(line.split()[1:3] == ["Succeeded", "True"] for line in lines[1:])
    assert [line.split()[0] for line in lines[1:]] == sorted(line.split()[0] for line in lines[1:])
    exps = katib("get", "experiments", "--db", str(finished_db))   # --db after the command works too
    assert exps.stdout.splitlines()[1].split()[:2] == ["gridexp", "Succeeded"], exps.stderr


def test_get_one_by_name_json_and_the_experiment_selector(finished_db):
    done = katib("--db", str(finished_db), "get", "experiment", "gridexp", "-o", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["kind"] == "Experiment", done.stderr
    trials = json.loads(katib("--db", str(finished_db), "get", "trials", "--experiment", "gridexp", "-o", "json").stdout)
    assert len(trials["items"]) == 3
    for t in trials["items"]:   # the additional metric beside the objective, in -o json
        names = [m["name"] for m in t["status"]["observation"]["metrics"]]
        assert names == ["accuracy", "loss"], names
    wide = katib("--db", str(finished_db), "get", "trials", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["ASSIGNMENTS", "METRICS"]
    assert all(row.split()[-1].startswith("accuracy=0.1") and row.split()[-1].endswith(",loss=0.2")
               for row in wide[1:])
    none = katib("--db", str(finished_db), "get", "trials", "--experiment", "other")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "No resources found in default namespace.\n")


def test_not_found_is_kubectls_line_and_exit_1(finished_db):
    done = katib("--db", str(finished_db), "get", "experiments", "x")
    assert (done.returncode, done.stdout, done.stderr) == (1, "", 'error: experiments.kubeflow.org "x" not found\n')
    other_ns = katib("--db", str(finished_db), "get", "experiment", "gridexp", "-n", "kubeflow")
    assert other_ns.returncode == 1 and other_ns.stderr == 'error: experiments.kubeflow.org "gridexp" not found\n'


@pytest.mark.parametrize("args, said", [
    (["get", "pods"], 'the server doesn\'t have a resource type "pods"'),
    (["get", "experiments", "x", "-A"], "a resource cannot be retrieved by name across all namespaces"),
    (["get", "trials", "x", "--experiment", "e"], "name cannot be provided when a selector is specified"),
    (["get", "experiments", "--experiment", "e"], "--experiment selects trials"),
])
def test_bad_arguments_are_one_line_exit_2(finished_db, args, said):
    done = katib("--db", str(finished_db), *args)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {said}") and done.stderr.count("\n") == 1, done.stderr


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path):
    done = katib("--db", str(tmp_path / "runs" / "none.db"), "get", "experiments", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: database {tmp_path / 'runs' / 'none.db'} does not exist")
    default = katib("get", "experiments", cwd=tmp_path)   # the default katib.db in the current directory
    assert default.returncode == 2 and "katib.db does not exist" in default.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_fake_get_says_what_to_do(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "katib.py"), "get", "experiments"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "use `katib.py --fake get" in done.stderr


def test_server_databases_are_read_without_creating_tables(db_url, capsys):
    from katib.db import ObjectTable, connect

    if "://" in db_url:   # the fixture dropped Katib's tables: nothing to read, nothing created
        assert main(["--fake", "--db", db_url, "get", "experiments"]) == 2
        err = capsys.readouterr().err
        assert "holds no katib objects" in err and err.count("\n") == 1, err
        probe = connect(db_url)   # (creates them now, for the second half)
    else:
        probe = connect(db_url)
    ObjectTable(probe).put(trial("exp-a"))
    probe.close()
    assert main(["--fake", "--db", db_url, "get", "trials", "-o", "name"]) == 0
    assert capsys.readouterr().out == "trial.kubeflow.org/exp-a\n"


# -- while another process holds the database -----------------------------------------------------
def test_get_reads_committed_state_while_run_holds_the_database(tmp_path):
    from katib.db import DatabaseLocked, acquire_control, connect

    path, db = tmp_path / "slow.yaml", tmp_path / "k.db"
    path.write_text(json.dumps(shell_experiment("slow", script="sleep 30;", parallel=2, max_trials=4, x_max=20)))
    holder = subprocess.Popen([sys.executable, str(ROOT / "katib.py"), "--fake", "run", str(path), "--db", str(db),
                               "-q"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, rows = time.monotonic() + 60, []
        while time.monotonic() < deadline and len(rows) < 2:
            done = katib("--db", str(db), "get", "trials", "--experiment", "slow", cwd=tmp_path)
            rows = [line.split() for line in done.stdout.splitlines()[1:]]
            time.sleep(0.2)
        assert holder.poll() is None, holder.stderr.read()
        assert len(rows) == 2 and all(r[1] == "Running" for r in rows), rows
        with pytest.raises(DatabaseLocked):   # the run still controls the database
            acquire_control(connect(str(db)))
        exp = katib("--db", str(db), "get", "experiment", "slow", cwd=tmp_path)
        assert exp.stdout.splitlines()[1].split()[1] == "Running", exp.stderr
    finally:
        holder.kill()
        holder.wait(30)


def test_get_shows_what_kubectl_shows_while_serve_holds_the_database(tmp_path):
    from tests.apiserver_fixture import start_api_server

    server = start_api_server(tmp_path)
    try:
        exp = shell_experiment("side", script="echo loss=0.3;", parallel=2, max_trials=2, x_max=11)
        path = tmp_path / "exp.json"
        path.write_text(json.dumps(exp))
        server.kubectl("apply", "-f", str(path))
        server.kubectl("wait", "--for=condition=Succeeded", "experiment/side", "--timeout=60s")
        for resource in ("experiments", "trials", "suggestions"):
            theirs = server.kubectl("get", resource).stdout.splitlines()
            ours = katib("--db", str(server.db), "get", resource, cwd=tmp_path)
            assert ours.returncode == 0, ours.stderr
            mine = ours.stdout.splitlines()
            # the same header and cells (AGE may tick between the two); kube-apiserver's order is by name
            assert mine[0] == theirs[0]
            assert [r.split()[:-1] for r in mine[1:]] == sorted(r.split()[:-1] for r in theirs[1:])
        missing = server.kubectl("get", "experiment", "nope", check=False)
        ours = katib("--db", str(server.db), "get", "experiment", "nope", cwd=tmp_path)
        assert ours.returncode == missing.returncode == 1
        assert missing.stderr.strip().endswith(ours.stderr.strip().removeprefix("error: ")), missing.stderr
    finally:
        server.stop()
