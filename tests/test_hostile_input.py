"""Hostile and broken documents: one clear line naming file/document/field, the right exit code,
no traceback, bounded time and memory — in `validate`, `render` and `run` (real subprocesses),
and the same answers from the pure layers underneath (yamljson, api.meta, admission)."""
from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from katib import yamljson
from katib.api import meta
from katib.api.templates import MAX_TEMPLATE_CHARS
from katib.api.validation import validate_experiment
from katib.backends.fake import FakeBackend
from katib.cli.inputs import read_inputs
from katib.config import KatibConfig, default_trial_templates, get_configmap_from
from katib.errors import Invalid

ROOT = Path(__file__).resolve().parent.parent
BASE = (ROOT / "examples" / "random-example.yaml").read_text()
CONFIG = KatibConfig.load(None)
GET_CONFIGMAP = get_configmap_from(default_trial_templates("kubeflow"))


def katib(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "katib.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def bomb(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]\n"
    return text


# (name, file text, words the single problem line must contain)
UNUSABLE = [
    ("self-alias", BASE.replace("spec:\n", "spec: &s\n  self: *s\n", 1), ["(document 1)", "line 11", "alias"]),
    ("alias-bomb", bomb(9), ["(document 1)", "alias"]),
    ("kind-list", BASE.replace("kind: Experiment", "kind: [Experiment]"), ["(document 1)", "kind must be strings"]),
    ("json-5000-deep", "[" * 5000 + "]" * 5000, ["invalid JSON", "nested deeper than 100 levels"]),
    ("yaml-150-deep", "a: " + "[" * 150 + "]" * 150 + "\n", ["(document 1)", "nested deeper than 100 levels"]),
    ("yaml-5000-deep", "a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n",
     ["(document 1)", "nested deeper than 100 levels"]),
    ("float-abc", BASE.replace("maxTrialCount: 12", "maxTrialCount: !!float abc"),
     ["(document 1)", "line 21", "cannot decode 'abc' as !!float"]),
    ("timestamp-apiversion", BASE.replace('apiVersion: "kubeflow.org/v1alpha3"', "apiVersion: !!timestamp 2001-12-14"),
     ["(document 1)", 'not a Katib object: apiVersion "2001-12-14"']),
    ("name-number", BASE.replace("name: random-example", "name: 12345"),
     ["(document 1)", "metadata.name: Invalid value: 12345: must be a string"]),
    ("name-bool", BASE.replace("name: random-example", "name: true"),
     ["(document 1)", "metadata.name: Invalid value: true: must be a string"]),
    ("metadata-list", BASE.replace("metadata:\n", "metadata: [1]\nx:\n", 1), ["metadata: must be an object"]),
    ("set-value", BASE.replace("maxTrialCount: 12", "maxTrialCount: !!set {a: null}"), ["has no JSON form"]),
    ("not-utf8", None, ["not UTF-8"]),
    ("too-large", None, ["larger than 4 MiB"]),
]


def write_case(tmp_path: Path, name: str, text: str | None) -> Path:
    path = tmp_path / f"{name}.yaml"
    if name == "not-utf8":
        path.write_bytes(BASE.encode() + b"# \xff\xfe\n")
    elif name == "too-large":
        path.write_text(BASE + "#" * yamljson.MAX_INPUT_BYTES + "\n")
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name,text,words", UNUSABLE, ids=[u[0] for u in UNUSABLE])
def test_validate_and_render_refuse_unusable_input_in_one_line(tmp_path, capsys, name, text, words):
    """In-process (any exception fails the test); the subprocess test below covers the real exit."""
    from katib.cli import main

    path = write_case(tmp_path, name, text)
    for command in ("validate", "render"):
        assert main([command, str(path)]) == 2, command
        (line,) = lines(capsys.readouterr().err)
        assert line.startswith(str(path)) and all(w in line for w in words), line


@pytest.mark.parametrize("name", ["self-alias", "name-number"])
def test_validate_and_render_processes_exit_2_without_a_traceback(tmp_path, name):
    path = write_case(tmp_path, name, next(t for n, t, _ in UNUSABLE if n == name))
    for command in ("validate", "render"):
        proc = katib(command, path)
        assert proc.returncode == 2 and len(lines(proc.stderr)) == 1, (command, proc.stderr)


@pytest.mark.parametrize("name", ["self-alias", "kind-list", "json-5000-deep", "float-abc", "name-number"])
def test_run_refuses_unusable_input_in_one_line(tmp_path, name):
    text = next(t for n, t, _ in UNUSABLE if n == name)
    path = write_case(tmp_path, name, text)
    proc = katib("--fake", "run", path, "--db", tmp_path / "x.db")
    assert proc.returncode == 2, proc.stderr
    (line,) = lines(proc.stderr)
    assert str(path) in line and "(document 1)" in line or "invalid JSON" in line, line


def test_run_shows_the_name_error_and_the_spec_errors_together(tmp_path):
    path = tmp_path / "five.yaml"
    path.write_text(BASE.replace("name: random-example", "name: Five_Mistakes")
                    .replace("maxTrialCount: 12", "maxTrialCount: -1"))
    proc = katib("--fake", "run", path, "--db", tmp_path / "x.db")
    assert proc.returncode == 2, proc.stderr
    assert "metadata.name: Invalid value: \"Five_Mistakes\"" in proc.stderr
    assert "spec.maxTrialCount: Invalid value: -1" in proc.stderr


@pytest.mark.parametrize("name", ["Five_Mistakes", "ünï", "a" * 64, "-x", "x."])
def test_validate_rejects_names_kubernetes_or_the_trials_refuse(tmp_path, name):
    path = tmp_path / "exp.yaml"
    path.write_text(BASE.replace("name: random-example", f"name: {name}")
                    .replace("maxTrialCount: 12", "maxTrialCount: 0"))
    proc = katib("validate", path)
    assert proc.returncode == 1
    problems = lines(proc.stderr)
    assert len(problems) == 2, problems
    assert "metadata.name: Invalid value:" in problems[0] and "spec.maxTrialCount" in problems[1]


def test_a_63_character_name_is_fine():
    exp = yaml.safe_load(BASE.replace("name: random-example", "name: " + "a" * 63))
    assert validate_experiment(exp, config=CONFIG, get_configmap=GET_CONFIGMAP) == []


# ------------------------------------------------------------------ one rule set, two places

def admitting_backend() -> FakeBackend:
    from katib.api.validation import admit

    def admission(op, new, old):
        return admit(op, new, old, config=CONFIG, get_configmap=GET_CONFIGMAP)
    return FakeBackend(admit=admission, admit_kinds=["Experiment"])


@pytest.mark.parametrize("name", ["Five_Mistakes", "ünï", "a" * 64])
def test_fake_create_and_validate_report_the_same_errors(name):
    exp = yaml.safe_load(BASE.replace("name: random-example", f"name: {name}")
                         .replace("maxTrialCount: 12", "maxTrialCount: -1"))
    expected = [str(e) for e in validate_experiment(exp, config=CONFIG, get_configmap=GET_CONFIGMAP)]
    with pytest.raises(Invalid) as err:
        admitting_backend().create(exp)
    assert [str(e) for e in err.value.errors] == expected
    assert expected[0].startswith("metadata.name:") and expected[1].startswith("spec.maxTrialCount:")


@pytest.mark.parametrize("mutate,path", [
    (lambda o: o["metadata"].update(name=12345), "metadata.name"),
    (lambda o: o["metadata"].update(name=True), "metadata.name"),
    (lambda o: o["metadata"].update(namespace=["x"]), "metadata.namespace"),
    (lambda o: o.update(metadata=[1]), "metadata"),
    (lambda o: o.update(kind=["Experiment"]), "kind"),
    (lambda o: o["metadata"].update(labels={"a b": "c"}), "metadata.labels"),
    (lambda o: o["metadata"].update(labels={"ok": "x" * 64}), "metadata.labels[ok]"),
    (lambda o: o["metadata"].update(annotations={"/x": "1"}), "metadata.annotations"),
])
def test_fake_create_answers_bad_metadata_with_invalid_not_a_crash(mutate, path):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}}
    mutate(obj)
    with pytest.raises(Invalid) as err:
        FakeBackend().create(obj)
    assert [e.path for e in err.value.errors] == [path]


