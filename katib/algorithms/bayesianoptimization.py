"""`bayesianoptimization`: a Gaussian process with an acquisition function (upstream:
scikit-optimize 0.5.2, `Optimizer(base_estimator, n_initial_points, acq_func, acq_optimizer)`).

Data path: trials → parzen.read_history (space.py's unit cube; categoricals as value indices)
→ standardised losses → gp.py's Matérn 5/2 ARD model (MAP hyperparameters, L-BFGS-B) → the
acquisition maximised over 1,280 random and local candidates, each scored where it lands (grid
axes at their cell centres); the best 5 and the 2 best observations polished by L-BFGS-B over
the ordered axes, then swept axis by axis over the values of every grid and categorical axis
(a gradient says nothing across cells) → the first unused point.

Settings (algorithms.md §5): `n_initial_points` random points first (10), `acq_func`
gp_hedge (skopt's portfolio of EI, PI and LCB, gains kept in the state) / EI (log EI) / PI / LCB,
`acq_optimizer` auto and lbfgs (candidates + polishing) or sampling (candidates only),
`random_state`. `base_estimator` RF, ET and GBRT are admitted as upstream did, but the
surrogate is always the GP (no forest models here): the reply's settings then carry
`surrogate: GP (base_estimator <name> is not implemented)`, which Suggestion status shows.

Diverges from upstream (deliberately):
* doubles are searched on their own linear scale: skopt forced a log-uniform prior on every
  double (and so required min > 0);
* batches: each point of a batch, and every Created/Running trial, joins the model at its
  posterior mean before the next point is chosen (kriging believer): k distinct points, where
  skopt repeated one point;
* failed, killed and NaN-valued trials count as the worst observed value, not ignored;
* bounded cost: the model conditions on at most 256 observations (the best 64 and an even
  spread of the others), fitted on 192 of them, so a call stays well under a second at
  thousands of trials;
* validated at admission (upstream had no ValidateAlgorithmSettings; bad values raised at the
  first GetSuggestions). Unknown keys are still ignored, as upstream did;
* the generator, the hyperparameters (a warm start) and the hedge gains travel in the state."""
from __future__ import annotations

import numpy as np

from . import gp, parzen
from .base import SuggestReply, SuggestRequest
from .random import draw_distinct
from .rng import request_generator, rng_to_state
from .settings import Problem, last_settings, require_parameters, setting_path
from .space import Key, Space, is_integer_text, parse_space

NAME = "bayesianoptimization"
BASE_ESTIMATORS = ("GP", "RF", "ET", "GBRT")  # skopt compares upper-cased
PENDING = ("Created", "Running", "")
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")  # skopt's EIps/PIps need trial durations: unusable
ACQ_OPTIMIZERS = ("auto", "sampling", "lbfgs")
MAX_SEED = 2**32 - 1  # numpy RandomState


def validate_settings(*, parameters, settings, parallel_trial_count=0, nas_config=None) -> list[Problem]:
    found = last_settings(settings)
    problems = require_parameters(NAME, parameters)
    for name, check in _CHECKS.items():
        if name in found:
            index, value = found[name]
            message = check(value)
            if message:
                problems.append((setting_path(index), message))
    problems += _check_lbfgs(found)
    return problems


def _one_of(name: str, allowed: tuple[str, ...], *, fold_case: bool = False):
    def check(value: str) -> str | None:
        candidates = [a.upper() for a in allowed] if fold_case else allowed
        if (value.upper() if fold_case else value) in candidates:
            return None
        return f'{name} must be one of {", ".join(allowed)}, got "{value}"'
    return check


def _check_n_initial_points(value: str) -> str | None:
    if is_integer_text(value) and int(value) >= 0:
        return None
    return f'n_initial_points must be an integer >= 0, got "{value}"'


def _check_random_state(value: str) -> str | None:
    if is_integer_text(value) and 0 <= int(value) <= MAX_SEED:
        return None
    return f'random_state must be an integer between 0 and {MAX_SEED}, got "{value}"'


def _check_lbfgs(found: dict[str, tuple[int, str]]) -> list[Problem]:
    """skopt refuses lbfgs for estimators without gradients (all but GP)."""
    index, optimizer = found.get("acq_optimizer", (None, "auto"))
    estimator = found.get("base_estimator", (None, "GP"))[1]
    if optimizer != "lbfgs" or estimator.upper() not in BASE_ESTIMATORS or estimator.upper() == "GP":
        return []
    return [(setting_path(index), f"acq_optimizer lbfgs needs base_estimator GP "
                                  f"({estimator} has no gradients); use auto or sampling")]


