"""katib.serde + katib.api.types: every upstream object survives load → dump; unknown keys are
kept in place; type errors are reported with field paths (shared spec api-v1alpha3.md)."""
from __future__ import annotations

import copy
import json
from enum import StrEnum
from pathlib import Path

import pytest
import yaml

from katib import serde, yamljson
from katib.api import constants as c
from katib.api.types import (AlgorithmSpec, Condition, Experiment, ExperimentSpec, FeasibleSpace,
                             ObjectiveSpec, ParameterSpec, Suggestion, Trial)
from katib.errors import Invalid

from tests.corpus import UPSTREAM
EXAMPLES = sorted((UPSTREAM / "examples/v1alpha3").rglob("*.yaml"))


def load_yaml(path: Path) -> dict:
    return yamljson.yaml_first_document(path.read_text())


def same_with_order(a, b) -> bool:
    """Equal values and equal key order everywhere."""
    return json.dumps(a) == json.dumps(b) and a == b


def test_there_are_fourteen_upstream_examples():
    assert len(EXAMPLES) == 14


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_upstream_example_round_trips(path):
    data = load_yaml(path)
    exp = Experiment.from_dict(data)
    assert same_with_order(exp.to_dict(), data)
    assert exp.extras == {} and exp.spec.extras == {}


def test_typed_fields_of_an_example():
    exp = Experiment.from_dict(load_yaml(EXAMPLES[0]))   # bayesianoptimization
    assert (exp.name, exp.namespace) == ("bayesianoptimization-example", "kubeflow")
    assert exp.spec.max_trial_count == 12 and exp.spec.parallel_trial_count == 3
    assert exp.spec.objective.goal == 0.99
    assert exp.spec.parameters[2].feasible_space.list_ == ["sgd", "adam", "ftrl"]
    assert exp.spec.algorithm.algorithm_settings[0].value == "10"
    assert exp.spec.trial_template.go_template.raw_template.startswith("apiVersion: batch/v1")


