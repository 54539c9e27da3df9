"""Experiment admission: defaults, then every validation rule, all problems at once.

Mirrors upstream's experiment webhooks (shared spec defaults-and-validation.md §1–3) plus the
checks upstream left to the algorithms or to nobody (search space, algorithm settings, metric
names, goal, NAS config shape). Works on the JSON form (dicts) so nothing unknown is lost.

How a problem is worded (one rule for every check here and in validation_collector /
validation_template):
* the FieldError path is the JSON path of the offending field (`spec.parameters[1].name`);
* the message is upstream's sentence where upstream has one. When that sentence starts with
  the field's own path (`spec.maxTrialCount must be greater than 0`) the path is dropped from
  the message, since FieldError prints it (`spec.maxTrialCount: Invalid value: 0: must be
  greater than 0`); otherwise the sentence is kept verbatim (`No spec.objective specified.`).
  Upstream sentences saying only "is invalid" are replaced by what is wrong;
* the kind is Kubernetes': `Required value` for missing things, `Invalid value` /
  `Unsupported value` / `Duplicate value` with the offending value, `Forbidden` for
  immutable fields; a sentence that already shows the value or the whole structure (the
  trial template, `Don't support algorithm foo: ...`) uses the bare `path: message` form.

Unlike upstream, which stopped at the first problem, every problem is returned. Upstream's
UPDATE shortcut is kept: an update that only edits the three editable counters is accepted
without re-checking the rest."""
from __future__ import annotations

import math
import random
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from katib.api import constants as c
from katib.api import meta as meta_rules
from katib.api.defaults import set_defaults
from katib.api.types import Experiment, ExperimentSpec
from katib.api.validation_collector import validate_metrics_collector
from katib.api.validation_template import validate_trial_template
from katib.api.validation_warnings import experiment_warnings
from katib.errors import FieldError, Invalid
from katib.serde import check as check_types, dump

GetConfigMap = Callable[[str, str], "dict | None"]
EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
ONLY_EDITABLE = ("Only spec.parallelTrialCount, spec.maxTrialCount and "
                 "spec.maxFailedTrialCount are editable.")

__all__ = ["admit", "experiment_warnings", "validate_experiment", "validate_trial_template",
           "validate_metrics_collector"]


def admit(op: str, new: dict, old: dict | None = None, *, config, get_configmap: GetConfigMap,
          namespace_labels: dict | None = None,
          katib_namespace: str = c.DEFAULT_KATIB_NAMESPACE) -> dict:
    """CREATE/UPDATE admission of an Experiment: the defaulted object, or Invalid."""
    if op not in ("CREATE", "UPDATE"):
        raise ValueError(f"admission of Experiments is for CREATE and UPDATE, not {op}")
    errors = validate_experiment(new, old=old if op == "UPDATE" else None, config=config,
                                 get_configmap=get_configmap, namespace_labels=namespace_labels,
                                 katib_namespace=katib_namespace)
    if errors:
        raise Invalid(errors, kind=c.EXPERIMENT, name=_meta(new).get("name") or "")
    return set_defaults(new, katib_namespace=katib_namespace)


def validate_experiment(exp: dict, *, old: dict | None = None, config,
                        get_configmap: GetConfigMap, namespace_labels: dict | None = None,
                        katib_namespace: str = c.DEFAULT_KATIB_NAMESPACE) -> list[FieldError]:
    """Every problem of Experiment `exp` (defaults are applied first, on a copy).

    `old`: the stored object on UPDATE. `namespace_labels`: labels of the experiment's
    Namespace; None skips upstream's namespace-label gate (no cluster). `config`: a
    katib.config.KatibConfig. `get_configmap(namespace, name)` → ConfigMap dict or None."""
    meta_errors = _check_metadata(exp, creating=old is None)
    type_errors = check_types(Experiment, exp)
    if type_errors:
        return meta_errors + type_errors
    exp = set_defaults(exp, katib_namespace=katib_namespace)
    spec = exp["spec"]
    errors = _check_namespace_gate(exp, namespace_labels) + meta_errors + _check_counts(spec)
    if old is not None:
        return errors + _check_update(spec, set_defaults(old, katib_namespace=katib_namespace))
    shape_errors = _check_parameters_or_nas(spec)
    algorithm_errors = _drop_paths(_check_algorithm(spec, config), shape_errors)
    errors += _check_objective(spec.get("objective")) + algorithm_errors
    errors += _check_resume_policy(spec.get("resumePolicy"))
    space_errors = shape_errors + _drop_paths(_check_search_space(spec), algorithm_errors)
    samples = [] if space_errors or algorithm_errors else _representative(spec)
    errors += validate_trial_template(exp, get_configmap=get_configmap, assignments=samples)
    return errors + space_errors + validate_metrics_collector(spec, config=config)


