#!/usr/bin/env python3
"""Entry point: `python katib.py --help`. Wiring only; the commands live in katib/cli/."""
import sys

from katib.cli import main

if __name__ == "__main__":
    sys.exit(main())