# Objects as controllers and kubectl show them (api-v1alpha3.md §3.3), statuses included.
TRIAL = {
    "apiVersion": "kubeflow.org/v1alpha3", "kind": "Trial",
    "metadata": {"name": "random-example-fm2g6jpj", "namespace": "kubeflow",
                 "labels": {"controller-tools.k8s.io": "1.0", "experiment": "random-example"},
                 "finalizers": ["clean-metrics-in-db"],
                 "ownerReferences": [{"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
                                      "name": "random-example", "uid": "u", "controller": True,
                                      "blockOwnerDeletion": True}]},
    "spec": {"objective": {"type": "maximize", "goal": 0.99, "objectiveMetricName": "Validation-accuracy",
                           "additionalMetricNames": ["Train-accuracy"]},
             "parameterAssignments": [{"name": "--lr", "value": "0.027435456064371484"},
                                      {"name": "--num-layers", "value": "4"}],
             "runSpec": "apiVersion: batch/v1\nkind: Job\n", "retainRun": True,
             "metricsCollector": {"collector": {"kind": "StdOut"}}},
    "status": {"startTime": "2019-09-24T01:37:26Z", "completionTime": "2019-09-24T01:38:39Z",
               "conditions": [{"type": "Created", "status": "True", "reason": "TrialCreated",
                               "message": "Trial is created", "lastUpdateTime": "2019-09-24T01:37:26Z",
                               "lastTransitionTime": "2019-09-24T01:37:26Z"}],
               "observation": {"metrics": [{"name": "Validation-accuracy", "value": 0.981489},
                                           {"name": "zero"}]}},
}
SUGGESTION = {
    "apiVersion": "kubeflow.org/v1alpha3", "kind": "Suggestion",
    "metadata": {"name": "hb", "namespace": "kubeflow"},
    "spec": {"algorithmName": "hyperband", "requests": 3},
    "status": {"algorithmSettings": [{"name": "r_l", "value": "9"}], "suggestionCount": 1,
               "suggestions": [{"name": "hb-abcdefgh", "parameterAssignments": [{"name": "--lr", "value": "0.1"}]}],
               "startTime": "2020-01-01T00:00:00Z",
               "conditions": [{"type": "Running", "status": "True", "reason": "SuggestionRunning"}]},
}
EXPERIMENT_STATUS = {
    "startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T01:00:00Z",
    "conditions": [{"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                    "message": "Experiment has succeeded because max trial count has reached"}],
    "currentOptimalTrial": {"bestTrialName": "", "parameterAssignments": [{"name": "a", "value": "1"}],
                            "observation": {"metrics": [{"name": "acc", "value": 1}]}},
    "succeededTrialList": ["t1", "t2"], "runningTrialList": ["t3"], "pendingTrialList": [],
    "trials": 3, "trialsSucceeded": 2, "trialsRunning": 1,
}


@pytest.mark.parametrize("cls,data", [(Trial, TRIAL), (Suggestion, SUGGESTION)], ids=["Trial", "Suggestion"])
def test_controller_objects_round_trip(cls, data):
    assert same_with_order(cls.from_dict(data).to_dict(), data)


def test_experiment_status_round_trips():
    data = load_yaml(EXAMPLES[0])
    data["status"] = EXPERIMENT_STATUS
    exp = Experiment.from_dict(data)
    assert exp.status.current_optimal_trial.best_trial_name == ""
    assert exp.status.current_optimal_trial.observation.metrics[0].value == 1
    assert same_with_order(exp.to_dict(), data)


def test_unknown_keys_are_kept_in_place_at_every_level():
    data = load_yaml(EXAMPLES[0])
    data = {"zeta": 1, **data, "extraTop": {"x": [1, {"y": None}]}}
    data["spec"] = {"first": True, **data["spec"], "last": "z"}
    data["spec"]["parameters"][0]["feasibleSpace"] = {"distribution": "logUniform",
                                                      **data["spec"]["parameters"][0]["feasibleSpace"]}
    data["spec"]["objective"]["metricStrategies"] = [{"name": "a", "value": "min"}]
    data["metadata"]["annotations"] = {"a": "b"}
    exp = Experiment.from_dict(data)
    assert exp.extras == {"zeta": 1, "extraTop": {"x": [1, {"y": None}]}}
    assert exp.spec.parameters[0].feasible_space.extras == {"distribution": "logUniform"}
    assert exp.spec.objective.extras == {"metricStrategies": [{"name": "a", "value": "min"}]}
    assert same_with_order(exp.to_dict(), data)


def test_unknown_keys_survive_edits_of_known_fields():
    data = {"spec": {"a": 1, "maxTrialCount": 2, "b": 2}}
    exp = Experiment.from_dict(data)
    exp.spec.max_trial_count = 5
    exp.spec.parallel_trial_count = 1
    assert same_with_order(exp.to_dict(), {"spec": {"a": 1, "maxTrialCount": 5, "b": 2, "parallelTrialCount": 1}})


def test_loading_does_not_alias_the_input():
    data = copy.deepcopy(TRIAL)
    trial = Trial.from_dict(data)
    trial.metadata["labels"]["experiment"] = "changed"
    assert data["metadata"]["labels"]["experiment"] == "random-example"


def test_new_objects_dump_in_go_field_order_and_omit_none():
    spec = ExperimentSpec(objective=ObjectiveSpec(type=c.ObjectiveType.MAXIMIZE, objective_metric_name="acc"),
                          algorithm=AlgorithmSpec(algorithm_name="random"), parallel_trial_count=2,
                          parameters=[ParameterSpec(name="--lr", parameter_type="double",
                                                    feasible_space=FeasibleSpace(min="0.1", max="0.2"))])
    out = serde.dump(spec)
    assert list(out) == ["parameters", "objective", "algorithm", "parallelTrialCount"]
    assert out["parameters"][0] == {"name": "--lr", "parameterType": "double",
                                    "feasibleSpace": {"max": "0.2", "min": "0.1"}}
    assert type(out["objective"]["type"]) is str   # StrEnum written as its plain value
    assert yaml.safe_dump(out)                      # plain data only


def test_explicit_null_reads_as_absent():
    trial = Trial.from_dict({"status": {"completionTime": None, "startTime": "t"}})
    assert trial.status.completion_time is None
    assert trial.to_dict() == {"status": {"startTime": "t"}}


def test_numbers_in_feasible_space_become_strings():
    space = FeasibleSpace.from_dict({"min": 0.01, "max": 3, "step": 0.5, "list": [1, 2.5, "x"]})
    assert (space.min, space.max, space.step, space.list_) == ("0.01", "3", "0.5", ["1", "2.5", "x"])


def test_int_for_float_field_is_kept_as_given():
    obj = ObjectiveSpec.from_dict({"goal": 1})
    assert obj.goal == 1 and type(obj.goal) is int and obj.to_dict() == {"goal": 1}


TYPE_ERRORS = [
    ({"spec": {"maxTrialCount": "abc"}}, 'spec.maxTrialCount: Invalid value: "abc": must be an integer'),
    ({"spec": {"maxTrialCount": 3.0}}, "spec.maxTrialCount: Invalid value: 3.0: must be an integer"),
    ({"spec": {"parallelTrialCount": True}}, "spec.parallelTrialCount: Invalid value: true: must be an integer"),
    ({"spec": {"maxTrialCount": 2**31}},
     "spec.maxTrialCount: Invalid value: 2147483648: must be between -2147483648 and 2147483647"),
    ({"spec": {"objective": {"goal": "high"}}}, 'spec.objective.goal: Invalid value: "high": must be a number'),
    ({"spec": {"objective": {"goal": False}}}, "spec.objective.goal: Invalid value: false: must be a number"),
    ({"spec": {"objective": {"additionalMetricNames": ["a", 3]}}},
     "spec.objective.additionalMetricNames[1]: Invalid value: 3: must be a string"),
    ({"spec": {"parameters": {"name": "x"}}}, "spec.parameters: Invalid value: {...}: must be a list"),
    ({"spec": {"parameters": [None]}}, "spec.parameters[0]: Invalid value: null: must be an object"),
    ({"spec": {"parameters": [{"feasibleSpace": {"max": True}}]}},
     "spec.parameters[0].feasibleSpace.max: Invalid value: true: must be a string"),
    ({"spec": {"trialTemplate": {"retain": "yes"}}}, 'spec.trialTemplate.retain: Invalid value: "yes": must be a boolean'),
    ({"spec": {"trialTemplate": {"goTemplate": {"rawTemplate": ["a"]}}}},
     "spec.trialTemplate.goTemplate.rawTemplate: Invalid value: [...]: must be a string"),
    ({"spec": {"nasConfig": {"graphConfig": {"inputSizes": [32, "x"]}}}},
     'spec.nasConfig.graphConfig.inputSizes[1]: Invalid value: "x": must be an integer'),
    ({"spec": {"metricsCollectorSpec": {"source": {"httpGet": "x"}}}},
     'spec.metricsCollectorSpec.source.httpGet: Invalid value: "x": must be an object'),
    ({"metadata": ["x"]}, "metadata: Invalid value: [...]: must be an object"),
    ({"spec": "x"}, 'spec: Invalid value: "x": must be an object'),
]


@pytest.mark.parametrize("data,expected", TYPE_ERRORS, ids=[e.split(":")[0] for _, e in TYPE_ERRORS])
def test_type_errors_name_the_field(data, expected):
    with pytest.raises(Invalid) as info:
        Experiment.from_dict(data)
    assert [str(e) for e in info.value.errors] == [expected]


def test_all_type_errors_are_reported_at_once_with_kind_and_name():
    data = {"metadata": {"name": "e"}, "spec": {"maxTrialCount": "x", "parallelTrialCount": 1.5,
                                                 "objective": {"type": 3}}}
    with pytest.raises(Invalid) as info:
        Experiment.from_dict(data)
    assert [e.path for e in info.value.errors] == ["spec.maxTrialCount", "spec.parallelTrialCount",
                                                   "spec.objective.type"]
    assert (info.value.kind, info.value.name) == ("Experiment", "e")
    assert str(info.value).startswith('Experiment "e" is invalid: spec.maxTrialCount')


def test_check_returns_errors_instead_of_raising():
    assert serde.check(Experiment, {"spec": {}}) == []
    assert [e.path for e in serde.check(Experiment, 5)] == ["<root>"]


def test_camel_case_names():
    assert serde.camel("parallel_trial_count") == "parallelTrialCount"
    assert serde.camel("list_") == "list"
    assert serde.camel("http_get") == "httpGet"


def test_condition_and_enums_are_plain_strings():
    cond = Condition(type=c.ExperimentConditionType.SUCCEEDED, status=c.ConditionStatus.TRUE,
                     reason=c.EXPERIMENT_MAX_TRIALS_REACHED_REASON)
    out = cond.to_dict()
    assert out == {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached"}
    assert all(type(v) is str for v in out.values())
    assert isinstance(c.CollectorKind.STDOUT, StrEnum) and c.CollectorKind.STDOUT == "StdOut"


def test_yaml_helpers_keep_timestamps_as_text_and_dump_block_literals():
    docs = yamljson.yaml_documents("metadata:\n  creationTimestamp: 2020-06-10T01:02:03Z\n---\n")
    assert docs[0]["metadata"]["creationTimestamp"] == "2020-06-10T01:02:03Z"
    text = yamljson.yaml_dump({"rawTemplate": "a: 1\nb: 2"})
    assert text == "rawTemplate: |-\n  a: 1\n  b: 2\n"


def test_the_upstream_corpus_is_present():
    """Guards the corpus-driven tests against silently running on nothing."""
    from tests.corpus import EXAMPLES_DIR
    assert len(sorted(EXAMPLES_DIR.rglob("*.yaml"))) == 14