def _representative(spec: dict) -> list[list[tuple[str, str]]]:
    """Assignment lists to render the template with (katib.algorithms.samples): the real
    parameter names with their extreme and list values, or one NAS architecture."""
    from katib.algorithms.samples import NAS_OUTPUTS, fixed_values, nas_assignments, representative_assignments

    if spec.get("parameters"):
        return representative_assignments(spec["parameters"], fixed=fixed_values(spec))
    algorithm = (spec.get("algorithm") or {}).get("algorithmName")
    if spec.get("nasConfig") is None or algorithm not in NAS_OUTPUTS:
        return []
    settings = {s.get("name"): s.get("value") for s in spec["algorithm"].get("algorithmSettings") or []}
    return [nas_assignments(spec["nasConfig"], algorithm=algorithm, settings=settings, rng=random.Random(0))]


def _drop_paths(errors: list[FieldError], reported: list[FieldError]) -> list[FieldError]:
    """`errors` minus those about a field already reported (one problem, one line); a NAS
    operation's parameter counts as one field (ENAS checks them itself)."""
    paths = {e.path for e in reported}
    groups = {_parameter_prefix(p) for p in paths if p.startswith("spec.nasConfig.")} - {None}
    return [e for e in errors if e.path not in paths and _parameter_prefix(e.path) not in groups]


# ------------------------------------------------------------------------ namespace, metadata

def _check_namespace_gate(exp: dict, labels: dict | None) -> list[FieldError]:
    if labels is None or labels.get(c.NAMESPACE_INJECTION_LABEL) == c.NAMESPACE_INJECTION_VALUE:
        return []
    meta = _meta(exp)
    return [FieldError("metadata.namespace", (
        f'Cannot create the Experiment "{meta.get("name") or ""}" in namespace '
        f'"{meta.get("namespace") or ""}": the namespace lacks label '
        f'"{c.NAMESPACE_INJECTION_LABEL}: {c.NAMESPACE_INJECTION_VALUE}"'), kind="")]


def _check_metadata(exp: dict, *, creating: bool) -> list[FieldError]:
    """Kubernetes' metadata rules (the API server's, katib/api/meta.py) and what the names of
    the experiment's trials need: each trial carries label `experiment: <name>` (a label value,
    at most 63 characters) and is named `<name>-<8 characters>`."""
    meta = exp.get("metadata")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        return []           # the type check reports it
    if creating:
        errors = meta_rules.create_errors(meta)
    else:                   # a stored object has a resourceVersion
        errors = meta_rules.identity_errors(meta) + meta_rules.metadata_errors(meta)
    name = meta.get("name")
    if not errors and isinstance(name, str) and len(name) > meta_rules.MAX_LABEL:
        errors.append(FieldError("metadata.name", f"must be no more than {meta_rules.MAX_LABEL} characters: "
                                 f"trials carry it as the value of label {c.LABEL_EXPERIMENT}", name))
    return errors


# ------------------------------------------------------------------------------ counts, update

def _check_counts(spec: dict) -> list[FieldError]:
    errors = []
    failed = spec.get("maxFailedTrialCount")
    if failed is not None and failed < 0:
        errors.append(FieldError("spec.maxFailedTrialCount", "should not be less than 0", value=failed))
    for key in ("maxTrialCount", "parallelTrialCount"):
        value = spec.get(key)
        if value is not None and value <= 0:
            errors.append(FieldError(f"spec.{key}", "must be greater than 0", value=value))
    return errors


def _check_update(spec: dict, old: dict) -> list[FieldError]:
    """Only the three counters may change; the rest is compared as Go structs would be."""
    new_view, old_view = _comparable(spec), _comparable(old.get("spec"))
    changed = [k for k in (*old_view, *[k for k in new_view if k not in old_view])
               if new_view.get(k) != old_view.get(k)]
    return [FieldError(f"spec.{key}", ONLY_EDITABLE, kind="Forbidden") for key in changed]


def _comparable(spec: Any) -> dict:
    """The spec without the editable counters, unknown keys and empty values."""
    spec = {k: v for k, v in (spec if isinstance(spec, dict) else {}).items() if k not in EDITABLE}
    try:
        spec = dump(ExperimentSpec.from_dict(spec), extras=False)
    except Invalid:
        pass
    return _prune(spec)


