"""`grid`: every point of the cartesian grid, handed out in upstream Chocolate's order.

Reproduces algorithms.md §4 exactly:
* axes are ordered by the base64 encoding of the parameter name (plain string sort) and the
  grid index is a mixed-radix number whose first axis varies fastest;
* int and double axes cover the half-open range [min, max) with `step` (int: default 1):
  n = ceil((max-min)/step) values, the k-th being
  floor((k/((max-min)/step) + 1e-16) * (max-min) / step) * step + min,
  rendered as an int when whole ("1"), else as the float repr with its noise kept
  ("0.009000000000000001"); `max` itself is NOT a grid value (min 2, max 5 → 2, 3, 4),
  except where float noise pushes (max-min)/step just above a whole number, as upstream
  (0.1..0.4 step 0.1 → 0.1, 0.2, 0.30000000000000004, 0.4);
* categorical/discrete axes are the list entries in order.
Excluding `max` surprises users, but it is kept on purpose: an Experiment gets the same trial
sequence and grid size as on upstream Katib (maxTrialCount is planned from it), and the
worked example of algorithms.md (9 lr values per epochs value) holds. `random` includes max.

Diverges from upstream (deliberately): the position in the grid is derived from state +
trials, so a restart continues where it stopped instead of starting over; a point already
present in any trial is skipped, never repeated; when the formula's float error would give
the same value twice on an axis (floor landing on k-1) the k-th value uses k instead, so no
axis holds duplicates; exhaustion is reported with `exhausted=True` instead of a short reply
the controller rejects."""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass

from .base import SuggestReply, SuggestRequest
from .settings import Problem, parameter_entries, require_parameters
from .space import Axis, as_text, parse_space

NAME = "grid"
QUICK = True  # a call costs milliseconds at most (linear in the trials): it runs on the controllers' thread


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    """Upstream (chocolate service): every double needs a step. Settings are ignored."""
    problems = require_parameters(NAME, parameters)
    for index, parameter in parameter_entries(parameters):
        step = as_text((parameter.get("feasibleSpace") or {}).get("step")).strip()
        if parameter.get("parameterType") == "double" and not step:
            problems.append((f"spec.parameters[{index}].feasibleSpace.step",
                             f"param {parameter.get('name')} step is nil"))
    return problems


@dataclass(frozen=True)
class GridAxis:
    name: str
    size: int
    values: tuple[str, ...] = ()  # list axes
    low: float | int = 0  # range axes
    high: float | int = 0
    step: float | int = 1

    @property
    def sort_key(self) -> str:
        return base64.b64encode(self.name.encode("utf-8")).decode("ascii")

    def value_at(self, k: int) -> str:
        if self.values:
            return self.values[k]
        span = self.high - self.low
        x = float(k) / (span / self.step) + 1e-16
        index = math.floor((x * span) / self.step)
        value = float((index if index == k else k) * self.step + self.low)
        return str(int(value)) if value.is_integer() else repr(value)

    def identity(self, value: str | None):
        """What makes two value strings the same grid value (None: cannot be one)."""
        if value is None or self.values:
            return value
        try:
            return float(value)
        except ValueError:
            return None


def grid_axes(parameters: list[dict]) -> list[GridAxis]:
    """The grid's axes in parameter order; raises ValueError for an invalid space."""
    return [_grid_axis(axis) for axis in parse_space(parameters).axes]


def _grid_axis(axis: Axis) -> GridAxis:
    if axis.type in ("discrete", "categorical"):
        return GridAxis(axis.name, len(axis.values), values=axis.values)
    if axis.type == "int":
        low, high, step = int(axis.min), int(axis.max), int(axis.step or 1)
    elif not axis.step:
        raise ValueError(f"param {axis.name} step is nil")
    else:
        low, high, step = float(axis.min), float(axis.max), float(axis.step)
    return GridAxis(axis.name, int(math.ceil((high - low) / step)), low=low, high=high, step=step)


class Grid:
    """Index ↔ point for one search space."""

    def __init__(self, axes: list[GridAxis]):
        self.axes = axes
        self.order = sorted(range(len(axes)), key=lambda i: axes[i].sort_key)
        self.size = math.prod(axis.size for axis in axes)

    def point(self, index: int) -> list[tuple[str, str]]:
        offsets = [0] * len(self.axes)
        for i in self.order:
            index, offsets[i] = divmod(index, self.axes[i].size)
        return [(axis.name, axis.value_at(k)) for axis, k in zip(self.axes, offsets)]

    def identity(self, assignments: dict[str, str]) -> tuple | None:
        key = tuple(axis.identity(assignments.get(axis.name)) for axis in self.axes)
        return None if None in key else key


def suggest(request: SuggestRequest) -> SuggestReply:
    grid = Grid(grid_axes(request.parameters))
    used = {grid.identity(trial.assignments) for trial in request.trials} - {None}
    position = int((request.state or {}).get("position", 0))
    points = []
    while len(points) < request.count:
        position = _next_free(grid, position, used)
        if position >= grid.size:
            break
        point = grid.point(position)
        points.append(point)
        used.add(grid.identity(dict(point)))
        position += 1
    position = _next_free(grid, position, used)
    return SuggestReply(assignments=points, state={"position": position}, exhausted=position >= grid.size)


def _next_free(grid: Grid, position: int, used: set) -> int:
    """The first index at or after `position` whose point no trial holds yet."""
    while position < grid.size and grid.identity(dict(grid.point(position))) in used:
        position += 1
    return position
