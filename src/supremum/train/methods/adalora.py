"""AdaLoRA through PEFT: LoRA whose rank budget is reallocated during training by an
importance score (SVD-form updates, pruned from init_r down to target_r on average)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.train.methods import MethodConfig, peft_common, register

if TYPE_CHECKING:
    from torch import nn


class AdaLoraConfig(MethodConfig):
    name: Literal["adalora"] = "adalora"
    words: ClassVar[str | None] = "AdaLoRA fine-tune"
    default_lr: ClassVar[float] = 1e-3
    init_r: int = Field(12, ge=1, description="rank of every update at the start")
    target_r: int = Field(8, ge=1, description="average rank after budget allocation")
    alpha: float = Field(32.0, gt=0, description="scaling numerator")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter input")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="share of steps before pruning starts (tinit)")
    final_fraction: float = Field(0.2, ge=0, lt=1, description="share of steps at the end with a fixed "
                                  "budget (tfinal)")
    target_modules: list[str] | str = Field("all-linear", description="module names to adapt")
    merge: bool = Field(True, description="merge into the base weights on save (adapter saved alongside)")


@register(AdaLoraConfig)
class AdaLora(peft_common.Mergeable):
    @staticmethod
    def apply(model: nn.Module, cfg: AdaLoraConfig, total_steps: int) -> nn.Module:
        import peft

        tinit = int(cfg.warmup_fraction * total_steps)
        tfinal = min(int(cfg.final_fraction * total_steps), max(0, total_steps - tinit - 1))
        return peft_common.wrap(model, peft.AdaLoraConfig(
            task_type=peft_common.task_type(model), init_r=cfg.init_r, target_r=cfg.target_r,
            lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules,
            total_step=total_steps, tinit=tinit, tfinal=tfinal, deltaT=max(1, total_steps // 50)))

    @staticmethod
    def after_step(model, step: int) -> None:
        # Budget reallocation reads the gradients of this step, so it runs before they are cleared.
        model.base_model.update_and_allocate(step)

    @staticmethod
    def adapter_only(model, cfg: AdaLoraConfig):
        import warnings

        # Ranks pruned to zero are AdaLoRA working as designed; PEFT's save check reads them as
        # un-gathered DeepSpeed shards and warns about sharding the user never used.
        warnings.filterwarnings("ignore", message=r".*LoRA tensor\(s\) have invalid shape.*")
        return peft_common.Mergeable.adapter_only(model, cfg)

