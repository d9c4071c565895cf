"""Does the model's confidence mean anything: calibration of a classifier's probabilities.

- ECE (Guo et al. 2017): confidences (the top class's probability) in `bins` equal-width bins
  ((k-1)/M, k/M]; the mean over examples of |accuracy - mean confidence| of their bin.
- Adaptive ECE (Nixon et al. 2019): the same over `bins` equal-mass bins (sorted confidences
  split into groups as equal in size as n allows), which no empty or one-example bin dominates.
- Brier score (Brier 1950, multi-class): mean over examples of sum over classes of (p - 1[y])^2;
  0 is perfect, 2 the worst.
- NLL: mean -log p(true class) in nats (scikit-learn's log_loss; probabilities clipped at 1e-15).
The reliability diagram's data are the equal-width bins (count, accuracy, mean confidence).
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15


def _gap(conf: np.ndarray, correct: np.ndarray, groups: list[np.ndarray]) -> float:
    n = len(conf)
    return float(sum(len(g) / n * abs(correct[g].mean() - conf[g].mean()) for g in groups if len(g)))


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Equal-width bins ((k-1)/bins, k/bins] (the first also holds 0): count, accuracy and mean
    confidence (None when empty)."""
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    out = []
    for k in range(bins):
        g = idx == k
        out.append({"lo": k / bins, "hi": (k + 1) / bins, "count": int(g.sum()),
                    "accuracy": float(correct[g].mean()) if g.any() else None,
                    "confidence": float(conf[g].mean()) if g.any() else None})
    return out


def calibration(probs: np.ndarray, labels, bins: int = ECE_BINS) -> dict:
    """ECE, adaptive ECE, Brier score, NLL and the reliability bins of class probabilities
    `probs` (n, classes; rows sum to 1) against true class ids `labels` (n,). Raises ValueError
    on empty input."""
    from sklearn.metrics import log_loss

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=int)
    if len(probs) == 0:
        raise ValueError("calibration of no examples")
    conf, correct = probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    onehot = np.eye(probs.shape[1])[labels]
    return {"ece": _gap(conf, correct, [np.flatnonzero(idx == k) for k in range(bins)]),
            "adaptive_ece": _gap(conf, correct, np.array_split(np.argsort(conf, kind="stable"), bins)),
            "brier": float(((probs - onehot) ** 2).sum(-1).mean()),
            "nll": float(log_loss(labels, probs, labels=list(range(probs.shape[1])))),
            "bins": bins, "reliability": reliability(conf, correct, bins),
            "method": "ECE: 15 equal-width confidence bins (Guo et al. 2017); adaptive ECE: 15 equal-mass "
                      "bins (Nixon et al. 2019); Brier: multi-class sum of squares; NLL in nats"}
