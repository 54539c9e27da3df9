"""`katib.py validate FILE...`: admission (defaults + every validation rule) without a cluster.

Prints `OK <namespace>/<name>` per valid Experiment (stdout) and one line per problem
(stderr): `<file> (document <n>): <namespace>/<name>: <field error>`. With `-o yaml|json` the
defaulted valid objects are printed instead of the OK lines. Template ConfigMaps: the shipped
ones plus every ConfigMap in the input. The namespace-label gate is not applied (no cluster);
a missing namespace is `default`. Trials and Suggestions in the input are type-checked only.
Admission warnings (katib.api.validation.experiment_warnings) go to stderr as
`warning: <file> (document <n>): <namespace>/<name>: <text>` and leave the exit status alone."""
from __future__ import annotations

import argparse
import json
import sys

from katib.api import constants as c
from katib.api.types import KINDS
from katib.api.defaults import set_defaults
from katib.api.validation import experiment_warnings, validate_experiment
from katib.cli import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_OK
from katib.cli.common import add_config_arguments, configmaps, load_config, print_lines
from katib.cli.inputs import Document, read_inputs
from katib.config import ConfigError
from katib.serde import check as check_types
from katib.yamljson import yaml_dump


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate", help="check Experiments as Katib's admission webhooks would",
        description="Apply defaults and every validation rule to the Experiments in FILE(s) "
                    "(YAML, several documents allowed, or JSON; - reads stdin). Exit status: "
                    "0 all valid, 1 some invalid, 2 input unreadable (also: YAML aliases, more than "
                    "4 MiB or 100 levels of nesting) or not a Katib object.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON file, or - for stdin")
    parser.add_argument("-o", "--output", choices=("yaml", "json"),
                        help="print the defaulted objects instead of OK lines")
    add_config_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    inputs = read_inputs(args.files)
    try:
        config = load_config(args)
    except ConfigError as err:
        print_lines([*inputs.problems, str(err)])
        return EXIT_BAD_INPUT
    get_configmap = configmaps(args, inputs)
    valid, problems, warnings = [], [], []
    for doc in inputs.katib:
        errors = check_document(doc, config=config, get_configmap=get_configmap,
                                katib_namespace=args.katib_namespace)
        if errors:
            problems += [f"{doc.where}: {doc.ref()}: {e}" for e in errors]
        else:
            valid.append(doc)
        if doc.kind == c.EXPERIMENT:
            warnings += [f"warning: {doc.where}: {doc.ref()}: {w}" for w in experiment_warnings(doc.obj)]
    _print_results(args, valid)
    print_lines([*inputs.problems, *problems, *warnings])
    if inputs.problems:
        return EXIT_BAD_INPUT
    return EXIT_INVALID if problems else EXIT_OK


def check_document(doc: Document, *, config, get_configmap, katib_namespace: str) -> list:
    if doc.kind == c.EXPERIMENT:
        errors = validate_experiment(doc.obj, config=config, get_configmap=get_configmap,
                                     katib_namespace=katib_namespace)
        if not errors:
            doc.obj = set_defaults(doc.obj, katib_namespace=katib_namespace)
        return errors
    return check_types(KINDS[doc.kind], doc.obj)


def _print_results(args: argparse.Namespace, valid: list[Document]) -> None:
    if args.output == "yaml":
        sys.stdout.write("---\n".join(yaml_dump(doc.obj) for doc in valid))
    elif args.output == "json":
        objs = [doc.obj for doc in valid]
        out = objs[0] if len(objs) == 1 else {"apiVersion": "v1", "kind": "List", "items": objs}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for doc in valid:
            prefix = "OK" if doc.kind == c.EXPERIMENT else f"OK {doc.kind}"
            print(f"{prefix} {doc.ref()}")
