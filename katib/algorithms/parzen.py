"""Parzen (kernel density) estimators on the unit cube, shared by `tpe` and `multivariate-tpe`.

Data path: tpe.suggest reads the trials into a `History` (one row per trial, through the one
search-space encoding of space.py), splits the finished ones into a good and a bad group,
fits one `Mixture` per group here, samples candidates from the good one and scores them by
log l(x) - log g(x).

Encoding: a *numeric* column holds the axis' unit-cube coordinate (space.py: continuous
doubles map linearly, a finite int/stepped-double/sorted-discrete axis puts value k at the
centre of its k-th cell); a *categorical* column holds the value's index. Categorical and
discrete lists that are not sorted numbers are categorical — order means nothing there.

Kernels follow Optuna's TPE (v5 defaults): truncated normals on [0, 1] with the prior
N(0.5, 1) as one extra component, each bandwidth the larger distance to the sorted neighbours
on its axis, clipped from below at 1/min(100, n+2) ("magic clip"); categorical kernels put
weight 1 on the observed choice plus prior_weight/(n+1) on each choice; older observations
get linearly smaller weights beyond the 25 most recent. Independent TPE uses the marginal of
each axis, multivariate TPE the joint product kernels (one component per observation)."""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from .base import TrialRecord
from .space import Axis, Key, Space, parse_number

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
RECENT = 25  # observations at full weight (Optuna's default_weights)


# ---------------------------------------------------------------------------------------
# layout and history


@dataclass(frozen=True)
class Layout:
    """Which axes are numeric (and how many cells a finite one has) and which categorical."""

    numeric: tuple[int, ...]
    cells: tuple[int, ...]  # per numeric axis: its size when finite, 0 when continuous
    categorical: tuple[int, ...]
    choices: tuple[int, ...]  # per categorical axis: number of values

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.categorical)


def is_ordered(axis: Axis) -> bool:
    if axis.type == "categorical":
        return False
    if axis.type != "discrete":
        return True
    numbers = [parse_number(v) for v in axis.values]
    return numbers == sorted(numbers) or numbers == sorted(numbers, reverse=True)


def layout_of(space: Space) -> Layout:
    numeric = [i for i, axis in enumerate(space.axes) if is_ordered(axis)]
    categorical = [i for i in range(len(space)) if i not in numeric]
    return Layout(numeric=tuple(numeric), cells=tuple(space.axes[i].size or 0 for i in numeric),
                  categorical=tuple(categorical), choices=tuple(space.axes[i].size for i in categorical))


def row_of(space: Space, key: Key) -> np.ndarray:
    """A key as one history row (unit coordinate or value index per axis, in axis order)."""
    return np.array([c if (axis.is_finite and not is_ordered(axis)) else axis.unit_from_coordinate(c)
                     for axis, c in zip(space.axes, key)], dtype=float)


def key_of_row(space: Space, row: np.ndarray) -> Key:
    return tuple(int(x) if (axis.is_finite and not is_ordered(axis)) else axis.coordinate_from_unit(x)
                 for axis, x in zip(space.axes, row))


@dataclass
class History:
    """Every trial that lies in the space: its row and its loss. NaN marks a trial without a
    usable value — failed, killed, still running, or a NaN/inf observation; tpe puts all of
    them in the bad group."""

    rows: np.ndarray  # (n, axes)
    losses: np.ndarray  # (n,)
    keys: list[Key]
    conditions: list[str] = ()  # each trial's condition, in row order


def read_history(space: Space, trials: list[TrialRecord], objective_type: str) -> History:
    """Rows of all trials that lie in the space, read column by column (see `_read_column`)."""
    sign = -1.0 if objective_type == "maximize" else 1.0
    keep, coordinates, units = _read_columns(space, trials)
    kept = [trial for trial, ok in zip(trials, keep) if ok]
    losses = [sign * float(t.value) if t.condition == "Succeeded" and t.value is not None and math.isfinite(t.value)
              else math.nan for t in kept]
    return History(rows=units[keep], losses=np.array(losses, dtype=float),
                   keys=list(zip(*(column[keep].tolist() for column in coordinates))) if kept else [],
                   conditions=[t.condition for t in kept])


def read_keys(space: Space, trials: list[TrialRecord]) -> set[Key]:
    """The keys of every trial in the space (as space.used_keys, faster)."""
    keep, coordinates, _ = _read_columns(space, trials)
    return set(zip(*(column[keep].tolist() for column in coordinates))) if keep.any() else set()


