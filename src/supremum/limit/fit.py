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


# --- Learning curves: error(n) = E + A n^-alpha, with the interval the data allow ---------------
#
# The learning-curve form of Hestness et al. (2017, "Deep learning scaling is predictable,
# empirically", eq. 1 with an irreducible-error term) and Mukherjee et al. (2003, "Estimating
# dataset size requirements for classifying DNA microarray data": error = a n^-alpha + b).
# Fitted by least squares in error units (measured errors have roughly constant variance in
# the range a learning curve covers: a test set's binomial variance e(1-e)/T changes little).
#
# The floor E is often not identified: a curve that falls a few points over an 8x range of
# sizes is fitted as well by E = 0 and a small exponent as by a high floor. A bootstrap then
# collapses onto the boundary and reports a zero-width interval. The profile likelihood does
# not: for every (E, alpha) on a grid, A is linear and solved exactly (variable projection),
# and the confidence region is every (E, A, alpha) whose residual sum of squares is within
# q * s^2 of the best one, with q the F(1, m - 3) quantile (Bates & Watts 1988, "Nonlinear
# Regression Analysis", sec. 6.1; Venzon & Moolgavkar 1988). The interval of any quantity that
# is monotone in A (the floor, a prediction, the examples a target needs) is its range over that
# region, which reaches the boundary E = 0 whenever the data allow it.

CURVE_ALPHA = (0.01, 3.0)  # exponents allowed: Hestness et al. measured 0.07 to 0.35; theory 0.5 to 1
CURVE_GRID = (241, 241)  # (floor values, exponents) searched exhaustively


@dataclass
class CurveRegion:
    """Least-squares fit of error = E + A n^-alpha and its profile-likelihood confidence region.

    params: (3, k) array of (E, A, alpha) on the region's boundary in A (for each grid (E, alpha)
    inside the region, the smallest and largest A it allows, and the best A); `range(g)` is the
    interval of any g(E, A, alpha) monotone in A."""

    fit: PowerFit
    rss: float
    s2: float  # residual variance used: max(RSS / dof, the measurement floor)
    dof: int
    quantile: float
    level: float
    e_top: float  # the largest floor searched (the largest measured error)
    params: np.ndarray = field(repr=False)

    @property
    def threshold(self) -> float:
        return self.rss + self.quantile * self.s2

    def range(self, g) -> list[float]:
        v = np.asarray(g(*self.params), dtype=float)
        v = np.where(np.isnan(v), np.inf, v)
        return [float(v.min()), float(v.max())]

    def floor_ci(self) -> list[float]:
        """The interval of E."""
        return self.range(lambda E, A, al: E)


def _vp_grid(n: np.ndarray, y: np.ndarray, e_grid: np.ndarray, a_grid: np.ndarray):
    """Best A >= 0 and its RSS for every (E, alpha): arrays of shape (len(e_grid), len(a_grid)),
    plus sum_i x_i^2 (the curvature of the RSS in A)."""
    x = n[None, :] ** -a_grid[:, None]  # (alpha, points)
    sxx = (x * x).sum(axis=1)  # (alpha,)
    sxy = x @ y  # (alpha,)
    sx = x.sum(axis=1)
    a = np.maximum((sxy[None, :] - e_grid[:, None] * sx[None, :]) / sxx[None, :], 0.0)
    # RSS = sum (y - E - A x)^2 expanded, so no (E, alpha, points) array is formed.
    syy, sy, m = float(y @ y), float(y.sum()), len(y)
    e = e_grid[:, None]
    rss = (syy - 2 * e * sy + m * e * e - 2 * a * (sxy[None, :] - e * sx[None, :]) + a * a * sxx[None, :])
    return a, np.maximum(rss, 0.0), sxx


def _polish(n: np.ndarray, y: np.ndarray, e0: float, a0: float, al0: float, e_top: float):
    from scipy.optimize import least_squares

    lo_al, hi_al = CURVE_ALPHA
    logn = np.log(n)
    x0 = np.clip([e0, a0, al0], [0, 0, lo_al], [e_top, np.inf, hi_al])

    def jac(t):
        p = n ** -t[2]
        return np.column_stack([np.ones_like(n), p, -t[1] * p * logn])

    res = least_squares(lambda t: t[0] + t[1] * n ** -t[2] - y, x0, jac=jac,
                        bounds=([0, 0, lo_al], [e_top, np.inf, hi_al]), x_scale="jac", method="trf")
    return res.x, float(2 * res.cost)


