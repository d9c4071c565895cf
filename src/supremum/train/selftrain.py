"""Self-training with pseudo-labels (Scudder 1965; Lee 2013, "Pseudo-Label"; Xie et al. 2020,
"Noisy Student", regenerate the labels with each new model): train on the labelled data, label the
unlabelled texts with the model, add those whose predicted class has probability >= threshold
(optionally the same number per class, the most confident first), and train again from the base
model on labelled + pseudo-labelled rows; each round relabels the whole unlabelled pool with the
latest model (the pseudo-labels do not accumulate over rounds).

The loop is method-agnostic: it gets a `retrain(data, round)` that runs whatever the fine-tune runs
(the training loop, or a method's own `fit`) and a `probabilities(model)` over the unlabelled texts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from supremum.config import SelfTrainingConfig, TrainConfig
from supremum.data import TaskData
from supremum.train.loop import plan_steps


def softmax(logits: np.ndarray) -> np.ndarray:
    """(n, classes) probabilities in float64 from (n, classes) logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def select(probs: np.ndarray, threshold: float, max_per_round: int | None, balance: bool) -> np.ndarray:
    """Row indices (ascending) of `probs` (n, classes) to pseudo-label with their argmax: rows whose
    largest probability is >= `threshold`; with `balance`, the k most confident of each predicted
    class, k = the fewest any class has above the threshold (0 when a class has none); at most
    `max_per_round` in all (balanced: max_per_round // classes per class), the most confident first
    (ties: the earlier row)."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    above = np.flatnonzero(conf >= threshold)
    above = above[np.argsort(-conf[above], kind="stable")]
    if balance:
        per_class = [above[pred[above] == c] for c in range(probs.shape[1])]
        k = min(len(p) for p in per_class)
        if max_per_round is not None:
            k = min(k, max_per_round // probs.shape[1])
        chosen = np.concatenate([p[:k] for p in per_class])
    else:
        chosen = above[:max_per_round] if max_per_round is not None else above
    return np.sort(chosen).astype(np.int64)


def round_train(train: TrainConfig, rule: str, n_rows: int, world: int = 1) -> TrainConfig:
    """The train settings of a pseudo-label round over `n_rows` labelled + pseudo-labelled rows
    (SelfTrainingConfig.round_steps): `same` or no max_steps: `train` itself; `epochs`: max_steps
    raised to train.epochs passes over the rows when that is more (an eval_every at or past the old
    max_steps, i.e. one evaluation at the end, follows it)."""
    if rule == "same" or not train.max_steps:
        return train
    _, steps = plan_steps(n_rows, train.model_copy(update={"max_steps": None}), world)
    if steps <= train.max_steps:
        return train
    update: dict[str, Any] = {"max_steps": steps}
    if train.eval_every is not None and train.eval_every >= train.max_steps:
        update["eval_every"] = steps
    return train.model_copy(update=update)


def with_pseudo_labels(data: TaskData, texts: list[str], rows: np.ndarray, labels: np.ndarray) -> TaskData:
    """`data` whose train split also holds texts[rows] with label ids labels[rows] (after the
    labelled rows); dev and test unchanged."""
    pseudo = pd.DataFrame({"text": [texts[i] for i in rows], "label": labels[rows].astype("int64")})
    train = pd.concat([data.splits["train"][["text", "label"]], pseudo], ignore_index=True)
    return TaskData({**data.splits, "train": train}, data.label_names, dict(data.info))


def self_train(cfg: SelfTrainingConfig, data: TaskData, texts: list[str], first: tuple[Any, Any],
               retrain: Callable[[TaskData, int], tuple[Any, Any]],
               probabilities: Callable[[Any], np.ndarray]) -> tuple[Any, Any, dict]:
    """Run cfg.rounds rounds after `first` = (model, TrainResult) trained on `data` alone.
    Returns the kept round's (model, TrainResult) and the record: the settings, per round the
    rows added (in all and per class), the texts above the threshold, the least confidence
    added, the dev accuracy, steps and training seconds; which round was kept and why; the
    seconds spent scoring the unlabelled texts; and `stopped_because` when a round found no text
    to add, which ends the rounds there (retraining on the same rows would only repeat the
    first training: scikit-learn's SelfTrainingClassifier stops the same way, "no_change")."""
    model, result = first
    rounds = [_round(0, result, data, None, None, None)]
    kept, stopped, scoring = (0, model, result), None, 0.0
    for r in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        probs = probabilities(model)
        scoring += time.perf_counter() - t0
        rows = select(probs, cfg.threshold, cfg.max_per_round, cfg.balance)
        if not len(rows):
            stopped = _no_change(r, probs, cfg)
            break
        model, result = retrain(with_pseudo_labels(data, texts, rows, probs.argmax(axis=1)), r)
        rounds.append(_round(r, result, data, probs, rows, cfg.threshold))
        if cfg.keep == "last" or _score(result) > _score(kept[2]):
            kept = (r, model, result)
    record = {**cfg.model_dump(mode="json"), "unlabeled_texts": len(texts), "rounds_run": rounds,
              "kept_round": kept[0],
              "kept_because": "last round" if cfg.keep == "last" else "best dev accuracy (earlier round on a tie)",
              "scoring_seconds": round(scoring, 3), "stopped_because": stopped}
    return kept[1], kept[2], record


def _no_change(r: int, probs: np.ndarray, cfg: SelfTrainingConfig) -> str:
    """Why round `r` found no text to pseudo-label."""
    above = int((probs.max(axis=1) >= cfg.threshold).sum())
    if not above:
        return (f"round {r}: no unlabelled text reached the threshold {cfg.threshold} (highest confidence "
                f"{float(probs.max()):.3f}); the rounds stopped there")
    return (f"round {r}: {above:,} texts reached the threshold {cfg.threshold}, but a class had none and "
            "balance takes the same number from every class; the rounds stopped there")


def total_seconds(record: dict) -> float:
    """Every round's training and the scoring of the unlabelled texts: what self-training cost."""
    return sum(r["train_seconds"] for r in record["rounds_run"]) + record["scoring_seconds"]


def _score(result) -> float:
    s = result.state.best_score
    return float("-inf") if s is None else s


def _round(r: int, result, data: TaskData, probs: np.ndarray | None, rows: np.ndarray | None,
           threshold: float | None) -> dict:
    names = data.label_names
    added = probs.argmax(axis=1)[rows] if rows is not None else np.zeros(0, dtype=np.int64)
    counts = np.bincount(added, minlength=len(names))
    conf = probs.max(axis=1) if probs is not None else np.zeros(0)
    return {"round": r, "pseudo_labelled": int(len(added)),
            "per_class": {n: int(c) for n, c in zip(names, counts, strict=True)},
            "above_threshold": int((conf >= threshold).sum()) if threshold is not None else None,
            "min_confidence": float(conf[rows].min()) if rows is not None and len(rows) else None,
            "dev_accuracy": result.state.best_score, "steps": result.state.step,
            "train_seconds": round(result.train_seconds, 3)}
