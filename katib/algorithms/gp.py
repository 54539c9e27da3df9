"""A Gaussian process on the unit cube for `bayesianoptimization` (numpy; scipy for L-BFGS-B).

Inputs are history rows of parzen.py's encoding (space.py's unit cube for ordered axes, the
value index for a categorical one). Kernel: Matérn 5/2 with one length scale per axis (ARD);
a categorical axis contributes the Hamming distance, [a != b] / l², as Optuna's GPSampler does
(so categoricals need no one-hot columns). Outputs are standardised; the hyperparameters
(length scales, signal variance, noise) are the maximum a posteriori under weak log-normal
priors, fitted with L-BFGS-B on analytic gradients from a warm start and a default start.

Acquisitions (to maximise): log expected improvement, log probability of improvement, and the
negated lower confidence bound, each with its gradient with respect to the numeric columns,
for L-BFGS-B polishing of the best random candidates."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SQRT5 = math.sqrt(5.0)
# bounds of the log hyperparameters: length scale, signal variance, noise variance
LOG_LENGTH = (math.log(5e-3), math.log(20.0))
LOG_SIGNAL = (math.log(5e-2), math.log(20.0))
LOG_NOISE = (math.log(1e-6), math.log(0.5))
PRIOR_LENGTH = (math.log(0.5), 1.5)  # (mean, sd) of the log-normal priors
PRIOR_SIGNAL = (0.0, 1.0)
PRIOR_NOISE = (math.log(1e-3), 2.0)
JITTER = 1e-9


@dataclass
class Model:
    X: np.ndarray  # (n, D) training rows
    alpha: np.ndarray  # K^-1 y
    L: np.ndarray  # Cholesky factor of K
    y: np.ndarray  # standardised targets
    log_theta: np.ndarray  # D length scales, signal, noise (logs)
    numeric: np.ndarray  # bool mask of numeric columns (D,)
    Linv: np.ndarray = None  # L^-1: two matrix products per prediction beat triangular solves here
    exact: int = 0  # the last rows are believed (noise-free) values

    @property
    def lengths(self) -> np.ndarray:
        return np.exp(self.log_theta[:-2])

    @property
    def signal(self) -> float:
        return float(np.exp(self.log_theta[-2]))

    @property
    def noise(self) -> float:
        return float(np.exp(self.log_theta[-1]))


def _sq_parts(A: np.ndarray, B: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """(a, b, D) unscaled squared distances per column (Hamming for categorical columns)."""
    diff = A[:, None, :] - B[None, :, :]
    parts = np.where(numeric, diff * diff, (diff != 0).astype(float))
    return parts


def _matern(d2: np.ndarray, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """(k, g) at squared scaled distance d2, g = s²·5/3·(1+√5d)·exp(-√5d) (so dk/d(d²) = -g/2)."""
    d = np.sqrt(np.maximum(d2, 0.0))
    e = np.exp(-SQRT5 * d)
    k = signal * (1.0 + SQRT5 * d + (5.0 / 3.0) * d2) * e
    g = signal * (5.0 / 3.0) * (1.0 + SQRT5 * d) * e
    return k, g


def cross(model: Model, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k(A, X) and its g factor."""
    inv = 1.0 / model.lengths ** 2
    d2 = np.zeros((len(A), len(model.X)))
    for j in range(A.shape[1]):  # column by column: no (a, n, D) array for many candidates
        diff = A[:, j, None] - model.X[None, :, j]
        d2 += (diff * diff if model.numeric[j] else (diff != 0)) * inv[j]
    return _matern(d2, model.signal)


def _log_prior(log_theta: np.ndarray, D: int) -> tuple[float, np.ndarray]:
    """Negative log prior and its gradient."""
    means = np.concatenate([np.full(D, PRIOR_LENGTH[0]), [PRIOR_SIGNAL[0], PRIOR_NOISE[0]]])
    sds = np.concatenate([np.full(D, PRIOR_LENGTH[1]), [PRIOR_SIGNAL[1], PRIOR_NOISE[1]]])
    z = (log_theta - means) / sds
    return 0.5 * float(z @ z), z / sds


