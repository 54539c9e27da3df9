#!/usr/bin/env python3
"""Entry point: `python katib.py --help`. Wiring only; the commands live in katib/cli/."""
import sys

if __name__ == "__main__":
    try:
        from katib.cli import main
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before a command took SIGINT over: no traceback
        print("\ninterrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
