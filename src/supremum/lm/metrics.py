"""Language-model losses and perplexity.

Perplexity uses a strided sliding window (as in the transformers perplexity guide): windows of
`window` tokens start every `stride` tokens and each token is scored once, in the first window
that reaches it, so every token but the first `window - stride` sees at least that much context.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from supremum import device
from supremum.lm.data import IGNORE


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example summed next-token NLL and the number of predicted tokens: position t's
    logits predict label t+1; labels of -100 are not predicted."""
    logits, target = logits[:, :-1].float(), labels[:, 1:]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                          ignore_index=IGNORE, reduction="none").view(target.shape)
    return nll.sum(1), (target != IGNORE).sum(1)


def lm_loss(model, batch: dict, labels: torch.Tensor) -> torch.Tensor:
    """Sum over examples of each example's mean token NLL: the loop divides by the number of
    examples, so a step's loss is the mean per-token loss when examples are equal-length blocks."""
    total, count = token_nll(model(**batch).logits, labels)
    return (total / count.clamp(min=1)).sum()


def dev_scorer(batch_size: int = 8, bf16: bool = False) -> Callable:
    """Dev loss per predicted token over the dev blocks/examples; score = -loss (higher is better).
    bf16 False computes in the caller's autocast (the training loop's resolved precision), if any."""
    from supremum.data.batching import iterate

    @torch.inference_mode()
    def score(model, dev) -> tuple[float, dict]:
        was = model.training
        model.eval()
        nll, n = 0.0, 0
        order = [list(range(i, min(i + batch_size, len(dev.ids)))) for i in range(0, len(dev.ids), batch_size)]
        where = device.of(model)
        for batch in iterate(dev.ids, order, 0, dev.labels):
            batch = device.to(batch, where)
            labels = batch.pop("labels")
            with device.autocast(where, bf16):
                total, count = token_nll(model(**batch).logits, labels)
            nll, n = nll + float(total.sum()), n + int(count.sum())
        model.train(was)
        loss = nll / max(n, 1)
        return -loss, {"dev_loss": loss, "dev_perplexity": math.exp(min(loss, 50.0))}

    return score


def windows(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first scored position) of each window; positions 1..length-1 scored once,
    each after at least one token of its own window (start < first scored position: a window's
    first token has no logits predicting it). The stride is at most window - 1 for that reason."""
    stride = max(1, min(stride, window - 1))
    out, done = [], 1
    for start in range(0, max(length - 1, 1), stride):
        end = min(start + window, length)
        if end > done:
            out.append((start, end, done))
            done = end
        if end == length:
            break
    return out


@torch.inference_mode()
def perplexity(model, ids: list[int], window: int, stride: int, batch_size: int = 4) -> dict:
    """Summed NLL (nats) and the count of scored tokens over `ids` (any model whose call returns
    `.logits` for every position: PyTorch, ONNX Runtime or llama.cpp backends)."""
    if len(ids) < 2:
        raise ValueError("perplexity needs at least two tokens")
    stride = max(1, min(stride, window - 1))  # as `windows` takes it: reported as used
    spans = windows(len(ids), window, stride)
    nll, n = 0.0, 0
    for i in range(0, len(spans), batch_size):
        group = spans[i : i + batch_size]
        width = max(e - s for s, e, _ in group)
        x = torch.zeros((len(group), width), dtype=torch.long)
        mask = torch.zeros_like(x)
        labels = torch.full_like(x, IGNORE)
        for r, (s, e, first) in enumerate(group):
            x[r, : e - s] = torch.tensor(ids[s:e])
            mask[r, : e - s] = 1
            labels[r, first - s : e - s] = x[r, first - s : e - s]
        total, count = token_nll(model(input_ids=x, attention_mask=mask).logits, labels)
        nll, n = nll + float(total.sum()), n + int(count.sum())
    return {"nll": nll, "tokens": n, "loss": nll / n, "perplexity": math.exp(nll / n),
            "window": window, "stride": stride, "windows": len(spans)}
