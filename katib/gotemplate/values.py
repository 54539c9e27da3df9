"""How Go sees Python data: kinds, type names, truth and field access.

dict → map[string]interface {}; dataclass instance → struct (only its declared fields are
reachable); list/tuple → a slice (of the dataclass type if every element is an instance of
the same dataclass, else []interface {}); str, bool, int, float as themselves; None → nil.

Two markers reproduce reflect's distinctions that show in Go's output and errors:
MISSING is reflect's invalid Value (a missing map key, nil data: prints `<no value>`);
Iface wraps a value read from an interface{} slot (a map value, an element of
[]interface {}, a nil struct field) until a pipeline unwraps it, as Go does."""

import dataclasses
import functools

INVALID, NIL, BOOL, INT, UINT, FLOAT, STRING = "invalid", "nil", "bool", "int", "uint", "float", "string"
SLICE, MAP, STRUCT, INTERFACE = "slice", "map", "struct", "interface"
ANY = "interface {}"


class ExecFailure(Exception):
    """An execution error; the executor adds the location of the node being evaluated."""


class FuncError(Exception):
    """A builtin function failed; Go reports `error calling NAME: MESSAGE`."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class Iface:
    """A value held in an interface{} slot."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return f"Iface({self.value!r})"


class Byte(int):
    """uint8: what indexing a string yields."""


def kind(value) -> str:
    if value is MISSING:
        return INVALID
    if value is None:
        return NIL
    if isinstance(value, Iface):
        return INTERFACE
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, Byte):
        return UINT
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STRING
    if isinstance(value, (list, tuple)):
        return SLICE
    if isinstance(value, dict):
        return MAP
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return STRUCT
    raise ExecFailure(f"unsupported data type {type(value).__qualname__} (use dict, list, dataclass, "
                      "str, int, float, bool or None)")


def concrete(value):
    """indirectInterface: the value inside an interface slot; nil becomes MISSING."""
    if isinstance(value, Iface):
        value = value.value
    return MISSING if value is None else value


def indirect(value) -> tuple[object, bool]:
    """(value behind an interface slot, whether the slot holds nil)."""
    if isinstance(value, Iface):
        return value.value, value.value is None
    return value, False


def as_interface_arg(value):
    """A value passed to an interface{} parameter: nil is None, slots are unwrapped."""
    if isinstance(value, Iface):
        return value.value
    return None if value is MISSING else value


def text_of(value: str) -> str:
    """A str subclass (e.g. StrEnum) as its plain string value, without calling its methods."""
    return value if type(value) is str else str.__str__(value)


# --- types ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def struct_type_name(cls: type) -> str:
    return f"{cls.__module__.rpartition('.')[2]}.{cls.__qualname__}"


@functools.lru_cache(maxsize=256)
def struct_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def slice_element_class(items) -> type | None:
    """The dataclass of a typed slice ([]T), or None for []interface {}."""
    if not items:
        return None
    cls = type(items[0])
    if not dataclasses.is_dataclass(cls) or any(type(item) is not cls for item in items):
        return None
    return cls


def map_key_type(mapping: dict) -> str:
    if all(isinstance(key, str) for key in mapping):
        return "string"
    if all(isinstance(key, int) and not isinstance(key, bool) for key in mapping):
        return "int"
    return ANY


def go_type(value) -> str:
    """reflect.Type.String() of a value."""
    k = kind(value)
    if k == INTERFACE:
        return ANY
    if k == SLICE:
        cls = slice_element_class(value)
        return "[]" + (ANY if cls is None else struct_type_name(cls))
    if k == MAP:
        return f"map[{map_key_type(value)}]{ANY}"
    if k == STRUCT:
        return struct_type_name(type(value))
    return {BOOL: "bool", INT: "int", UINT: "uint8", FLOAT: "float64", STRING: "string"}.get(k, "<nil>")


# --- reading ----------------------------------------------------------------------------------

def elements(items) -> list:
    """A slice's elements as Go sees them (wrapped when the slice is []interface {})."""
    if slice_element_class(items) is not None:
        return list(items)
    return [Iface(item) for item in items]


def field_value(obj, name: str):
    value = getattr(obj, name)
    return Iface(None) if value is None else value


def sorted_keys(mapping: dict) -> list:
    """Map keys in fmt's (and range's) order."""
    try:
        return sorted(mapping)
    except TypeError:
        return sorted(mapping, key=lambda key: (type(key).__name__, repr(key)))


def is_true(value) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false; structs are true."""
    value = concrete(value)
    k = kind(value)
    if k in (STRING, SLICE, MAP):
        return len(value) > 0
    if k == STRUCT:
        return True
    return k != INVALID and bool(value)


def is_exported(name: str) -> bool:
    return name[:1].isupper()
