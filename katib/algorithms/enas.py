"""`enas` (upstream: TensorFlow LSTM controller). Only settings validation exists so far.

Upstream's rules and messages (defaults-and-validation.md §4), including the protobuf text
dump of the offending message, but every problem is reported instead of the first. Inputs
that crashed upstream later are reported too: no operation at all, an int operation
parameter without a positive step (ENAS enumerates range(min, max+1, step)), a missing
min or max, NaN settings, and the generic feasibleSpace problems of space.py."""
from __future__ import annotations

import math
from typing import Mapping

from .settings import Problem, iter_settings, setting_path
from .space import as_text, check_parameter, parse_number

NAME = "enas"
SETTINGS = {  # name: (type, low, high) — upstream's table, bounds printed as written there
    "controller_hidden_size": (int, 1, "inf"),
    "controller_temperature": (float, 0, "inf"),
    "controller_tanh_const": (float, 0, "inf"),
    "controller_entropy_weight": (float, 0.0, "inf"),
    "controller_baseline_decay": (float, 0.0, 1.0),
    "controller_learning_rate": (float, 0.0, 1.0),
    "controller_skip_target": (float, 0.0, 1.0),
    "controller_skip_weight": (float, 0.0, "inf"),
    "controller_train_steps": (int, 1, "inf"),
    "controller_log_every_steps": (int, 1, "inf"),
}
NONE_ALLOWED = {"controller_temperature", "controller_tanh_const", "controller_entropy_weight",
                "controller_skip_weight"}
_PROTO_TYPES = {"double": "DOUBLE", "int": "INT", "discrete": "DISCRETE", "categorical": "CATEGORICAL"}
_NAS = "spec.nasConfig"


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    nas_config = nas_config or {}
    return (_check_graph(nas_config.get("graphConfig") or {})
            + _check_operations(nas_config.get("operations") or [])
            + _check_settings(settings))


# ---------------------------------------------------------------------------------------
# graph config and operations


def _check_graph(graph: Mapping) -> list[Problem]:
    dump = proto_text(_graph_lines(graph))
    path = f"{_NAS}.graphConfig"
    problems = []
    if not graph.get("inputSizes"):
        problems.append((f"{path}.inputSizes", f"Missing InputSizes in GraphConfig:\n{dump}"))
    if not graph.get("outputSizes"):
        problems.append((f"{path}.outputSizes", f"Missing OutputSizes in GraphConfig:\n{dump}"))
    if not graph.get("numLayers"):
        problems.append((f"{path}.numLayers", f"Missing NumLayers in GraphConfig:\n{dump}"))
    return problems


def _check_operations(operations: list) -> list[Problem]:
    if not operations:
        return [(f"{_NAS}.operations", "at least one operation is required")]
    problems = []
    for i, operation in enumerate(operations):
        operation = operation if isinstance(operation, Mapping) else {}
        path, dump = f"{_NAS}.operations[{i}]", proto_text(_operation_lines(operation))
        if not operation.get("operationType"):
            problems.append((f"{path}.operationType", f"Missing operationType in Operation:\n{dump}"))
        if not operation.get("parameters"):
            problems.append((f"{path}.parameters", f"Missing ParameterConfigs in Operation:\n{dump}"))
        for j, parameter in enumerate(operation.get("parameters") or []):
            problems += _check_parameter(f"{path}.parameters[{j}]", parameter if isinstance(parameter, Mapping) else {})
    return problems


