"""How faithful an attribution is to the model: ERASER's comprehensiveness and sufficiency
(DeYoung et al. 2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models", section 4.2).

For each k in AOPC_PERCENTS, the top-k% words by attribution (at least one word: ceil(k% x
words)) are removed from the input (comprehensiveness = p(y|x) - p(y|x without them); higher is
more faithful) or kept alone (sufficiency = p(y|x) - p(y|only them); lower is more faithful),
y the class predicted on the full input. Each is averaged over k (AOPC). Removal deletes the
words' tokens; special tokens stay. A random attribution, drawn per seed, is the baseline an
explanation must beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from supremum.explain.config import AOPC_PERCENTS
from supremum.explain.words import Encoded

Predict = Callable[[list[list[int]]], np.ndarray]


def top_words(scores: np.ndarray, percent: float) -> list[int]:
    """Indices of the ceil(percent% x n) highest-scored words (ties: the earlier word first)."""
    n = len(scores)
    k = max(1, math.ceil(percent / 100 * n))
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]]


def erased(enc: Encoded, scores: np.ndarray) -> list[list[int]]:
    """The inputs scored: for each k, the text without its top-k% words, then with only them."""
    n = len(enc.words)
    tops = [set(top_words(scores, p)) for p in AOPC_PERCENTS]
    return [enc.without(t) for t in tops] + [enc.without(set(range(n)) - t) for t in tops]


def scores_from(p_full: float, probs: np.ndarray) -> dict:
    """Comprehensiveness and sufficiency per k and their AOPC from the probabilities of the
    predicted class on the inputs of `erased` (removed first, then kept)."""
    m = len(AOPC_PERCENTS)
    comp = [p_full - float(p) for p in probs[:m]]
    suff = [p_full - float(p) for p in probs[m:]]
    return {"comprehensiveness": float(np.mean(comp)), "sufficiency": float(np.mean(suff)),
            "by_percent": {str(p): {"comprehensiveness": c, "sufficiency": s}
                           for p, c, s in zip(AOPC_PERCENTS, comp, suff, strict=True)}}


def measure(predict: Predict, enc: Encoded, target: int, p_full: float,
            attributions: dict[str, np.ndarray], seeds: list[int]) -> dict:
    """Per method, and for a random attribution per seed: `scores_from` of this example. One
    call to `predict` for all of them (batched by the caller's runtime)."""
    rankings = dict(attributions)
    for s in seeds:  # a random order of the words, drawn per (seed, text)
        rankings[f"random:{s}"] = np.random.default_rng([s, len(enc.words), *enc.ids]).permutation(len(enc.words))
    names = list(rankings)
    inputs = [x for name in names for x in erased(enc, rankings[name])]
    probs = predict(inputs)[:, target]
    m = 2 * len(AOPC_PERCENTS)
    return {name: scores_from(p_full, probs[i * m:(i + 1) * m]) for i, name in enumerate(names)}


#: the least mean probability drop of random deletions a ratio is taken against: removing words
#: from a model that barely depends on them moves p by ~1e-7 (fp32 rounding), not by evidence
MIN_DROP = 1e-4


def summarize(per_example: list[dict], methods: list[str], seeds: list[int]) -> dict:
    """Means over examples per method; for random, the mean over examples per seed, then the mean
    and s.d. (ddof 1; 0 with one seed) over seeds. `vs_random`: the method's comprehensiveness
    over random's mean, None where random's mean drop is below MIN_DROP (a ratio of two numbers
    near zero is noise, not a measure of faithfulness)."""
    out: dict = {}
    metrics = ("comprehensiveness", "sufficiency")
    for m in methods:
        out[m] = {k: float(np.mean([e[m][k] for e in per_example])) for k in metrics}
    per_seed = {k: [float(np.mean([e[f"random:{s}"][k] for e in per_example])) for s in seeds] for k in metrics}
    out["random"] = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                         "per_seed": v} for k, v in per_seed.items()}
    rand = out["random"]["comprehensiveness"]["mean"]
    for m in methods:
        out[m]["comprehensiveness_vs_random"] = out[m]["comprehensiveness"] / rand if rand > MIN_DROP else None
    return out