def test_metadata_rules_are_one_function():
    assert meta.create_errors({"name": "ok", "namespace": "default"}) == []
    assert [e.path for e in meta.create_errors({"generateName": "Bad_"})] == ["metadata.generateName"]
    assert [e.path for e in meta.create_errors({})] == ["metadata.name"]
    assert [e.kind for e in meta.create_errors({"name": "a", "resourceVersion": "3"})] == ["Forbidden"]


# ------------------------------------------------------------------------- size, depth, aliases

def test_an_alias_bomb_costs_its_size_not_its_expansion(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9))
    tracemalloc.start()
    started = time.perf_counter()
    inputs = read_inputs([str(path)])
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(inputs.problems) == 1 and "alias" in inputs.problems[0]
    assert elapsed < 0.5 and peak < 5 * 2**20, (elapsed, peak)


def test_nesting_is_capped_at_max_depth_for_yaml_and_json():
    ok, deep = yamljson.MAX_DEPTH, yamljson.MAX_DEPTH + 1
    assert yamljson.yaml_documents("[" * ok + "]" * ok)
    assert yamljson.json_document("[" * ok + "]" * ok)
    with pytest.raises(yamljson.InputRefused):
        yamljson.yaml_documents("[" * deep + "]" * deep)
    with pytest.raises(yamljson.InputRefused):
        yamljson.json_document("[" * deep + "]" * deep)
    with pytest.raises(yamljson.InputRefused):
        yamljson.yaml_documents("a: &x 1\nb: *x\n")   # even a scalar alias


