"""What every PEFT-backed method shares: the task type, wrapping, and the two artifacts
(the adapter alone, and the merged model where the method can merge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def task_type(model: nn.Module) -> str:
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"


def wrap(model: nn.Module, peft_config) -> nn.Module:
    """`peft.get_peft_model`. UserError: target modules that match no layer of the model (PEFT's
    NoMatchingPeftModuleError, a traceback otherwise), naming the model's Linear layers."""
    import peft
    from peft.utils.error import NoMatchingPeftModuleError

    try:
        return peft.get_peft_model(model, peft_config)
    except NoMatchingPeftModuleError:
        from supremum.errors import UserError

        targets = getattr(peft_config, "target_modules", None)
        raise UserError(f"method.target_modules {sorted(targets) if targets else '(default)'}: no layer of "
                        f"{type(model).__name__} matches", "use some of its Linear layers: "
                        f"{', '.join(linear_names(model))}") from None


def linear_names(model: nn.Module) -> list[str]:
    """The distinct last name parts of the model's nn.Linear layers (what target_modules matches)."""
    from torch import nn

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


class Mergeable:
    """Handlers of PEFT methods that merge into the weights (config field `merge`): the adapter
    (plus the trained head) is saved as its own artifact, then the merged model as the main one."""

    @staticmethod
    def adapter_only(model, cfg):
        return (model, "peft") if cfg.merge else None

    @staticmethod
    def finalize(model, cfg):
        return (merge(model), "full") if cfg.merge else (model, "peft")


def merge(model: nn.Module) -> nn.Module:
    """The adapter merged into the base weights, computing exactly what the adapter model computes.

    With tied input/output embeddings (tiny-llama, Gemma, Qwen's small models) both modules share
    one matrix, while an adapter on one of them (LoRA on `lm_head`, or on `embed_tokens`) changed
    only that side during training. Merging into the shared matrix would move the other side too
    (the merged model's logits and input embeddings differ from the trained ones), so the adapted
    side first gets its own copy of the matrix: the merged model is untied and stores both, as
    PEFT's merge warning recommends (peft issue #2777); PEFT then records
    `tie_word_embeddings=False` in the config so a reload does not tie them again."""
    _untie_adapted_embeddings(model.get_base_model())
    return model.merge_and_unload()


def _untie_adapted_embeddings(base: nn.Module) -> None:
    try:
        emb_in, emb_out = base.get_input_embeddings(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return
    if emb_in is None or emb_out is None:
        return
    inner_in, inner_out = _base_layer(emb_in), _base_layer(emb_out)
    adapted = inner_in is not emb_in or inner_out is not emb_out
    shared = getattr(inner_out, "weight", None)
    if adapted and shared is not None and shared is getattr(inner_in, "weight", None):
        # Whichever side is adapted, the copy goes to the output side: its merge (or the input's)
        # then changes one matrix only.
        from torch import nn  # noqa: F811 - at call time: importing this module must not load torch

        inner_out.weight = nn.Parameter(shared.detach().clone(), requires_grad=False)
        for config in {id(c): c for c in (base.config, base.config.get_text_config())}.values():
            config.tie_word_embeddings = False


def _base_layer(module: nn.Module) -> nn.Module:
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module
