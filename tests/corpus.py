"""Where the shared upstream corpus is: $KATIB_SHARED, else `shared/` beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ["KATIB_SHARED"]) if os.environ.get("KATIB_SHARED") else ROOT.parent / "shared"
UPSTREAM = SHARED / "upstream" / "v1alpha3"
EXAMPLES_DIR = UPSTREAM / "examples" / "v1alpha3"
