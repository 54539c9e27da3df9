"""YAML and JSON texts ↔ plain JSON data, read as Kubernetes reads manifests and safely.

Everything user-written passes here on its way in (CLI inputs, katib-config, rendered trial
templates): timestamps stay strings, keys become strings, and what no Katib object needs and
an attacker would use is refused with a one-line yaml.YAMLError — aliases, nesting beyond
MAX_DEPTH. MAX_INPUT_BYTES is the size callers cap a file at before parsing it."""
from __future__ import annotations

import json
from typing import Any

import yaml

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster parsing

# What one input may hold. No Katib object comes near these; beyond them a document is an
# attack or a mistake (a 2 KB alias bomb expands to gigabytes; deep nesting exhausts the stack).
MAX_INPUT_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100


class JsonYamlLoader(_BaseLoader):
    """YAML as Kubernetes reads it into JSON: timestamps stay strings (no datetime objects),
    a scalar that does not fit its explicit tag (`!!float abc`) is a YAMLError naming the line."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as err:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot decode {_node_text(node)} as !!{node.tag.rsplit(':', 1)[-1]}",
                node.start_mark) from None

    def construct_text(self, node):
        return self.construct_scalar(node)

    def construct_binary_text(self, node):
        """`!!binary`: Go decodes it into bytes and JSON shows them as base64 again."""
        return "".join(self.construct_scalar(node).split())


JsonYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
JsonYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", JsonYamlLoader.construct_text)
JsonYamlLoader.add_constructor("tag:yaml.org,2002:binary", JsonYamlLoader.construct_binary_text)


def _node_text(node) -> str:
    value = node.value if isinstance(node.value, str) else "a collection"
    return repr(value[:40])


class InputRefused(yaml.MarkedYAMLError):
    """A document this project will not read (an alias, too deep): shown like a YAML error."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem=problem, problem_mark=mark)


def iter_yaml_documents(text: str, *, max_depth: int = MAX_DEPTH):
    """The documents of a YAML (or JSON) text as plain JSON data, one at a time; raises
    yaml.YAMLError (InputRefused for aliases, nesting beyond `max_depth`, non-JSON values).
    Each document is composed first (libyaml, no alias expansion) and checked for aliases
    before any of it is built, so an alias bomb costs the size of its text, not its expansion."""
    loader = JsonYamlLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_nodes(node)
            yield plain_json(loader.construct_document(node), max_depth=max_depth, mark=node.start_mark)
    finally:
        loader.dispose()


def _check_nodes(root) -> None:
    """Refuse aliases: a node met twice in the composed graph (a cycle is met twice too).
    Depth is plain_json's to check (PyYAML builds collections without recursion)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise InputRefused("the value anchored here (&name) is used again through an alias (*name): "
                               "aliases are not supported, no Katib object needs them", node.start_mark)
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack += [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


_KEY_TEXT = {True: "true", False: "false", None: "null"}


def plain_json(data: Any, *, max_depth: int = MAX_DEPTH, mark=None, path: str = "", _depth: int = 1) -> Any:
    """`data` as JSON would hold it: mapping keys as strings (`1:` → "1", as Kubernetes'
    YAML-to-JSON does), tuples as lists; InputRefused for nesting beyond `max_depth` or a
    value JSON has no form for (a `!!set`, bytes)."""
    if _depth > max_depth:
        raise InputRefused(f"nested deeper than {max_depth} levels (at {path or '<root>'})", mark)
    if isinstance(data, dict):
        return {_key_text(k): plain_json(v, max_depth=max_depth, mark=mark, path=f"{path}.{_key_text(k)}" if path else _key_text(k),
                                         _depth=_depth + 1) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain_json(v, max_depth=max_depth, mark=mark, path=f"{path}[{i}]", _depth=_depth + 1)
                for i, v in enumerate(data)]
    if data is None or isinstance(data, (str, bool, int, float)):
        return data
    raise InputRefused(f"{path or '<root>'}: a {type(data).__name__} value has no JSON form", mark)


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (bool, type(None))):
        return _KEY_TEXT[key]
    if isinstance(key, (int, float)):
        return str(key)
    raise InputRefused(f"a mapping key must be a scalar, not {type(key).__name__}")


def yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML (or JSON) text; raises yaml.YAMLError."""
    return list(iter_yaml_documents(text))


def yaml_first_document(text: str) -> Any:
    """Only the first document; later ones are not even parsed (as Go's decoder does)."""
    return next(iter_yaml_documents(text), None)


def json_document(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON text as plain data; ValueError (one line) when it is not JSON, InputRefused when
    it nests deeper than `max_depth` (the C decoder's own recursion limit is caught too)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise InputRefused(f"nested deeper than {max_depth} levels") from None
    return plain_json(data, max_depth=max_depth)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_multi_representer(str, _represent_str)


def yaml_dump(obj: Any) -> str:
    """Block-style YAML, keys in their order, multi-line strings as `|` literals."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=4096)


def yaml_error_text(err: yaml.YAMLError) -> str:
    """One line, Go-like: `yaml: line 3: mapping values are not allowed in this context`."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"yaml: line {mark.line + 1}: {problem}" if mark is not None else f"yaml: {problem}"