def fit_curve(n, y, *, grid: tuple[int, int] = CURVE_GRID, thirds: bool = True) -> tuple[PowerFit, tuple]:
    """Least-squares fit of y = E + A n^-alpha with 0 <= E <= max(y), A >= 0, alpha in CURVE_ALPHA:
    exhaustive over a (E, alpha) grid with A solved exactly, then polished by scipy's
    least_squares from the best cell (and, with `thirds`, the best cell of each third of the
    exponent range, should the optimum lie between grid lines of another basin)."""
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    e_top = max(float(y.max()), 1e-12)  # all-zero errors: a degenerate but valid box for the bounds
    e_grid = np.linspace(0.0, e_top, grid[0])
    a_grid = np.geomspace(*CURVE_ALPHA, grid[1])
    a, rss, sxx = _vp_grid(n, y, e_grid, a_grid)
    starts = [np.unravel_index(np.argmin(rss), rss.shape)]
    for part in np.array_split(np.arange(len(a_grid)), 3) if thirds else []:
        sub = rss[:, part]
        i, j = np.unravel_index(np.argmin(sub), sub.shape)
        starts.append((i, part[j]))
    polished = [_polish(n, y, e_grid[i], a[i, j], a_grid[j], e_top) for i, j in starts]
    theta, best = min(polished, key=lambda r: r[1])
    if best > rss.min():  # the polish never loses to the grid
        i, j = np.unravel_index(np.argmin(rss), rss.shape)
        theta, best = np.array([e_grid[i], a[i, j], a_grid[j]]), float(rss[i, j])
    fit = PowerFit(E=float(theta[0]), A=[float(theta[1])], alpha=[float(theta[2])], objective=best,
                   starts=len(starts), agree=sum(abs(r[1] - best) <= 1e-9 + 1e-6 * best for r in polished),
                   theta=theta)
    return fit, (e_grid, a_grid, a, rss, sxx)


def curve_region(n, y, *, level: float = 0.95, noise_var: float = 0.0,
                 grid: tuple[int, int] = CURVE_GRID) -> CurveRegion:
    """Fit and profile-likelihood region of y = E + A n^-alpha (see the section comment).

    n: (m,) training examples per run; y: (m,) measured error per run (seeds and sizes pooled).
    noise_var: a floor on the per-run variance known from the measurement itself (the binomial
    variance of an accuracy on a finite test set), so an exact fit never yields a zero-width
    region. Needs m > 3 runs, or noise_var > 0. Raises ValueError otherwise."""
    from scipy.stats import chi2
    from scipy.stats import f as f_dist

    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    dof = len(y) - 3
    if dof < 1 and noise_var <= 0:
        raise ValueError("a 3-parameter curve needs more than 3 runs, or a known measurement variance")
    fit, (e_grid, a_grid, a, rss, sxx) = fit_curve(n, y, grid=grid)
    s2_fit = fit.objective / dof if dof >= 1 else 0.0
    s2 = max(s2_fit, noise_var)
    q = float(f_dist.ppf(level, 1, dof)) if s2_fit >= noise_var else float(chi2.ppf(level, 1))
    thr = fit.objective + q * s2
    # A tight region covers few cells of the full grid: search its bounding box (or the cells around
    # the optimum, when it falls between grid lines) again as finely, until it holds enough cells.
    for _ in range(6):
        ie, ia = np.nonzero(rss <= thr)
        if len(ie) >= 200 and ie.max() - ie.min() >= 8 and ia.max() - ia.min() >= 8:
            break
        i0, j0 = np.searchsorted(e_grid, fit.E), np.searchsorted(a_grid, fit.alpha[0])
        ie, ia = np.r_[ie, i0 - 1, i0], np.r_[ia, j0 - 1, j0]
        e_box = e_grid[np.clip([ie.min() - 1, ie.max() + 1], 0, len(e_grid) - 1)]
        a_box = a_grid[np.clip([ia.min() - 1, ia.max() + 1], 0, len(a_grid) - 1)]
        e_grid, a_grid = np.linspace(*e_box, grid[0]), np.geomspace(*a_box, grid[1])
        a, rss, sxx = _vp_grid(n, y, e_grid, a_grid)
    ie, ia = np.nonzero(rss <= thr)
    # RSS(A) = rss + sxx (A - A*)^2 at fixed (E, alpha): the A values inside the region.
    half = np.sqrt(np.maximum(thr - rss[ie, ia], 0.0) / sxx[ia])
    a_star = a[ie, ia]
    es, als = e_grid[ie], a_grid[ia]
    params = np.concatenate([np.stack([es, np.maximum(a_star - half, 0.0), als]),
                             np.stack([es, a_star, als]), np.stack([es, a_star + half, als]),
                             [[fit.E], [fit.A[0]], [fit.alpha[0]]]], axis=1)
    return CurveRegion(fit=fit, rss=fit.objective, s2=s2, dof=dof, quantile=q, level=level,
                       e_top=float(y.max()), params=params)


def curve_bootstrap(n, y, fit: PowerFit, *, resamples: int, seed: int = 0) -> list[PowerFit]:
    """Residual bootstrap (Efron & Tibshirani 1993, sec. 9.5; Davison & Hinkley 1997, alg. 6.1):
    the fitted curve plus residuals drawn with replacement, rescaled by sqrt(m / (m - 3)) for the
    fitted parameters, refitted on a coarser grid. Keeps the design (every size, every seed)."""
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    mu = fit.predict(n)
    r = y - mu
    r = (r - r.mean()) * np.sqrt(len(y) / max(len(y) - 3, 1))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        yb = np.clip(mu + rng.choice(r, len(r), replace=True), 0.0, 1.0)
        out.append(fit_curve(n, yb, grid=(61, 61), thirds=False)[0])
    return out
