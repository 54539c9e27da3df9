"""Label and field selectors as the API server parses them (`labelSelector=`, `fieldSelector=`).

Label selectors: equality (`a=b`, `a==b`, `a!=b`), existence (`a`, `!a`), sets (`a in (x,y)`,
`a notin (x)`) and `a>1`/`a<1`, comma-separated. Field selectors: `path=value`, `path==value`,
`path!=value` where path is dotted (`metadata.name`, `involvedObject.uid`, `status.phase`); any
field of the object may be selected on (kube-apiserver allows a per-kind list; this is wider).
A selector that does not parse is a ValueError with kube-apiserver's words."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from katib.api.meta import qualified_name_errors

Predicate = Callable[[dict], bool]
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str       # in notin exists !exists = != gt lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        have = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return have
        if self.op == "!exists":
            return not have
        if self.op in ("=", "in"):
            return have and value in self.values
        if self.op in ("!=", "notin"):
            return not have or value not in self.values
        try:
            number, bound = int(value), int(self.values[0])
        except (TypeError, ValueError):
            return False
        return number > bound if self.op == "gt" else number < bound


def _split_terms(text: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unable to parse requirement: unexpected ')' in {text!r}")
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unable to parse requirement: found '', expected: ')' in {text!r}")
    terms.append(text[start:])
    return terms


_SET_TERM = re.compile(r"^\s*(?P<key>[^\s!=<>(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_OP_TERM = re.compile(r"^\s*(?P<key>[^\s!=<>(),]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s!=<>(),]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=<>(),]+)\s*$")


def _check_key(key: str) -> None:
    errors = qualified_name_errors(key, path="key")
    if errors:
        raise ValueError(f"unable to parse requirement: {errors[0]}")


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise ValueError(f"unable to parse requirement: values[0]: Invalid value: {value!r}: a valid label "
                         "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                         "must start and end with an alphanumeric character")


def _requirement(term: str) -> Requirement:
    m = _SET_TERM.match(term)
    if m:
        values = tuple(v.strip() for v in m["values"].split(",")) if m["values"].strip() else ()
        if not values:
            raise ValueError(f"unable to parse requirement: for 'in', 'notin' operators, values set can't be "
                             f"empty in {term.strip()!r}")
        _check_key(m["key"])
        for v in values:
            _check_value(v)
        return Requirement(m["key"], m["op"], values)
    m = _OP_TERM.match(term)
    if m:
        _check_key(m["key"])
        op = {"==": "=", ">": "gt", "<": "lt"}.get(m["op"], m["op"])
        if op in ("gt", "lt"):
            if not re.fullmatch(r"-?\d+", m["value"]):
                raise ValueError(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be "
                                 f"an integer in {term.strip()!r}")
        else:
            _check_value(m["value"])
        return Requirement(m["key"], op, (m["value"],))
    m = _EXISTS_TERM.match(term)
    if m:
        _check_key(m["key"])
        return Requirement(m["key"], "!exists" if m["neg"] else "exists")
    raise ValueError(f"unable to parse requirement: {term.strip()!r} is not a label requirement")


def parse_label_selector(text: str | None) -> Predicate:
    if not text or not text.strip():
        return lambda obj: True
    reqs = [_requirement(t) for t in _split_terms(text)]

    def matches(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in reqs)
    return matches


def _unescape_split(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def field_value(obj: dict, path: str) -> str:
    value: object = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str | None) -> tuple[Predicate, dict[str, str]]:
    """The predicate, and the exact `path=value` terms (a watch may use them to narrow early)."""
    if not text or not text.strip():
        return (lambda obj: True), {}
    terms: list[tuple[str, bool, str]] = []
    for raw in _unescape_split(text, ","):
        term = raw.strip()
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{term}'")
        path, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if not _FIELD_PATH.match(path):
            raise ValueError(f'"{path}" is not a known field selector: only dotted field paths are supported')
        terms.append((path, op != "!=", value))
    exact = {p: v for p, eq, v in terms if eq}

    def matches(obj: dict) -> bool:
        return all((field_value(obj, p) == v) == eq for p, eq, v in terms)
    return matches, exact
