"""Power-law-plus-constant fits with bootstrap uncertainty: the Chinchilla form and learning curves.

Both are L = E + sum_i A_i / x_i^alpha_i, fitted as in Hoffmann et al. (2022, approach 3): in log
space, log L_hat = logsumexp(e, a_i - alpha_i log x_i), minimizing the Huber loss (small delta, so
a few bad runs cannot pull the fit) of log L_hat - log L with L-BFGS, started from the best
points of a grid of initializations. Written here because no maintained library fits this form
with a robust loss and a multi-start report; scipy supplies the optimizer.

Uncertainty: nonparametric bootstrap over runs (resample runs with replacement, refit), giving
percentile intervals for every parameter and every derived quantity.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

DELTA = 1e-3  # Huber delta on log-loss residuals (Chinchilla's value)


def _objective(theta: np.ndarray, logx: np.ndarray, logy: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    k = logx.shape[1]
    e, a, alpha = theta[0], theta[1:1 + k], theta[1 + k:]
    terms = np.empty((len(logy), k + 1))
    terms[:, 0] = e
    terms[:, 1:] = a - alpha * logx
    top = terms.max(axis=1, keepdims=True)
    ex = np.exp(terms - top)
    tot = ex.sum(axis=1)
    r = top[:, 0] + np.log(tot) - logy  # log of the predicted loss minus log of the observed one
    ar = np.abs(r)
    small = ar <= delta
    loss = np.where(small, 0.5 * r * r, delta * (ar - 0.5 * delta)).sum()
    g_r = np.where(small, r, delta * np.sign(r))
    w = ex * (g_r / tot)[:, None]
    grad = np.concatenate([[w[:, 0].sum()], w[:, 1:].sum(axis=0), -(w[:, 1:] * logx).sum(axis=0)])
    return float(loss), grad


def _grid_scores(grid: np.ndarray, logx: np.ndarray, logy: np.ndarray, delta: float) -> np.ndarray:
    """The objective at every grid point at once (points x runs)."""
    k = logx.shape[1]
    terms = [np.broadcast_to(grid[:, :1], (len(grid), len(logy)))]
    terms += [grid[:, 1 + i:2 + i] - grid[:, 1 + k + i:2 + k + i] * logx[None, :, i] for i in range(k)]
    r = np.logaddexp.reduce(np.stack(terms), axis=0) - logy[None, :]
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).sum(axis=1)


def _grid(k: int, logy: np.ndarray) -> np.ndarray:
    """Initializations: Chinchilla's grid for the coefficients and exponents; E from well below to
    just below the smallest observed loss."""
    lo = float(logy.min())
    es = [lo + np.log(f) for f in (0.05, 0.3, 0.6, 0.8, 0.9, 0.97)]
    axes = [es] + [[0.0, 5.0, 10.0, 15.0, 20.0, 25.0]] * k + [[0.05, 0.25, 0.5, 1.0, 1.5]] * k
    return np.array(list(itertools.product(*axes)))


BOUNDS_EXP = (1e-3, 4.0)  # exponents kept positive: a negative one would mean loss grows with scale


def _minimize(theta0: np.ndarray, logx, logy, delta):
    k = logx.shape[1]
    bounds = [(None, None)] * (1 + k) + [BOUNDS_EXP] * k
    res = minimize(_objective, theta0, args=(logx, logy, delta), jac=True, method="L-BFGS-B",
                   bounds=bounds, options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
    return res.x, float(res.fun)


@dataclass
class PowerFit:
    """L = E + sum_i A_i x_i^-alpha_i (natural units of L)."""

    E: float
    A: list[float]
    alpha: list[float]
    objective: float
    starts: int = 0
    agree: int = 0  # starts that reached the best optimum (objective within 1%, E within 1%)
    theta: np.ndarray = field(default=None, repr=False)

    def predict(self, *xs: np.ndarray | float) -> np.ndarray:
        out = np.full(np.broadcast(*xs).shape, self.E, dtype=float)
        for a, al, x in zip(self.A, self.alpha, xs, strict=True):
            out = out + a * np.asarray(x, dtype=float) ** -al
        return out

    def as_dict(self) -> dict:
        return {"E": self.E, "A": self.A, "alpha": self.alpha, "objective": self.objective,
                "starts": self.starts, "starts_agreeing": self.agree}


def _from_theta(theta: np.ndarray, k: int, obj: float) -> PowerFit:
    return PowerFit(E=float(np.exp(theta[0])), A=[float(np.exp(t)) for t in theta[1:1 + k]],
                    alpha=[float(t) for t in theta[1 + k:]], objective=obj, theta=theta)


def fit_power(xs: list[np.ndarray], y: np.ndarray, *, delta: float = DELTA, starts: int = 24,
              init: list[np.ndarray] | None = None) -> PowerFit:
    """Best fit from the `starts` best grid points (plus any `init`); records how many agree."""
    logx = np.log(np.column_stack(xs).astype(float))
    logy = np.log(np.asarray(y, dtype=float))
    k = logx.shape[1]
    if init is None:
        grid = _grid(k, logy)
        scores = _grid_scores(grid, logx, logy, delta)
        cands = list(grid[np.argsort(scores)[:starts]])
    else:
        cands = list(init)
    results = [_minimize(t, logx, logy, delta) for t in cands]
    best_theta, best = min(results, key=lambda r: r[1])
    agree = sum(1 for th, f in results if f <= best * 1.01 + 1e-12 and abs(th[0] - best_theta[0]) < 0.01)
    fit = _from_theta(best_theta, k, best)
    fit.starts, fit.agree = len(results), agree
    return fit


def bootstrap(xs: list[np.ndarray], y: np.ndarray, base: PowerFit, *, n: int = 1000, seed: int = 0,
              delta: float = DELTA) -> list[PowerFit]:
    """Refit on `n` resamples of the runs; each refit starts from the full-data optimum and from
    two perturbed copies of it, which keeps 1,000 resamples to seconds."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=float)
    cols = [np.asarray(x, dtype=float) for x in xs]
    k = len(cols)
    inits = [base.theta, base.theta + np.r_[-0.1, [0.5] * k, [0.1] * k],
             base.theta + np.r_[0.05, [-0.5] * k, [-0.1] * k]]
    inits = [np.r_[t[:1 + k], np.clip(t[1 + k:], *BOUNDS_EXP)] for t in inits]
    out = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(idx)) < 2 * k + 2:
            continue  # too few distinct runs to identify the parameters: skip the draw
        out.append(fit_power([c[idx] for c in cols], y[idx], delta=delta, init=inits))
    return out


