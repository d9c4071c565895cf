"""Explanation drift across compression: does a compressed variant decide for the same reasons
as its parent? The same examples are explained with the same method under both artifacts, for
the same class (the parent's prediction), and their word scores compared per example:

- Spearman's rank correlation of the word scores (scipy.stats.spearmanr; ties get average ranks);
  undefined (None, left out of the mean) for fewer than two words or constant scores;
- top-k overlap, k in TOP_K: |top_k(parent) ∩ top_k(child)| / k, with k cut to the number of
  words (a 3-word text's top-5 are its 3 words), ties broken by the earlier word;

next to the prediction agreement (share of examples with the same predicted class).
"""

from __future__ import annotations

import numpy as np

#: the k of the top-k overlap
TOP_K = (1, 3, 5)
#: a correlation is rounded to this many decimals: identical rankings give 1 - 1e-16 in floats
DECIMALS = 12


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho of two score vectors of the same words; None where it is undefined (fewer
    than two words, or either vector constant)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"score vectors of {len(a)} and {len(b)} words")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return round(float(np.clip(spearmanr(a, b).statistic, -1.0, 1.0)), DECIMALS)


def top_k(scores: np.ndarray, k: int) -> set[int]:
    """Indices of the k highest scores (all of them when there are fewer; ties: earlier first)."""
    return {int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]}


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """|top_k(a) ∩ top_k(b)| / k, k cut to the number of words."""
    k = min(k, len(a))
    return len(top_k(a, k) & top_k(b, k)) / k


def compare(parent: np.ndarray, child: np.ndarray) -> dict:
    """One example's agreement: {"spearman": rho or None, "top_k_overlap": {"1": .., "3": .., "5": ..}}."""
    return {"spearman": spearman(parent, child),
            "top_k_overlap": {str(k): top_k_overlap(parent, child, k) for k in TOP_K}}


def _mean_sd(xs: list[float]) -> dict:
    """Mean and s.d. (ddof 1; 0 for one value) over examples; None for none."""
    if not xs:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(xs)), "sd": float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0, "n": len(xs)}


def summarize(per_example: list[dict]) -> dict:
    """Over examples (each a `compare` result): Spearman's mean and s.d. (over the examples where
    it is defined, `n` of them), and each top-k overlap's mean and s.d."""
    return {"spearman": _mean_sd([e["spearman"] for e in per_example if e["spearman"] is not None]),
            "top_k_overlap": {str(k): _mean_sd([e["top_k_overlap"][str(k)] for e in per_example])
                              for k in TOP_K}}


def sentence(name: str, method: str, summary: dict, agreement: float) -> str:
    """E.g. "int8-dynamic (occlusion) keeps 0.93 of the parent's top-5 words; Spearman 0.88 ± 0.07;
    predictions agree on 98%"."""
    top = summary["top_k_overlap"][str(TOP_K[-1])]["mean"]
    rho = summary["spearman"]
    corr = (f"Spearman {rho['mean']:.2f} ± {rho['sd']:.2f}" if rho["mean"] is not None
            else "Spearman undefined (constant scores or one-word texts)")
    kept = f"keeps {top:.2f} of the parent's top-{TOP_K[-1]} words" if top is not None else "has no words compared"
    return f"{name} ({method}) {kept}; {corr}; predictions agree on {100 * agreement:.0f}%"
