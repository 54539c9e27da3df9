"""`darts` (upstream: emits the DARTS configuration; the search runs inside one trial).

Upstream's validator accepted everything. We only require spec.nasConfig, without which
upstream's first GetSuggestions crashed; suggest comes later."""
from __future__ import annotations

from .settings import Problem

NAME = "darts"


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    if nas_config:
        return []
    return [("spec.nasConfig", f"algorithm {NAME} needs spec.nasConfig")]
