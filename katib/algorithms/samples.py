"""Assignments made outside a search: the values admission renders the trial template with,
and NAS assignments in the formats upstream's ENAS/DARTS services hand to trials.

Admission (katib/api/validation_template.py) renders the template with the real parameter
names and `representative_assignments`, so that a name or value that breaks the rendered
manifest is refused before any trial exists. `katib.py render` draws unset parameters with
the `random` algorithm and NAS outputs with `nas_assignments` (algorithms.md §8–9)."""
from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any, Mapping, Sequence

from .space import InvalidSpace, parse_space

NAS_OUTPUTS = {"enas": ("architecture", "nn_config"),
               "darts": ("algorithm-settings", "search-space", "num-layers")}
DARTS_DEFAULTS = {"num_epochs": 50, "w_lr": 0.025, "w_lr_min": 0.001, "w_momentum": 0.9,
                  "w_weight_decay": 3e-4, "w_grad_clip": 5.0, "alpha_lr": 3e-4,
                  "alpha_weight_decay": 1e-3, "batch_size": 128, "num_workers": 4,
                  "init_channels": 16, "print_step": 50, "num_nodes": 4, "stem_multiplier": 3}
MAX_ROUNDS = 8   # renders admission affords: one per list value up to this many


def fixed_values(spec: Mapping) -> dict[str, str]:
    """Parameters an algorithm sets itself rather than samples: hyperband's `resource_name`
    parameter (upstream's example gives it min == max), at its max."""
    algorithm = spec.get("algorithm") or {}
    if algorithm.get("algorithmName") != "hyperband":
        return {}
    names = {s.get("value") for s in algorithm.get("algorithmSettings") or [] if s.get("name") == "resource_name"}
    return {p["name"]: str((p.get("feasibleSpace") or {}).get("max") or "")
            for p in spec.get("parameters") or [] if p.get("name") in names}


def representative_assignments(parameters: Sequence[Mapping], *, fixed: Mapping[str, str] | None = None
                               ) -> list[list[tuple[str, str]]]:
    """Assignment lists that together show every parameter's extremes and (up to MAX_ROUNDS)
    every list value, formatted as a trial would get them: round r gives each parameter its
    r-th feasible value (the last when it has fewer; min then max for a continuous double).
    `fixed` parameters (fixed_values) keep their value. Empty when the space is invalid
    (admission reports that itself)."""
    fixed = fixed or {}
    try:
        space = parse_space([p for p in parameters if p.get("name") not in fixed])
    except (InvalidSpace, TypeError, ValueError, ArithmeticError):
        return []
    if not parameters:
        return []
    sizes = [axis.size for axis in space.axes]
    rounds = min(MAX_ROUNDS, max([2, *(s for s in sizes if s is not None)]))
    out: list[list[tuple[str, str]]] = []
    for r in range(rounds):
        drawn = {axis.name: _value(axis, size, r) for axis, size in zip(space.axes, sizes)}
        row = [(p["name"], fixed.get(p["name"], drawn.get(p["name"], ""))) for p in parameters]
        if row not in out:   # a space of one-value lists needs one render
            out.append(row)
    return out


def _value(axis, size: int | None, r: int) -> str:
    if size is None:   # continuous double: min first, then max
        return axis.render(float(axis.low if r == 0 else axis.high))
    return axis.value_at(min(r, size - 1))


def nas_assignments(nas_config: Mapping, *, algorithm: str, settings: Mapping[str, str],
                    rng: random.Random) -> list[tuple[str, str]]:
    """One trial's NAS assignments as the algorithm's service would give them; ValueError for an
    algorithm that produces no architecture."""
    graph = nas_config.get("graphConfig") or {}
    if algorithm == "darts":
        return [("algorithm-settings", _squote({**DARTS_DEFAULTS, **settings})),
                ("search-space", _squote(_darts_primitives(nas_config.get("operations") or []))),
                ("num-layers", str(graph.get("numLayers")))]
    if algorithm == "enas":
        return _sample_enas(graph, nas_config.get("operations") or [], rng)
    raise ValueError(f"algorithm {algorithm} does not produce a neural architecture")


def _darts_primitives(operations: list[dict]) -> list[str]:
    out = []
    for op in operations:
        kind = op.get("operationType")
        if kind == "skip_connection":
            out.append(kind)
            continue
        first = (op.get("parameters") or [{}])[0]
        out += [f"{kind}_{f}x{f}" for f in (first.get("feasibleSpace") or {}).get("list") or []]
    return out


def _sample_enas(graph: dict, operations: list[dict], rng: random.Random) -> list[tuple[str, str]]:
    table = _enas_operations(operations)
    layers = int(graph["numLayers"])
    arch = [[rng.randrange(len(table))] + [rng.randint(0, 1) for _ in range(layer)]
            for layer in range(layers)]
    used = sorted({row[0] for row in arch})
    embedding = {str(i): {"opt_id": i, "opt_type": table[i][0], "opt_params": table[i][1]} for i in used}
    config = {"num_layers": layers, "input_sizes": graph.get("inputSizes"),
              "output_sizes": graph.get("outputSizes"), "embedding": embedding}
    return [("architecture", _squote(arch)), ("nn_config", _squote(config))]


def _enas_operations(operations: list[dict]) -> list[tuple[str, dict]]:
    """Every (operationType, {param: value}) in id order: last parameter varies fastest."""
    table = []
    for op in operations:
        params = op.get("parameters") or []
        names = [p.get("name") for p in params]
        for combo in itertools.product(*(_enas_values(p) for p in params)):
            table.append((op.get("operationType"), dict(zip(names, combo))))
    return table


def _enas_values(parameter: dict) -> list:
    space = parameter.get("feasibleSpace") or {}
    if parameter.get("parameterType") == "categorical":
        return list(space.get("list") or [])
    if parameter.get("parameterType") == "int":
        return list(range(int(space["min"]), int(space["max"]) + 1, int(space["step"])))
    low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
    return [low + i * step for i in range(math.floor((high - low) / step + 1e-9) + 1)]


def _squote(value: Any) -> str:
    """JSON with `"` turned into `'`, as the NAS services hand it to trials."""
    return json.dumps(value).replace('"', "'")
