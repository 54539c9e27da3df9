"""Helpers for validating spec.algorithm.algorithmSettings (the JSON list of name/value).

Validation runs at admission and reports every problem as (field path, message), with
paths such as `spec.algorithm.algorithmSettings[2].value`."""
from __future__ import annotations

from typing import Callable, Iterator, Mapping, Sequence

from .space import as_text

SETTINGS_PATH = "spec.algorithm.algorithmSettings"
Problem = tuple[str, str]
# key -> (convert, accept(converted), message when not accepted)
Schema = Mapping[str, tuple[Callable[[str], object], Callable[[object], bool], str]]


def setting_path(index: int, part: str = "value") -> str:
    return f"{SETTINGS_PATH}[{index}].{part}"


def iter_settings(settings: Sequence[Mapping] | None) -> Iterator[tuple[int, str, str]]:
    """(index, name, value) of each entry; missing fields read as ""."""
    for index, setting in enumerate(settings or ()):
        setting = setting if isinstance(setting, Mapping) else {}
        yield index, as_text(setting.get("name")), as_text(setting.get("value"))


def last_settings(settings: Sequence[Mapping] | None) -> dict[str, tuple[int, str]]:
    """name -> (index, value); a later entry with the same name wins, as in upstream's dicts."""
    return {name: (index, value) for index, name, value in iter_settings(settings)}


def check_schema_settings(algorithm: str, settings: Sequence[Mapping] | None, schema: Schema) -> list[Problem]:
    """The hyperopt service's rules (random, tpe), reporting every entry instead of the first:
    unknown key, unparsable value, value out of range — with upstream's messages."""
    problems = []
    for index, name, value in iter_settings(settings):
        if name not in schema:
            problems.append((setting_path(index, "name"), f"unknown setting {name} for algorithm {algorithm}"))
            continue
        convert, accept, message = schema[name]
        try:
            accepted = accept(convert(value))
        except (ValueError, TypeError, OverflowError) as error:
            problems.append((setting_path(index), f"failed to validate {name}({value}): {error}"))
            continue
        if not accepted:
            problems.append((setting_path(index), message))
    return problems


def require_parameters(algorithm: str, parameters: Sequence | None) -> list[Problem]:
    if parameters:
        return []
    return [("spec.parameters", f"algorithm {algorithm} needs spec.parameters "
                                f"(spec.nasConfig is only used by enas and darts)")]


def parameter_entries(parameters: Sequence[Mapping] | None) -> list[tuple[int, Mapping]]:
    """(index, parameter) for each entry that is an object."""
    return [(i, p) for i, p in enumerate(parameters or ()) if isinstance(p, Mapping)]
