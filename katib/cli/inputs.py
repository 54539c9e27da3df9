"""Reading the CLI's input files: YAML (several documents) or JSON, a file or `-` (stdin).

Every problem becomes one line naming the file and the 1-based document number; nothing
here raises past the caller. Katib objects (Experiment, Trial, Suggestion of
kubeflow.org/v1alpha3) are the documents to check; ConfigMaps are kept as trial-template
sources; `kind: List` documents are unpacked; anything else is a problem."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import yaml

from katib.api import constants as c
from katib.api.types import KINDS
from katib.serde import JsonYamlLoader, yaml_error_text

STDIN = "-"


@dataclass
class Document:
    source: str          # file name, or <stdin>
    index: int           # 1-based document number within the file
    obj: dict

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index})"

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    def ref(self) -> str:
        meta = self.obj.get("metadata") if isinstance(self.obj.get("metadata"), dict) else {}
        return f"{meta.get('namespace') or ''}/{meta.get('name') or meta.get('generateName') or ''}"


@dataclass
class Inputs:
    katib: list[Document] = field(default_factory=list)       # Katib objects, in input order
    configmaps: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)          # unusable input, one line each


def read_inputs(paths: list[str], *, default_namespace: str = "default") -> Inputs:
    inputs = Inputs()
    for path in paths:
        source = "<stdin>" if path == STDIN else path
        try:
            text = sys.stdin.read() if path == STDIN else _read(path)
        except (OSError, UnicodeDecodeError) as err:
            inputs.problems.append(f"{source}: cannot read: {_os_reason(err)}")
            continue
        _sort(source, _documents(source, text, inputs.problems), inputs=inputs,
              default_namespace=default_namespace)
    if not inputs.katib and not inputs.problems:
        inputs.problems.append(f"{', '.join(paths)}: no Katib object ({c.API_VERSION} Experiment, "
                               f"Trial or Suggestion) found")
    return inputs


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _os_reason(err: Exception) -> str:
    return err.strerror if isinstance(err, OSError) and err.strerror else str(err)


def _documents(source: str, text: str, problems: list[str]) -> list[tuple[int, object]]:
    """(index, document) pairs; a parse error ends the file with one problem line."""
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            pass   # not JSON after all; YAML may still read it
        else:
            return list(enumerate(data if isinstance(data, list) else [data], start=1))
    docs: list[tuple[int, object]] = []
    try:
        for doc in yaml.load_all(text, Loader=JsonYamlLoader):
            docs.append((len(docs) + 1, doc))
    except yaml.YAMLError as err:
        problems.append(f"{source} (document {len(docs) + 1}): invalid YAML: {yaml_error_text(err)}")
    return docs


def _sort(source: str, docs: list[tuple[int, object]], *, inputs: Inputs, default_namespace: str) -> None:
    for index, obj in docs:
        if obj is None:
            continue                                  # empty document (e.g. a trailing ---)
        where = f"{source} (document {index})"
        if not isinstance(obj, dict):
            inputs.problems.append(f"{where}: not an object but {_json_type(obj)}")
        elif obj.get("kind") == "List" and isinstance(obj.get("items"), list):
            _sort(source, [(index, item) for item in obj["items"]], inputs=inputs,
                  default_namespace=default_namespace)
        elif obj.get("kind") == "ConfigMap" and obj.get("apiVersion") == "v1":
            obj.setdefault("metadata", {}).setdefault("namespace", default_namespace)
            inputs.configmaps.append(obj)
        elif obj.get("kind") in KINDS and obj.get("apiVersion") == c.API_VERSION:
            _default_namespace(obj, default_namespace)
            inputs.katib.append(Document(source, index, obj))
        else:
            inputs.problems.append(f"{where}: not a Katib object: apiVersion "
                                   f"{json.dumps(obj.get('apiVersion'))}, kind {json.dumps(obj.get('kind'))}")


def _default_namespace(obj: dict, namespace: str) -> None:
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = meta = {}
    if isinstance(meta, dict) and not meta.get("namespace"):
        meta["namespace"] = namespace


def _json_type(value: object) -> str:
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def one_line(text: str) -> str:
    """Problems are printed one per line: fold any line breaks a message carries."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())