_CHECKS = {
    "base_estimator": _one_of("base_estimator", BASE_ESTIMATORS, fold_case=True),
    "n_initial_points": _check_n_initial_points,
    "acq_func": _one_of("acq_func", ACQ_FUNCS),
    "acq_optimizer": _one_of("acq_optimizer", ACQ_OPTIMIZERS),
    "random_state": _check_random_state,
}


# ---------------------------------------------------------------------------------------
# suggesting

N_CANDIDATES = 1024  # random candidates scored per point
N_LOCAL = 256  # candidates drawn around the best observations
N_POLISH = 5  # best candidates polished with L-BFGS-B
N_INCUMBENTS = 2  # the best observations are polished too (Optuna warm-starts from its best)
MAX_ROWS = 256  # observations the GP conditions on (the best and an even spread of the rest)
KEEP_BEST = 64
FIT_ROWS = 192  # rows the hyperparameters are fitted on (the first of the kept ones)
HEDGE = ("EI", "PI", "LCB")


def suggest(request: SuggestRequest) -> SuggestReply:
    space = parse_space(request.parameters)
    settings = options(request.settings)
    rng = request_generator(request)
    state = dict(request.state or {})
    history = parzen.read_history(space, request.trials, request.objective_type)
    used = set(history.keys)
    count = max(request.count, 0)
    finished = np.isfinite(history.losses)
    n_random = min(count, max(0, settings["n_initial_points"] - len(history.keys)))
    if finished.sum() < 2:
        n_random = count
    keys, exhausted = draw_distinct(space, rng, count=n_random, used=used)
    used.update(keys)
    if len(keys) < count and not exhausted:
        more, state = _model_keys(space, history, pending=keys, used=used, rng=rng, count=count - len(keys),
                                  settings=settings, state=state)
        keys += more
        exhausted = space.size is not None and len(used) >= space.size
    state["rng"] = rng_to_state(rng)
    shown = {} if settings["base_estimator"].upper() == "GP" else {
        "surrogate": f"GP (base_estimator {settings['base_estimator']} is not implemented)"}
    return SuggestReply(assignments=[space.render(key) for key in keys], state=state, exhausted=exhausted,
                        settings=shown)


def options(settings: dict[str, str]) -> dict:
    values = {"base_estimator": "GP", "n_initial_points": 10, "acq_func": "gp_hedge", "acq_optimizer": "auto"}
    for name in values:
        text = str(settings.get(name, "")).strip()
        if text:
            values[name] = int(text) if name == "n_initial_points" else text
    return values


