"""The builtin functions of text/template (Go 1.19 funcs.go), with Go's error texts.

A failing builtin raises FuncError; the executor reports it as `error calling NAME: ...`.
There are no user functions and no methods: `call` can only fail, as it would in Go on
data without function values. and/or are evaluated lazily by the executor."""

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from .gofmt import sprint, sprintln
from .printf import sprintf
from .goquote import is_print
from .values import (ANY, BOOL, FLOAT, INT, INVALID, MAP, MISSING, SLICE, STRING, STRUCT, UINT, Byte, FuncError,
                     Iface, concrete, elements, go_type, indirect, is_true, kind, map_key_type, struct_fields,
                     text_of)

VALUE, STRING_PARAM = "reflect.Value", "string"  # parameter types; ANY is interface {}


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[str, ...]  # when variadic, the last one is the type of the variadic elements
    variadic: bool
    call: Callable

    def param_type(self, index: int) -> str:
        if self.variadic and index >= len(self.params) - 1:
            return self.params[-1]
        return self.params[index]


BUILTINS: dict[str, Builtin] = {}


def _builtin(name: str, *params: str, variadic: bool = False):
    def register(function: Callable) -> Callable:
        BUILTINS[name] = Builtin(name, params, variadic, function)
        return function
    return register


def _lazy(*args):
    raise AssertionError("and/or are evaluated by the executor")


_builtin("and", VALUE, VALUE, variadic=True)(_lazy)
_builtin("or", VALUE, VALUE, variadic=True)(_lazy)


@_builtin("not", VALUE)
def _not(value) -> bool:
    return not is_true(value)


@_builtin("len", VALUE)
def _len(item) -> int:
    item, is_nil = indirect(item)
    if is_nil:
        raise FuncError("len of nil pointer")
    if item is MISSING:  # Go panics inside reflect here
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    k = kind(item)
    if k == STRING:
        return len(text_of(item).encode("utf-8"))
    if k in (SLICE, MAP):
        return len(item)
    raise FuncError(f"len of type {go_type(item)}")


@_builtin("index", VALUE, VALUE, variadic=True)
def _index(item, *indexes):
    item = concrete(item)
    if item is MISSING:
        raise FuncError("index of untyped nil")
    for index in indexes:
        item, is_nil = indirect(item)
        if is_nil:
            raise FuncError("index of nil pointer")
        item = _index_once(item, concrete(index))
    return item


def _index_once(item, index):
    k = kind(item)
    if k in (STRING, SLICE):
        sequence = text_of(item).encode("utf-8") if k == STRING else item
        position = _index_arg(index, len(sequence))
        if position == len(sequence):  # Go lets this through to reflect, which panics
            raise FuncError(f"reflect: {'string' if k == STRING else 'slice'} index out of range")
        return Byte(sequence[position]) if k == STRING else elements(item)[position]
    if k == MAP:
        key = _map_key(index, item)
        return Iface(item.get(key))
    raise FuncError(f"can't index item of type {go_type(item)}")


def _index_arg(index, limit: int) -> int:
    k = kind(index)
    if k == INVALID:
        raise FuncError("cannot index slice/array with nil")
    if k not in (INT, UINT):
        raise FuncError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index > limit:
        raise FuncError(f"index out of range: {int(index)}")
    return int(index)


def _map_key(index, mapping: dict):
    key_type = map_key_type(mapping)
    if index is MISSING:
        if key_type == ANY:
            return None
        raise FuncError(f"value is nil; should be of type {key_type}")
    k = kind(index)
    if key_type == ANY and k in (SLICE, MAP):
        raise FuncError(f"runtime error: hash of unhashable type {go_type(index)}")
    if key_type == ANY or (key_type == "string" and k == STRING) or (key_type == "int" and k in (INT, UINT)):
        return int(index) if k == UINT else index
    raise FuncError(f"value has type {go_type(index)}; should be {key_type}")


@_builtin("slice", VALUE, VALUE, variadic=True)
def _slice(item, *indexes):
    item = concrete(item)
    if item is MISSING:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    k = kind(item)
    if k == STRING and len(indexes) == 3:
        raise FuncError("cannot 3-index slice a string")
    if k not in (STRING, SLICE):
        raise FuncError(f"can't slice item of type {go_type(item)}")
    sequence = text_of(item).encode("utf-8") if k == STRING else item
    bounds = [0, len(sequence), len(sequence)]
    for position, index in enumerate(indexes):  # Go does not unwrap interface indexes here
        bounds[position] = _index_arg(index, len(sequence))
    if bounds[0] > bounds[1]:
        raise FuncError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(indexes) == 3 and bounds[1] > bounds[2]:
        raise FuncError(f"invalid slice index: {bounds[1]} > {bounds[2]}")
    part = sequence[bounds[0]:bounds[1]]
    if k == SLICE:
        return list(part)
    try:
        return part.decode("utf-8")
    except UnicodeDecodeError:
        raise FuncError("slicing splits a UTF-8 character (unsupported)") from None


