"""Reading the CLI's input files: YAML (several documents) or JSON, a file or `-` (stdin).

Every problem becomes one line naming the file and the 1-based document number; nothing
here raises past the caller. A file is capped at MAX_INPUT_BYTES and its YAML read by
katib.yamljson (no aliases, nesting at most MAX_DEPTH): hostile input costs its own size. Katib objects (Experiment, Trial, Suggestion of
kubeflow.org/v1alpha3) are the documents to check; ConfigMaps are kept as trial-template
sources (and, with Secrets, as objects `run` stores for its trials' env); `kind: List`
documents are unpacked; anything else is a problem."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import yaml

from katib.api import constants as c
from katib.api.meta import identity_errors
from katib.api.types import KINDS
from katib.yamljson import MAX_INPUT_BYTES, InputRefused, iter_yaml_documents, json_document, yaml_error_text

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
    secrets: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)          # unusable input, one line each


def read_inputs(paths: list[str], *, default_namespace: str = "default") -> Inputs:
    inputs = Inputs()
    for path in paths:
        source = "<stdin>" if path == STDIN else path
        try:
            text = _read(path)
        except (OSError, UnicodeDecodeError, _TooLarge) as err:
            inputs.problems.append(f"{source}: cannot read: {_os_reason(err)}")
            continue
        _sort(source, _documents(source, text, inputs.problems), inputs=inputs,
              default_namespace=default_namespace)
    if not inputs.katib and not inputs.problems:
        inputs.problems.append(f"{', '.join(paths)}: no Katib object ({c.API_VERSION} Experiment, "
                               f"Trial or Suggestion) found")
    return inputs


class _TooLarge(Exception):
    def __str__(self) -> str:
        return f"larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB, the most one input may hold"


def _read(path: str) -> str:
    """The text of `path` (or stdin), reading no more than the cap allows."""
    if path == STDIN:
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _TooLarge()
    return data.decode("utf-8")


def _os_reason(err: Exception) -> str:
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte {err.start})"
    return err.strerror if isinstance(err, OSError) and err.strerror else str(err)


def _documents(source: str, text: str, problems: list[str]) -> list[tuple[int, object]]:
    """(index, document) pairs; a parse error ends the file with one problem line."""
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json_document(text)
        except InputRefused as err:
            problems.append(f"{source}: invalid JSON: {err.problem}")
            return []
        except ValueError:
            pass   # not JSON after all; YAML may still read it
        else:
            return list(enumerate(data if isinstance(data, list) else [data], start=1))
    docs: list[tuple[int, object]] = []
    try:
        for doc in iter_yaml_documents(text):
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
        elif not all(isinstance(obj.get(k), (str, type(None))) for k in ("apiVersion", "kind")):
            inputs.problems.append(f"{where}: not a Katib object: apiVersion and kind must be strings, "
                                   f"not {_shown(obj.get('apiVersion'))} and {_shown(obj.get('kind'))}")
        elif obj.get("kind") == "List" and isinstance(obj.get("items"), list):
            _sort(source, [(index, item) for item in obj["items"]], inputs=inputs,
                  default_namespace=default_namespace)
        elif obj.get("kind") in ("ConfigMap", "Secret") and obj.get("apiVersion") == "v1":
            unusable = _identity_problem(obj)
            if unusable:
                inputs.problems.append(f"{where}: {obj['kind']}: {unusable}")
                continue
            _default_namespace(obj, default_namespace)
            (inputs.configmaps if obj["kind"] == "ConfigMap" else inputs.secrets).append(obj)
        elif obj.get("kind") in KINDS and obj.get("apiVersion") == c.API_VERSION:
            unusable = _identity_problem(obj)
            if unusable:
                inputs.problems.append(f"{where}: {obj['kind']}: {unusable}")
                continue
            _default_namespace(obj, default_namespace)
            inputs.katib.append(Document(source, index, obj))
        else:
            inputs.problems.append(f"{where}: not a Katib object: apiVersion "
                                   f"{json.dumps(obj.get('apiVersion'))}, kind {json.dumps(obj.get('kind'))}")


def _identity_problem(obj: dict) -> str:
    """Why the object cannot even be named (metadata not an object, a name that is no string):
    what kubectl refuses to decode. Other metadata problems are admission's to report."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return f"metadata: must be an object, not {_json_type(meta)}"
    typed = [e for e in identity_errors(meta or {}) if e.message == "must be a string"]
    return "; ".join(str(e) for e in typed)


def _shown(value: object) -> str:
    return json.dumps(value) if not isinstance(value, (dict, list)) else _json_type(value)


def _default_namespace(obj: dict, namespace: str) -> None:
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = meta = {}
    if isinstance(meta, dict) and not meta.get("namespace"):
        meta["namespace"] = namespace


def _json_type(value: object) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def one_line(text: str) -> str:
    """Problems are printed one per line: fold any line breaks a message carries."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())