def _prune(value: Any) -> Any:
    """Go's view of JSON: an empty string, list, map or false equals an absent field."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, "", [], {}, False)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# --------------------------------------------------------------------------- objective, algorithm

def _check_objective(objective: dict | None) -> list[FieldError]:
    if objective is None:
        return [FieldError("spec.objective", "No spec.objective specified.", kind="Required value")]
    errors = []
    otype = objective.get("type")
    if otype not in (c.ObjectiveType.MINIMIZE, c.ObjectiveType.MAXIMIZE):
        errors.append(FieldError("spec.objective.type", "must be minimize or maximize.", value=otype,
                                 kind="Unsupported value" if otype else "Required value"))
    metric = objective.get("objectiveMetricName") or ""
    if not metric.strip():
        errors.append(FieldError("spec.objective.objectiveMetricName",
                                 "No spec.objective.objectiveMetricName specified.", kind="Required value"))
    goal = objective.get("goal")
    if goal is not None and not math.isfinite(goal):
        errors.append(FieldError("spec.objective.goal", "must be a finite number", value=goal))
    return errors + _check_additional_metrics(objective.get("additionalMetricNames") or [], metric)


def _check_additional_metrics(names: list[str], objective_metric: str) -> list[FieldError]:
    errors, seen = [], {}
    for i, name in enumerate(names):
        path = f"spec.objective.additionalMetricNames[{i}]"
        if not name.strip():
            errors.append(FieldError(path, "metric name must not be empty", kind="Required value"))
        elif name == objective_metric:
            errors.append(FieldError(path, "must not repeat spec.objective.objectiveMetricName", value=name))
        elif name in seen:
            errors.append(FieldError(path, f"already listed at spec.objective.additionalMetricNames[{seen[name]}]",
                                     value=name, kind="Duplicate value"))
        seen.setdefault(name, i)
    return errors


def _check_algorithm(spec: dict, config) -> list[FieldError]:
    from katib.config import ConfigError

    algorithm = spec.get("algorithm")
    if algorithm is None:
        return [FieldError("spec.algorithm", "No spec.algorithm specified.", kind="Required value")]
    name = algorithm.get("algorithmName") or ""
    if not name:
        return [FieldError("spec.algorithm.algorithmName", "No spec.algorithm.name specified.",
                           kind="Required value")]
    try:
        config.suggestion(name)
    except ConfigError as err:
        return [FieldError("spec.algorithm.algorithmName", f"Don't support algorithm {name}: {err}.", kind="")]
    from katib.algorithms.registry import validate_algorithm

    problems = validate_algorithm(name, parameters=spec.get("parameters") or [],
                                  settings=algorithm.get("algorithmSettings") or [],
                                  parallel_trial_count=spec.get("parallelTrialCount"),
                                  nas_config=spec.get("nasConfig"))
    return [problem_error(path, message, root={"spec": spec}) for path, message in problems]


def _check_resume_policy(policy: str | None) -> list[FieldError]:
    if policy in ("", None, c.ResumePolicy.NEVER, c.ResumePolicy.LONG_RUNNING):
        return []
    return [FieldError("spec.resumePolicy", f"invalid ResumePolicyType {policy}", kind="")]


# -------------------------------------------------------------------------- search space, NAS

def _check_parameters_or_nas(spec: dict) -> list[FieldError]:
    """Upstream's rules 13 and 14."""
    parameters, nas = spec.get("parameters") or [], spec.get("nasConfig")
    if not parameters and nas is None:
        return [FieldError("spec.parameters", "spec.parameters or spec.nasConfig must be specified.",
                           kind="Required value")]
    if parameters and nas is not None:
        return [FieldError("spec.nasConfig", "Only one of spec.parameters and spec.nasConfig "
                           "can be specified.", kind="Forbidden")]
    return []


def _check_search_space(spec: dict) -> list[FieldError]:
    """The generic checks of validate_space and the NAS shape (hyperband's resource
    parameter exempted)."""
    from katib.algorithms.registry import validate_space

    root = {"spec": spec}
    errors = [problem_error(p, m, root=root) for p, m in validate_space(spec.get("parameters") or [])]
    errors += _check_double_range(spec.get("parameters") or [], "spec.parameters")
    if spec.get("nasConfig") is not None:
        errors += _check_nas_shape(spec["nasConfig"], root)
    exempt = _hyperband_resource(spec)
    return [e for e in errors if _parameter_prefix(e.path) not in exempt]


