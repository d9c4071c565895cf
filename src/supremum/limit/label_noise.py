"""Label noise by confident learning: how many labels are wrong, which ones, and the accuracy a
test set can register at most.

Input: out-of-fold predicted class probabilities (each example scored by a model that did not
train on it: k-fold cross-validation on train, the final model on dev/test) and the given labels.
Confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty
in Dataset Labels", JAIR 70) counts, per class, the examples whose predicted probability of
another class clears that class's average self-confidence (the confident joint), calibrates the
counts to the dataset's size and class shares, and reads the label-error rate off the joint's
off-diagonal mass. cleanlab (the authors' library) does the counting and the ranking here.

Interval: percentile bootstrap over examples (Efron & Tibshirani 1993, ch. 13): resample the
(label, probabilities) rows with replacement and re-estimate the joint. It covers the sampling
of examples, not the error of the model whose probabilities are used (a weak model flags more).

The accuracy a test set can register: a model that predicts every true label scores 1 - rate on a
test set whose labels are wrong at `rate`, so no measured accuracy above that is evidence of a
better model. The test set is never cleaned silently: accuracy without the suspects is a
separate, labelled number (`accuracy_without_suspects`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from supremum.errors import UserError
from supremum.fsutil import write_bytes

METHOD = ("confident learning (Northcutt et al. 2021) with cleanlab: label-error rate = off-diagonal mass of the "
          "calibrated confident joint (cleanlab.count.estimate_joint); suspects from "
          "cleanlab.filter.find_label_issues (prune by noise rate), ranked by self-confidence; 95% percentile "
          "bootstrap over examples")


def _check(labels, pred_probs) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    p = np.asarray(pred_probs, dtype=float)
    if p.ndim != 2 or len(p) != len(labels) or p.shape[1] < 2:
        raise UserError(f"label noise needs an (examples x classes) probability matrix for {len(labels)} labels; "
                        f"got shape {p.shape}", "pass out-of-fold predicted probabilities, one row per example")
    if not np.issubdtype(labels.dtype, np.integer) or not (0 <= labels.min(initial=0) <= labels.max(initial=0)
                                                           < p.shape[1]):
        raise UserError(f"labels must be class ids in 0..{p.shape[1] - 1}", "map label names to ids first")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-3) or (p < 0).any():
        raise UserError("predicted probabilities must be non-negative and sum to 1 per row",
                        "pass softmax outputs, not logits")
    counts = np.bincount(labels, minlength=p.shape[1])
    if (counts < 2).any():
        raise UserError(f"every class needs at least 2 examples to estimate its noise; counts {counts.tolist()}",
                        "score more examples")
    return labels.astype(int), p


def noise_rate(labels, pred_probs) -> float:
    """Estimated share of examples whose given label is wrong: 1 - trace of the calibrated confident
    joint Q(given, true) (Northcutt et al. 2021, sec. 3.1-3.2)."""
    from cleanlab.count import estimate_joint

    labels, p = _check(labels, pred_probs)
    return float(1.0 - np.trace(estimate_joint(labels, p)))


def estimate_label_noise(labels, pred_probs, *, resamples: int = 200, level: float = 0.95, seed: int = 0) -> dict:
    """Label-error rate with a bootstrap interval, the suspects, and the most a test set can show.

    labels: (n,) given class ids; pred_probs: (n, k) out-of-fold probabilities. Returns a dict:
    rate, ci, examples, suspects (row indices, most suspicious first), suggested (argmax class per
    suspect), confidence (its probability), given_confidence (probability of the given label),
    max_accuracy and max_accuracy_ci (1 - rate), resamples, method. Raises UserError on bad shapes."""
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues

    labels, p = _check(labels, pred_probs)
    rate = float(1.0 - np.trace(estimate_joint(labels, p)))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        if (np.bincount(labels[idx], minlength=p.shape[1]) < 2).any():
            continue  # a class vanished from the draw: its noise is not estimable there
        draws.append(1.0 - np.trace(estimate_joint(labels[idx], p[idx])))
    q = (1 - level) / 2
    ci = [float(np.quantile(draws, q)), float(np.quantile(draws, 1 - q))] if draws else [rate, rate]
    rows = find_label_issues(labels, p, return_indices_ranked_by="self_confidence")
    suggested = p[rows].argmax(axis=1)
    return {"rate": rate, "ci": ci, "level": level, "examples": int(len(labels)), "resamples": len(draws),
            "suspects": rows.tolist(), "suggested": suggested.tolist(),
            "confidence": p[rows, suggested].tolist(), "given_confidence": p[rows, labels[rows]].tolist(),
            "max_accuracy": 1.0 - rate, "max_accuracy_ci": [1.0 - ci[1], 1.0 - ci[0]], "method": METHOD}


def write_suspects(path: str | Path, result: dict, texts, labels, label_names: list[str] | None = None) -> Path:
    """The suspects as CSV (row, text, given_label, suggested_label, confidence, given_label_confidence),
    most suspicious first; written to a temporary name and renamed, so it is complete or absent."""
    name = (lambda i: label_names[i]) if label_names else (lambda i: str(i))
    labels = np.asarray(labels)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "text", "given_label", "suggested_label", "confidence", "given_label_confidence"])
    for row, sug, conf, given in zip(result["suspects"], result["suggested"], result["confidence"],
                                     result["given_confidence"], strict=True):
        w.writerow([row, texts[row], name(int(labels[row])), name(int(sug)), f"{conf:.4f}", f"{given:.4f}"])
    write_bytes(path, buf.getvalue().encode())
    return Path(path)


def flag_quality(flagged, truly_wrong, n: int) -> dict:
    """Precision and recall of the flagged rows against rows known to be mislabeled (planted flips)."""
    f = np.zeros(n, dtype=bool)
    f[np.asarray(flagged, dtype=int)] = True
    t = np.zeros(n, dtype=bool)
    t[np.asarray(truly_wrong, dtype=int)] = True
    hits = int((f & t).sum())
    return {"flagged": int(f.sum()), "wrong": int(t.sum()), "hits": hits,
            "precision": hits / f.sum() if f.any() else float("nan"),
            "recall": hits / t.sum() if t.any() else float("nan")}


def accuracy_without_suspects(predictions, labels, suspects) -> dict:
    """Accuracy on all rows and, separately, on the rows not flagged (never a replacement for the first)."""
    pred, lab = np.asarray(predictions), np.asarray(labels)
    keep = np.ones(len(lab), dtype=bool)
    keep[np.asarray(suspects, dtype=int)] = False
    return {"accuracy": float((pred == lab).mean()),
            "accuracy_without_suspects": float((pred[keep] == lab[keep]).mean()) if keep.any() else float("nan"),
            "rows_kept": int(keep.sum())}
