"""Dev scorers: `(model, dev Split) -> (score, record)`, higher is better; the loop keeps the
best. Classifiers score accuracy here; causal LMs' scorer (dev loss) is lm.metrics.dev_scorer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from supremum.data.batching import Split
from supremum.infer import predict_logits


def accuracy_scorer(pad_id: int, bf16: bool | str) -> Callable:
    def score(model, dev: Split) -> tuple[float, dict]:
        logits = predict_logits(model, dev.ids, pad_id, bf16=bf16)
        acc = float((logits.argmax(-1) == np.asarray(dev.labels)).mean())
        return acc, {"dev_accuracy": acc}

    return score
