"""Batched inference shared by training-time evaluation, `eval` and latency measurement."""

from __future__ import annotations

import numpy as np
import torch

from supremum import device
from supremum.data.batching import collate, eval_order


@torch.inference_mode()
def predict_logits(model, ids: list[list[int]], pad_id: int, batch_size: int = 64,
                   bf16: bool = False) -> np.ndarray:
    """Logits in the original order of `ids`; batches are length-sorted to minimize padding."""
    was_training, where = model.training, device.of(model)
    model.eval()
    out: list[np.ndarray | None] = [None] * len(ids)
    for b in eval_order([len(x) for x in ids], batch_size):
        batch = device.to(collate([ids[i] for i in b], pad_id), where)
        with device.autocast(where, bf16):
            logits = model(**batch).logits.float().cpu().numpy()
        for row, i in enumerate(b):
            out[i] = logits[row]
    model.train(was_training)
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)