def test_input_exactly_at_the_cap_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(BASE + "#" * (yamljson.MAX_INPUT_BYTES - len(BASE.encode()) - 1) + "\n")
    assert path.stat().st_size == yamljson.MAX_INPUT_BYTES
    assert read_inputs([str(path)]).problems == []


def test_yaml_reads_as_kubernetes_json():
    (doc,) = yamljson.yaml_documents("t: !!timestamp 2001-12-14\nb: !!binary aGk=\n2: two\nfalse: x\n")
    assert doc == {"t": "2001-12-14", "b": "aGk=", "2": "two", "false": "x"}


# -------------------------------------------------------------------------- non-finite bounds

@pytest.mark.parametrize("old,new,path", [
    ('min: "0.01"', 'min: "-1e400"', "spec.parameters[0].feasibleSpace.min"),
    ('max: "0.03"', 'max: "1e309"', "spec.parameters[0].feasibleSpace.max"),
    ('max: "0.03"', 'max: "0.03"\n        step: "1e999"', "spec.parameters[0].feasibleSpace.step"),
    ('min: "0.01"', "min: .nan", "spec.parameters[0].feasibleSpace.min"),
    ('min: "0.01"', 'min: "-inf"', "spec.parameters[0].feasibleSpace.min"),
    ('min: "2"', 'min: "-' + "9" * 400 + '"', "spec.parameters[1].feasibleSpace.min"),
])
def test_non_finite_bounds_are_refused_with_their_path(old, new, path):
    exp = yaml.safe_load(BASE.replace(old, new, 1))
    errors = validate_experiment(exp, config=CONFIG, get_configmap=GET_CONFIGMAP)
    assert [e.path for e in errors] == [path], errors


def test_a_discrete_value_beyond_double_range_is_refused():
    exp = yaml.safe_load(BASE)
    exp["spec"]["parameters"].append({"name": "--d", "parameterType": "discrete",
                                      "feasibleSpace": {"list": ["1", "1e400"]}})
    errors = validate_experiment(exp, config=CONFIG, get_configmap=GET_CONFIGMAP)
    assert [e.path for e in errors] == ["spec.parameters[3].feasibleSpace.list[1]"]


