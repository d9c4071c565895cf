"""Query strategies of active learning: which unlabelled texts to label next.

A strategy is a name: `random`; an uncertainty measure alone (`entropy`, `margin`,
`least-confidence`); a diversity method alone (`kcenter`, `badge`); or the two joined by `+`
(`margin+kcenter`, `entropy+badge`): the `candidates` x batch most uncertain texts are kept,
then the diversity method picks the batch among them (the "uncertainty pre-filter, then
diversity" scheme of Zhdanov 2019, "Diverse mini-batch active learning", arXiv:1901.05954).

Uncertainty scores come from small-text (PredictionEntropy, BreakingTies, LeastConfidence;
Settles 2009, "Active Learning Literature Survey", sec. 3.1), called on our own classifier's
probabilities, without its torch/transformers integration. k-center greedy and BADGE are
written here; the reasons are at each function.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import AfterValidator

from supremum.errors import UserError

UNCERTAINTY = ("entropy", "margin", "least-confidence")
DIVERSITY = ("kcenter", "badge")


def parse_strategy(name: str) -> tuple[str | None, str | None]:
    """(uncertainty measure or None, diversity method or None) of a strategy name; UserError
    naming the valid ones otherwise. "random" is (None, None)."""
    if name == "random":
        return None, None
    parts = name.split("+")
    u = parts[0] if parts[0] in UNCERTAINTY else None
    d = parts[-1] if parts[-1] in DIVERSITY else None
    if len(parts) > 2 or (len(parts) == 2 and not (u and d)) or (len(parts) == 1 and not (u or d)):
        raise UserError(f"unknown query strategy '{name}'",
                        f"use random, one of {', '.join(UNCERTAINTY + DIVERSITY)}, or uncertainty+diversity "
                        "such as margin+kcenter")
    return u, d


def uncertainty(probs: np.ndarray, measure: str) -> np.ndarray:
    """(n,) uncertainty of each row of `probs` (n, k), higher = more uncertain: the entropy of the
    prediction, the negated margin between the two most likely classes (Scheffer et al. 2001;
    small-text's BreakingTies), or the negated highest probability (least confidence)."""
    from small_text.query_strategies import BreakingTies, LeastConfidence, PredictionEntropy

    kind = {"entropy": PredictionEntropy, "margin": BreakingTies, "least-confidence": LeastConfidence}[measure]
    idx = np.arange(len(probs))
    # small-text's score() is lower = queried first; it only calls clf.predict_proba(dataset)
    return -kind().score(_Probabilities(probs), idx, idx, np.array([], dtype=int), None)


class _Probabilities:
    """The classifier small-text's confidence strategies see: probabilities computed already."""

    def __init__(self, probs: np.ndarray) -> None:
        self.probs = probs

    def predict_proba(self, _dataset) -> np.ndarray:
        return self.probs


def select(strategy: str, n: int, unlabelled: np.ndarray, labelled: np.ndarray, probs: np.ndarray | None,
           emb: np.ndarray | None, rng: np.random.Generator, candidates: int = 10) -> list[int]:
    """The next `n` row ids to label, in the order chosen.

    unlabelled, labelled: row ids (into probs/emb rows); probs: (rows, k) class probabilities;
    emb: (rows, d) the classifier's penultimate representation (the input of its last linear
    layer). Random draws with `rng`; ties in uncertainty go to the lower row id."""
    u, d = parse_strategy(strategy)
    n = min(n, len(unlabelled))
    if u is None and d is None:
        return [int(i) for i in rng.choice(unlabelled, size=n, replace=False)]
    pool = np.asarray(unlabelled)
    if u is not None:
        score = uncertainty(probs[pool], u)
        order = pool[np.lexsort((pool, -score))]  # most uncertain first, then lower row id
        if d is None:
            return [int(i) for i in order[:n]]
        pool = np.sort(order[: max(n, candidates * n)])
    if d == "kcenter":
        return kcenter_greedy(emb, pool, np.asarray(labelled, dtype=int), n)
    return badge(emb, probs, pool, n, rng)


def kcenter_greedy(emb: np.ndarray, pool: np.ndarray, labelled: np.ndarray, n: int) -> list[int]:
    """k-center greedy (Sener & Savarese 2018, "Active Learning for Convolutional Neural Networks:
    A Core-Set Approach", ICLR, Alg. 1): repeatedly the pool row farthest (Euclidean, on
    L2-normalized embeddings) from every labelled or already chosen row. With nothing labelled
    the first pick is the row farthest from the pool's mean.

    Written here rather than small-text's greedy_coreset (which picks the same rows; see
    tests/test_active.py) because that one recomputes the distances to the whole chosen set at
    each of the n steps, O(n |pool| |chosen| d); a running minimum makes it O((|labelled| + n) |pool| d)."""
    from sklearn.metrics import pairwise_distances
    from sklearn.preprocessing import normalize

    x = normalize(emb)
    if len(labelled):
        nearest = pairwise_distances(x[pool], x[labelled]).min(axis=1)
    else:
        nearest = pairwise_distances(x[pool], x[pool].mean(axis=0, keepdims=True))[:, 0]
    chosen: list[int] = []
    for _ in range(n):
        j = int(np.argmax(nearest))
        chosen.append(int(pool[j]))
        nearest = np.minimum(nearest, pairwise_distances(x[pool], x[pool[j : j + 1]])[:, 0])
        nearest[j] = -np.inf
    return chosen


def gradient_embeddings(emb: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(rows, k * d) BADGE's gradient embeddings: the gradient of the cross-entropy loss with the
    predicted class as label, with respect to the last linear layer's weights,
    (p - onehot(argmax p)) outer h, for probabilities p (rows, k) and its inputs h (rows, d)."""
    g = probs.copy()
    g[np.arange(len(g)), probs.argmax(axis=1)] -= 1.0
    return (g[:, :, None] * emb[:, None, :]).reshape(len(emb), -1)


def badge(emb: np.ndarray, probs: np.ndarray, pool: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """BADGE (Ash et al. 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower
    Bounds", ICLR): k-means++ seeding on the gradient embeddings of the pool rows, the first
    center the row with the largest gradient norm (as the authors' code), each next one drawn
    with probability proportional to its squared distance to the nearest chosen one.

    Written here rather than small-text's BADGE because that one (1.4.1) uses the plain
    embeddings for two classes (no uncertainty term at all), never sets the argmax class's
    (1 - p) factor (it indexes rows with class ids), and seeds k-means++ with an unseeded
    RandomState."""
    g = gradient_embeddings(emb[pool], probs[pool])
    first = int(np.argmax((g * g).sum(axis=1)))
    chosen = [first]
    d2 = ((g - g[first]) ** 2).sum(axis=1)
    for _ in range(n - 1):
        total = d2.sum()
        if total <= 0:  # every remaining row coincides with a chosen one: fill at random
            rest = np.setdiff1d(np.arange(len(pool)), chosen)
            chosen += [int(i) for i in rng.choice(rest, size=n - len(chosen), replace=False)]
            break
        j = int(rng.choice(len(pool), p=d2 / total))
        chosen.append(j)
        d2 = np.minimum(d2, ((g - g[j]) ** 2).sum(axis=1))
    return [int(pool[j]) for j in chosen]


def checked_strategy(name: str) -> str:
    """`name` itself once `parse_strategy` accepts it (a config refuses a bad strategy when built)."""
    parse_strategy(name)
    return name


#: a query strategy name, checked when the config holding it is built
CheckedStrategy = Annotated[str, AfterValidator(checked_strategy)]
