"""`katib.py validate` and `katib.py render` as real subprocesses: exit codes 0/1/2, one clear
line per problem, never a traceback."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import EXAMPLES_DIR
import yaml


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.yaml"))
RANDOM = next(p for p in EXAMPLES if p.name == "random-example.yaml")


def katib(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "katib.py"), *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


INVALID = """apiVersion: kubeflow.org/v1alpha3
kind: Experiment
metadata:
  name: bad
spec:
  maxTrialCount: 0
  objective: {type: maximize, objectiveMetricName: acc}
  algorithm: {algorithmName: foo}
  parameters:
  - {name: --lr, parameterType: double, feasibleSpace: {min: "0.1", max: "0.2"}}
"""


# -- validate ---------------------------------------------------------------------------------

def test_validate_all_upstream_examples():
    proc = katib("validate", *EXAMPLES)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == [f"OK kubeflow/{yaml.safe_load(p.read_text())['metadata']['name']}"
                                  for p in EXAMPLES]
    assert proc.stderr == ""


def test_validate_invalid_experiment_prints_every_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID)
    proc = katib("validate", path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert lines(proc.stderr) == [
        f"{path} (document 1): default/bad: spec.maxTrialCount: Invalid value: 0: must be greater than 0",
        f"{path} (document 1): default/bad: spec.algorithm.algorithmName: Don't support algorithm foo: "
        "Failed to find algorithm foo config in configmap katib-config.",
    ]


def test_validate_mixes_valid_and_invalid(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(RANDOM.read_text() + "\n---\n" + INVALID)
    proc = katib("validate", path)
    assert proc.returncode == 1
    assert lines(proc.stdout) == ["OK kubeflow/random-example"]
    assert all(line.startswith(f"{path} (document 2): default/bad: ") for line in lines(proc.stderr))


@pytest.mark.parametrize("content,expected", [
    ("a: [b\n", " (document 1): invalid YAML: yaml: line 2: "),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", ' (document 1): not a Katib object: apiVersion "v1", kind "Pod"'),
    ("apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n",
     ' (document 1): not a Katib object: apiVersion "kubeflow.org/v1beta1", kind "Experiment"'),
    ("- a\n- b\n", " (document 1): not an object but a list"),
    ("# nothing\n", ": no Katib object (kubeflow.org/v1alpha3 Experiment, Trial or Suggestion) found"),
], ids=["bad yaml", "wrong kind", "wrong version", "not an object", "empty"])
def test_validate_unusable_input_exits_2_with_one_line(tmp_path, content, expected):
    path = tmp_path / "in.yaml"
    path.write_text(content)
    proc = katib("validate", path)
    assert proc.returncode == 2
    (line,) = lines(proc.stderr)
    assert line.startswith(f"{path}{expected}")


def test_validate_missing_file_exits_2():
    proc = katib("validate", "/no/such/file.yaml")
    assert proc.returncode == 2
    assert lines(proc.stderr) == ["/no/such/file.yaml: cannot read: No such file or directory"]


def test_unreadable_input_wins_over_invalid(tmp_path):
    path = tmp_path / "in.yaml"
    path.write_text(INVALID + "---\nkind: Pod\napiVersion: v1\n")
    proc = katib("validate", path)
    assert proc.returncode == 2
    assert len(lines(proc.stderr)) == 3


def test_validate_reads_json_from_stdin():
    exp = yaml.safe_load(RANDOM.read_text())
    del exp["metadata"]["namespace"]
    proc = katib("validate", "-", stdin=json.dumps(exp))
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == ["OK default/random-example"]


def test_validate_type_error_names_the_field_and_document(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
                                "metadata": {"name": "x", "namespace": "ns"}, "spec": {"maxTrialCount": "abc"}}))
    proc = katib("validate", path)
    assert proc.returncode == 1
    assert lines(proc.stderr) == [f'{path} (document 1): ns/x: spec.maxTrialCount: Invalid value: "abc": '
                                  "must be an integer"]


def test_validate_output_yaml_prints_defaulted_objects():
    proc = katib("validate", "-o", "yaml", RANDOM, EXAMPLES[0])
    assert proc.returncode == 0
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["metadata"]["name"] for d in docs] == ["random-example", "bayesianoptimization-example"]
    assert docs[0]["spec"]["resumePolicy"] == "LongRunning"
    assert docs[0]["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert docs[0]["spec"]["trialTemplate"]["goTemplate"]["rawTemplate"] == \
        yaml.safe_load(RANDOM.read_text())["spec"]["trialTemplate"]["goTemplate"]["rawTemplate"]


def test_validate_output_json():
    proc = katib("validate", "-o", "json", RANDOM)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["spec"]["parallelTrialCount"] == 3


def test_validate_uses_configmaps_from_the_input(tmp_path):
    exp = yaml.safe_load(RANDOM.read_text())
    raw = exp["spec"]["trialTemplate"]["goTemplate"].pop("rawTemplate")
    exp["spec"]["trialTemplate"]["goTemplate"]["templateSpec"] = {
        "configMapName": "mine", "configMapNamespace": "kubeflow", "templatePath": "t.yaml"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine", "namespace": "kubeflow"},
          "data": {"t.yaml": raw}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump(cm))
    assert katib("validate", tmp_path / "exp.yaml").returncode == 1
    proc = katib("validate", tmp_path / "exp.yaml", tmp_path / "cm.yaml")
    assert proc.returncode == 0, proc.stderr


def test_validate_default_template_comes_from_the_shipped_configmap(tmp_path):
    exp = yaml.safe_load(RANDOM.read_text())
    del exp["spec"]["trialTemplate"]
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    assert katib("validate", tmp_path / "exp.yaml").returncode == 0


def test_global_flags_are_accepted_and_ignored():
    assert katib("--fake", "--db", "/tmp/x.db", "validate", RANDOM).returncode == 0


@pytest.mark.parametrize("args", [["--help"], ["validate", "--help"], ["render", "--help"]])
def test_help(args):
    proc = katib(*args)
    assert proc.returncode == 0 and "usage:" in proc.stdout


# -- render -----------------------------------------------------------------------------------

def command_of(text: str) -> list[str]:
    return yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]["command"]


def test_render_with_every_parameter_set_both_ways():
    proc = katib("render", RANDOM, "--set=--lr=0.02", "--set", "--num-layers=3", "--set", "--optimizer=sgd",
                 "--trial-name", "random-example-abc")
    assert proc.returncode == 0, proc.stderr
    assert command_of(proc.stdout)[-3:] == ["--lr=0.02", "--num-layers=3", "--optimizer=sgd"]
    assert yaml.safe_load(proc.stdout)["metadata"] == {"name": "random-example-abc", "namespace": "kubeflow"}
    assert proc.stderr == ""
    assert '        - "--lr=0.02"\n' in proc.stdout          # verbatim template text


def test_render_samples_unset_parameters_deterministically_with_a_seed():
    first = katib("render", RANDOM, "--set", "--optimizer=adam", "--seed", "5")
    second = katib("render", RANDOM, "--set", "--optimizer=adam", "--seed", "5")
    assert first.returncode == 0 and first.stdout == second.stdout
    flags = dict(f.split("=", 1) for f in command_of(first.stdout)[-3:])
    assert list(flags) == ["--lr", "--num-layers", "--optimizer"] and flags["--optimizer"] == "adam"
    assert 0.01 <= float(flags["--lr"]) <= 0.03 and flags["--num-layers"] in {"2", "3", "4", "5"}
    assert lines(first.stderr) == [f"sampled --lr={flags['--lr']} --num-layers={flags['--num-layers']}"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_render_every_upstream_example(path):
    proc = katib("render", path, "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    job = yaml.safe_load(proc.stdout)
    assert job["kind"] in ("Job", "TFJob", "PyTorchJob")


@pytest.mark.parametrize("args,expected", [
    (["--set", "--lr=0.5"], "--set --lr=0.5: must be between 0.01 and 0.03"),
    (["--set", "--num-layers=2.5"], "--set --num-layers=2.5: must be an integer"),
    (["--set", "--optimizer=adagrad"], "--set --optimizer=adagrad: must be one of sgd, adam, ftrl"),
    (["--set", "--foo=1"], "--set --foo: unknown parameter (known: --lr, --num-layers, --optimizer)"),
], ids=["out of range", "not an int", "not in list", "unknown"])
def test_render_rejects_bad_assignments(args, expected):
    proc = katib("render", RANDOM, *args)
    assert proc.returncode == 1
    assert lines(proc.stderr) == [f"{RANDOM} (document 1): kubeflow/random-example: {expected}"]
    assert proc.stdout == ""


def test_render_bad_set_syntax_exits_2():
    proc = katib("render", RANDOM, "--set", "novalue")
    assert proc.returncode == 2
    assert lines(proc.stderr) == ["--set novalue: expected NAME=VALUE"]


def test_render_missing_file_exits_2():
    proc = katib("render", "/no/such.yaml")
    assert proc.returncode == 2 and len(lines(proc.stderr)) == 1


def test_render_needs_exactly_one_experiment(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(RANDOM.read_text() + "\n---\n" + RANDOM.read_text())
    proc = katib("render", path)
    assert proc.returncode == 2
    assert lines(proc.stderr) == [f"{path}: render needs exactly one Experiment, found 2"]


def test_render_reports_template_errors_in_one_line(tmp_path):
    exp = yaml.safe_load(RANDOM.read_text())
    exp["spec"]["trialTemplate"]["goTemplate"]["rawTemplate"] = "name: {{.Foo}}\n"
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(exp))
    proc = katib("render", path, "--seed", "1")
    assert proc.returncode == 1
    problems = [line for line in lines(proc.stderr) if not line.startswith("sampled ")]
    assert len(problems) == 1
    assert problems[0].startswith(f"{path} (document 1): kubeflow/random-example: spec.trialTemplate: "
                                  "Invalid spec.trialTemplate: ")


def test_render_prints_the_manifest_and_flags_an_invalid_experiment(tmp_path):
    exp = yaml.safe_load(RANDOM.read_text())
    exp["spec"]["trialTemplate"]["goTemplate"]["rawTemplate"] = exp["spec"]["trialTemplate"]["goTemplate"][
        "rawTemplate"].replace("name: {{.Trial}}\n  namespace", "name: fixed\n  namespace")
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(exp))
    proc = katib("render", path, "--seed", "1")
    assert proc.returncode == 1
    assert yaml.safe_load(proc.stdout)["metadata"]["name"] == "fixed"
    assert lines(proc.stderr)[-1] == (f"{path} (document 1): kubeflow/random-example: spec.trialTemplate: "
                                      "Invalid spec.trialTemplate: metadata.name should be {{.Trial}}")


# -- katib-config -----------------------------------------------------------------------------

PROMETHEUS = """apiVersion: kubeflow.org/v1alpha3
kind: Experiment
metadata: {name: prom, namespace: kubeflow}
spec:
  objective: {type: maximize, objectiveMetricName: acc}
  algorithm: {algorithmName: random}
  parameters:
  - {name: --lr, parameterType: double, feasibleSpace: {min: 0.01, max: 0.03}}
  metricsCollectorSpec:
    collector: {kind: PrometheusMetric}