def interval(values, level: float = 0.95) -> list[float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return [float("nan"), float("nan")]
    q = (1 - level) / 2
    return [float(np.quantile(v, q)), float(np.quantile(v, 1 - q))]


# --- Chinchilla: L(N, D) = E + A/N^alpha + B/D^beta, C = 6 N D --------------------------------

FLOPS_PER_PARAM_TOKEN = 6  # C = 6 N D (forward 2ND + backward 4ND; attention-score FLOPs ignored)


def compute_optimal(fit: PowerFit, c: float | np.ndarray) -> dict:
    """Allocation minimizing L(N, D) subject to 6ND = C (Hoffmann et al. 2022, eq. 4)."""
    (a, b), (al, be) = fit.A, fit.alpha
    g = (al * a / (be * b)) ** (1 / (al + be))
    n = g * (np.asarray(c) / FLOPS_PER_PARAM_TOKEN) ** (be / (al + be))
    d = np.asarray(c) / FLOPS_PER_PARAM_TOKEN / n
    return {"N": n, "D": d, "loss": fit.predict(n, d), "a": be / (al + be), "b": al / (al + be)}


def envelope(c: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of runs with a lower loss than every run of smaller compute (the loss-compute frontier)."""
    order = np.argsort(c, kind="stable")
    best, keep = np.inf, []
    for i in order:
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


def envelope_fit(n: np.ndarray, d: np.ndarray, c: np.ndarray, loss: np.ndarray) -> dict | None:
    """Approach 1 on final losses: on the frontier runs, log N_opt and log D_opt linear in log C."""
    idx = envelope(c, loss)
    if len(idx) < 3:
        return None
    lc = np.log(c[idx])
    a_n, k_n = np.polyfit(lc, np.log(n[idx]), 1)
    a_d, k_d = np.polyfit(lc, np.log(d[idx]), 1)
    return {"runs": idx.tolist(), "a": float(a_n), "b": float(a_d), "log_k_n": float(k_n), "log_k_d": float(k_d)}
