"""katib.api.defaults.set_defaults: one case per rule of defaults-and-validation.md §1."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.corpus import EXAMPLES_DIR

from katib.api.defaults import set_defaults
from katib.yamljson import yaml_first_document

EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.yaml"))
RAW = "apiVersion: batch/v1\nkind: Job\n"
DEFAULT_TEMPLATE_SPEC = {"configMapName": "trial-template", "configMapNamespace": "kubeflow",
                         "templatePath": "defaultTrialTemplate.yaml"}


def experiment(**spec) -> dict:
    """A minimal Experiment whose spec holds exactly `spec` (nothing defaulted yet)."""
    return {"apiVersion": "kubeflow.org/v1alpha3", "kind": "Experiment",
            "metadata": {"name": "e", "namespace": "ns"}, "spec": spec}


TEMPLATED = {"trialTemplate": {"goTemplate": {"rawTemplate": RAW}}}

# (id, spec given, JSON path → expected value after defaulting; None = must be absent)
CASES = [
    ("parallelTrialCount absent -> 3", {}, {"parallelTrialCount": 3}),
    ("parallelTrialCount kept", {"parallelTrialCount": 1}, {"parallelTrialCount": 1}),
    ("resumePolicy absent -> LongRunning", {}, {"resumePolicy": "LongRunning"}),
    ("resumePolicy empty -> LongRunning", {"resumePolicy": ""}, {"resumePolicy": "LongRunning"}),
    ("resumePolicy Never kept", {"resumePolicy": "Never"}, {"resumePolicy": "Never"}),
    ("resumePolicy bad kept for validation", {"resumePolicy": "Sometimes"}, {"resumePolicy": "Sometimes"}),
    ("trialTemplate absent -> retain true + default templateSpec", {},
     {"trialTemplate": {"retain": True, "goTemplate": {"templateSpec": DEFAULT_TEMPLATE_SPEC}}}),
    ("trialTemplate given: retain not added", TEMPLATED, {"trialTemplate": TEMPLATED["trialTemplate"]}),
    ("trialTemplate retain false kept", {"trialTemplate": {"retain": False, "goTemplate": {"rawTemplate": RAW}}},
     {"trialTemplate.retain": False}),
    ("goTemplate absent -> default templateSpec, no retain", {"trialTemplate": {}},
     {"trialTemplate": {"goTemplate": {"templateSpec": DEFAULT_TEMPLATE_SPEC}}}),
    ("empty rawTemplate -> default templateSpec", {"trialTemplate": {"goTemplate": {"rawTemplate": ""}}},
     {"trialTemplate.goTemplate.templateSpec": DEFAULT_TEMPLATE_SPEC}),
    ("partial templateSpec not completed",
     {"trialTemplate": {"goTemplate": {"templateSpec": {"configMapName": "mine"}}}},
     {"trialTemplate.goTemplate.templateSpec": {"configMapName": "mine"}}),
    ("rawTemplate wins: no templateSpec", TEMPLATED, {"trialTemplate.goTemplate.templateSpec": None}),
    ("metricsCollectorSpec absent -> StdOut, no source", {},
     {"metricsCollectorSpec": {"collector": {"kind": "StdOut"}}}),
    ("collector absent -> StdOut, source kept",
     {"metricsCollectorSpec": {"source": {"filter": {"metricsFormat": ["(a)(b)"]}}}},
     {"metricsCollectorSpec": {"source": {"filter": {"metricsFormat": ["(a)(b)"]}},
                               "collector": {"kind": "StdOut"}}}),
    ("collector without kind stays without kind", {"metricsCollectorSpec": {"collector": {}}},
     {"metricsCollectorSpec.collector": {}}),
    ("Prometheus: httpGet path and port", {"metricsCollectorSpec": {"collector": {"kind": "PrometheusMetric"}}},
     {"metricsCollectorSpec.source": {"httpGet": {"path": "/metrics", "port": 8080}}}),
    ("Prometheus: port 0 -> 8080", {"metricsCollectorSpec": {"collector": {"kind": "PrometheusMetric"},
                                                             "source": {"httpGet": {"port": 0}}}},
     {"metricsCollectorSpec.source.httpGet.port": 8080}),
    ("Prometheus: port '0' -> 8080", {"metricsCollectorSpec": {"collector": {"kind": "PrometheusMetric"},
                                                               "source": {"httpGet": {"port": "0"}}}},
     {"metricsCollectorSpec.source.httpGet.port": 8080}),
    ("Prometheus: named port and path kept",
     {"metricsCollectorSpec": {"collector": {"kind": "PrometheusMetric"},
                               "source": {"httpGet": {"port": "http", "path": "/m"}}}},
     {"metricsCollectorSpec.source.httpGet": {"port": "http", "path": "/m"}}),
    ("File: fileSystemPath kind and path", {"metricsCollectorSpec": {"collector": {"kind": "File"}}},
     {"metricsCollectorSpec.source": {"fileSystemPath": {"kind": "File", "path": "/var/log/katib/metrics.log"}}}),
    ("File: given path kept, kind defaulted",
     {"metricsCollectorSpec": {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/a/b.log"}}}},
     {"metricsCollectorSpec.source.fileSystemPath": {"path": "/a/b.log", "kind": "File"}}),
    ("TensorFlowEvent: Directory and tfevent path", {"metricsCollectorSpec": {"collector": {"kind": "TensorFlowEvent"}}},
     {"metricsCollectorSpec.source": {"fileSystemPath": {"kind": "Directory", "path": "/var/log/katib/tfevent/"}}}),
    ("TensorFlowEvent: given kind kept",
     {"metricsCollectorSpec": {"collector": {"kind": "TensorFlowEvent"},
                               "source": {"fileSystemPath": {"kind": "File", "path": "/t"}}}},
     {"metricsCollectorSpec.source.fileSystemPath": {"kind": "File", "path": "/t"}}),
    ("Custom: nothing added", {"metricsCollectorSpec": {"collector": {"kind": "Custom"}}},
     {"metricsCollectorSpec": {"collector": {"kind": "Custom"}}}),
    ("None: nothing added", {"metricsCollectorSpec": {"collector": {"kind": "None"}}},
     {"metricsCollectorSpec": {"collector": {"kind": "None"}}}),
    ("StdOut: source stays absent", {"metricsCollectorSpec": {"collector": {"kind": "StdOut"}}},
     {"metricsCollectorSpec.source": None}),
    ("no defaults for objective/algorithm/counts/nas", {},
     {"objective": None, "algorithm": None, "parameters": None, "maxTrialCount": None,
      "maxFailedTrialCount": None, "nasConfig": None}),
]


def lookup(obj: dict, path: str):
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


@pytest.mark.parametrize("spec,expected", [(s, e) for _, s, e in CASES], ids=[i for i, _, _ in CASES])
def test_default_rule(spec, expected):
    out = set_defaults(experiment(**copy.deepcopy(spec)))["spec"]
    for path, value in expected.items():
        assert lookup(out, path) == value, path


def test_katib_namespace_is_used_for_the_default_template_spec():
    out = set_defaults(experiment(), katib_namespace="katib-system")
    assert out["spec"]["trialTemplate"]["goTemplate"]["templateSpec"]["configMapNamespace"] == "katib-system"


def test_missing_spec_is_created():
    assert set_defaults({"kind": "Experiment"})["spec"]["parallelTrialCount"] == 3


@pytest.mark.parametrize("spec", [s for _, s, _ in CASES], ids=[i for i, _, _ in CASES])
def test_defaulting_is_idempotent_and_does_not_touch_the_input(spec):
    given = experiment(**copy.deepcopy(spec))
    before = json.dumps(given)
    once = set_defaults(given)
    assert json.dumps(given) == before
    assert set_defaults(once) == once


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_upstream_examples_get_only_the_documented_defaults(path):
    given = yaml_first_document(path.read_text())
    out = set_defaults(given)
    assert set_defaults(out) == out
    assert out["spec"]["resumePolicy"] == given["spec"].get("resumePolicy", "LongRunning")
    assert "retain" not in out["spec"]["trialTemplate"]     # every example supplies a template
    assert out["spec"]["metricsCollectorSpec"]["collector"]["kind"] in ("StdOut", "File", "Custom", "TensorFlowEvent")
    rest = {k: v for k, v in out["spec"].items() if k not in ("resumePolicy", "metricsCollectorSpec")}
    assert rest == {k: v for k, v in given["spec"].items() if k not in ("resumePolicy", "metricsCollectorSpec")}


def test_unknown_keys_and_wrong_types_are_left_alone():
    given = experiment(trialTemplate="oops", metricsCollectorSpec={"collector": "x"}, extra={"a": 1})
    out = set_defaults(given)
    assert out["spec"]["trialTemplate"] == "oops"
    assert out["spec"]["metricsCollectorSpec"] == {"collector": "x"}
    assert out["spec"]["extra"] == {"a": 1}