def _read_columns(space: Space, trials: list[TrialRecord]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(which trials lie in the space, key coordinates per axis, history rows)."""
    keep = np.ones(len(trials), dtype=bool)
    coordinates, units = [], np.empty((len(trials), len(space)))
    for index, (axis, values) in enumerate(zip(space.axes, _columns(space, trials))):
        ok, coordinate, unit = _read_column(axis, values)
        keep &= ok
        coordinates.append(coordinate)
        units[:, index] = unit
    return keep, coordinates, units


def _columns(space: Space, trials: list[TrialRecord]) -> list[tuple]:
    """Each axis' value strings over the trials (None where a trial lacks the parameter): one
    C-level lookup per trial, not one per trial and axis."""
    if not trials:
        return [()] * len(space)
    if len(space) == 1:
        name = space.names[0]
        return [tuple(trial.assignments.get(name) for trial in trials)]
    pick = operator.itemgetter(*space.names)
    try:
        return list(zip(*(pick(trial.assignments) for trial in trials)))
    except KeyError:  # some trial lacks a parameter: the slow path, which yields None there
        return [tuple(trial.assignments.get(name) for trial in trials) for name in space.names]


def _read_column(axis: Axis, values: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, key coordinate, row entry) of one axis for every trial. A continuous column is
    parsed by numpy in one go (correctly rounded, as float(Decimal)); values on or beyond a
    bound and anything numpy refuses take the exact per-value path."""
    reader = _Reader(axis)
    if reader.bounds is not None:
        try:
            x = np.array(values, dtype=float)
        except (ValueError, TypeError):
            x = None
        if x is not None:
            low, high = reader.bounds
            inside = (x > low) & (x < high)
            ok, coordinate = inside.copy(), x.copy()
            for i in np.flatnonzero(~inside):
                entry = reader(values[i])
                ok[i], coordinate[i] = (False, 0.0) if entry is None else (True, entry[0])
            return ok, coordinate, (coordinate - low) / (high - low)
    entries = [reader(value) for value in values]
    ok = np.array([entry is not None for entry in entries], dtype=bool)
    coordinate = np.array([entry[0] if entry else 0 for entry in entries],
                          dtype=float if reader.bounds is not None else np.int64)
    unit = np.array([entry[1] if entry else 0.0 for entry in entries], dtype=float)
    return ok, coordinate, unit


class _Reader:
    """value string → (key coordinate, history entry) or None, for one axis. Same answers as
    Axis.coordinate_of; a continuous value is parsed with float() (exactly rounded, like
    float(Decimal)) unless it lands on a bound, where only the exact Decimal check can tell."""

    def __init__(self, axis: Axis):
        self.axis = axis
        self.cache: dict = {}
        self.categorical = axis.is_finite and not is_ordered(axis)
        self.bounds = None if axis.is_finite else (float(axis.low), float(axis.high))

    def __call__(self, value):
        if value in self.cache:
            return self.cache[value]
        if value is None:
            return None
        if self.bounds is not None:
            return self._continuous(value)
        coordinate = self.axis.coordinate_of(value)
        entry = None if coordinate is None else (
            coordinate, float(coordinate) if self.categorical else self.axis.unit_from_coordinate(coordinate))
        if len(self.cache) < 4096:  # finite axes: few distinct strings
            self.cache[value] = entry
        return entry

    def _continuous(self, value: str):
        low, high = self.bounds
        try:
            x = float(value)
        except (ValueError, TypeError):
            x = math.nan
        if not low < x < high:  # outside, on a bound, NaN or unparsable: the exact path decides
            coordinate = self.axis.coordinate_of(value)
            return None if coordinate is None else (coordinate, self.axis.unit_from_coordinate(coordinate))
        return x, (x - low) / (high - low)


# ---------------------------------------------------------------------------------------
# estimators


@dataclass(frozen=True)
class Mixture:
    """m components (observations, then the prior); numeric columns are truncated normals."""

    log_weights: np.ndarray  # (m,)
    mus: np.ndarray  # (m, p)
    sigmas: np.ndarray  # (m, p)
    log_norms: np.ndarray  # (m, p): log of each kernel's mass inside [0, 1]
    probs: tuple[np.ndarray, ...]  # per categorical column: (m, K)


def recency_weights(n: int) -> np.ndarray:
    """Optuna's default_weights: rows are in trial order, the newest RECENT at weight 1."""
    if n < RECENT:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - RECENT), np.ones(RECENT)])


def fit(rows: np.ndarray, *, layout: Layout, prior_weight: float) -> Mixture:
    from scipy.special import ndtr  # here, not at import: scipy costs ~0.3 s to every command
    """The estimator of one group; `rows` in trial order (may be empty: prior only)."""
    n = len(rows)
    weights = np.append(recency_weights(n), prior_weight)
    mus = np.vstack([rows[:, list(layout.numeric)], np.full((1, len(layout.numeric)), 0.5)])
    sigmas = _neighbour_sigmas(mus[:-1])
    sigmas = np.clip(sigmas, 1.0 / min(100.0, n + 2.0), 1.0)
    sigmas[-1] = 1.0  # the prior
    log_norms = np.log(np.maximum(ndtr((1 - mus) / sigmas) - ndtr(-mus / sigmas), 1e-300))
    probs = []
    for column, k in zip(layout.categorical, layout.choices):
        table = np.full((n + 1, k), prior_weight / (n + 1))
        table[np.arange(n), rows[:, column].astype(int)] += 1.0  # the last row (the prior) stays uniform
        probs.append(table / table.sum(axis=1, keepdims=True))
    return Mixture(log_weights=np.log(weights / weights.sum()), mus=mus, sigmas=sigmas, log_norms=log_norms,
                   probs=tuple(probs))


