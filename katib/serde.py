"""One generic JSON (de)serializer for the Katib dataclasses.

Decoded YAML/JSON (plain dicts) → `Struct` dataclasses → dicts, with `dump(load(d)) == d`
(same keys, same values, same key order) for everything Katib or a user writes:

* JSON name = camelCase of the field name, a trailing `_` dropped (`list_` → `list`), unless
  the field says otherwise with `field(metadata={"json": "name"})`.
* `None` means absent and is omitted on dump. A key written as explicit `null` is read as
  absent too, so it is not written back (Kubernetes treats the two alike).
* Unknown keys are kept in the object's `extras` and written back verbatim, at their original
  position (`key_order` remembers the input's key order).
* Loading collects every type problem with its field path (`spec.maxTrialCount: Invalid value:
  "abc": must be an integer`) and raises `katib.errors.Invalid` carrying all of them.

Types understood: `str`, `int`, `float`, `bool`, `Any`, `T | None`, `list[T]`, `dict[str, T]`,
`Struct` subclasses, and two annotated forms:

* `Int32` — an int that must fit Go's int32 (all Katib integers are int32).
* `NumStr` — a string that may be written as a YAML number (`max: 0.03`); Katib's
  feasibleSpace values are strings, users often forget the quotes. Numbers are converted to
  their Python text (`0.03` → `"0.03"`, `5` → `"5"`), so these (only) do not round-trip
  byte-for-byte.

An `int` given for a `float` field is accepted and kept as an int (so it dumps as written);
a float or a string given for an `int` field is an error, as in Go's JSON decoder."""
from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from katib.errors import FieldError, Invalid

NUMBER_AS_STRING = "serde:number-as-string"
INT32 = "serde:int32"
NumStr = Annotated[str, NUMBER_AS_STRING]
Int32 = Annotated[int, INT32]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

T = TypeVar("T", bound="Struct")


@dataclass(kw_only=True)
class Struct:
    """Base of every serialisable dataclass: keeps unknown keys and the input's key order."""

    extras: dict[str, Any] = field(default_factory=dict, repr=False, metadata={"serde": "extras"})
    key_order: tuple[str, ...] = field(default=(), repr=False, compare=False,
                                       metadata={"serde": "order"})

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        """Load `data`; raise katib.errors.Invalid listing every type error."""
        kind, name = "", ""
        if isinstance(data, dict) and any(f.name == "metadata" for f in fields(cls)):
            kind = cls.__name__
            meta = data.get("metadata")
            name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
        return load(cls, data, kind=kind, name=name)

    def to_dict(self) -> dict:
        return dump(self)


