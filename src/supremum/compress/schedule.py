"""Iterative structured pruning: prune a little, recover by distillation from the unpruned
model, repeat until a size target or an accuracy floor. Removing a lot at once destroys what
recovery needs to start from; small steps with recovery in between keep more accuracy."""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import Field, model_validator

from supremum.compress import Compressed, register
from supremum.compress.distill import DistillConfig, recover
from supremum.compress.prune import FfnConfig, HeadsConfig, ScoredConfig, prune_ffn, prune_heads, shapes_transform


class ScheduleConfig(ScoredConfig):
    method: Literal["prune-iterative"] = "prune-iterative"
    prune: Literal["ffn", "heads", "both"] = Field("both", description="what each round removes")
    step: float = Field(0.2, gt=0, lt=1, description="share of the remaining heads/neurons removed "
                        "per round")
    target_params: float | None = Field(None, gt=0, lt=1, description="stop once the model has this "
                                        "share of the parent's parameters")
    min_accuracy: float | None = Field(None, gt=0, le=1, description="dev-accuracy floor: the round "
                                       "that falls below it is undone and the schedule stops")
    max_rounds: int = Field(4, ge=1, description="at most this many prune+recover rounds")
    recover_epochs: float = Field(1.0, gt=0, description="distillation epochs after each round")
    recover_max_steps: int | None = Field(None, ge=1, description="cap on recovery steps per round")
    lr: float = Field(1e-4, gt=0, description="recovery learning rate")
    bf16: bool = Field(False, description="bfloat16 autocast during recovery")

    @model_validator(mode="after")
    def _stop_rule(self):
        if self.target_params is None and self.min_accuracy is None:
            raise ValueError("set target_params, min_accuracy or both")
        return self


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _prune_round(model, cfg: ScheduleConfig, ctx) -> None:
    if cfg.prune in ("heads", "both"):
        prune_heads(model, HeadsConfig(amount=cfg.step, score=cfg.score,
                                       calibration_size=cfg.calibration_size), ctx)
    if cfg.prune in ("ffn", "both"):
        prune_ffn(model, FfnConfig(amount=cfg.step, score=cfg.score,
                                   calibration_size=cfg.calibration_size), ctx)


@register(ScheduleConfig, "prune heads/neurons in small steps, distilling after each, to a size "
          "target or accuracy floor")
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
