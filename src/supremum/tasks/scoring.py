"""Dev scorers: one number for a model in its current state, higher is better (layer
sensitivity and the accuracy-budget search change a model in place and score it again)."""

from __future__ import annotations

import numpy as np

from supremum.infer import predict_logits


class AccuracyScorer:
    """Accuracy of a classifier on a fixed set of texts."""

    baseline_key = "baseline_accuracy"
    baseline_sign = 1.0  # reported baseline = sign x score
    unit = "accuracy points vs the unchanged model (negative: worse)"

    def __init__(self, model, tok, texts: list[str], labels: list[int], prep) -> None:
        self.model, self.pad = model, tok.pad_token_id
        self.ids, self.labels = prep.tokenize(tok, texts), np.asarray(labels)

    @property
    def size(self) -> int:
        return len(self.labels)

    def __call__(self) -> float:
        logits = predict_logits(self.model, self.ids, self.pad)
        return float((logits.argmax(-1) == self.labels).mean())


class LossScorer:
    """Minus the mean token NLL of a causal LM on fixed dev blocks; 100 x its change is about
    minus the percent change in perplexity."""

    baseline_key = "baseline_loss"
    baseline_sign = -1.0  # the score is minus the loss
    unit = ("-100 x change in dev loss (nats/token) vs the unchanged model, about minus the % change "
            "in perplexity (negative: worse)")

    def __init__(self, model, split) -> None:
        from supremum.lm.metrics import dev_scorer

        self.model, self.split, self.score = model, split, dev_scorer()

    @property
    def size(self) -> int:
        return len(self.split.ids)

    def __call__(self) -> float:
        return self.score(self.model, self.split)[0]