def neg_log_posterior(log_theta: np.ndarray, parts: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    n, _, D = parts.shape
    lengths = np.exp(log_theta[:D])
    signal, noise = math.exp(log_theta[D]), math.exp(log_theta[D + 1])
    scaled = parts / lengths ** 2
    d2 = scaled.sum(axis=2)
    kf, g = _matern(d2, signal)
    K = kf + (noise + JITTER) * np.eye(n)
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(log_theta)
    from scipy.linalg import solve_triangular

    Linv = solve_triangular(L, np.eye(n), lower=True, check_finite=False)
    Kinv = Linv.T @ Linv
    alpha = Kinv @ y
    value = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
    W = Kinv - np.outer(alpha, alpha)
    grad = np.empty(D + 2)
    # dK/dlog l_j = g * scaled_j ; dK/dlog s = kf ; dK/dlog noise = noise * I
    grad[:D] = 0.5 * np.einsum("ab,abj->j", W * g, scaled)
    grad[D] = 0.5 * float(np.sum(W * kf))
    grad[D + 1] = 0.5 * noise * float(np.trace(W))
    prior, prior_grad = _log_prior(log_theta, D)
    return value + prior, grad + prior_grad


def default_theta(D: int) -> np.ndarray:
    return np.concatenate([np.full(D, PRIOR_LENGTH[0]), [0.0, math.log(1e-2)]])


def bounds(D: int) -> list[tuple[float, float]]:
    return [LOG_LENGTH] * D + [LOG_SIGNAL, LOG_NOISE]


def fit(X: np.ndarray, y: np.ndarray, numeric: np.ndarray, *, starts: list[np.ndarray], maxiter: int = 100,
        fit_rows: int | None = None) -> np.ndarray:
    """MAP log hyperparameters from the given starts (first rows only when fit_rows is set)."""
    from scipy.optimize import minimize  # lazily: scipy costs every command that imports katib

    rows = slice(None) if fit_rows is None else slice(0, fit_rows)
    parts = _sq_parts(X[rows], X[rows], numeric)
    D = X.shape[1]
    box = bounds(D)
    best, best_value = None, math.inf
    for start in starts:
        start = np.clip(start, [b[0] for b in box], [b[1] for b in box])
        result = minimize(neg_log_posterior, start, args=(parts, y[rows]), jac=True, method="L-BFGS-B",
                          bounds=box, options={"maxiter": maxiter})
        if result.fun < best_value:
            best, best_value = result.x, float(result.fun)
    return best if best is not None else default_theta(D)


def condition(X: np.ndarray, y: np.ndarray, numeric: np.ndarray, log_theta: np.ndarray, *,
              exact: int = 0) -> Model:
    """The posterior given fixed hyperparameters; the last `exact` rows are noise-free
    (believed values: the variance at them collapses instead of staying at the noise level)."""
    D = X.shape[1]
    lengths = np.exp(log_theta[:D])
    signal, noise = math.exp(log_theta[D]), math.exp(log_theta[D + 1])
    d2 = (_sq_parts(X, X, numeric) / lengths ** 2).sum(axis=2)
    diagonal = np.full(len(X), noise + JITTER)
    if exact:
        diagonal[len(X) - exact:] = 1e-6 * signal
    K = _matern(d2, signal)[0] + np.diag(diagonal)
    jitter = JITTER
    while True:
        try:
            L = np.linalg.cholesky(K)
            break
        except np.linalg.LinAlgError:
            jitter *= 10
            K[np.diag_indices_from(K)] += jitter
    from scipy.linalg import cho_solve

    alpha = cho_solve((L, True), y)
    from scipy.linalg import solve_triangular

    Linv = solve_triangular(L, np.eye(len(X)), lower=True, check_finite=False)
    return Model(X=X, alpha=alpha, L=L, y=y, log_theta=np.asarray(log_theta, dtype=float), numeric=numeric,
                 Linv=Linv, exact=exact)


def predict(model: Model, A: np.ndarray, *, grad: bool = False):
    """Posterior mean and sd at rows A; with grad, also their gradients (a, D) (zero on
    categorical columns)."""
    k, g = cross(model, A)
    mu = k @ model.alpha
    v = model.Linv @ k.T  # (n, a)
    var = np.maximum(model.signal - np.sum(v * v, axis=0), 1e-12)
    sd = np.sqrt(var)
    if not grad:
        return mu, sd
    w = (model.Linv.T @ v).T  # K^-1 k*, (a, n)
    inv = np.where(model.numeric, 1.0 / model.lengths ** 2, 0.0)
    diff = A[:, None, :] - model.X[None, :, :]  # (a, n, D)
    dk = -g[:, :, None] * diff * inv  # dk_i/dx
    dmu = np.einsum("anj,n->aj", dk, model.alpha)
    dvar = -2.0 * np.einsum("anj,an->aj", dk, w)
    dsd = dvar / (2.0 * sd[:, None])
    return mu, sd, dmu, dsd


# ---------------------------------------------------------------------------------------
# acquisitions (maximised); `best` is the incumbent of the standardised targets


def log_h(z: np.ndarray) -> np.ndarray:
    """log(φ(z) + zΦ(z)), stable for very negative z."""
    from scipy.special import erfcx, log_ndtr

    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    big = z > -1.0
    zb = z[big]
    out[big] = np.log(np.exp(-0.5 * zb * zb) / math.sqrt(2 * math.pi) + zb * np.exp(log_ndtr(zb)))
    zs = z[~big]
    # φ(z)·(1 + z·Φ(z)/φ(z)), Φ/φ = √(π/2)·erfcx(-z/√2)
    inner = 1.0 + zs * math.sqrt(math.pi / 2) * erfcx(-zs / math.sqrt(2))
    out[~big] = -0.5 * zs * zs - 0.5 * math.log(2 * math.pi) + np.log(np.maximum(inner, 1e-300))
    return out


def acquisition(kind: str, mu, sd, best: float, *, dmu=None, dsd=None, xi: float = 0.0, kappa: float = 1.96):
    """(value, gradient or None) of the named acquisition, larger is better."""
    from scipy.special import log_ndtr

    if kind == "LCB":
        value = -(mu - kappa * sd)
        return value, (None if dmu is None else -(dmu - kappa * dsd))
    z = (best - xi - mu) / sd
    if kind == "PI":
        value = log_ndtr(z)
        if dmu is None:
            return value, None
        ratio = np.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - value)  # φ/Φ
    else:  # EI
        lh = log_h(z)
        value = np.log(sd) + lh
        if dmu is None:
            return value, None
        ratio = np.exp(log_ndtr(z) - lh)  # h'(z)/h(z) = Φ/h
    dz = (-dmu - z[:, None] * dsd) / sd[:, None]
    gradient = ratio[:, None] * dz
    if kind == "EI":
        gradient = gradient + dsd / sd[:, None]
    return value, gradient
