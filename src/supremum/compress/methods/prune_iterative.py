"""Iterative structured pruning: prune a little, recover by distillation from the unpruned
model, repeat until a size target or an accuracy floor. Removing a lot at once destroys what
recovery needs to start from; small steps with recovery in between keep more accuracy.

Built from the head/FFN pruning and distillation of `supremum.compress` and stored with their
transform kind (`resize`), so this file is the whole method."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from supremum.compress.configs import ScoredConfig
from supremum.compress.registry import Compressed, compressor, register


@compressor("structural", "prune heads/neurons in small steps, distilling after each, to a size "
            "target or accuracy floor", words="iterative pruning")
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
    from supremum.compress.configs import FfnConfig, HeadsConfig
    from supremum.compress.prune import prune_ffn, prune_heads  # torch: only when the method runs

    if cfg.prune in ("heads", "both"):
        prune_heads(model, HeadsConfig(amount=cfg.step, score=cfg.score,
                                       calibration_size=cfg.calibration_size), ctx)
    if cfg.prune in ("ffn", "both"):
        prune_ffn(model, FfnConfig(amount=cfg.step, score=cfg.score,
                                   calibration_size=cfg.calibration_size), ctx)


@register(ScheduleConfig)
def prune_iterative(model, cfg: ScheduleConfig, ctx) -> Compressed:
    """Rounds of `_prune_round` then distillation from the unpruned model (a deep copy), until
    `target_params` (share of the start's parameters) is reached, a round's dev accuracy falls
    below `min_accuracy` (that round undone), or `max_rounds`. Report: each round's parameter
    ratio, dev accuracy and steps, and what stopped it."""
    import copy

    from supremum.compress.configs import DistillConfig
    from supremum.compress.distill import recover
    from supremum.compress.prune import shapes_transform

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