"""


def test_katib_config_option_decides_supported_collectors(tmp_path):
    exp = tmp_path / "prom.yaml"
    exp.write_text(PROMETHEUS)
    proc = katib("validate", exp)  # our katib-config has a PrometheusMetric sidecar (upstream's had none)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == ["OK kubeflow/prom"]
    config = yaml.safe_load((ROOT / "config/katib-config.yaml").read_text())
    sidecars = json.loads(config["data"]["metrics-collector-sidecar"])
    del sidecars["PrometheusMetric"]
    config["data"]["metrics-collector-sidecar"] = json.dumps(sidecars)
    (tmp_path / "katib-config.yaml").write_text(yaml.safe_dump(config))
    proc = katib("validate", "--katib-config", tmp_path / "katib-config.yaml", exp)
    assert proc.returncode == 1
    assert lines(proc.stderr) == [
        f"{exp} (document 1): kubeflow/prom: spec.metricsCollectorSpec.collector.kind: GetMetricsCollectorImage "
        "failed: Cannot support metricsCollector injection for kind PrometheusMetric."]


def test_unreadable_katib_config_exits_2(tmp_path):
    proc = katib("validate", "--katib-config", tmp_path / "none.yaml", RANDOM)
    assert proc.returncode == 2
    assert lines(proc.stderr) == [f"{tmp_path / 'none.yaml'}: cannot read: No such file or directory"]


def test_validate_warns_about_a_metric_the_default_filter_cannot_match(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(RANDOM.read_text().replace("objectiveMetricName: Validation-accuracy",
                                               "objectiveMetricName: précision"))
    proc = katib("validate", path)
    assert proc.returncode == 0 and proc.stdout.startswith("OK kubeflow/random-example")
    (line,) = lines(proc.stderr)
    assert line.startswith(f"warning: {path} (document 1): kubeflow/random-example: "
                           "spec.objective.objectiveMetricName: metric 'précision' can never be matched")


def test_render_gives_hyperbands_resource_its_max_and_samples_the_rest():
    hyperband = next(p for p in EXAMPLES if p.name == "hyperband-example.yaml")
    proc = katib("render", hyperband, "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    (sampled,) = lines(proc.stderr)
    assert sampled.endswith(" --num-epochs=20") and "--lr=" in sampled


def test_render_samples_nas_architectures_in_upstreams_format():
    enas = next(p for p in EXAMPLES if p.name == "enas-example-cpu.yaml")
    proc = katib("render", enas, "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"architecture=\[\[\d+\].*\] nn_config=\{'num_layers': ", proc.stderr)


BLOCK = """
import runpy, sys
blocked = sys.argv[1]
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
for name in [m for m in sys.modules if m.split(".")[0] == blocked]:
    del sys.modules[name]
sys.argv = ["katib.py", *sys.argv[2:]]
runpy.run_path("katib.py", run_name="__main__")
"""


@pytest.mark.parametrize("module,package,command", [
    ("yaml", "PyYAML", ["run", "examples/random-example.yaml"]),        # at start-up
    ("aiohttp", "aiohttp", ["serve", "--listen", "127.0.0.1:0"]),        # imported by serve only
])
def test_a_requirement_that_is_not_installed_is_one_line_naming_it_exit_2(module, package, command, tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCK, module, "--fake", "--db", str(tmp_path / "k.db"), *command],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"error: the Python package {package} is not installed for {sys.executable}: install "
                           f"the requirements (python3 -m venv .venv && .venv/bin/pip install -r requirements.txt) "
                           f"and run katib.py with .venv/bin/python\n")
