"""katib.api.validation: one case per rule of defaults-and-validation.md §2–3 and per extra
check, asserting the field path and the message; all problems at once; UPDATE; admit()."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tests.corpus import EXAMPLES_DIR

from katib.api.validation import admit, experiment_warnings, validate_experiment, validate_trial_template
from katib.config import KatibConfig, get_configmap_from, default_trial_templates
from katib.errors import FieldError, Invalid
from katib.yamljson import yaml_first_document


EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.yaml"))
CONFIG = KatibConfig.load(None)
DELETE = object()

JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Trial}}
  namespace: {{.NameSpace}}
spec:
  template:
    spec:
      containers:
      - name: {{.Trial}}
        image: train
        command:
        - "python3"
        {{- with .HyperParameters}}
        {{- range .}}
        - "{{.Name}}={{.Value}}"
        {{- end}}
        {{- end}}
      restartPolicy: Never
"""
TFJOB_WITHOUT_NAMESPACE = """apiVersion: kubeflow.org/v1
kind: TFJob
metadata:
  name: {{.Trial}}
spec: {}
"""
USER_TEMPLATES = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "my-templates", "namespace": "fakens"},
                  "data": {"job.yaml": JOB}}


def get_configmap(namespace, name):
    return get_configmap_from([*default_trial_templates("kubeflow"), USER_TEMPLATES])(namespace, name)


def base() -> dict:
    """Upstream's validator fixture: `fake` in `fakens`, maximize `testme`, goal 0.11."""
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
            "metadata": {"name": "fake", "namespace": "fakens"},
            "spec": {"objective": {"type": "maximize", "goal": 0.11, "objectiveMetricName": "testme"},
                     "algorithm": {"algorithmName": "random",
                                   "algorithmSettings": [{"name": "random_state", "value": "10"}]},
                     "parameters": [
                         {"name": "--lr", "parameterType": "double",
                          "feasibleSpace": {"min": "0.01", "max": "0.03"}},
                         {"name": "--optimizer", "parameterType": "categorical",
                          "feasibleSpace": {"list": ["sgd", "adam"]}}],
                     "trialTemplate": {"goTemplate": {"rawTemplate": JOB}}}}


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def edit(obj: dict, changes: dict) -> dict:
    """Apply {"spec.a.b[0].c": value or DELETE}; missing containers are created."""
    obj = copy.deepcopy(obj)
    for path, value in changes.items():
        steps = [int(i) if i else k for k, i in _STEP.findall(path)]
        node = obj
        for step, nxt in zip(steps, steps[1:]):
            if isinstance(step, str) and step not in node:
                node[step] = [] if isinstance(nxt, int) else {}
            node = node[step]
        if value is DELETE:
            del node[steps[-1]]
        else:
            node[steps[-1]] = value
    return obj


def check(exp: dict, **kw) -> list[str]:
    kw.setdefault("config", CONFIG)
    return [str(e) for e in validate_experiment(exp, get_configmap=get_configmap, **kw)]


def test_base_fixture_is_valid():
    assert check(base()) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_upstream_examples_are_valid(path):
    exp = yaml_first_document(path.read_text())
    assert check(exp) == []
    labels = {"katib-metricscollector-injection": "enabled"}
    assert check(exp, namespace_labels=labels) == []


MC = "spec.metricsCollectorSpec"
FILE_MSG = "File path where metrics file exists is required by .spec.metricsCollectorSpec.source.fileSystemPath.path"
DIR_MSG = ("Directory path where tensorflow event files exist is required by "
           ".spec.metricsCollectorSpec.source.fileSystemPath.path")