# ------------------------------------------------------------------------------ trial template

def template_errors(exp: dict) -> list[str]:
    return [str(e) for e in validate_experiment(exp, config=CONFIG, get_configmap=GET_CONFIGMAP)]


def test_a_parameter_name_that_breaks_the_rendered_yaml_is_refused_at_admission():
    exp = yaml.safe_load(BASE.replace("- name: --lr", "- name: '--lr\"'"))
    (error,) = template_errors(exp)
    assert error.startswith("spec.trialTemplate: Invalid spec.trialTemplate: error converting YAML to JSON:")
    assert '(rendered with --lr"=0.01, --num-layers=2, --optimizer=sgd)' in error


def test_every_list_value_is_rendered():
    """Only the third categorical value breaks the manifest: admission must still see it."""
    exp = yaml.safe_load(BASE.replace("- ftrl", "- 'ftrl\"'"))
    (error,) = template_errors(exp)
    assert "--optimizer=ftrl\")" in error


def test_the_maximum_is_rendered_too():
    """A template that breaks only for the largest value of a range."""
    exp = yaml.safe_load(BASE.replace('- "{{.Name}}={{.Value}}"',
                                      '- "{{.Name}}={{if eq .Value "5"}}"{{end}}{{.Value}}"'))
    (error,) = template_errors(exp)
    assert "--num-layers=5" in error


def test_job_labels_the_api_server_would_refuse_are_refused_at_admission():
    exp = yaml.safe_load(BASE.replace("  namespace: {{.NameSpace}}\n",
                                      "  namespace: {{.NameSpace}}\n            labels: {\"bad key\": x}\n"))
    (error,) = template_errors(exp)
    assert error.startswith("spec.trialTemplate: Invalid spec.trialTemplate: the Job's metadata.labels:")


def test_a_template_over_the_cap_is_refused_and_one_at_the_cap_is_not():
    exp = yaml.safe_load(BASE)
    go = exp["spec"]["trialTemplate"]["goTemplate"]
    go["rawTemplate"] += "\n#" + "x" * (MAX_TEMPLATE_CHARS - len(go["rawTemplate"]) - 2)
    assert len(go["rawTemplate"]) == MAX_TEMPLATE_CHARS and template_errors(exp) == []
    go["rawTemplate"] += "x"
    (error,) = template_errors(exp)
    assert f"holds {MAX_TEMPLATE_CHARS + 1} characters" in error


def test_template_parsing_is_linear_in_the_template_size():
    """Counting each action's line from the start made parsing quadratic (8 s at ~1 MB)."""
    from katib.gotemplate import parse

    def seconds(n: int) -> float:
        source = "".join(f"# c{i} {{{{.Trial}}}} {{{{.NameSpace}}}}\n" for i in range(n))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            parse(source, "Trial")
            best = min(best, time.perf_counter() - started)
        return best

    small, large = seconds(2_000), seconds(16_000)
    assert large / small < 24, (small, large)   # linear: ~8; quadratic: ~64


def test_line_numbers_stay_exact():
    from katib.gotemplate.errors import Location

    source = "ab\n\ncd\né\n"
    loc = Location(source)
    for pos in range(len(source) + 1):
        assert loc.line(pos) == source.count("\n", 0, pos) + 1
        assert loc.line_start(pos) == source.rfind("\n", 0, pos) + 1


def test_nas_experiments_render_with_an_architecture():
    """nn_config holds single quotes: a template quoting it with them cannot become a Job."""
    from tests.corpus import EXAMPLES_DIR

    text = (EXAMPLES_DIR / "nas" / "enas-example-cpu.yaml").read_text()
    assert template_errors(yaml.safe_load(text)) == []
    broken = text.replace('- "--{{.Name}}=\\"{{.Value}}\\""', "- '--{{.Name}}={{.Value}}'")
    assert broken != text
    (error,) = template_errors(yaml.safe_load(broken))
    assert "error converting YAML to JSON" in error and "nn_config={'num_layers'" in error
