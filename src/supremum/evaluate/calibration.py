"""Calibration of a classifier's probabilities: does a confidence of 0.8 mean right 80% of the time?

Numpy, because each measure is a few lines over the (n, k) logits: no installed library gives
this set (scikit-learn has the binary Brier score and the NLL; `torchmetrics.CalibrationError`,
not a dependency here, has equal-width ECE only, without adaptive bins, reliability data or
selective prediction), and computing all from one array keeps them consistent.

Confidence is the top-label probability (Guo et al. 2017, "On Calibration of Modern Neural
Networks"). ECE = sum over bins b of |B_b|/n * |accuracy(B_b) - confidence(B_b)|.
"""

from __future__ import annotations

import numpy as np

#: bins of the equal-width ECE (Guo et al. 2017) and of the adaptive (equal-mass) ECE
BINS = 15
#: confidence thresholds at which the accuracy-coverage table is reported
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (nats); logits (n, k), labels (n,) ints."""
    lp = log_softmax(np.asarray(logits, dtype=np.float64))
    return float(-lp[np.arange(len(labels)), np.asarray(labels)].mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score (Brier 1950): mean over examples of sum_k (p_k - 1[y = k])^2;
    0 is perfect, 2 the worst. For two classes it is twice the binary (positive-class) score."""
    onehot = np.eye(probs.shape[1])[np.asarray(labels)]
    return float(((probs - onehot) ** 2).sum(-1).mean())


def _bins(conf: np.ndarray, correct: np.ndarray, groups: list[np.ndarray], edges: list[tuple]) -> tuple:
    n = len(conf)
    rows, ece = [], 0.0
    for idx, (lo, hi) in zip(groups, edges, strict=True):
        if len(idx) == 0:
            rows.append({"lower": lo, "upper": hi, "confidence": None, "accuracy": None, "count": 0})
            continue
        c, a = float(conf[idx].mean()), float(correct[idx].mean())
        ece += len(idx) / n * abs(a - c)
        rows.append({"lower": lo, "upper": hi, "confidence": c, "accuracy": a, "count": int(len(idx))})
    return float(ece), rows


def equal_width(conf: np.ndarray, correct: np.ndarray, bins: int = BINS) -> tuple[float, list[dict]]:
    """(ECE, reliability rows) over `bins` equal-width confidence bins (lo, hi], the first [0, hi]."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    groups = [np.flatnonzero(which == b) for b in range(bins)]
    return _bins(conf, correct, groups, [(float(edges[b]), float(edges[b + 1])) for b in range(bins)])


def equal_mass(conf: np.ndarray, correct: np.ndarray, bins: int = BINS) -> tuple[float, list[dict]]:
    """(adaptive ECE, rows): examples sorted by confidence and cut into `bins` groups of equal
    size (sizes differ by at most one; np.array_split), as in Nixon et al. 2019 ("Measuring
    Calibration in Deep Learning"). Fewer examples than bins: one group per example."""
    order = np.argsort(conf, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, len(conf))) if len(g)]
    edges = [(float(conf[g].min()), float(conf[g].max())) for g in groups]
    return _bins(conf, correct, groups, edges)


def selective(conf: np.ndarray, correct: np.ndarray, thresholds=THRESHOLDS) -> dict:
    """Selective prediction: abstain when confidence < c. Per threshold c, coverage (share
    answered) and the accuracy of the answered (None when none is answered). The area under the
    accuracy-coverage curve: accuracy of the most confident examples, averaged over coverage
    from 1/n to 1, with examples of equal confidence entering together (a step per distinct
    confidence, so the order of ties does not matter); the area of a useless ranking equals the
    accuracy, of a perfect one it is higher (1 - AURC of Geifman & El-Yaniv 2017)."""
    n = len(conf)
    at = []
    for c in thresholds:
        kept = conf >= c
        at.append({"threshold": c, "coverage": float(kept.mean()),
                   "accuracy": float(correct[kept].mean()) if kept.any() else None})
    order = np.argsort(-conf, kind="stable")
    sc, hits = conf[order], np.cumsum(correct[order])
    last = np.flatnonzero(np.r_[sc[1:] != sc[:-1], True])  # last index of each run of equal confidence
    sizes = np.diff(np.r_[0, last + 1])
    area = float((sizes / n * hits[last] / (last + 1)).sum())
    return {"at": at, "area": area}


def calibration_metrics(logits: np.ndarray, labels, bins: int = BINS) -> dict:
    """ECE (equal-width and equal-mass, as fractions), Brier, NLL (nats), the reliability diagram
    (per equal-width bin: confidence, accuracy, count) and accuracy-coverage, from logits (n, k)
    and true class ids (n,)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    lp = log_softmax(logits)
    probs = np.exp(lp)
    conf, correct = probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)
    ece, reliability = equal_width(conf, correct, bins)
    return {"ece": ece, "adaptive_ece": equal_mass(conf, correct, bins)[0], "brier": brier(probs, labels),
            "nll": nll(logits, labels), "bins": bins,
            "reliability": reliability, "selective": selective(conf, correct),
            "method": f"top-label confidence; ECE over {bins} equal-width bins (Guo et al. 2017), adaptive "
                      f"ECE over {bins} equal-mass bins (Nixon et al. 2019); Brier summed over classes; "
                      "NLL in nats"}
