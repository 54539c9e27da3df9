"""`sobol`: a scrambled Sobol' sequence over the unit cube (scipy.stats.qmc.Sobol).

Not an upstream v1alpha3 algorithm (chocolate's `quasirandom` was unreachable there); added by
issue 9. Point i of the sequence is decoded by space.py (finite axes take the cell the
coordinate falls in). The scrambling seed (setting `random_state`, else request.seed, else OS
entropy) and the position in the sequence travel in the reply's state, so a restarted process
continues the same sequence; with the state lost, the seed is derived the same way again and
the points already held by trials are skipped, which continues it as well when the seed was
given (on a continuous space the walk resumes after as many points as there are trials,
without parsing them).

No point is handed out twice: on a finite space the points of all trials are skipped, and
when the sequence only revisits used cells (it keeps a cell's share of draws, not a memory
of them) the rest of the batch is drawn uniformly from the free points; `exhausted` once
every point is used."""
from __future__ import annotations

import warnings

import numpy as np

from . import parzen
from .base import SuggestReply, SuggestRequest
from .random import draw_distinct
from .rng import make_rng
from .settings import Problem, check_schema_settings, require_parameters
from .space import Key, Space, parse_space

NAME = "sobol"
QUICK = True  # a call costs milliseconds at most (linear in the trials): it runs on the controllers' thread
SETTINGS = {
    "random_state": (int, lambda v: v >= 0, "random_state should be great or equal than zero"),
}
LOOKAHEAD = 256  # sequence points tried per call beyond `count` before falling back to uniform draws
CHUNK = 64


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    return check_schema_settings(NAME, settings, SETTINGS) + require_parameters(NAME, parameters)


def suggest(request: SuggestRequest) -> SuggestReply:
    space = parse_space(request.parameters)
    state = request.state or {}
    seed = int(state["seed"]) if "seed" in state else _initial_seed(request)
    position = int(state.get("position", 0))
    taken = None
    if space.size is not None:  # a finite space: every trial's point is skipped
        used = parzen.read_keys(space, request.trials)
    else:
        # Continuous points never recur in a sequence walked forward. Without the state, every
        # point of the sequence was taken (none is ever skipped on a continuous space), so the
        # walk resumes after as many points as there are trials; a point whose first continuous
        # value string some trial holds is skipped too (a string lookup: no trial is parsed).
        used = set()
        if "position" not in state:
            position = len(request.trials)
            taken = _continuous_strings(space, request.trials)
    keys, position = _walk(space, seed=seed, position=position, count=max(request.count, 0), used=used,
                           taken=taken)
    if space.size is not None:
        keys = _made_up(space, make_rng([seed, position]), keys, count=request.count, used=used)
    return SuggestReply(assignments=[space.render(key) for key in keys],
                        state={"seed": str(seed), "position": position},
                        exhausted=space.size is not None and len(used) >= space.size)


def _continuous_strings(space: Space, trials) -> tuple[int, set[str]]:
    """(index of the first continuous axis, the value strings the trials hold on it)."""
    index = next(i for i, axis in enumerate(space.axes) if not axis.is_finite)
    name = space.axes[index].name
    return index, {trial.assignments.get(name) for trial in trials}


def _initial_seed(request: SuggestRequest) -> int:
    setting = str(request.settings.get("random_state", "")).strip()
    if setting:
        return int(setting)
    return request.seed if request.seed is not None else int(np.random.SeedSequence().entropy)


def _walk(space: Space, *, seed: int, position: int, count: int, used: set[Key],
          taken: tuple[int, set[str]] | None = None) -> tuple[list[Key], int]:
    """Up to `count` new keys from the sequence starting at `position` (adds them to `used`),
    and the position after the last point looked at."""
    if count == 0:
        return [], position
    from scipy.stats import qmc  # here, not at import: scipy.stats costs ~0.8 s to every command

    engine = qmc.Sobol(len(space), scramble=True, seed=seed)
    if position:
        engine.fast_forward(position)
    keys, limit = [], position + count + LOOKAHEAD
    while len(keys) < count and position < limit and not (space.size is not None and len(used) >= space.size):
        with warnings.catch_warnings():  # balance warnings concern integration, not search
            warnings.simplefilter("ignore")
            block = engine.random(CHUNK)
        for u in block:
            position += 1
            key = space.key_from_unit(u)
            if taken is not None and space.axes[taken[0]].render(key[taken[0]]) in taken[1]:
                continue
            if key not in used:
                used.add(key)
                keys.append(key)
                if len(keys) == count:
                    break
    return keys, position


def startup_keys(space: Space, *, seed: int, position: int, count: int, used: set[Key],
                 rng: np.random.Generator) -> list[Key]:
    """`count` keys for a model's start-up phase: points `position`, `position`+1, ... of the
    scrambled sequence of `seed` (spread evenly, where uniform draws clump), skipping the
    `used` ones; uniform draws from the free points make up any shortfall. Adds to `used`."""
    keys, _ = _walk(space, seed=seed, position=position, count=count, used=used)
    return _made_up(space, rng, keys, count=count, used=used)


def _made_up(space: Space, rng: np.random.Generator, keys: list[Key], *, count: int, used: set[Key]) -> list[Key]:
    """`keys` and, when the sequence gave fewer than `count`, uniform draws from the free
    points (added to `used`)."""
    if len(keys) < count:
        extra, _ = draw_distinct(space, rng, count=count - len(keys), used=used)
        used.update(extra)
        keys += extra
    return keys
