"""Optimizers and learning-rate schedules."""

from __future__ import annotations

import math

import torch

from supremum.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases and normalization weights are not decayed (standard since BERT).
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    # The fused kernel does the whole update in one pass per tensor (CPU support since torch 2.4);
    # on 2 cores it is measurably faster than the default multi-tensor (foreach) path.
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    if cfg.warmup_steps is not None:
        return min(cfg.warmup_steps, total_steps)
    return int(math.ceil(cfg.warmup_ratio * total_steps))


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return max(0.0, 1.0 - progress)


def set_lr(opt: torch.optim.Optimizer, peak: float, factor: float) -> float:
    for g in opt.param_groups:
        g["lr"] = peak * factor
    return peak * factor
