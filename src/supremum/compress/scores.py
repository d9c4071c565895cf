"""Importance scores for structured pruning, computed on calibration data.

- magnitude: the L2 norm of the weights a unit owns (cheap, data-free).
- taylor: first-order estimate of the loss change when the unit is removed, |sum g * w| over the
  unit's output-projection weights, per batch, summed over batches (Molchanov et al. 2019;
  Michel et al. 2019's head importance is the same quantity for attention heads).
"""

from __future__ import annotations

import torch
from torch import nn

from supremum.compress import arch
from supremum.data.batching import batch_order, iterate


def _gradients(model: nn.Module, ctx, n: int, on_batch) -> None:
    """Run `n` calibration examples through the model with labels; call `on_batch` after each
    backward pass, with the gradients of that batch only."""
    train = ctx.encoded("train")
    idx = torch.randperm(len(train.ids), generator=torch.Generator().manual_seed(0))[:n].tolist()
    ids, lab = [train.ids[i][:128] for i in idx], [train.labels[i][:128] if ctx.is_lm else train.labels[i]
                                                   for i in idx]
    was = model.training
    model.eval()  # no dropout: scores must be deterministic
    for batch in iterate(ids, batch_order([len(x) for x in ids], 16, 0, 0, False),
                         ctx.tokenizer.pad_token_id, lab):
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        on_batch()
    model.zero_grad(set_to_none=True)
    model.train(was)


def head_scores(model: nn.Module, ctx, kind: str, n: int) -> torch.Tensor:
    """[layers, heads] importance."""
    _, layers = arch.layer_list(model)
    heads, d = model.config.num_attention_heads, arch.head_dim(model)
    outs = [model.get_submodule(arch.parts(model, i).o) for i in range(len(layers))]
    if kind == "magnitude":
        return torch.stack([o.weight.detach().reshape(o.out_features, heads, d).norm(dim=(0, 2))
                            for o in outs])
    total = torch.zeros(len(layers), heads)

    def add() -> None:
        for i, o in enumerate(outs):
            gw = (o.weight.grad * o.weight).detach().reshape(o.out_features, heads, d)
            total[i] += gw.sum(dim=(0, 2)).abs()

    _gradients(model, ctx, n, add)
    return total


def neuron_scores(model: nn.Module, ctx, kind: str, n: int) -> list[torch.Tensor]:
    """Per layer, [intermediate] importance of each feed-forward neuron."""
    _, layers = arch.layer_list(model)
    downs = [model.get_submodule(arch.parts(model, i).ffn_out) for i in range(len(layers))]
    if kind == "magnitude":
        return [d.weight.detach().norm(dim=0) for d in downs]
    totals = [torch.zeros(d.in_features) for d in downs]

    def add() -> None:
        for t, d in zip(totals, downs, strict=True):
            t += (d.weight.grad * d.weight).detach().sum(dim=0).abs()

    _gradients(model, ctx, n, add)
    return totals


def layer_scores(model: nn.Module, ctx, kind: str, n: int) -> torch.Tensor:
    """[layers] importance: the sum of a layer's head and neuron scores."""
    return head_scores(model, ctx, kind, n).sum(1) + torch.stack(
        [s.sum() for s in neuron_scores(model, ctx, kind, n)])
