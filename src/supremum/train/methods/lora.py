"""LoRA through PEFT: low-rank updates on linear layers, the task head trained fully; rsLoRA
(scale alpha/sqrt(r)) and DoRA (magnitude/direction decomposition) as options."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.train.methods import MethodConfig, peft_common, register

if TYPE_CHECKING:
    from torch import nn


class LoraConfig(MethodConfig):
    name: Literal["lora"] = "lora"
    words: ClassVar[str | None] = "LoRA fine-tune"
    # LoRA's few parameters need a far higher step size than full fine-tuning.
    default_lr: ClassVar[float] = 1e-3
    r: int = Field(8, ge=1, description="rank of the low-rank update")
    alpha: float = Field(16.0, gt=0, description="scaling numerator: the update is scaled by alpha/r")
    # 0, PEFT's own default: with dropout, each step draws a mask for the input of every adapted
    # module, which made LoRA slower than full fine-tuning on CPUs (bench/profile_step.py: the top
    # op of a LoRA step), and at 3 epochs on SST-2 dropout 0 was also 1.0 pt more accurate
    # (docs/benchmarks/finetune-sst2.md). Before 2026-11-30 it was 0.1; configs that leave it unset
    # now hash differently from those runs, as their meaning changed.
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input (0: PEFT's default and "
                           "the fastest; LoRA papers used 0.05-0.1)")
    target_modules: list[str] | str = Field(
        "all-linear", description="module names to adapt, or 'all-linear' (every linear but the head)"
    )
    rslora: bool = Field(False, description="rank-stabilized scaling alpha/sqrt(r) (rsLoRA)")
    dora: bool = Field(False, description="weight-decomposed LoRA (DoRA): also learn a per-column magnitude")
    merge: bool = Field(True, description="merge the update into the base weights on save "
                        "(the adapter alone is saved next to it as <output>-adapter)")


@register(LoraConfig)
class Lora(peft_common.Mergeable):
    @staticmethod
    def apply(model: nn.Module, cfg: LoraConfig, total_steps: int) -> nn.Module:
        import peft

        return peft_common.wrap(model, peft.LoraConfig(
            task_type=peft_common.task_type(model), r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
            target_modules=cfg.target_modules, use_rslora=cfg.rslora, use_dora=cfg.dora))