# (id, changes to base(), exact error lines). One case per rule, upstream's first, then ours.
CASES = [
    # -- 2.1 counts (upstream fixture values) --
    ("maxFailedTrialCount -1", {"spec.maxFailedTrialCount": -1},
     ["spec.maxFailedTrialCount: Invalid value: -1: should not be less than 0"]),
    ("maxFailedTrialCount 0 ok", {"spec.maxFailedTrialCount": 0}, []),
    ("maxTrialCount -1", {"spec.maxTrialCount": -1},
     ["spec.maxTrialCount: Invalid value: -1: must be greater than 0"]),
    ("maxTrialCount 0", {"spec.maxTrialCount": 0}, ["spec.maxTrialCount: Invalid value: 0: must be greater than 0"]),
    ("parallelTrialCount -1", {"spec.parallelTrialCount": -1},
     ["spec.parallelTrialCount: Invalid value: -1: must be greater than 0"]),
    ("parallel > max is fine", {"spec.parallelTrialCount": 10, "spec.maxTrialCount": 2}, []),
    # -- 2.1 objective --
    ("objective absent", {"spec.objective": DELETE},
     ["spec.objective: Required value: No spec.objective specified."]),
    ("objective type unknown", {"spec.objective.type": "maximise"},
     ['spec.objective.type: Unsupported value: "maximise": must be minimize or maximize.']),
    ("objective type missing", {"spec.objective.type": DELETE},
     ["spec.objective.type: Required value: must be minimize or maximize."]),
    ("objective metric empty", {"spec.objective.objectiveMetricName": ""},
     ["spec.objective.objectiveMetricName: Required value: No spec.objective.objectiveMetricName specified."]),
    # -- 2.1 algorithm --
    ("algorithm absent", {"spec.algorithm": DELETE}, ["spec.algorithm: Required value: No spec.algorithm specified."]),
    ("algorithm name empty", {"spec.algorithm.algorithmName": ""},
     ["spec.algorithm.algorithmName: Required value: No spec.algorithm.name specified."]),
    ("algorithm not in katib-config", {"spec.algorithm.algorithmName": "foo"},
     ["spec.algorithm.algorithmName: Don't support algorithm foo: Failed to find algorithm foo config "
      "in configmap katib-config."]),
    # -- 2.1 resume policy --
    ("resumePolicy invalid", {"spec.resumePolicy": "Sometimes"},
     ["spec.resumePolicy: invalid ResumePolicyType Sometimes"]),
    ("resumePolicy Never ok", {"spec.resumePolicy": "Never"}, []),
    # -- 2.2 trial template --
    ("template invalid YAML", {"spec.trialTemplate.goTemplate.rawTemplate": "apiVersion: v1\nkind: [Job\n"},
     ["spec.trialTemplate: Invalid spec.trialTemplate: error converting YAML to JSON: yaml: line 3: "
      "did not find expected ',' or ']'."]),
    ("template renders a list", {"spec.trialTemplate.goTemplate.rawTemplate": "- a\n"},
     ["spec.trialTemplate: Invalid spec.trialTemplate: the rendered template is a list, not an object."]),
    ("template kind NewJobType", {"spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("kind: Job", "kind: NewJobType")},
     ["spec.trialTemplate: Invalid spec.trialTemplate: Job type batch/v1, Kind=NewJobType not supported."]),
    ("template namespace not-fakens",
     {"spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("{{.NameSpace}}", "not-fakens")},
     ["spec.trialTemplate: Invalid spec.trialTemplate: metadata.namespace should be fakens or {{.NameSpace}}"]),
    ("template TFJob without namespace", {"spec.trialTemplate.goTemplate.rawTemplate": TFJOB_WITHOUT_NAMESPACE},
     ["spec.trialTemplate: Invalid spec.trialTemplate: metadata.namespace should be fakens or {{.NameSpace}}"]),
    ("template name new-name", {"spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("name: {{.Trial}}\n  namespace", "name: new-name\n  namespace")},
     ["spec.trialTemplate: Invalid spec.trialTemplate: metadata.name should be {{.Trial}}"]),
    ("template ConfigMap missing",
     {"spec.trialTemplate.goTemplate": {"templateSpec": {"configMapName": "nope", "configMapNamespace": "fakens",
                                                         "templatePath": "job.yaml"}}},
     ['spec.trialTemplate: Invalid spec.trialTemplate: configmaps "nope" not found.']),
    ("template ConfigMap key missing",
     {"spec.trialTemplate.goTemplate": {"templateSpec": {"configMapName": "my-templates",
                                                         "configMapNamespace": "fakens", "templatePath": "x"}}},
     ["spec.trialTemplate: Invalid spec.trialTemplate: NotFound."]),
    ("template ConfigMap namespace empty (no fallback)",
     {"spec.trialTemplate.goTemplate": {"templateSpec": {"configMapName": "my-templates", "templatePath": "job.yaml"}}},
     ['spec.trialTemplate: Invalid spec.trialTemplate: configmaps "my-templates" not found.']),
    ("template from ConfigMap ok",
     {"spec.trialTemplate.goTemplate": {"templateSpec": {"configMapName": "my-templates",
                                                         "configMapNamespace": "fakens", "templatePath": "job.yaml"}}},
     []),
    ("template defaulted from the shipped ConfigMap", {"spec.trialTemplate": DELETE}, []),
    # -- 2.1 parameters / nasConfig --
    ("neither parameters nor nasConfig", {"spec.parameters": DELETE},
     ["spec.parameters: Required value: spec.parameters or spec.nasConfig must be specified."]),
    ("both parameters and nasConfig",
     {"spec.algorithm": {"algorithmName": "darts"},
      "spec.nasConfig": {"graphConfig": {"numLayers": 1}, "operations": [{"operationType": "skip_connection"}]}},
     ["spec.nasConfig: Forbidden: Only one of spec.parameters and spec.nasConfig can be specified."]),
    # -- 2.3 metrics collector (upstream validator cases) --
    ("collector kind invalid-kind", {f"{MC}.collector.kind": "invalid-kind"},
     [f"{MC}.collector.kind: Invalid metrics collector kind: invalid-kind."]),
    ("collector kind empty", {f"{MC}.collector": {}}, [f"{MC}.collector.kind: Invalid metrics collector kind: ."]),
    ("File relative path", {f"{MC}.collector.kind": "File", f"{MC}.source.fileSystemPath": {"path": "not/absolute", "kind": "File"}},
     [f'{MC}.source.fileSystemPath.path: Invalid value: "not/absolute": {FILE_MSG}']),
    ("File with Directory kind", {f"{MC}.collector.kind": "File", f"{MC}.source.fileSystemPath": {"path": "/a", "kind": "Directory"}},
     [f'{MC}.source.fileSystemPath.kind: Invalid value: "Directory": {FILE_MSG}']),
    ("File absolute path ok", {f"{MC}.collector.kind": "File",
                               f"{MC}.source.fileSystemPath": {"path": "/absolute/path", "kind": "File"}}, []),
    ("TensorFlowEvent relative path", {f"{MC}.collector.kind": "TensorFlowEvent",
                                       f"{MC}.source.fileSystemPath": {"path": "rel", "kind": "Directory"}},
     [f'{MC}.source.fileSystemPath.path: Invalid value: "rel": {DIR_MSG}']),
    ("PrometheusMetric named port", {f"{MC}.collector.kind": "PrometheusMetric", f"{MC}.source.httpGet": {"port": "http"}},
     [      f'{MC}.source.httpGet.port: Invalid value: "http": must be a positive integer value for metrics '
      "collector kind: PrometheusMetric."]),
    ("PrometheusMetric bad path", {f"{MC}.collector.kind": "PrometheusMetric", f"{MC}.source.httpGet": {"path": "metrics"}},
     [      f'{MC}.source.httpGet.path: Invalid value: "metrics": is invalid for metrics collector kind: PrometheusMetric.']),
    ("Custom without customCollector", {f"{MC}.collector.kind": "Custom"},
     [f"{MC}.collector.customCollector: Required value: is required for metrics collector kind: Custom."]),
    ("Custom relative fileSystemPath", {f"{MC}.collector": {"kind": "Custom", "customCollector": {"name": "c"}},
                                        f"{MC}.source.fileSystemPath": {"path": "rel", "kind": "File"}},
     [f'{MC}.source.fileSystemPath.path: Invalid value: "rel": must be an absolute path']),
    ("Custom fileSystemPath bad kind", {f"{MC}.collector": {"kind": "Custom", "customCollector": {"name": "c"}},
                                        f"{MC}.source.fileSystemPath": {"path": "/a", "kind": "Invalid"}},
     [f'{MC}.source.fileSystemPath.kind: Invalid value: "Invalid": must be Directory or File']),
    ("Custom without source accepted (upstream crashed)",
     {f"{MC}.collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "i"}}}, []),
    ("None collector ok", {f"{MC}.collector.kind": "None"}, []),
    ("filter bad regex", {f"{MC}.collector.kind": "File", f"{MC}.source.filter.metricsFormat": ["["]},
     [f'{MC}.source.filter.metricsFormat[0]: Invalid "[" in .spec.metricsCollectorSpec.source.filter: '
      "error parsing regexp: missing closing ]: `[`."]),
    ("filter one group", {f"{MC}.collector.kind": "File", f"{MC}.source.filter.metricsFormat": [r"{metricName: ([\w|-]+)}"]},
     [f'{MC}.source.filter.metricsFormat[0]: Invalid "{{metricName: ([\\\\w|-]+)}}" in '
      ".spec.metricsCollectorSpec.source.filter: two top subexpressions are required"]),
    ("filter good", {f"{MC}.source.filter.metricsFormat": [r"([\w-]+)=(\d+)"]}, []),
    # -- extra checks (not in upstream's webhook) --
    ("metadata.name missing", {"metadata.name": DELETE},
     ["metadata.name: Required value: name or generateName is required"]),
    ("objective metric blank", {"spec.objective.objectiveMetricName": "  "},
     ["spec.objective.objectiveMetricName: Required value: No spec.objective.objectiveMetricName specified."]),
    ("goal not finite", {"spec.objective.goal": float("inf")},
     ["spec.objective.goal: Invalid value: inf: must be a finite number"]),
    ("additional metric duplicate", {"spec.objective.additionalMetricNames": ["loss", "loss"]},
     ['spec.objective.additionalMetricNames[1]: Duplicate value: "loss": already listed at '
      "spec.objective.additionalMetricNames[0]"]),
    ("additional metric repeats objective", {"spec.objective.additionalMetricNames": ["testme"]},
     ['spec.objective.additionalMetricNames[0]: Invalid value: "testme": must not repeat '
      "spec.objective.objectiveMetricName"]),
    ("additional metric empty", {"spec.objective.additionalMetricNames": [""]},
     ["spec.objective.additionalMetricNames[0]: Required value: metric name must not be empty"]),
    ("NAS numLayers missing (darts)", {"spec.parameters": DELETE, "spec.algorithm": {"algorithmName": "darts"},
                                       "spec.nasConfig": {"operations": [{"operationType": "skip_connection"}]}},
     ["spec.nasConfig.graphConfig.numLayers: Required value: numLayers is required"]),
    ("NAS numLayers 0 (darts)", {"spec.parameters": DELETE, "spec.algorithm": {"algorithmName": "darts"},
                                 "spec.nasConfig": {"graphConfig": {"numLayers": 0, "inputSizes": [0]},
                                                    "operations": [{"operationType": "skip_connection"}]}},
     ["spec.nasConfig.graphConfig.numLayers: Invalid value: 0: must be greater than 0",
      "spec.nasConfig.graphConfig.inputSizes[0]: Invalid value: 0: must be greater than 0"]),
    ("NAS without operations (darts)", {"spec.parameters": DELETE, "spec.algorithm": {"algorithmName": "darts"},
                                        "spec.nasConfig": {"graphConfig": {"numLayers": 2}}},
     ["spec.nasConfig.operations: Required value: at least one operation is required"]),
    ("NAS operationType empty (darts)", {"spec.parameters": DELETE, "spec.algorithm": {"algorithmName": "darts"},
                                         "spec.nasConfig": {"graphConfig": {"numLayers": 2}, "operations": [{}]}},
     ["spec.nasConfig.operations[0].operationType: Required value: operationType is required"]),
]


@pytest.mark.parametrize("changes,expected", [(c, e) for _, c, e in CASES], ids=[i for i, _, _ in CASES])
def test_rule(changes, expected):
    assert check(edit(base(), changes)) == expected


# Problems found by the colleagues' checkers (validate_space, validate_algorithm, the template
# renderer): asserted by path and message start, since the wording is theirs.
DELEGATED = [
    ("space: min > max", {"spec.parameters[0].feasibleSpace": {"min": "0.5", "max": "0.1"}},
     "spec.parameters[0].feasibleSpace.max", 'Invalid value: "0.1"'),
    ("space: duplicate names", {"spec.parameters[1].name": "--lr"}, "spec.parameters[1].name",
     'Invalid value: "--lr": duplicate parameter name'),
    ("space: bad type", {"spec.parameters[0].parameterType": "float"}, "spec.parameters[0].parameterType",
     'Invalid value: "float"'),
    ("space: empty list", {"spec.parameters[1].feasibleSpace.list": []}, "spec.parameters[1].feasibleSpace.list", ""),
    ("algorithm: unknown setting", {"spec.algorithm.algorithmSettings[0].name": "seed"},
     "spec.algorithm.algorithmSettings[0].name", 'Invalid value: "seed": unknown setting seed for algorithm random'),
    ("algorithm: bad setting value", {"spec.algorithm.algorithmSettings[0].value": "-1"},
     "spec.algorithm.algorithmSettings[0].value",
     'Invalid value: "-1": random_state should be great or equal than zero'),
    ("algorithm: hyperband needs settings", {"spec.algorithm": {"algorithmName": "hyperband"}},
     "spec.algorithm.algorithmSettings", "r_l and resource_name must be set."),
    ("algorithm: enas graph", {"spec.parameters": DELETE, "spec.algorithm": {"algorithmName": "enas"},
                               "spec.nasConfig": {"graphConfig": {"numLayers": 1},
                                                  "operations": [{"operationType": "convolution"}]}},
     "spec.nasConfig.graphConfig.inputSizes", "Missing InputSizes in GraphConfig"),
    ("template: unknown field", {"spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("{{.Trial}}", "{{.Foo}}")},
     "spec.trialTemplate", "Invalid spec.trialTemplate: "),
]


@pytest.mark.parametrize("changes,path,start", [(c, p, s) for _, c, p, s in DELEGATED], ids=[d[0] for d in DELEGATED])
def test_delegated_rule(changes, path, start):
    errors = validate_experiment(edit(base(), changes), config=CONFIG, get_configmap=get_configmap)
    mine = [e for e in errors if e.path == path]
    assert mine, [str(e) for e in errors]
    assert str(mine[0]).startswith(f"{path}: {start}".rstrip(": ")), str(mine[0])


def test_unknown_template_field_names_it():
    exp = edit(base(), {"spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("{{.Trial}}", "{{.Foo}}")})
    (error,) = validate_experiment(exp, config=CONFIG, get_configmap=get_configmap)
    assert "Foo" in error.message and error.message.endswith(".")


def test_hyperband_resource_parameter_may_have_min_equal_max():
    exp = yaml_first_document(EXAMPLES[5].read_text())   # hyperband-example: --num-epochs 20..20
    assert exp["metadata"]["name"] == "hyperband-example"
    assert check(exp) == []
    exp["spec"]["algorithm"]["algorithmSettings"][0]["value"] = "--lr"
    assert any(e.startswith("spec.parameters[3].feasibleSpace") for e in check(exp))


def test_every_problem_is_reported_at_once():
    exp = edit(base(), {"spec.maxTrialCount": 0, "spec.objective.type": "x", "spec.algorithm.algorithmName": "foo",
                        "spec.resumePolicy": "x", f"{MC}.collector.kind": "y",
                        "spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("kind: Job", "kind: Pod")})
    paths = [e.path for e in validate_experiment(exp, config=CONFIG, get_configmap=get_configmap)]
    assert paths == ["spec.maxTrialCount", "spec.objective.type", "spec.algorithm.algorithmName",
                     "spec.resumePolicy", "spec.trialTemplate", f"{MC}.collector.kind"]


def test_type_errors_come_alone():
    errors = check(edit(base(), {"spec.maxTrialCount": "many", "spec.objective.type": "x"}))
    assert errors == ['spec.maxTrialCount: Invalid value: "many": must be an integer']


# -- namespace gate -------------------------------------------------------------------------

GATE = ('metadata.namespace: Cannot create the Experiment "fake" in namespace "fakens": the namespace '
        'lacks label "katib-metricscollector-injection: enabled"')


@pytest.mark.parametrize("labels,expected", [
    (None, []),
    ({}, [GATE]),
    ({"katib-metricscollector-injection": "disabled"}, [GATE]),
    ({"katib-metricscollector-injection": "enabled", "other": "x"}, []),
], ids=["no cluster", "unlabelled", "disabled", "enabled"])
def test_namespace_gate(labels, expected):
    assert check(base(), namespace_labels=labels) == expected
    assert check(base(), namespace_labels=labels, old=base()) == expected


# -- katib-config -----------------------------------------------------------------------------

def test_algorithm_lookup_errors_carry_katib_config_texts():
    no_section = KatibConfig({"metrics-collector-sidecar": CONFIG.data["metrics-collector-sidecar"]})
    assert check(base(), config=no_section) == [
        "spec.algorithm.algorithmName: Don't support algorithm random: Failed to find suggestions config "
        "in configmap katib-config."]
    blank_image = KatibConfig({**CONFIG.data, "suggestion": '{"random": {"image": " "}}'})
    assert check(base(), config=blank_image) == []   # image is optional in-process


def test_prometheus_is_admitted_only_when_katib_config_has_a_collector_for_it():
    exp = edit(base(), {f"{MC}.collector.kind": "PrometheusMetric"})
    assert check(exp) == []  # ours has one; upstream's katib-config had none
    config = KatibConfig({**CONFIG.data, "metrics-collector-sidecar": '{"StdOut": {"image": "p"}}'})
    assert check(exp, config=config) == [f"{MC}.collector.kind: GetMetricsCollectorImage failed: Cannot support "
                                         "metricsCollector injection for kind PrometheusMetric."]


# -- UPDATE ---------------------------------------------------------------------------------

ONLY = "Forbidden: Only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount are editable."


@pytest.mark.parametrize("changes,expected", [
    ({}, []),
    ({"spec.parallelTrialCount": 5, "spec.maxTrialCount": 20, "spec.maxFailedTrialCount": 1}, []),
    ({"metadata.labels": {"a": "b"}, "metadata.finalizers": ["x"]}, []),
    ({"spec.algorithm.algorithmName": "tpe"}, [f"spec.algorithm: {ONLY}"]),
    ({"spec.resumePolicy": "Never"}, [f"spec.resumePolicy: {ONLY}"]),
    ({"spec.objective.goal": 0.5, "spec.parameters": []}, [f"spec.objective: {ONLY}", f"spec.parameters: {ONLY}"]),
    ({"spec.maxTrialCount": 0}, ["spec.maxTrialCount: Invalid value: 0: must be greater than 0"]),
    ({"spec.objective.additionalMetricNames": [], "spec.unknownField": 1}, []),
    ({"spec.objective.goal": 0.11000}, []),
], ids=["identical", "editable counters", "metadata", "algorithm", "resumePolicy", "two fields",
        "counts still checked", "empty equals absent, unknown keys ignored", "same number"])
def test_update(changes, expected):
    old = edit(base(), {"spec.maxTrialCount": 10})
    assert check(edit(old, changes), old=old) == expected


def test_update_compares_defaulted_specs_and_skips_other_checks():
    broken = edit(base(), {"spec.trialTemplate.goTemplate.rawTemplate": "kind: [",
                           "spec.objective.type": "x"})
    stored = admit_unchecked(broken)
    assert check(edit(broken, {"spec.maxTrialCount": 3}), old=stored) == []


def admit_unchecked(exp: dict) -> dict:
    from katib.api.defaults import set_defaults
    return set_defaults(exp)


# -- admit ----------------------------------------------------------------------------------

def test_admit_returns_the_defaulted_object():
    out = admit("CREATE", base(), None, config=CONFIG, get_configmap=get_configmap, namespace_labels=None)
    assert out["spec"]["parallelTrialCount"] == 3
    assert out["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    again = admit("UPDATE", edit(out, {"spec.maxTrialCount": 4}), out, config=CONFIG,
                  get_configmap=get_configmap, namespace_labels={"katib-metricscollector-injection": "enabled"})
    assert again["spec"]["maxTrialCount"] == 4


def test_admit_raises_invalid_with_every_error():
    with pytest.raises(Invalid) as info:
        admit("CREATE", edit(base(), {"spec.maxTrialCount": 0, "spec.objective": DELETE}), None,
              config=CONFIG, get_configmap=get_configmap, namespace_labels=None)
    assert (info.value.kind, info.value.name) == ("Experiment", "fake")
    assert [e.path for e in info.value.errors] == ["spec.maxTrialCount", "spec.objective"]
    assert all(isinstance(e, FieldError) for e in info.value.errors)


def test_admit_rejects_type_errors():
    with pytest.raises(Invalid, match="spec.parallelTrialCount: Invalid value: 1.5: must be an integer"):
        admit("CREATE", edit(base(), {"spec.parallelTrialCount": 1.5}), None, config=CONFIG,
              get_configmap=get_configmap, namespace_labels=None)


def test_admit_is_only_for_create_and_update():
    with pytest.raises(ValueError):
        admit("DELETE", base(), None, config=CONFIG, get_configmap=get_configmap, namespace_labels=None)


def test_validate_trial_template_alone():
    assert validate_trial_template(base(), get_configmap=get_configmap) == []
    exp = edit(base(), {"metadata.namespace": "other",
                        "spec.trialTemplate.goTemplate.rawTemplate": JOB.replace("{{.NameSpace}}", "fakens")})
    errors = validate_trial_template(exp, get_configmap=get_configmap)
    assert [str(e) for e in errors] == [
        "spec.trialTemplate: Invalid spec.trialTemplate: metadata.namespace should be other or {{.NameSpace}}"]


# ---------------------------------------------------------------------- admission warnings

def with_metric(name: str, **changes) -> dict:
    exp = base()
    exp["spec"]["objective"]["objectiveMetricName"] = name
    for key, value in changes.items():
        exp["spec"][key] = value
    return exp


def test_a_metric_name_the_default_filter_cannot_match_warns():
    (warning,) = experiment_warnings(with_metric("précision"))
    assert warning.startswith("spec.objective.objectiveMetricName: metric 'précision' can never be matched")
    assert validate_experiment(with_metric("précision"), config=CONFIG, get_configmap=get_configmap) == []


@pytest.mark.parametrize("name", ["Validation-accuracy", "a_b|c-9", "loss"])
def test_names_of_the_default_filter_alphabet_do_not_warn(name):
    assert experiment_warnings(with_metric(name)) == []


@pytest.mark.parametrize("name", ["val acc", "top/1", "a.b", "ünï"])
def test_every_character_outside_ascii_word_bar_dash_warns(name):
    assert len(experiment_warnings(with_metric(name))) == 1


def test_additional_metrics_warn_with_their_path():
    exp = base()
    exp["spec"]["objective"]["additionalMetricNames"] = ["ok", "naïve"]
    (warning,) = experiment_warnings(exp)
    assert warning.startswith("spec.objective.additionalMetricNames[1]: metric 'naïve'")


@pytest.mark.parametrize("collector", [
    {"collector": {"kind": "StdOut"}, "source": {"filter": {"metricsFormat": [r"(\S+)=(\S+)"]}}},
    {"collector": {"kind": "TensorFlowEvent"}},
    {"collector": {"kind": "None"}},
])
def test_no_warning_when_another_filter_or_collector_reads_the_metric(collector):
    assert experiment_warnings(with_metric("précision", metricsCollectorSpec=collector)) == []


def test_a_file_collector_with_the_default_filter_warns():
    collector = {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/m.log", "kind": "File"}}}
    assert len(experiment_warnings(with_metric("précision", metricsCollectorSpec=collector))) == 1


@pytest.mark.parametrize("garbage", [None, [], {"spec": []}, {"spec": {"objective": 5}}])
def test_warnings_never_raise(garbage):
    assert experiment_warnings(garbage) == []
