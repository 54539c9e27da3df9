"""katib.api.templates: template sources, rendering every upstream example, decoding
(shared spec trial-templates.md; upstream manifest generator tests, upstream-tests.md §4)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpus import EXAMPLES_DIR

from katib.api.templates import (DecodeError, HyperParameter, TrialTemplateError, TrialTemplateParams,
                                 decode_job, render_trial_template, template_params, template_source)
from katib.api.types import Experiment, ParameterAssignment
from katib.config import get_configmap_from, default_trial_templates
from katib.errors import NotFound
from katib.yamljson import yaml_first_document

from katib.gotemplate import TemplateError

EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.yaml"))
GET_CONFIGMAP = get_configmap_from(default_trial_templates("kubeflow"))
VALUES = {"--lr": "0.02", "--num-layers": "3", "--optimizer": "sgd", "--momentum": "0.5",
          "--num-epochs": "12", "--learning_rate": "0.03", "--batch_size": "150",
          "architecture": "[[1], [0, 1]]", "nn_config": "{'num_layers': 2}",
          "algorithm-settings": "{'num_epochs': '3'}", "search-space": "['skip_connection']",
          "num-layers": "3"}
NAS_NAMES = {"enas": ["architecture", "nn_config"], "darts": ["algorithm-settings", "search-space", "num-layers"]}


def example(path: Path) -> dict:
    return yaml_first_document(path.read_text())


def assignments_for(exp: dict) -> list[dict]:
    names = [p["name"] for p in exp["spec"].get("parameters") or []] \
        or NAS_NAMES[exp["spec"]["algorithm"]["algorithmName"]]
    return [{"name": n, "value": VALUES[n]} for n in names]


def training_commands(job: dict) -> list[list[str]]:
    """The command list of every training container, per job kind."""
    if job["kind"] == "Job":
        templates = [job["spec"]["template"]]
    else:
        key = "tfReplicaSpecs" if job["kind"] == "TFJob" else "pytorchReplicaSpecs"
        templates = [replica["template"] for replica in job["spec"][key].values()]
    return [t["spec"]["containers"][0]["command"] for t in templates]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_upstream_example_renders_its_job_with_the_hyperparameters(path):
    exp = example(path)
    params = assignments_for(exp)
    text = render_trial_template(exp, trial_name="exp-abcdefgh", assignments=params, get_configmap=GET_CONFIGMAP)
    job = decode_job(text)
    assert (job["apiVersion"], job["kind"]) in {("batch/v1", "Job"), ("kubeflow.org/v1", "TFJob"),
                                                ("kubeflow.org/v1", "PyTorchJob")}
    assert job["metadata"] == {"name": "exp-abcdefgh", "namespace": "kubeflow"}
    nas = not exp["spec"].get("parameters")
    # NAS templates wrap the value in \"...\" inside a YAML double-quoted string.
    flags = [f'--{p["name"]}="{p["value"]}"' if nas else f'{p["name"]}={p["value"]}' for p in params]
    commands = training_commands(job)
    assert commands and len(commands) == (2 if job["kind"] == "PyTorchJob" else 1)
    for command in commands:
        tail = command[-len(flags) - 1:-1] if path.name == "enas-example-cpu.yaml" else command[-len(flags):]
        assert tail == flags


def test_enas_cpu_keeps_the_fixed_flag_after_the_hyperparameters():
    exp = example(next(p for p in EXAMPLES if p.name == "enas-example-cpu.yaml"))
    job = decode_job(render_trial_template(exp, trial_name="t", assignments=assignments_for(exp),
                                           get_configmap=GET_CONFIGMAP))
    assert training_commands(job)[0] == ["python3", "-u", "RunTrial.py", '--architecture="[[1], [0, 1]]"',
                                         "--nn_config=\"{'num_layers': 2}\"", "--num_epochs=1"]


DEFAULT_WITHOUT_HYPERPARAMETERS = """apiVersion: batch/v1
kind: Job
metadata:
  name: test
  namespace: testns
