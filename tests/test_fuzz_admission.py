"""Fuzzing admission with mutated upstream experiments (hypothesis, derandomized: CI sees the
same examples every run).

Each example takes one corpus Experiment and replaces, deletes or inserts values at random JSON
paths — wrong types, huge and special numbers, deep nesting, unicode, template syntax, empty
and null. Whatever comes out, the whole admission path must answer with field errors only:
validate_experiment returns FieldErrors, admit returns the object or raises Invalid, the fake
API's create raises Invalid (NotFound for a kind it does not serve) or stores it, experiment_warnings returns strings, and read_inputs
on the document's JSON and YAML text turns every problem into a line. Each document must take
under a second and 100 MB (tracemalloc's peak)."""
from __future__ import annotations

import copy
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katib.api.validation import admit, experiment_warnings, validate_experiment
from katib.backends.fake import FakeBackend
from katib.cli.inputs import read_inputs
from katib.config import KatibConfig, default_trial_templates, get_configmap_from
from katib.errors import FieldError, Invalid, NotFound
from katib.yamljson import yaml_documents, yaml_dump
from tests.corpus import EXAMPLES_DIR

CONFIG = KatibConfig.load(None)
GET_CONFIGMAP = get_configmap_from(default_trial_templates("kubeflow"))
CORPUS = [doc for path in sorted(EXAMPLES_DIR.rglob("*.yaml")) for doc in yaml_documents(path.read_text())
          if isinstance(doc, dict) and doc.get("kind") == "Experiment"]
MAX_SECONDS, MAX_BYTES = 1.0, 100 * 2**20


def nested(depth: int, leaf=1):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


SPECIAL_TEXT = ["", " ", "-1e400", "1e999", "nan", "inf", "-inf", "0x10", "1_000", "{{", "}}",
                "{{.Nope}}", "{{template \"x\"}}", '"', "'", "\n", "a: b", "- x", "*a", "&a",
                "ünï", "précision", "\x00", "\u202e", "Five_Mistakes", "a" * 300, "-", "0", "-0"]
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=20),
)
HOSTILE = st.one_of(
    SCALARS,
    st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                 max_leaves=12),
    st.integers(min_value=20, max_value=400).map(nested),
    st.just([]), st.just({}),
)


def paths(value, prefix=()):
    """Every JSON path in `value` (the root excluded)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield prefix + (key,)
        yield from paths(child, prefix + (key,))


def mutate(doc: dict, data) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="mutations")):
        targets = list(paths(doc))
        if not targets:
            break
        # Half the draws hit identity and the spec's top fields (kind, metadata.name, ...),
        # where a wrong type used to crash code far from the value.
        shallow = [p for p in targets if len(p) <= 2] or targets
        path = data.draw(st.sampled_from(shallow) | st.sampled_from(targets), label="path")
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        op = data.draw(st.sampled_from(["replace", "delete", "insert"]), label="op")
        value = data.draw(HOSTILE, label="value")
        key = path[-1]
        if op == "replace":
            parent[key] = value
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, value)
        else:
            parent[data.draw(st.sampled_from(["x", "name", "spec", "kind", "list", "step", "min"]))] = value
    return doc


def admission_path(doc: dict, tmp: Path) -> None:
    errors = validate_experiment(doc, config=CONFIG, get_configmap=GET_CONFIGMAP)
    assert all(isinstance(e, FieldError) for e in errors)
    try:
        admit("CREATE", doc, config=CONFIG, get_configmap=GET_CONFIGMAP)
    except Invalid:
        pass
    backend = FakeBackend(admit=lambda op, new, old: admit(op, new, old, config=CONFIG,
                                                           get_configmap=GET_CONFIGMAP),
                          admit_kinds=["Experiment"])
    try:
        backend.create(doc)
    except Invalid:
        pass
    except NotFound:   # an API server's 404 for a kind it does not serve
        assert doc.get("kind") not in ("Experiment", None, "")
    assert all(isinstance(w, str) for w in experiment_warnings(doc))
    for name, text in (("doc.json", json.dumps(doc)), ("doc.yaml", yaml_dump(doc))):
        (tmp / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        inputs = read_inputs([str(tmp / name)])
        assert all(isinstance(p, str) and "\n" not in p for p in inputs.problems)


@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_exception_but_field_errors_escapes_admission(data):
    doc = mutate(data.draw(st.sampled_from(CORPUS), label="experiment"), data)
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            admission_path(doc, Path(tmp))
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert elapsed < MAX_SECONDS and peak < MAX_BYTES, (elapsed, peak)


def test_the_corpus_is_there():
    assert len(CORPUS) == 14