def _check_parameter(path: str, parameter: Mapping) -> list[Problem]:
    dump = proto_text(_parameter_lines(parameter))
    kind, space = parameter.get("parameterType"), parameter.get("feasibleSpace") or {}
    problems = []
    if not parameter.get("name"):
        problems.append((f"{path}.name", f"Missing Name in ParameterConfig:\n{dump}"))
    if kind not in _PROTO_TYPES:
        return problems + [(f"{path}.parameterType", f"Missing ParameterType in ParameterConfig:\n{dump}")]
    if kind in ("categorical", "discrete") and not space.get("list"):
        return problems + [(f"{path}.feasibleSpace.list", f"Missing List in ParameterConfig.feasibleSpace:\n{dump}")]
    if kind in ("int", "double"):
        if not as_text(space.get("min")) and not as_text(space.get("max")):
            return problems + [(f"{path}.feasibleSpace",
                                f"Missing Max and Min in ParameterConfig.feasibleSpace:\n{dump}")]
        step = parse_number(as_text(space.get("step")))
        if step is None or step <= 0:
            return problems + [(f"{path}.feasibleSpace.step",
                                f"Step parameter should be > 0 in ParameterConfig.feasibleSpace:\n{dump}")]
    return problems + check_parameter(path, parameter)


# ---------------------------------------------------------------------------------------
# algorithm settings


def _check_settings(settings) -> list[Problem]:
    problems = []
    for index, name, value in iter_settings(settings):
        if name not in SETTINGS:
            problems.append((setting_path(index, "name"), f"Unknown Algorithm Setting name: {name}"))
        elif not (name in NONE_ALLOWED and value == "None"):
            message = _setting_problem(name, value)
            if message:
                problems.append((setting_path(index), message))
    return problems


def _setting_problem(name: str, value: str) -> str | None:
    kind, low, high = SETTINGS[name]
    try:
        number = kind(value)
    except ValueError:
        return f"Algorithm Setting {name} must be {kind.__name__} type"
    if kind is float:
        if math.isnan(number) or number <= low or (high != "inf" and number > high):
            return f"Algorithm Setting {name}: {number} with float type must be in range ({low}, {high}]"
    elif number < low:
        return f"Algorithm Setting {name}: {number} with int type must be in range [{low}, {high})"
    return None


# ---------------------------------------------------------------------------------------
# protobuf text format, as Python's str(message) printed the api.v1.alpha3 messages


def proto_text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _quote(text) -> str:
    escapes = {9: r"\t", 10: r"\n", 13: r"\r", 34: r"\"", 39: r"\'", 92: r"\\"}
    out = []
    for byte in as_text(text).encode("utf-8"):
        out.append(escapes.get(byte) or (chr(byte) if 32 <= byte < 127 else f"\\{byte:03o}"))
    return '"' + "".join(out) + '"'


def _block(name: str, lines: list[str]) -> list[str]:
    return [f"{name} {{"] + ["  " + line for line in lines] + ["}"]


def _graph_lines(graph: Mapping) -> list[str]:
    lines = [f"num_layers: {graph['numLayers']}"] if graph.get("numLayers") else []
    lines += [f"input_sizes: {size}" for size in graph.get("inputSizes") or []]
    return lines + [f"output_sizes: {size}" for size in graph.get("outputSizes") or []]


def _operation_lines(operation: Mapping) -> list[str]:
    lines = [f"operation_type: {_quote(operation['operationType'])}"] if operation.get("operationType") else []
    specs = []
    for parameter in operation.get("parameters") or []:
        specs += _block("parameters", _parameter_lines(parameter if isinstance(parameter, Mapping) else {}))
    return lines + _block("parameter_specs", specs)


def _parameter_lines(parameter: Mapping) -> list[str]:
    lines = [f"name: {_quote(parameter['name'])}"] if parameter.get("name") else []
    if parameter.get("parameterType") in _PROTO_TYPES:
        lines.append(f"parameter_type: {_PROTO_TYPES[parameter['parameterType']]}")
    space = parameter.get("feasibleSpace") or {}
    fields = [f"{key}: {_quote(space[key])}" for key in ("max", "min") if as_text(space.get(key))]
    fields += [f"list: {_quote(value)}" for value in space.get("list") or []]
    fields += [f"step: {_quote(space['step'])}"] if as_text(space.get("step")) else []
    return lines + _block("feasible_space", fields)
