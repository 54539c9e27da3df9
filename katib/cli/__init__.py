"""Command line: `python katib.py [--fake] [--db PATH] <command> ...`.

Each command is a module of this package exposing `add_parser(subparsers)` (which sets
`handler=run` on its parser) and `run(args) -> int`; a module may also expose
`normalize_argv(argv) -> argv` to pre-process the raw arguments. Exit codes: 0 ok, 1 invalid
object (validate, render) or failed experiment (run), 2 unusable input, 130 interrupted."""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

EXIT_OK, EXIT_INVALID, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# After the exit codes: the command modules import them from here.
from katib.cli import get, render, run, serve, validate  # noqa: E402


def command_modules() -> list[ModuleType]:
    return [validate, render, run, get, serve]


def build_parser(modules: list[ModuleType] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="katib.py",
        description="Katib v1alpha3 hyperparameter tuning in one process. "
                    "`katib.py --fake` alone runs the control plane on the local fake backend.")
    parser.add_argument("--fake", action="store_true",
                        help="keep objects in this process instead of a Kubernetes cluster "
                             "(needed by `run`, `get` and `serve`)")
    parser.add_argument("--db", metavar="PATH",
                        help="database file or URL for the fake backend (used by `run`, `get` and `serve`; "
                             "their own --db wins)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in modules if modules is not None else command_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    modules = command_modules()
    for module in modules:
        normalize = getattr(module, "normalize_argv", None)
        if normalize is not None:
            argv = normalize(argv)
    parser = build_parser(modules)
    at = _after_global_options(argv)
    if at is not None and "--fake" in argv[:at] and not {"-h", "--help"} & set(argv[:at]):
        # `katib.py --fake [--db PATH] [serve's options]`: the long-lived control plane.
        argv = [*argv[:at], "serve", *argv[at:]]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("katib.py: error: a COMMAND is required (or --fake alone to run the control plane)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    return args.handler(args)


def _after_global_options(argv: list[str]) -> int | None:
    """Where the command would be: the index after the global options, or None when a command
    (or anything that is not an option) is there."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("--fake", "-h", "--help") or token.startswith("--db="):
            i += 1
        elif token == "--db":
            i += 2
        elif token.startswith("-"):
            return i
        else:
            return None
    return min(i, len(argv))
