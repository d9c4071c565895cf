"""Iterative structured pruning: prune a little, recover by distillation from the unpruned
model, repeat until a size target or an accuracy floor. Removing a lot at once destroys what
recovery needs to start from; small steps with recovery in between keep more accuracy."""

from __future__ import annotations

import copy

from supremum.compress.configs import DistillConfig, FfnConfig, HeadsConfig, ScheduleConfig
from supremum.compress.distill import recover
from supremum.compress.prune import prune_ffn, prune_heads, shapes_transform
from supremum.compress.registry import Compressed, register


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _prune_round(model, cfg: ScheduleConfig, ctx) -> None:
    if cfg.prune in ("heads", "both"):
        prune_heads(model, HeadsConfig(amount=cfg.step, score=cfg.score,
                                       calibration_size=cfg.calibration_size), ctx)
    if cfg.prune in ("ffn", "both"):
        prune_ffn(model, FfnConfig(amount=cfg.step, score=cfg.score,
                                   calibration_size=cfg.calibration_size), ctx)


@register(ScheduleConfig)
def prune_iterative(model, cfg: ScheduleConfig, ctx) -> Compressed:
    teacher = copy.deepcopy(model).eval()
    start = _params(model)
    n_layers = model.config.num_hidden_layers
    dcfg = DistillConfig(epochs=cfg.recover_epochs, max_steps=cfg.recover_max_steps, lr=cfg.lr, bf16=cfg.bf16)
    rounds, stop = [], "max_rounds"
    for r in range(cfg.max_rounds):
        previous = copy.deepcopy(model)
        _prune_round(model, cfg, ctx)
        rec = recover(model, teacher, list(range(n_layers)), ctx, dcfg)
        ratio = _params(model) / start
        rounds.append({"round": r + 1, "params_ratio": ratio, "dev_accuracy": rec["dev_accuracy"],
                       "steps": rec["steps"]})
        if cfg.min_accuracy is not None and rec["dev_accuracy"] is not None \
                and rec["dev_accuracy"] < cfg.min_accuracy:
            model, stop = previous, "accuracy floor (last round undone)"
            rounds[-1]["undone"] = True
            break
        if cfg.target_params is not None and ratio <= cfg.target_params:
            stop = "size target"
            break
    return Compressed(model, [shapes_transform(model)],
                      {"rounds": rounds, "stopped_by": stop, "params_ratio": _params(model) / start})
