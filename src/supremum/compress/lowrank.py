"""Low-rank factorization: each linear W (out x in) becomes U_r S_r V_r^T, stored as two thin
linears, then a short recovery by distillation from the unfactorized model."""

from __future__ import annotations

import copy

import torch

from supremum.backends.modules import LowRankLinear, body_linears, get_module, set_module
from supremum.compress.configs import DistillConfig, LowRankConfig
from supremum.compress.distill import recover
from supremum.compress.registry import Compressed, register
from supremum.errors import UserError


def _rank(s: torch.Tensor, cfg: LowRankConfig) -> int:
    if cfg.rank is not None:
        return min(cfg.rank, len(s))
    energy = torch.cumsum(s**2, 0) / (s**2).sum()
    return int(torch.searchsorted(energy, torch.tensor(cfg.energy)).item()) + 1


def factorize(lin: torch.nn.Linear, rank: int) -> LowRankLinear:
    u, s, vh = torch.linalg.svd(lin.weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()  # split the singular values evenly between the two factors
    new = LowRankLinear(lin.in_features, lin.out_features, rank, lin.bias is not None)
    with torch.no_grad():
        new.up.weight.copy_((u[:, :rank] * root).float())
        new.down.weight.copy_((root[:, None] * vh[:rank]).float())
        if lin.bias is not None:
            new.up.bias.copy_(lin.bias)
    return new


@register(LowRankConfig)
def lowrank(model, cfg: LowRankConfig, ctx) -> Compressed:
    teacher = copy.deepcopy(model).eval() if cfg.recover_epochs > 0 else None
    before = sum(p.numel() for p in model.parameters())
    ranks, skipped = {}, []
    for name in body_linears(model):
        lin = get_module(model, name)
        r = _rank(torch.linalg.svdvals(lin.weight.detach().double()), cfg)
        if r * (lin.in_features + lin.out_features) >= lin.in_features * lin.out_features:
            skipped.append(name)  # no saving at this rank: keep the dense layer
            continue
        set_module(model, name, factorize(lin, r))
        ranks[name] = r
    if not ranks:
        raise UserError("lowrank: no layer gets smaller at this rank/energy",
                        "use a lower rank or energy")
    report = {"factorized_layers": len(ranks), "kept_dense": len(skipped), "ranks": ranks,
              "params_ratio": sum(p.numel() for p in model.parameters()) / before}
    if teacher is not None:
        dcfg = DistillConfig(epochs=cfg.recover_epochs, max_steps=cfg.recover_max_steps, lr=cfg.lr,
                             bf16=cfg.bf16)
        n = len(_layers(model))
        report["recovery"] = recover(model, teacher, list(range(n)), ctx, dcfg)
    return Compressed(model, [{"kind": "lowrank", "ranks": ranks}], report)


def _layers(model) -> list:
    from supremum.compress import arch

    return list(arch.layer_list(model)[1])
