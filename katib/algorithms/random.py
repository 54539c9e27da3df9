"""`random`: uniform sampling over the search space (upstream: hyperopt `rand`).

Per type: int and stepped double are uniform over their inclusive grids, double uniform
over [min, max], discrete/categorical a uniform choice. Seeded by the `random_state`
setting, else request.seed, else OS entropy; the generator state travels in the reply's
state, so a restart continues the same stream.

Diverges from upstream hyperopt (deliberately): `step` of a double is honoured (hyperopt
ignored it); int endpoints get full weight (hyperopt's quniform gave them half); points
already used by any trial are never handed out again on finite spaces, and the reply says
`exhausted` once every point is used (hyperopt could repeat points)."""
from __future__ import annotations

import numpy as np

from .base import SuggestReply, SuggestRequest
from .rng import request_generator, rng_to_state
from .settings import Problem, check_schema_settings, require_parameters
from .space import Key, Space, parse_space

NAME = "random"
QUICK = True  # a call costs milliseconds at most (linear in the trials): it runs on the controllers' thread
SETTINGS = {
    "random_state": (int, lambda v: v >= 0, "random_state should be great or equal than zero"),
}
# Finite spaces up to this many points are enumerated so that the last free points are found
# exactly; bigger ones are sampled with rejection (at least half of every draw is free there).
ENUMERATION_LIMIT = 1 << 16
MAX_REJECTIONS = 10_000  # in a row; far beyond any real chance of a collision


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    return check_schema_settings(NAME, settings, SETTINGS) + require_parameters(NAME, parameters)


def suggest(request: SuggestRequest) -> SuggestReply:
    space = parse_space(request.parameters)
    rng = request_generator(request)
    # Only a finite space needs the points already handed out (an O(trials) scan per call); in
    # a continuous one a repeated 53-bit draw is not a practical possibility.
    used = space.used_keys(request.trials) if space.size is not None else set()
    keys, exhausted = draw_distinct(space, rng, count=max(request.count, 0), used=used)
    return SuggestReply(
        assignments=[space.render(key) for key in keys],
        state={"rng": rng_to_state(rng)},
        exhausted=exhausted,
    )


def draw_distinct(space: Space, rng: np.random.Generator, *, count: int, used: set[Key]) -> tuple[list[Key], bool]:
    """Up to `count` uniformly drawn keys, none in `used` nor repeated; and whether the space
    has no unused point left afterwards (always False for continuous spaces)."""
    size = space.size
    if size is not None and size <= max(ENUMERATION_LIMIT, 2 * (len(used) + count)):
        return _draw_enumerated(space, rng, count=count, used=used)
    return _draw_rejecting(space, rng, count=count, used=used), False


def _draw_enumerated(space: Space, rng: np.random.Generator, *, count: int, used: set[Key]) -> tuple[list[Key], bool]:
    taken = np.fromiter((space.index_of_key(key) for key in used), dtype=np.int64, count=len(used))
    free = np.setdiff1d(np.arange(space.size, dtype=np.int64), taken, assume_unique=True)
    want = min(count, free.size)
    picked = rng.choice(free, size=want, replace=False) if want else []
    return [space.key_at(int(index)) for index in picked], want == free.size


def _draw_rejecting(space: Space, rng: np.random.Generator, *, count: int, used: set[Key]) -> list[Key]:
    seen, keys, rejections = set(used), [], 0
    while len(keys) < count:
        key = space.key_from_unit(rng.random(len(space)))
        if key not in seen:
            seen.add(key)
            keys.append(key)
            rejections = 0
        elif (rejections := rejections + 1) > MAX_REJECTIONS:
            raise RuntimeError("random: could not draw an unused point")
    return keys
