"""LoRA through PEFT: low-rank updates on linear layers, the task head trained fully."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from supremum.train.methods import MethodConfig, register


class LoraConfig(MethodConfig):
    name: Literal["lora"] = "lora"
    # LoRA's few parameters need a far higher step size than full fine-tuning.
    default_lr: ClassVar[float] = 1e-3
    r: int = Field(8, ge=1, description="rank of the low-rank update")
    alpha: float = Field(16.0, gt=0, description="scaling numerator: the update is scaled by alpha/r")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] | str = Field(
        "all-linear", description="module names to adapt, or 'all-linear' (every linear but the head)"
    )
    merge: bool = Field(True, description="merge the update into the base weights on save")


@register(LoraConfig)
class Lora:
    @staticmethod
    def apply(model: nn.Module, cfg: LoraConfig) -> nn.Module:
        import peft

        task = "SEQ_CLS" if _is_classifier(model) else "CAUSAL_LM"
        pcfg = peft.LoraConfig(
            task_type=task,
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=cfg.target_modules,
        )
        return peft.get_peft_model(model, pcfg)

    @staticmethod
    def finalize(model: nn.Module, cfg: LoraConfig) -> tuple[nn.Module, str]:
        if cfg.merge:
            return model.merge_and_unload(), "full"
        return model, "peft"


def _is_classifier(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")