def _neighbour_sigmas(mus: np.ndarray) -> np.ndarray:
    """Per column: the larger gap to the sorted neighbours (the bounds 0 and 1 count as
    neighbours, except for the outermost observations, which take their inner gap), one row
    per observation plus a placeholder row for the prior."""
    n, p = mus.shape
    order = np.argsort(mus, axis=0, kind="stable")
    ordered = np.take_along_axis(mus, order, axis=0)
    padded = np.vstack([np.zeros((1, p)), ordered, np.ones((1, p))])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if n >= 2:
        gaps[0], gaps[-1] = padded[2] - padded[1], padded[-2] - padded[-3]
    sigmas = np.ones((n + 1, p))
    np.put_along_axis(sigmas[:n], order, gaps, axis=0)
    return sigmas


# ---------------------------------------------------------------------------------------
# sampling and scoring


def sample(mixture: Mixture, *, layout: Layout, size: int, rng: np.random.Generator,
           multivariate: bool) -> np.ndarray:
    """`size` rows drawn from the mixture (one component per row, or per cell when
    univariate), finite numeric columns snapped to their cell centres."""
    from scipy.special import ndtr, ndtri
    m, width = len(mixture.log_weights), len(layout.numeric) + len(layout.categorical)
    weights = np.exp(mixture.log_weights)
    shape = (size, 1) if multivariate else (size, width)
    component = np.minimum(np.searchsorted(np.cumsum(weights), rng.random(shape) * weights.sum()), m - 1)
    component = np.broadcast_to(component, (size, width))
    rows = np.empty((size, len(layout.numeric) + len(layout.categorical)))
    p = len(layout.numeric)
    if p:
        picked = component[:, :p]
        mu = np.take_along_axis(mixture.mus, picked, axis=0)
        sigma = np.take_along_axis(mixture.sigmas, picked, axis=0)
        low, high = ndtr(-mu / sigma), ndtr((1 - mu) / sigma)
        x = mu + sigma * ndtri(low + rng.random((size, p)) * (high - low))
        rows[:, list(layout.numeric)] = snap(np.clip(x, 0.0, 1.0), layout)
    for j, (column, table) in enumerate(zip(layout.categorical, mixture.probs)):
        cumulative = np.cumsum(table[component[:, p + j]], axis=1)
        draws = rng.random((size, 1)) * cumulative[:, -1:]
        rows[:, column] = np.minimum((cumulative < draws).sum(axis=1), table.shape[1] - 1)
    return rows


def snap(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Finite numeric columns to the centre of their cell (what space.py decodes back)."""
    cells = np.array(layout.cells, dtype=float)
    finite = cells > 0
    snapped = x.copy()
    size = cells[finite]
    snapped[:, finite] = (np.minimum(np.floor(x[:, finite] * size), size - 1) + 0.5) / size
    return snapped


def log_density(mixture: Mixture, rows: np.ndarray, *, layout: Layout, multivariate: bool) -> np.ndarray:
    """log pdf of each row: shape (rows,) when multivariate, else (rows, axes): the
    marginal of each axis, in axis order."""
    categorical = [np.log(table[:, rows[:, column].astype(int)]).T  # (rows, m)
                   for column, table in zip(layout.categorical, mixture.probs)]
    numeric_columns = list(layout.numeric)
    if multivariate:
        total = mixture.log_weights[None] + sum(categorical, 0.0)
        if numeric_columns:
            total = total + _log_kernels(mixture, rows[:, numeric_columns][:, None, :], axis=2).sum(axis=2)
        top = total.max(axis=1, keepdims=True)
        return np.log(np.exp(total - top).sum(axis=1)) + top[:, 0]
    # Marginals: the prior component (sigma 1, uniform choices) keeps every sum well above
    # underflow, so the mixture is summed directly, the weights folded into the exponents.
    # Laid out (rows, p, m), the sum over the components runs over contiguous memory.
    result = np.empty((len(rows), layout.width))
    if numeric_columns:
        kernels = _log_kernels(mixture, rows[:, numeric_columns][:, :, None], axis=1, weighted=True)
        result[:, numeric_columns] = np.log(np.exp(kernels, out=kernels).sum(axis=2))
    weights = np.exp(mixture.log_weights)
    for column, term in zip(layout.categorical, categorical):
        result[:, column] = np.log(np.exp(term) @ weights)
    return result


def _log_kernels(mixture: Mixture, x: np.ndarray, *, axis: int, weighted: bool = False) -> np.ndarray:
    """log of every numeric kernel at x: x is (rows, 1, p) → (rows, m, p) (axis=2), or
    (rows, p, 1) → (rows, p, m) (axis=1, the components last); `weighted` adds log weights."""
    mus, sigmas, log_norms = mixture.mus, mixture.sigmas, mixture.log_norms
    offset = -np.log(sigmas) - _LOG_SQRT_2PI - log_norms
    if weighted:
        offset = offset + mixture.log_weights[:, None]
    if axis == 1:
        mus, sigmas, offset = mus.T, sigmas.T, offset.T
    out = x - mus[None]
    out *= 1.0 / sigmas[None]
    np.square(out, out=out)
    out *= -0.5
    out += offset[None]
    return out