def camel(name: str) -> str:
    """`parallel_trial_count` → `parallelTrialCount`; `list_` → `list`."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class _Field:
    attr: str
    key: str
    type: Any


@functools.cache
def _plan(cls: type) -> dict[str, _Field]:
    """JSON key → field, in declaration order, special fields excluded."""
    hints = get_type_hints(cls, include_extras=True)
    plan = {}
    for f in fields(cls):
        if "serde" in f.metadata:
            continue
        key = f.metadata.get("json") or camel(f.name)
        plan[key] = _Field(f.name, key, hints[f.name])
    return plan


# ---------------------------------------------------------------------------------------- load

def load(cls: type[T], data: Any, *, path: str = "", kind: str = "", name: str = "") -> T:
    """Build `cls` from decoded JSON; raise Invalid(errors, kind=kind, name=name) on any error."""
    errors: list[FieldError] = []
    obj = _load_struct(cls, data, path, errors)
    if errors:
        raise Invalid(errors, kind=kind, name=name)
    return obj


def check(cls: type, data: Any, *, path: str = "") -> list[FieldError]:
    """The type errors `load` would raise, as a list (empty when `data` loads)."""
    errors: list[FieldError] = []
    _load_struct(cls, data, path, errors)
    return errors


def _load_struct(cls: type, data: Any, path: str, errors: list[FieldError]) -> Any:
    if not isinstance(data, dict):
        errors.append(_type_error(path, data, "must be an object"))
        return None
    plan = _plan(cls)
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, raw in data.items():
        f = plan.get(key)
        if f is None:
            extras[key] = _copy(raw)
        elif raw is not None:
            values[f.attr] = _load_value(f.type, raw, _join(path, key), errors)
    return cls(**values, extras=extras, key_order=tuple(data))


def _load_value(tp: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        return _load_annotated(tp, value, path, errors)
    if origin is typing.Union or origin is types.UnionType:
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return None if value is None else _load_value(inner, value, path, errors)
    if tp is Any:
        return _copy(value)
    if origin is list:
        return _load_list(get_args(tp)[0], value, path, errors)
    if origin is dict:
        return _load_dict(get_args(tp)[1], value, path, errors)
    if isinstance(tp, type) and issubclass(tp, Struct):
        return _load_struct(tp, value, path, errors)
    return _load_scalar(tp, value, path, errors)


def _load_annotated(tp: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    base, *marks = get_args(tp)
    if NUMBER_AS_STRING in marks and _is_number(value):
        return str(value)
    loaded = _load_value(base, value, path, errors)
    if INT32 in marks and isinstance(loaded, int) and not _INT32_MIN <= loaded <= _INT32_MAX:
        errors.append(FieldError(path, f"must be between {_INT32_MIN} and {_INT32_MAX}",
                                 value=loaded))
    return loaded


def _load_list(item_type: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, list):
        errors.append(_type_error(path, value, "must be a list"))
        return None
    return [_load_value(item_type, v, f"{path}[{i}]", errors) for i, v in enumerate(value)]


def _load_dict(value_type: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, dict):
        errors.append(_type_error(path, value, "must be an object"))
        return None
    return {k: _load_value(value_type, v, f"{path}[{k}]", errors) for k, v in value.items()}


_SCALARS: dict[type, tuple[Any, str]] = {
    str: (lambda v: isinstance(v, str), "must be a string"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "must be an integer"),
    float: (lambda v: _is_number(v), "must be a number"),
    bool: (lambda v: isinstance(v, bool), "must be a boolean"),
}


def _load_scalar(tp: Any, value: Any, path: str, errors: list[FieldError]) -> Any:
    accepts, message = _SCALARS[tp]
    if not accepts(value):
        errors.append(_type_error(path, value, message))
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Shape:
    """How a non-scalar value is shown inside an error line: `{...}` or `[...]`."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Shape) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def abbreviated(value: Any) -> Any:
    """How a value shows inside an error line: scalars as they are, `{...}` / `[...]` else."""
    if isinstance(value, dict):
        return _Shape("{...}")
    if isinstance(value, list):
        return _Shape("[...]")
    return value


def _type_error(path: str, value: Any, message: str) -> FieldError:
    return FieldError(path or "<root>", message, value=abbreviated(value))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _copy(value: Any) -> Any:
    """Deep copy of plain JSON data (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------- dump

def dump(obj: Struct, *, extras: bool = True) -> dict:
    """The JSON form of `obj`: input keys in input order, then new fields, then new extras.

    `extras=False` leaves unknown keys out (what a Go struct would see)."""
    plan = _plan(type(obj))
    out: dict[str, Any] = {}
    for key in (*obj.key_order, *plan, *obj.extras):
        if key in out:
            continue
        f = plan.get(key)
        if f is not None:
            value = getattr(obj, f.attr)
            if value is not None:
                out[key] = _dump_value(value, extras)
        elif extras and key in obj.extras:
            out[key] = _copy(obj.extras[key])
    return out


def _dump_value(value: Any, extras: bool) -> Any:
    if isinstance(value, Struct):
        return dump(value, extras=extras)
    if isinstance(value, list):
        return [_dump_value(v, extras) for v in value]
    if isinstance(value, dict):
        return {k: _dump_value(v, extras) for k, v in value.items()}
    if isinstance(value, str):
        return str(value)  # a StrEnum member becomes its plain value
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return int(value)