def training_rows(history: parzen.History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, losses, pending rows): failed/killed/NaN trials take the worst observed loss,
    Created/Running ones are pending; past MAX_ROWS the best KEEP_BEST and an even spread of
    the others are kept."""
    losses = history.losses.copy()
    done = np.isfinite(losses)
    pending = np.array([not done[i] and c in PENDING for i, c in enumerate(history.conditions)], dtype=bool)
    worst = np.max(losses[done])
    failed = ~done & ~pending
    losses[failed] = worst
    observed = np.flatnonzero(~pending)
    if len(observed) > MAX_ROWS:
        order = observed[np.argsort(losses[observed], kind="stable")]
        best, rest = order[:KEEP_BEST], np.sort(order[KEEP_BEST:])
        spread = rest[np.linspace(0, len(rest) - 1, MAX_ROWS - KEEP_BEST).round().astype(int)]
        observed = np.concatenate([best, spread])
    return history.rows[observed], losses[observed], history.rows[pending]


def _model_keys(space: Space, history: parzen.History, *, pending: list[Key], used: set[Key],
                rng: np.random.Generator, count: int, settings: dict, state: dict) -> tuple[list[Key], dict]:
    layout = parzen.layout_of(space)
    numeric = np.array([parzen.is_ordered(axis) or not axis.is_finite for axis in space.axes])
    X, losses, waiting = training_rows(history)
    mean, scale = float(np.mean(losses)), float(np.std(losses)) or 1.0
    y = (losses - mean) / scale
    D = X.shape[1]
    starts = [gp.default_theta(D)]
    warm = state.get("theta")
    if isinstance(warm, list) and len(warm) == D + 2:
        starts.insert(0, np.array(warm, dtype=float))
    theta = gp.fit(X, y, numeric, starts=starts, fit_rows=FIT_ROWS if len(X) > FIT_ROWS else None)
    model = gp.condition(X, y, numeric, theta)
    best = float(np.min(y))
    hedge = _hedge_update(model, state) if settings["acq_func"] == "gp_hedge" else None
    lies = [waiting] + [parzen.row_of(space, key)[None, :] for key in pending]
    lies = np.vstack(lies) if lies else np.empty((0, D))
    if len(lies):
        model = _believe(model, lies, theta)
    keys, proposals = [], []
    incumbents = X[np.argsort(y, kind="stable")[:N_INCUMBENTS]]
    for _ in range(count):
        if hedge is not None:
            ranked = _rank(HEDGE, model, best, layout, _candidates(space, layout, rng, X, y))
            logits = hedge - np.max(hedge)
            p = np.exp(logits) / np.exp(logits).sum()
            kind = HEDGE[int(rng.choice(len(HEDGE), p=p))]
            candidates = _refine(kind, model, best, layout, settings, *ranked[kind], incumbents=incumbents)
            if not proposals:
                proposals = [(candidates if k == kind else ranked[k][0])[0].tolist() for k in HEDGE]
        else:
            kind = settings["acq_func"]
            ranked = _rank((kind,), model, best, layout, _candidates(space, layout, rng, X, y))
            candidates = _refine(kind, model, best, layout, settings, *ranked[kind], incumbents=incumbents)
        key = next((k for k in (parzen.key_of_row(space, row) for row in candidates) if k not in used), None)
        if key is None:
            drawn, _ = draw_distinct(space, rng, count=1, used=used)
            if not drawn:
                break
            key = drawn[0]
        used.add(key)
        keys.append(key)
        model = _believe(model, parzen.row_of(space, key)[None, :], theta)
    state = {**state, "theta": [float(t) for t in theta]}
    state.pop("hedge", None)
    if hedge is not None:
        state["hedge"] = {"gains": [float(g) for g in hedge], "proposals": proposals,
                          "scale": [mean, scale]}
    return keys, state


def _believe(model: gp.Model, rows: np.ndarray, theta: np.ndarray) -> gp.Model:
    """Kriging believer: the rows join the data at their posterior mean (the mean does not
    move, the variance around them collapses), hyperparameters unchanged."""
    mu, _ = gp.predict(model, rows)
    return gp.condition(np.vstack([model.X, rows]), np.concatenate([model.y, mu]), model.numeric, theta,
                        exact=model.exact + len(rows))


def _hedge_update(model: gp.Model, state: dict) -> np.ndarray:
    """skopt's gp_hedge: each acquisition's gain drops by the (standardised) posterior mean
    at its last proposal; the one to follow is drawn with probability softmax(gains)."""
    saved = state.get("hedge") or {}
    gains = np.array(saved.get("gains") or [0.0] * len(HEDGE), dtype=float)
    proposals = saved.get("proposals") or []
    if len(proposals) == len(HEDGE) and all(len(p) == model.X.shape[1] for p in proposals):
        mu, _ = gp.predict(model, np.array(proposals, dtype=float))
        gains = gains - mu
    return gains


def _candidates(space: Space, layout: parzen.Layout, rng: np.random.Generator, X: np.ndarray,
                y: np.ndarray) -> np.ndarray:
    D = len(space)
    uniform = rng.random((N_CANDIDATES, D))
    for column, choices in zip(layout.categorical, layout.choices):
        uniform[:, column] = rng.integers(0, choices, N_CANDIDATES)
    elite = X[np.argsort(y, kind="stable")[:8]]
    local = elite[rng.integers(0, len(elite), N_LOCAL)].copy()
    if not N_LOCAL:
        return uniform
    numeric = list(layout.numeric)
    local[:, numeric] += rng.normal(0.0, 0.05, (N_LOCAL, len(numeric)))
    local[:, numeric] = np.clip(local[:, numeric], 0.0, 1.0)
    for column, choices in zip(layout.categorical, layout.choices):
        flip = rng.random(N_LOCAL) < 1.0 / D
        local[flip, column] = rng.integers(0, choices, int(flip.sum()))
    return np.vstack([uniform, local])


def _rank(kinds, model: gp.Model, best: float, layout: parzen.Layout,
          candidates: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """Per acquisition: the candidates in decreasing order of it and its best value. Every row
    is scored where it will land (grid axes at their cell centres); one prediction serves all."""
    candidates = _snapped(candidates, layout)
    mu, sd = gp.predict(model, candidates)
    out = {}
    for kind in kinds:
        value, _ = gp.acquisition(kind, mu, sd, best, xi=XI.get(kind, 0.0))
        order = np.argsort(-value, kind="stable")
        out[kind] = candidates[order], float(value[order[0]])
    return out


def _refine(kind: str, model: gp.Model, best: float, layout: parzen.Layout, settings: dict,
            ranked: np.ndarray, top: float, *, incumbents: np.ndarray) -> np.ndarray:
    """The ranked candidates led by the polished ones: the best N_POLISH and the incumbents,
    by L-BFGS-B over the ordered axes, then by the coordinate search over the finite ones;
    only those at least as good as the best candidate (`top`) lead."""
    if settings["acq_optimizer"] == "sampling":
        return ranked
    starts = np.vstack([ranked[:N_POLISH], incumbents])
    if layout.numeric:
        starts = np.vstack([starts, _polish(kind, model, best, starts, np.array(layout.numeric))])
    polished, polished_value = _coordinate_search(kind, model, best, layout, _snapped(starts, layout))
    order = np.argsort(-polished_value, kind="stable")
    keep = polished_value[order] >= top - 1e-12
    return np.vstack([polished[order][keep], ranked])


def _snapped(rows: np.ndarray, layout: parzen.Layout) -> np.ndarray:
    if not any(layout.cells):
        return rows
    rows = rows.copy()
    rows[:, list(layout.numeric)] = parzen.snap(rows[:, list(layout.numeric)], layout)
    return rows


COORDINATE_SWEEPS = 2
MAX_AXIS_VALUES = 64  # a finite axis with more values is searched over its nearest ones only


def _coordinate_search(kind: str, model: gp.Model, best: float, layout: parzen.Layout, rows: np.ndarray):
    """(rows, acquisition values) after sweeps over the finite axes: each row in turn takes the
    best value of one axis with the others held (all values of a categorical or short axis,
    the nearest MAX_AXIS_VALUES cells of a long one) — the acquisition's gradient says nothing
    across the cells of a grid."""
    rows = rows.copy()
    axes = [(c, n, True) for c, n in zip(layout.numeric, layout.cells) if n] + \
           [(c, n, False) for c, n in zip(layout.categorical, layout.choices) if n > 1]

    def score(x):
        mu, sd = gp.predict(model, x)
        return gp.acquisition(kind, mu, sd, best, xi=XI.get(kind, 0.0))[0]

    value = score(rows)
    for _ in range(COORDINATE_SWEEPS if axes else 0):
        changed = False
        for column, size, ordered in axes:
            cells = np.arange(size)
            if ordered and size > MAX_AXIS_VALUES:
                current = np.floor(rows[:, column] * size).astype(int)
                offsets = np.arange(MAX_AXIS_VALUES) - MAX_AXIS_VALUES // 2
                grid = np.clip(current[:, None] + offsets[None], 0, size - 1)
            else:
                grid = np.broadcast_to(cells, (len(rows), size))
            trial = np.repeat(rows, grid.shape[1], axis=0)
            trial[:, column] = ((grid.ravel() + 0.5) / size) if ordered else grid.ravel()
            values = score(trial).reshape(len(rows), grid.shape[1])
            pick = np.argmax(values, axis=1)
            better = values[np.arange(len(rows)), pick] > value + 1e-12
            if better.any():
                changed = True
                chosen = grid[np.arange(len(rows)), pick][better]
                rows[better, column] = (chosen + 0.5) / size if ordered else chosen
                value[better] = values[np.arange(len(rows)), pick][better]
        if not changed:
            break
    return rows, value


XI = {"EI": 0.0, "PI": 0.01}


def _polish(kind: str, model: gp.Model, best: float, starts: np.ndarray, columns: np.ndarray):
    """L-BFGS-B over the numeric columns of all starts at once (their objectives are
    independent, so the sum's gradient is block-diagonal); categorical columns stay put."""
    from scipy.optimize import minimize

    rows = starts.copy()
    m, c = len(starts), len(columns)

    def objective(flat):
        rows[:, columns] = flat.reshape(m, c)
        mu, sd, dmu, dsd = gp.predict(model, rows, grad=True)
        value, gradient = gp.acquisition(kind, mu, sd, best, dmu=dmu, dsd=dsd, xi=XI.get(kind, 0.0))
        return -float(value.sum()), -gradient[:, columns].ravel()

    result = minimize(objective, starts[:, columns].ravel(), jac=True, method="L-BFGS-B",
                      bounds=[(0.0, 1.0)] * (m * c), options={"maxiter": 40})
    rows[:, columns] = np.clip(result.x.reshape(m, c), 0.0, 1.0)
    return rows.copy()
