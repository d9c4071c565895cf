"""Low-rank factorization: each linear W (out x in) becomes U_r S_r V_r^T, stored as two thin
linears, then a short recovery by distillation from the unfactorized model."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import Field, model_validator

from supremum.backends.modules import LowRankLinear, body_linears, get_module, set_module
from supremum.compress import CompressConfig, Compressed, register
from supremum.compress.distill import DistillConfig, recover
from supremum.errors import UserError


class LowRankConfig(CompressConfig):
    method: Literal["lowrank"] = "lowrank"
    rank: int | None = Field(None, ge=1, description="rank kept in every factorized layer")
    energy: float | None = Field(None, gt=0, le=1, description="keep the smallest rank whose singular "
                                 "values hold this share of the squared spectrum (per layer)")
    recover_epochs: float = Field(1.0, ge=0, description="recovery epochs of distillation from the "
                                  "unfactorized model (0: none)")
    recover_max_steps: int | None = Field(None, ge=1, description="cap on recovery steps")
    lr: float = Field(1e-4, gt=0, description="recovery learning rate")
    bf16: bool = Field(False, description="bfloat16 autocast during recovery")

    @model_validator(mode="after")
    def _one_target(self):
        if (self.rank is None) == (self.energy is None):
            raise ValueError("set exactly one of rank or energy")
        return self


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


@register(LowRankConfig, "SVD-factorize linear layers to a rank or retained energy, then recover")
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
