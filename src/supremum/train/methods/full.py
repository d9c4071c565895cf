"""Full fine-tuning: every weight trains."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from supremum.train.methods import MethodConfig, register

if TYPE_CHECKING:
    from torch import nn


class FullConfig(MethodConfig):
    name: Literal["full"] = "full"
    words: ClassVar[str | None] = "full fine-tune"
    # 1e-4 beat 5e-5 on SST-2 with MiniLM-L6 (HF Trainer reference: 88.5% vs 87.3%).
    default_lr: ClassVar[float] = 1e-4


@register(FullConfig)
class Full:
    @staticmethod
    def apply(model: nn.Module, cfg: FullConfig, total_steps: int) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    @staticmethod
    def finalize(model: nn.Module, cfg: FullConfig) -> tuple[nn.Module, str]:
        return model, "full"
