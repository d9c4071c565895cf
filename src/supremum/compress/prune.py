"""Pruning: unstructured magnitude (zeros, stored compactly; no speed-up on dense kernels) and
structured (attention heads, feed-forward neurons, whole layers physically removed, giving a
smaller dense model whose new layer shapes go into the manifest).
"""

from __future__ import annotations

import torch
from torch import nn

from supremum.backends.modules import body_linears, get_module, set_module
from supremum.compress import arch
from supremum.compress.configs import DropLayersConfig, FfnConfig, HeadsConfig, MagnitudeConfig
from supremum.compress.registry import Compressed, register
from supremum.compress.scores import head_scores, layer_scores, neuron_scores
from supremum.errors import UserError


@register(MagnitudeConfig)
def prune_magnitude(model: nn.Module, cfg: MagnitudeConfig, ctx) -> Compressed:
    names = body_linears(model)
    weights = [get_module(model, n).weight for n in names]
    if cfg.scope == "global":
        allw = torch.cat([w.detach().abs().flatten() for w in weights])
        cut = torch.kthvalue(allw, max(1, int(cfg.sparsity * allw.numel()))).values
        thresholds = [cut] * len(weights)
    else:
        thresholds = [torch.kthvalue(w.detach().abs().flatten(), max(1, int(cfg.sparsity * w.numel()))).values
                      for w in weights]
    with torch.no_grad():
        for w, t in zip(weights, thresholds, strict=True):
            w[w.abs() <= t] = 0.0
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    tensors = [f"{n}.weight" for n in names]
    return Compressed(model, [{"kind": "sparse", "tensors": tensors}],
                      {"sparsity": zeros / total, "pruned_layers": len(names), "scope": cfg.scope,
                       "note": "zeros in dense weights: dense kernels run as fast as before; the "
                               "artifact stores only non-zero values plus a bit mask"})


def _keep_rows(lin: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    new = nn.Linear(lin.in_features, len(rows), bias=lin.bias is not None)
    with torch.no_grad():
        new.weight.copy_(lin.weight[rows])
        if lin.bias is not None:
            new.bias.copy_(lin.bias[rows])
    return new


def _keep_cols(lin: nn.Linear, cols: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(cols), lin.out_features, bias=lin.bias is not None)
    with torch.no_grad():
        new.weight.copy_(lin.weight[:, cols])
        if lin.bias is not None:
            new.bias.copy_(lin.bias)
    return new


def _resize(model: nn.Module, rows: dict[str, torch.Tensor], cols: dict[str, torch.Tensor]) -> None:
    for name, idx in rows.items():
        set_module(model, name, _keep_rows(get_module(model, name), idx))
    for name, idx in cols.items():
        set_module(model, name, _keep_cols(get_module(model, name), idx))


def shapes_transform(model: nn.Module) -> dict:
    """The shape of every linear layer: it replaces any earlier resize (layer indices may have
    moved), so replaying it on the saved config's skeleton always gives this architecture."""
    return {"kind": "resize", "shapes": {n: list(m.weight.shape) for n, m in model.named_modules()
                                         if type(m) is nn.Linear}}


@register(HeadsConfig)
def prune_heads(model: nn.Module, cfg: HeadsConfig, ctx) -> Compressed:
    arch.check_heads_prunable(model)
    d = arch.head_dim(model)
    scores = head_scores(model, ctx, cfg.score, cfg.calibration_size)
    kept = _current_heads(model, d)
    flat = [(float(scores[i, h]), i, h) for i in range(len(kept)) for h in range(kept[i])]
    n_remove = int(cfg.amount * len(flat))
    remove: dict[int, set[int]] = {}
    for _, i, h in sorted(flat):
        if n_remove == 0:
            break
        if kept[i] - len(remove.get(i, ())) > 1:
            remove.setdefault(i, set()).add(h)
            n_remove -= 1
    rows, cols = {}, {}
    for i, heads in remove.items():
        keep_h = [h for h in range(kept[i]) if h not in heads]
        idx = torch.tensor([h * d + j for h in keep_h for j in range(d)])
        p = arch.parts(model, i)
        rows.update({p.q: idx, p.k: idx, p.v: idx})
        cols[p.o] = idx
    _resize(model, rows, cols)
    after = _current_heads(model, d)
    return Compressed(model, [shapes_transform(model)],
                      {"heads_before": sum(kept), "heads_after": sum(after), "heads_per_layer": after,
                       "score": cfg.score, "removed": {str(i): sorted(h) for i, h in remove.items()}})


def _current_heads(model: nn.Module, d: int) -> list[int]:
    _, layers = arch.layer_list(model)
    return [get_module(model, arch.parts(model, i).q).out_features // d for i in range(len(layers))]


@register(FfnConfig)
def prune_ffn(model: nn.Module, cfg: FfnConfig, ctx) -> Compressed:
    scores = neuron_scores(model, ctx, cfg.score, cfg.calibration_size)
    rows, cols, before, after = {}, {}, [], []
    for i, s in enumerate(scores):
        keep = max(1, round(len(s) * (1 - cfg.amount)))
        idx = torch.sort(torch.topk(s, keep).indices).values
        p = arch.parts(model, i)
        rows.update(dict.fromkeys(p.ffn_in, idx))
        cols[p.ffn_out] = idx
        before.append(len(s))
        after.append(keep)
    _resize(model, rows, cols)
    return Compressed(model, [shapes_transform(model)],
                      {"neurons_before": before, "neurons_after": after, "score": cfg.score})


@register(DropLayersConfig)
def drop_layers(model: nn.Module, cfg: DropLayersConfig, ctx) -> Compressed:
    path, layers = arch.layer_list(model)
    n = len(layers)
    keep = cfg.keep if cfg.keep is not None else _choose(model, cfg, ctx, n)
    if not keep or any(i < 0 or i >= n for i in keep) or len(set(keep)) != len(keep):
        raise UserError(f"drop-layers: keep={keep} must be distinct layer indices in 0..{n - 1}",
                        "e.g. keep=[1,3,5] or num_layers=3")
    keep = sorted(keep)
    new = nn.ModuleList([layers[i] for i in keep])
    for j, layer in enumerate(new):
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = j  # the KV cache is indexed by position in the stack
    set_module(model, path, new)
    model.config.num_hidden_layers = len(keep)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[i] for i in keep]
    return Compressed(model, [shapes_transform(model)], {"layers_before": n, "layers_kept": keep})


def _choose(model: nn.Module, cfg: DropLayersConfig, ctx, n: int) -> list[int]:
    k = cfg.num_layers
    if k is None:
        raise UserError("drop-layers needs keep=[...] or num_layers=N", "e.g. num_layers=3")
    if k > n:
        raise UserError(f"drop-layers: num_layers={k} but the model has {n}", f"use at most {n}")
    if cfg.choose == "importance":
        s = layer_scores(model, ctx, "taylor", cfg.calibration_size)
        return sorted(torch.topk(s, k).indices.tolist())
    # Evenly spaced, ending at the last layer (whose output the head was trained on).
    return sorted({round(n - 1 - j * n / k) for j in range(k)})