@_builtin("call", VALUE, VALUE, variadic=True)
def _call(function, *args):
    function = concrete(function)
    if function is MISSING:
        raise FuncError("call of nil")
    raise FuncError(f"non-function of type {go_type(function)}")


# --- printing and escaping -------------------------------------------------------------------

_builtin("print", ANY, variadic=True)(lambda *args: sprint(list(args)))
_builtin("println", ANY, variadic=True)(lambda *args: sprintln(list(args)))
_builtin("printf", STRING_PARAM, ANY, variadic=True)(lambda text, *args: sprintf(text, list(args)))


def _eval_args(args) -> str:
    """fmt.Sprint of the arguments, where nil prints as <no value>."""
    if len(args) == 1 and isinstance(args[0], str):
        return text_of(args[0])
    return sprint(["<no value>" if arg is None else arg for arg in args])


_HTML = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


@_builtin("html", ANY, variadic=True)
def _html(*args) -> str:
    return "".join(_HTML.get(ch, ch) for ch in _eval_args(args))


def _js_char(ch: str) -> str:
    if ch in _JS:
        return _JS[ch]
    if ord(ch) < 0x20:
        return f"\\u{ord(ch):04X}"
    if ord(ch) >= 0x80 and not is_print(ch):
        return f"\\u{ord(ch):04X}"
    return ch


@_builtin("js", ANY, variadic=True)
def _js(*args) -> str:
    return "".join(_js_char(ch) for ch in _eval_args(args))


@_builtin("urlquery", ANY, variadic=True)
def _urlquery(*args) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")


# --- comparison ------------------------------------------------------------------------------

def _basic(value) -> str | None:
    k = kind(value)
    return k if k in (BOOL, INT, UINT, FLOAT, STRING) else None


def _plain(value, k: str):
    return text_of(value) if k == STRING else value


@_builtin("eq", VALUE, VALUE, variadic=True)
def _eq(first, *others) -> bool:
    first = concrete(first)
    if not others:
        raise FuncError("missing argument for comparison")
    return any(_equal(first, concrete(other)) for other in others)


def _equal(a, b) -> bool:
    ka, kb = _basic(a), _basic(b)
    if ka != kb:
        if {ka, kb} == {INT, UINT}:
            return int(a) == int(b)
        if a is not MISSING and b is not MISSING:
            raise FuncError("incompatible types for comparison")
        return False
    if ka is not None:
        return _plain(a, ka) == _plain(b, kb)
    if kind(a) != kind(b) and a is not MISSING and b is not MISSING:
        raise FuncError(f"non-comparable types {sprintf('%s', [a])}: {go_type(a)}, "
                        f"{go_type(b)}: {sprintf('%v', [b])}")
    if a is MISSING or b is MISSING:
        return a is b
    if not _comparable(b):
        raise FuncError(f"non-comparable type {sprintf('%s', [b])}: {go_type(b)}")
    return a == b


def _comparable(value) -> bool:
    k = kind(value)
    if k in (SLICE, MAP):
        return False
    if k == STRUCT:
        return all(_comparable(getattr(value, name)) for name in struct_fields(type(value))
                   if getattr(value, name) is not None)
    return True


@_builtin("ne", VALUE, VALUE)
def _ne(a, b) -> bool:
    return not _eq(a, b)


@_builtin("lt", VALUE, VALUE)
def _lt(a, b) -> bool:
    a, b = concrete(a), concrete(b)
    ka, kb = _basic(a), _basic(b)
    if ka is None or kb is None:
        raise FuncError("invalid type for comparison")
    if ka != kb:
        if {ka, kb} == {INT, UINT}:
            return int(a) < int(b)
        raise FuncError("incompatible types for comparison")
    if ka == BOOL:
        raise FuncError("invalid type for comparison")
    return _plain(a, ka) < _plain(b, kb)


@_builtin("le", VALUE, VALUE)
def _le(a, b) -> bool:
    return _lt(a, b) or _eq(a, b)


@_builtin("gt", VALUE, VALUE)
def _gt(a, b) -> bool:
    return not _le(a, b)


@_builtin("ge", VALUE, VALUE)
def _ge(a, b) -> bool:
    return not _lt(a, b)