spec:
  template:
    spec:
      containers:
      - name: test
        image: docker.io/kubeflowkatib/mxnet-mnist
        command:
        - "python3"
        - "/opt/mxnet-mnist/mnist.py"
        - "--batch-size=64"
      restartPolicy: Never"""


def default_template_experiment(namespace: str = "testns") -> dict:
    return {"metadata": {"name": "e", "namespace": namespace},
            "spec": {"trialTemplate": {"goTemplate": {"templateSpec": {
                "configMapName": "trial-template", "configMapNamespace": "kubeflow",
                "templatePath": "defaultTrialTemplate.yaml"}}}}}


def test_rendering_without_hyperparameters_removes_the_loop():
    text = render_trial_template(default_template_experiment(), trial_name="test", assignments=[],
                                 get_configmap=GET_CONFIGMAP)
    assert text == DEFAULT_WITHOUT_HYPERPARAMETERS


def test_one_assignment_adds_exactly_one_line():
    text = render_trial_template(default_template_experiment(), trial_name="test",
                                 assignments=[{"name": "testname", "value": "testvalue"}], get_configmap=GET_CONFIGMAP)
    assert text == DEFAULT_WITHOUT_HYPERPARAMETERS.replace(
        '- "--batch-size=64"', '- "--batch-size=64"\n        - "testname=testvalue"')


def test_configmap_template_renders_like_the_same_raw_template():
    raw_text = GET_CONFIGMAP("kubeflow", "trial-template")["data"]["defaultTrialTemplate.yaml"]
    raw = {"metadata": {"name": "e", "namespace": "testns"},
           "spec": {"trialTemplate": {"goTemplate": {"rawTemplate": raw_text}}}}
    args = dict(trial_name="t1", assignments=[{"name": "--lr", "value": "0.1"}], get_configmap=GET_CONFIGMAP)
    assert render_trial_template(raw, **args) == render_trial_template(default_template_experiment(), **args)


def test_raw_template_takes_precedence_over_template_spec():
    exp = default_template_experiment()
    exp["spec"]["trialTemplate"]["goTemplate"]["rawTemplate"] = "name: {{.Trial}}"
    assert render_trial_template(exp, trial_name="x", assignments=[], get_configmap=GET_CONFIGMAP) == "name: x"


def test_labeled_configmap_templates_are_available():
    exp = default_template_experiment()
    exp["spec"]["trialTemplate"]["goTemplate"]["templateSpec"].update(
        configMapName="trial-template-labeled", templatePath="pytorchJobTemplate")
    job = decode_job(render_trial_template(exp, trial_name="t", assignments=[{"name": "--lr", "value": "1"}],
                                           get_configmap=GET_CONFIGMAP))
    assert job["kind"] == "PyTorchJob"
    assert [c[-1] for c in training_commands(job)] == ["--lr=1", "--lr=1"]


@pytest.mark.parametrize("template_spec,message", [
    ({"configMapName": "nope", "configMapNamespace": "kubeflow", "templatePath": "x"}, 'configmaps "nope" not found'),
    ({"configMapName": "trial-template", "configMapNamespace": "kubeflow", "templatePath": "x"}, "NotFound"),
    ({"configMapName": "trial-template", "templatePath": "defaultTrialTemplate.yaml"},
     'configmaps "trial-template" not found'),
], ids=["configmap missing", "key missing", "namespace empty"])
def test_template_lookup_errors_are_upstreams(template_spec, message):
    exp = {"metadata": {"name": "e"}, "spec": {"trialTemplate": {"goTemplate": {"templateSpec": template_spec}}}}
    with pytest.raises(NotFound) as info:
        template_source(exp, get_configmap=GET_CONFIGMAP)
    assert str(info.value) == message


def test_no_template_source_is_an_error():
    with pytest.raises(TrialTemplateError):
        template_source({"spec": {"trialTemplate": {"goTemplate": {}}}}, get_configmap=GET_CONFIGMAP)
    with pytest.raises(TrialTemplateError):
        template_source({"spec": {}}, get_configmap=GET_CONFIGMAP)


@pytest.mark.parametrize("source,start,end", [
    ("{{.Foo}}", 'template: Trial:1:2: executing "Trial" at <.Foo>: ',
     "can't evaluate field Foo in type manifest.trialTemplateParams"),
    ("{{range .HyperParameters}}{{.Foo}}{{end}}", 'template: Trial:1:28: executing "Trial" at <.Foo>: ',
     "can't evaluate field Foo in type v1alpha3.ParameterAssignment"),
    ("{{if}}", "template: Trial:1:", "missing value for if"),   # Go prints no column for parse errors
], ids=["unknown field", "unknown assignment field", "parse error"])
def test_template_errors_read_as_go_prints_them(source, start, end):
    exp = {"metadata": {"name": "e"}, "spec": {"trialTemplate": {"goTemplate": {"rawTemplate": source}}}}
    with pytest.raises(TemplateError) as info:
        render_trial_template(exp, trial_name="t", assignments=[{"name": "a", "value": "1"}],
                              get_configmap=GET_CONFIGMAP)
    assert str(info.value).startswith(start) and str(info.value).endswith(end)


def test_typed_experiment_and_assignments_are_accepted():
    exp = Experiment.from_dict(example(EXAMPLES[0]))
    text = render_trial_template(exp, trial_name="t", get_configmap=GET_CONFIGMAP,
                                 assignments=[ParameterAssignment(name="--lr", value="0.5")])
    assert training_commands(decode_job(text))[0][-1] == "--lr=0.5"


def test_template_params_use_go_field_names():
    params = template_params({"metadata": {"name": "e", "namespace": "ns"}}, trial_name="e-1",
                             assignments=[{"name": "a", "value": 1}, ParameterAssignment(name="b")])
    assert params == TrialTemplateParams(Experiment="e", Trial="e-1", NameSpace="ns",
                                         HyperParameters=[HyperParameter("a", "1"), HyperParameter("b", "")])


def test_experiment_variable_is_available():
    exp = {"metadata": {"name": "e", "namespace": "ns"},
           "spec": {"trialTemplate": {"goTemplate": {"rawTemplate": "{{.Experiment}}/{{.NameSpace}}/{{.Trial}}"}}}}
    assert render_trial_template(exp, trial_name="t", assignments=[], get_configmap=GET_CONFIGMAP) == "e/ns/t"


# -- decode_job -----------------------------------------------------------------------------

def test_decode_reads_only_the_first_document():
    assert decode_job("kind: Job\n---\nkind: [broken\n") == {"kind": "Job"}


def test_decode_accepts_json_and_keeps_timestamps_as_text():
    assert decode_job('{"kind": "TFJob", "metadata": {"name": "x"}}') == {"kind": "TFJob", "metadata": {"name": "x"}}
    assert decode_job("kind: Job\nstamp: 2020-01-01T00:00:00Z\n")["stamp"] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize("text,message", [
    ("", "the rendered template is empty"),
    ("---\n", "the rendered template is empty"),
    ("- a\n", "the rendered template is a list, not an object"),
    ("just text", "the rendered template is a string, not an object"),
    ("a: b: c\n", "error converting YAML to JSON: yaml: line 1: mapping values are not allowed in this context"),
    ("kind: Job\n\tbad: tab\n", "error converting YAML to JSON: yaml: line 2: "),
], ids=["empty", "empty document", "list", "scalar", "bad yaml", "tab"])
def test_decode_errors(text, message):
    with pytest.raises(DecodeError) as info:
        decode_job(text)
    assert str(info.value).startswith(message)
