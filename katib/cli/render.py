"""`katib.py render FILE [--set NAME=VALUE ...]`: the job manifest one trial would run.

Prints the rendered trial template verbatim (what the trial's spec.runSpec would hold) for the
given assignments; parameters left unset are drawn from the feasible space (the draw is
reported on stderr). Problems are one line each on stderr; exit status as for `validate`
(1 also when the experiment itself is invalid — the manifest is still printed if it rendered).
Parameter names may start with dashes: `--set=--lr=0.02` and `--set --lr=0.02` both work."""
from __future__ import annotations

import argparse
import sys

from katib.api import constants as c
from katib.api.defaults import set_defaults
from katib.api.templates import decode_job, render_trial_template
from katib.api.types import Experiment
from katib.api.validation import validate_experiment
from katib.cli import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_OK
from katib.cli.common import add_config_arguments, configmaps, load_config, print_lines
from katib.cli.inputs import Document, read_inputs
from katib.cli.sampling import build_assignments, parse_sets
from katib.config import ConfigError
from katib.errors import KatibError
from katib.serde import check as check_types


def normalize_argv(argv: list[str]) -> list[str]:
    """`--set --lr=0.02` → `--set=--lr=0.02`, so argparse does not take `--lr` for an option."""
    out, rest = [], iter(argv)
    for arg in rest:
        if arg == "--set":
            value = next(rest, None)
            out.append(arg if value is None else f"--set={value}")
        else:
            out.append(arg)
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "render", help="print the job manifest a trial of an Experiment would run",
        description="Render the trial template of the single Experiment in FILE for the given "
                    "assignments; unset parameters are sampled from the feasible space. Exit "
                    "status: 0 ok, 1 invalid experiment or assignment, 2 unusable input.")
    parser.add_argument("file", metavar="FILE", help="YAML or JSON file with one Experiment (- for stdin); "
                                                     "ConfigMaps in it serve templateSpec lookups")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="assign a parameter (repeatable); names may start with dashes")
    parser.add_argument("--trial-name", metavar="NAME",
                        help="value of {{.Trial}} (default: <experiment>-trial)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed for sampling unset parameters")
    add_config_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    inputs = read_inputs([args.file])
    experiments = [d for d in inputs.katib if d.kind == c.EXPERIMENT]
    if not inputs.problems and len(experiments) != 1:
        inputs.problems.append(f"{args.file}: render needs exactly one Experiment, found {len(experiments)}")
    try:
        sets = parse_sets(args.set)
        config = load_config(args)
    except (ValueError, ConfigError) as err:
        inputs.problems.append(str(err))
    if inputs.problems:
        print_lines(inputs.problems)
        return EXIT_BAD_INPUT
    doc = experiments[0]
    type_errors = check_types(Experiment, doc.obj)
    if type_errors:
        print_lines(f"{doc.where}: {doc.ref()}: {e}" for e in type_errors)
        return EXIT_INVALID
    return _render(args, doc, sets=sets, config=config, get_configmap=configmaps(args, inputs))


def _render(args: argparse.Namespace, doc: Document, *, sets, config, get_configmap) -> int:
    exp = set_defaults(doc.obj, katib_namespace=args.katib_namespace)
    assignments, problems, sampled = build_assignments(exp["spec"], sets, seed=args.seed)
    if problems:
        print_lines(f"{doc.where}: {doc.ref()}: {p}" for p in problems)
        return EXIT_INVALID
    if sampled:
        print_lines(["sampled " + " ".join(f"{n}={v}" for n, v in assignments if n in sampled)])
    from katib.gotemplate import TemplateError

    trial_name = args.trial_name or exp["metadata"]["name"] + c.VALIDATION_TRIAL_SUFFIX
    try:
        text = render_trial_template(exp, trial_name=trial_name, get_configmap=get_configmap,
                                     assignments=[{"name": n, "value": v} for n, v in assignments])
    except (KatibError, TemplateError) as err:
        print_lines([f"{doc.where}: {doc.ref()}: spec.trialTemplate: Invalid spec.trialTemplate: {err}."])
        return EXIT_INVALID
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    errors: list = validate_experiment(doc.obj, config=config, get_configmap=get_configmap,
                                       katib_namespace=args.katib_namespace)
    if not any(e.path == "spec.trialTemplate" for e in errors):
        errors = _decode_problem(text) + errors   # values may break what rendered fine empty
    print_lines(f"{doc.where}: {doc.ref()}: {e}" for e in errors)
    return EXIT_INVALID if errors else EXIT_OK


def _decode_problem(text: str) -> list[str]:
    try:
        decode_job(text)
    except KatibError as err:
        return [f"spec.trialTemplate: Invalid spec.trialTemplate: {err}."]
    return []
