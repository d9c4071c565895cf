"""Noise between runs: the smallest accuracy difference a test set can resolve, and the spread of
one configuration over seeds. Differences below the resolution are not evidence that one model
is better.

Two models scored on the same n examples differ in accuracy by (b - c) / n, b and c the examples
only the first and only the second gets right. Under "no difference" b ~ Binomial(b + c, 1/2)
(McNemar 1947), so the estimate's standard error is sqrt(d / n), d = (b + c) / n the discordant
share, and the smallest difference significant at level 1 - alpha (two-sided, Wald form) is
z_{1-alpha/2} sqrt(d / n). Without a second model, d is bounded by assuming the two models err
independently: d = 2 a (1 - a) at accuracy a; models that fail on the same hard examples
disagree less, so this is the conservative (larger) resolution. The paired bootstrap over
examples (Efron & Tibshirani 1993, ch. 13; Koehn 2004 for test sets) gives the interval of a
measured difference without the normal approximation.
"""

from __future__ import annotations

import math

import numpy as np

from supremum.errors import UserError


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def resolution(n: int, accuracy: float | None = None, *, discordant: float | None = None,
               level: float = 0.95) -> float:
    """Smallest accuracy difference (a share, not points) significant at `level` on `n` examples:
    z * sqrt(d / n), with d the discordant share of two models, or 2 a (1 - a) from one accuracy."""
    if n < 1:
        raise UserError(f"a test set of {n} examples resolves nothing", "score at least one example")
    if discordant is None:
        if accuracy is None or not 0 <= accuracy <= 1:
            raise UserError("resolution needs an accuracy in [0, 1] or the discordant share", "pass one")
        discordant = 2 * accuracy * (1 - accuracy)
    return _z(level) * math.sqrt(discordant / n)


def _correct(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise UserError(f"paired comparison needs two per-example correctness vectors of one length; got "
                        f"{a.shape} and {b.shape}", "score both models on the same examples")
    return a, b


def mcnemar(correct_a, correct_b) -> dict:
    """Exact McNemar test: b (only A right), c (only B right), the difference (b - c) / n, and the
    two-sided binomial p-value of b given b + c."""
    from scipy.stats import binomtest

    a, b = _correct(correct_a, correct_b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "n": len(a), "difference": (only_a - only_b) / len(a),
            "discordant": (only_a + only_b) / len(a), "p_value": float(p)}


def paired_bootstrap(correct_a, correct_b, *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Accuracy of A minus B with a percentile interval from resampling examples (both models on the
    same resampled rows), and the resolution z sqrt(d / n) at the observed discordant share."""
    a, b = _correct(correct_a, correct_b)
    d = a.astype(float) - b.astype(float)
    rng = np.random.default_rng(seed)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(resamples)])
    q = (1 - level) / 2
    return {"difference": float(d.mean()), "ci": [float(np.quantile(means, q)), float(np.quantile(means, 1 - q))],
            "resolution": resolution(len(d), discordant=float((d != 0).mean()), level=level),
            "resamples": resamples}


def seed_spread(values, level: float = 0.95) -> dict:
    """Mean, sample standard deviation (ddof 1) and Student-t interval of the mean of one
    configuration's scores over seeds: mean +- t_{k-1} s / sqrt(k)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        raise UserError(f"a seed spread needs at least 2 seeds; got {len(v)}", "add seeds")
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, len(v) - 1)) * sd / math.sqrt(len(v))
    return {"mean": mean, "std": sd, "seeds": len(v), "ci": [mean - half, mean + half], "level": level}
