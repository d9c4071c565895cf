"""Prompt learning through PEFT: prefix tuning (learned keys/values prepended in every layer),
prompt tuning (learned input embeddings) and P-tuning (prompt embeddings from a small MLP).
None of them can merge into the weights: the artifact is the adapter over the base model."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.train.methods import MethodConfig, peft_common, register

if TYPE_CHECKING:
    from torch import nn


class PrefixConfig(MethodConfig):
    name: Literal["prefix"] = "prefix"
    # SST-2, minilm-l6, 2 epochs, seed 0: 3e-2 reached 84.4% dev against 82.9% at 1e-2.
    default_lr: ClassVar[float] = 3e-2
    # The prefix reaches every layer as its key/value cache, which transformers' checkpointed
    # layers drop (a layer that writes the cache would write it again on the recompute); the
    # attention mask still counts the prefix, so attention fails on a size mismatch.
    no_gradient_checkpointing: ClassVar[str | None] = (
        "its learned keys/values are passed as the layers' cache, which checkpointed layers drop")
    num_virtual_tokens: int = Field(20, ge=1, description="prefix length per layer")
    projection: bool = Field(False, description="reparameterize the prefix through an MLP")


class PromptConfig(MethodConfig):
    name: Literal["prompt"] = "prompt"
    # Soft prompts are a few thousand numbers far from the pretrained input scale: they need
    # steps around 100x those of full fine-tuning (PEFT's examples use 3e-2).
    default_lr: ClassVar[float] = 3e-2
    num_virtual_tokens: int = Field(20, ge=1, description="soft-prompt length")
    init: Literal["sample_vocab", "random"] = Field("sample_vocab", description="start from embeddings "
                                                   "of random vocabulary tokens, or from noise")


class PtuningConfig(MethodConfig):
    name: Literal["ptuning"] = "ptuning"
    default_lr: ClassVar[float] = 1e-2
    num_virtual_tokens: int = Field(20, ge=1, description="virtual tokens")
    encoder_hidden_size: int = Field(128, ge=1, description="width of the prompt encoder MLP")


def _finalize(model, cfg):
    return model, "peft"


@register(PrefixConfig)
class Prefix:
    @staticmethod
    def apply(model: nn.Module, cfg: PrefixConfig, total_steps: int) -> nn.Module:
        import peft

        from supremum.models.compat import accept_past_key_values

        return peft_common.wrap(accept_past_key_values(model), peft.PrefixTuningConfig(
            task_type=peft_common.task_type(model), num_virtual_tokens=cfg.num_virtual_tokens,
            prefix_projection=cfg.projection))

    finalize = staticmethod(_finalize)


@register(PromptConfig)
class Prompt:
    @staticmethod
    def apply(model: nn.Module, cfg: PromptConfig, total_steps: int) -> nn.Module:
        import peft

        return peft_common.wrap(model, peft.PromptTuningConfig(
            task_type=peft_common.task_type(model), num_virtual_tokens=cfg.num_virtual_tokens,
            prompt_tuning_init="SAMPLE_VOCAB" if cfg.init == "sample_vocab" else "RANDOM"))

    finalize = staticmethod(_finalize)


@register(PtuningConfig)
class Ptuning:
    @staticmethod
    def apply(model: nn.Module, cfg: PtuningConfig, total_steps: int) -> nn.Module:
        import peft

        return peft_common.wrap(model, peft.PromptEncoderConfig(
            task_type=peft_common.task_type(model), num_virtual_tokens=cfg.num_virtual_tokens,
            encoder_hidden_size=cfg.encoder_hidden_size))

    finalize = staticmethod(_finalize)