def _hyperband_resource(spec: dict) -> set[str]:
    """Hyperband sets the `resource_name` parameter's value itself (upstream's example gives
    it min == max), so that parameter's feasibleSpace is not checked."""
    algorithm = spec.get("algorithm") or {}
    if algorithm.get("algorithmName") != "hyperband":
        return set()
    resources = {s.get("value") for s in algorithm.get("algorithmSettings") or []
                 if s.get("name") == "resource_name"}
    return {f"spec.parameters[{i}].feasibleSpace" for i, p in enumerate(spec.get("parameters") or [])
            if p.get("name") in resources}


def _check_nas_shape(nas: dict, root: dict) -> list[FieldError]:
    """The shape every NAS algorithm needs; the algorithm's own rules come on top."""
    from katib.algorithms.registry import validate_space

    base = "spec.nasConfig"
    graph = nas.get("graphConfig") or {}
    errors = []
    layers = graph.get("numLayers")
    if layers is None:
        errors.append(FieldError(f"{base}.graphConfig.numLayers", "numLayers is required", kind="Required value"))
    elif layers <= 0:
        errors.append(FieldError(f"{base}.graphConfig.numLayers", "must be greater than 0", value=layers))
    for key in ("inputSizes", "outputSizes"):
        errors += [FieldError(f"{base}.graphConfig.{key}[{i}]", "must be greater than 0", value=size)
                   for i, size in enumerate(graph.get(key) or []) if size <= 0]
    operations = nas.get("operations") or []
    if not operations:
        errors.append(FieldError(f"{base}.operations", "at least one operation is required", kind="Required value"))
    for i, operation in enumerate(operations):
        path = f"{base}.operations[{i}]"
        if not operation.get("operationType"):
            errors.append(FieldError(f"{path}.operationType", "operationType is required", kind="Required value"))
        for p, m in validate_space(operation.get("parameters") or []):
            errors.append(problem_error(_rebase(p, path), _rebase(m, path), root=root))
        errors += _check_double_range(operation.get("parameters") or [], f"{path}.parameters")
    return errors


def _check_double_range(parameters: list, base: str) -> list[FieldError]:
    """Numbers that are decimals but no doubles (`-1e400`): every algorithm computes in float64,
    where they become ±inf and the samples nan. (`inf`/`nan` themselves are not numbers to
    validate_space.)"""
    errors = []
    for i, parameter in enumerate(parameters):
        space = parameter.get("feasibleSpace") if isinstance(parameter, dict) else None
        if not isinstance(space, dict):
            continue
        path = f"{base}[{i}].feasibleSpace"
        fields = [(key, space.get(key)) for key in ("min", "max", "step")]
        if parameter.get("parameterType") == "discrete" and isinstance(space.get("list"), list):
            fields += [(f"list[{k}]", v) for k, v in enumerate(space["list"])]
        errors += [FieldError(f"{path}.{key}", "is beyond the range of a double (about ±1.8e308)", value)
                   for key, value in fields if _overflows_double(value)]
    return errors


def _overflows_double(value: Any) -> bool:
    """A finite decimal number whose float64 is infinite."""
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return False
    return number.is_finite() and not math.isfinite(float(number))


def _rebase(text: str, path: str) -> str:
    """validate_space speaks of spec.parameters; an operation's parameters live elsewhere."""
    return text.replace("spec.parameters", f"{path}.parameters")


def _parameter_prefix(path: str) -> str | None:
    """`spec.nasConfig.operations[0].parameters[2]` of a NAS path below it,
    `spec.parameters[2].feasibleSpace` of a feasibleSpace path, else None."""
    match = re.match(r"^(spec\.nasConfig\..*?\.parameters\[\d+\]|spec\.parameters\[\d+\]\.feasibleSpace)", path)
    return match.group(1) if match else None


# ------------------------------------------------------------------------------------ helpers

def problem_error(path: str, message: str, *, root: dict) -> FieldError:
    """A FieldError for an algorithm/search-space problem, showing the value when scalar."""
    value = value_at(root, path)
    if isinstance(value, (str, int, float, bool)):
        return FieldError(path, message, value=value)
    return FieldError(path, message, kind="")


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(root: Any, path: str) -> Any:
    """The value at a JSON path such as `spec.parameters[0].feasibleSpace.min`, or None."""
    node = root
    for key, index in _STEP.findall(path):
        if key and isinstance(node, dict):
            node = node.get(key)
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return None
    return node


def _meta(exp: dict) -> dict:
    meta = exp.get("metadata")
    return meta if isinstance(meta, dict) else {}
