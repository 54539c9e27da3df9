"""Search space: spec.parameters (JSON form) → axes, points, the unit cube, value strings.

Algorithms never read feasibleSpace strings themselves; they work with `Space`:
a point is a *key* (a tuple with one entry per parameter: the value index on a finite
axis, the float itself on a continuous one). Keys map to and from the unit cube and
render to the `(name, value-string)` lists the controller stores. Value strings are
what upstream's Python services emitted with `str()`: ints without a decimal point,
floats as their shortest repr, list entries verbatim.

Axes (all bounds inclusive):
  int          min, min+step, ... <= max           (step defaults to 1)
  double+step  min, min+step, ... <= max           (exact decimal arithmetic, no float noise)
  double       the continuous interval [min, max]
  discrete, categorical   the list, in order

`validate_space` reports the checks upstream never made (algorithms crashed instead)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import numpy as np

PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")

Key = tuple  # one entry per axis: int (finite axis index) or float (continuous value)


class InvalidSpace(ValueError):
    """spec.parameters cannot be turned into a search space; args[0] lists the problems."""


# ---------------------------------------------------------------------------------------
# numbers


def as_text(value) -> str:
    """A feasibleSpace field as a string; YAML may have produced a number."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_number(text: str) -> Decimal | None:
    """Finite decimal value of `text`, or None."""
    try:
        number = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    return number if number.is_finite() else None


def is_integer_text(text: str) -> bool:
    return bool(_INTEGER.fullmatch(text))


def format_float(x: float) -> str:
    return repr(float(x))


# ---------------------------------------------------------------------------------------
# axes


