#!/usr/bin/env python3
"""Entry point: `python katib.py --help`. Wiring only; the commands live in katib/cli/."""
import sys

# import name -> the requirements.txt package that provides it
PACKAGES = {"yaml": "PyYAML", "jinja2": "Jinja2", "re2": "google-re2", "pymysql": "PyMySQL",
            "psycopg2": "psycopg2-binary"}


def missing_package(err: ModuleNotFoundError) -> str:
    """One line for a requirement that is not installed for this interpreter."""
    top = (err.name or "").split(".")[0]
    package = PACKAGES.get(top, top)
    return (f"error: the Python package {package} is not installed for {sys.executable}: install the "
            f"requirements (python3 -m venv .venv && .venv/bin/pip install -r requirements.txt) and run "
            f"katib.py with .venv/bin/python")


if __name__ == "__main__":
    try:
        from katib.cli import main
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before a command took SIGINT over: no traceback
        print("\ninterrupted", file=sys.stderr)
        code = 130
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in ("katib", "collector", ""):
            raise   # our own code is incomplete: that is a bug, keep its traceback
        print(missing_package(err), file=sys.stderr)
        code = 2
    sys.exit(code)
