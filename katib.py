#!/usr/bin/env python3
"""Entry point: `python katib.py --help`. Wiring only; the commands live in katib/cli/."""
import sys

if __name__ == "__main__":
    try:
        from katib.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the modules load: no traceback, the usual code
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