@dataclass(frozen=True)
class Axis:
    """One parameter. Construct through `parse_space`, which validates first."""

    name: str
    type: str
    min: str = ""
    max: str = ""
    step: str = ""
    values: tuple[str, ...] = ()

    @property
    def is_finite(self) -> bool:
        return self.size is not None

    @cached_property
    def low(self) -> Decimal:
        return parse_number(self.min)

    @cached_property
    def high(self) -> Decimal:
        return parse_number(self.max)

    @cached_property
    def stride(self) -> Decimal | None:
        """The step as a number (int: 1 when empty); None for a continuous double."""
        if self.step.strip():
            return parse_number(self.step)
        return Decimal(1) if self.type == "int" else None

    @cached_property
    def size(self) -> int | None:
        if self.type in ("discrete", "categorical"):
            return len(self.values)
        if self.stride is None:
            return None
        return int((self.high - self.low) // self.stride) + 1

    def value_at(self, index: int) -> str:
        if self.values:
            return self.values[index]
        number = self.low + index * self.stride
        return str(int(number)) if self.type == "int" else format_float(float(number))

    def index_of(self, value: str) -> int | None:
        """Index of `value` on a finite axis, None when it is not one of the axis values."""
        if self.type == "categorical":
            return self.values.index(value) if value in self.values else None
        if self.type == "discrete":
            return self._discrete_index(value)
        number = parse_number(value)
        if number is None:
            return None
        if self.type == "int":
            steps = (number - self.low) / self.stride
            index = int(steps) if steps == steps.to_integral_value() else -1
            return index if 0 <= index < self.size else None
        return self._stepped_double_index(float(number))

    def _discrete_index(self, value: str) -> int | None:
        if value in self.values:
            return self.values.index(value)
        number = parse_number(value)
        for index, text in enumerate(self.values):
            if number is not None and parse_number(text) == number:
                return index
        return None

    def _stepped_double_index(self, x: float) -> int | None:
        step = float(self.stride)
        guess = round((x - float(self.low)) / step)
        for index in (guess - 1, guess, guess + 1):
            if 0 <= index < self.size:
                if math.isclose(float(self.value_at(index)), x, rel_tol=1e-12, abs_tol=1e-9 * step):
                    return index
        return None

    def coordinate_of(self, value: str):
        """This axis' entry in a key: the index (finite) or the float (continuous), else None."""
        if self.is_finite:
            return self.index_of(value)
        number = parse_number(value)
        if number is None or not self.low <= number <= self.high:
            return None
        return float(number)

    def coordinate_from_unit(self, u: float):
        if self.is_finite:
            return min(int(u * self.size), self.size - 1)
        low, high = float(self.low), float(self.high)
        return min(max(low + u * (high - low), low), high)

    def unit_from_coordinate(self, coordinate) -> float:
        if self.is_finite:
            return (coordinate + 0.5) / self.size
        low, high = float(self.low), float(self.high)
        return (coordinate - low) / (high - low)

    def render(self, coordinate) -> str:
        return self.value_at(coordinate) if self.is_finite else format_float(coordinate)


# ---------------------------------------------------------------------------------------
# the space


@dataclass(frozen=True)
class Space:
    axes: tuple[Axis, ...]
    _names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_names", tuple(axis.name for axis in self.axes))

    def __len__(self) -> int:
        return len(self.axes)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @cached_property
    def size(self) -> int | None:
        """Number of distinct points, None when an axis is continuous."""
        if not all(axis.is_finite for axis in self.axes):
            return None
        return math.prod(axis.size for axis in self.axes)

    # keys ↔ strings
    def render(self, key: Key) -> list[tuple[str, str]]:
        return [(axis.name, axis.render(c)) for axis, c in zip(self.axes, key)]

    def key_of(self, assignments: Mapping[str, str]) -> Key | None:
        """The key of an assignment dict, None if a value is missing or outside the space."""
        key = []
        for axis in self.axes:
            value = assignments.get(axis.name)
            coordinate = None if value is None else axis.coordinate_of(value)
            if coordinate is None:
                return None
            key.append(coordinate)
        return tuple(key)

    def used_keys(self, trials: Iterable) -> set[Key]:
        """Keys of every trial's assignments (any condition), to avoid handing them out again."""
        keys = (self.key_of(trial.assignments) for trial in trials)
        return {key for key in keys if key is not None}

    # keys ↔ unit cube
    def key_from_unit(self, u: Sequence[float]) -> Key:
        return tuple(axis.coordinate_from_unit(float(x)) for axis, x in zip(self.axes, u))

    def unit_from_key(self, key: Key) -> np.ndarray:
        return np.array([axis.unit_from_coordinate(c) for axis, c in zip(self.axes, key)])

    def from_unit(self, u: Sequence[float]) -> list[tuple[str, str]]:
        return self.render(self.key_from_unit(u))

    def to_unit(self, assignments: Mapping[str, str]) -> np.ndarray | None:
        key = self.key_of(assignments)
        return None if key is None else self.unit_from_key(key)

    # keys ↔ index (finite spaces; mixed radix, first axis varies fastest)
    def key_at(self, index: int) -> Key:
        key = []
        for axis in self.axes:
            index, offset = divmod(index, axis.size)
            key.append(offset)
        return tuple(key)

    def index_of_key(self, key: Key) -> int:
        index = 0
        for axis, offset in zip(reversed(self.axes), reversed(key)):
            index = index * axis.size + offset
        return index


def parse_space(parameters: Sequence[Mapping]) -> Space:
    """spec.parameters (JSON form) → Space; raises InvalidSpace listing every problem."""
    problems = validate_space(parameters)
    if problems:
        raise InvalidSpace("; ".join(f"{path}: {message}" for path, message in problems))
    return Space(tuple(_axis(parameter) for parameter in parameters))


def _axis(parameter: Mapping) -> Axis:
    space = parameter.get("feasibleSpace") or {}
    return Axis(
        name=parameter["name"],
        type=parameter["parameterType"],
        min=as_text(space.get("min")).strip(),
        max=as_text(space.get("max")).strip(),
        step=as_text(space.get("step")).strip(),
        values=tuple(as_text(v) for v in space.get("list") or ()),
    )


# ---------------------------------------------------------------------------------------
# validation


def validate_space(parameters: Sequence[Mapping] | None) -> list[tuple[str, str]]:
    """Every problem of spec.parameters as (field path, message)."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, parameter in enumerate(parameters or ()):
        path = f"spec.parameters[{i}]"
        if not isinstance(parameter, Mapping):
            problems.append((path, "must be an object with name, parameterType and feasibleSpace"))
            continue
        problems += _check_name(path, parameter.get("name"), seen, i)
        problems += check_parameter(path, parameter)
    return problems


def _check_name(path: str, name, seen: dict[str, int], i: int) -> list[tuple[str, str]]:
    if not isinstance(name, str) or not name:
        return [(f"{path}.name", "parameter name must not be empty")]
    if name in seen:
        return [(f"{path}.name", f'duplicate parameter name "{name}" (also spec.parameters[{seen[name]}])')]
    seen[name] = i
    return []


def check_parameter(path: str, parameter: Mapping) -> list[tuple[str, str]]:
    """Type and feasibleSpace problems of one parameter (its name is checked by the caller)."""
    kind = parameter.get("parameterType")
    space = parameter.get("feasibleSpace") or {}
    if not kind:
        return [(f"{path}.parameterType", "parameterType must be one of double, int, discrete, categorical")]
    if kind not in PARAMETER_TYPES:
        return [(f"{path}.parameterType",
                 f'unknown parameterType "{kind}": must be one of double, int, discrete, categorical')]
    if not isinstance(space, Mapping):
        return [(f"{path}.feasibleSpace", "feasibleSpace must be an object")]
    if kind in ("discrete", "categorical"):
        return _check_list(f"{path}.feasibleSpace", kind, space.get("list"))
    return _check_range(f"{path}.feasibleSpace", kind, space)


def _check_range(path: str, kind: str, space: Mapping) -> list[tuple[str, str]]:
    problems = []
    low = _check_bound(path, kind, "min", as_text(space.get("min")))
    high = _check_bound(path, kind, "max", as_text(space.get("max")))
    for bound in (low, high):
        if isinstance(bound, tuple):
            problems.append(bound)
    if isinstance(low, Decimal) and isinstance(high, Decimal) and low >= high:
        relation = "equal to" if low == high else "less than"
        problems.append((f"{path}.max", f"max ({space.get('max')}) is {relation} min ({space.get('min')}); "
                                        f"max must be greater than min"))
    problems += _check_step(path, kind, as_text(space.get("step")))
    return problems


def _check_bound(path: str, kind: str, field_name: str, text: str):
    """The bound as a number, or a (path, message) problem."""
    where = f"{path}.{field_name}"
    if not text.strip():
        return where, f"{field_name} is required for parameterType {kind}"
    number = parse_number(text)
    if number is None:
        return where, f'{field_name} "{text}" is not a number'
    if kind == "int" and not is_integer_text(text):
        return where, f'{field_name} "{text}" is not an integer (parameterType int)'
    return number


def _check_step(path: str, kind: str, text: str) -> list[tuple[str, str]]:
    if not text.strip():
        return []
    number = parse_number(text)
    if number is None:
        return [(f"{path}.step", f'step "{text}" is not a number')]
    if kind == "int" and not is_integer_text(text):
        return [(f"{path}.step", f'step "{text}" is not an integer (parameterType int)')]
    if number <= 0:
        return [(f"{path}.step", f'step "{text}" must be greater than 0')]
    return []


def _check_list(path: str, kind: str, values) -> list[tuple[str, str]]:
    if not values:
        return [(f"{path}.list", f"list must not be empty for parameterType {kind}")]
    problems = []
    seen: dict[object, int] = {}
    for k, value in enumerate(values):
        text = as_text(value)
        identity = parse_number(text) if kind == "discrete" else text
        if kind == "discrete" and identity is None:
            problems.append((f"{path}.list[{k}]", f'discrete value "{text}" is not a number'))
            continue
        if identity in seen:
            problems.append((f"{path}.list[{k}]", f'duplicate value "{text}" (also list[{seen[identity]}])'))
            continue
        seen[identity] = k
    return problems
