"""Batch surgery on a transformers `DynamicCache`: the running batch of the generation engine is
one left-padded cache, re-formed only when a sequence joins or leaves (supremum.serve.engine).

Every layer holds keys and values of shape [batch, kv_heads, length, head_dim]; padding is zeros
on the left of `length`, hidden from attention by the batch's 2-D attention mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batchable(cache) -> bool:
    """True when every layer is a plain `DynamicLayer` (full attention, no sliding window, no
    quantized or offloaded layers): those are the layers whose tensors this module may reshape."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(x) is DynamicLayer for x in layers)


def pad_left(cache, n: int) -> None:
    """Prepend `n` zero positions to every layer (n >= 0)."""
    if n:
        for x in cache.layers:
            x.keys, x.values = F.pad(x.keys, (0, 0, n, 0)), F.pad(x.values, (0, 0, n, 0))


def concat(cache, other) -> None:
    """Append the rows of `other` (same length) to `cache`, in place."""
    for x, y in zip(cache.layers, other.layers, strict=True):
        x.keys, x.values = torch.cat([x.keys, y.keys]), torch.cat([x.values, y.values])


def select(cache, rows: torch.Tensor) -> None:
    """Keep only `rows` (indices into the batch), in that order."""
    for x in cache.layers:
        x.keys, x.values = x.keys[rows], x.values[rows]


def cut_left(cache, n: int) -> None:
    """Drop the first `n` positions of every layer (padding in every remaining row)."""
    if n:
        for x in cache.layers:
            x.keys, x.values = x.keys[:, :, n:], x.values[:, :, n:]
