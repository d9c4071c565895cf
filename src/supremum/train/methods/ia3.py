"""IA3 through PEFT: learned per-channel scaling of keys, values and the feed-forward output
(PEFT's per-architecture default targets); merges exactly into the scaled weights."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from supremum.train.methods import MethodConfig, peft_common, register


class IA3Config(MethodConfig):
    name: Literal["ia3"] = "ia3"
    # T-Few trained IA3 at 3e-3; its vectors start at 1 and move little per step.
    default_lr: ClassVar[float] = 3e-3
    merge: bool = Field(True, description="merge the scalings into the weights on save "
                        "(adapter saved alongside)")


@register(IA3Config)
class IA3:
    @staticmethod
    def apply(model: nn.Module, cfg: IA3Config, total_steps: int) -> nn.Module:
        import peft

        return peft_common.wrap(model, peft.IA3Config(task_type=peft_common.task_type(model)))

    @staticmethod
    def adapter_only(model, cfg: IA3Config):
        return peft_common.adapter_only(model, cfg.merge)

    @staticmethod
    def finalize(model: nn.Module, cfg: IA3Config) -> tuple[nn.Module, str]:
        return peft_common.finalize(model, cfg.merge)
