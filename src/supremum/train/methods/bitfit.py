"""BitFit (Ben Zaken et al., 2022): train only the bias terms and the task head. Not in PEFT.
The full model (with its new biases) is the main artifact; the biases and head alone are saved
next to it as a delta artifact of a few kilobytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from supremum.errors import UserError
from supremum.train.methods import MethodConfig, delta, register

if TYPE_CHECKING:
    from torch import nn


class BitFitConfig(MethodConfig):
    name: Literal["bitfit"] = "bitfit"
    words: ClassVar[str | None] = "BitFit fine-tune"
    # The paper's GLUE runs used 1e-4..1e-3 for biases (BERT-large); on minilm-l6 / SST-2 (2
    # epochs, seed 0) 5e-3 reached 83.9% dev against 81.4% at 1e-3.
    default_lr: ClassVar[float] = 5e-3


def _is_bias(name: str) -> bool:
    return name.endswith(".bias")


@register(BitFitConfig)
class BitFit:
    @staticmethod
    def apply(model: nn.Module, cfg: BitFitConfig, total_steps: int) -> nn.Module:
        body = [n for n, _ in model.named_parameters() if _is_bias(n) and n.split(".")[0] not in delta.HEADS]
        if not body:
            raise UserError(f"bitfit: {type(model).__name__} has no bias terms outside the head "
                            "(Llama-style layers have none)", "use lora or ia3 for this model")
        return delta.train_only(model, _is_bias)

    @staticmethod
    def adapter_only(model, cfg: BitFitConfig):
        return model, "delta"

    @staticmethod
    def finalize(model: nn.Module, cfg: BitFitConfig) -> tuple[nn.Module, str]:
        return model, "full"
