"""What every PEFT-backed method shares: the task type, wrapping, and the two artifacts
(the adapter alone, and the merged model where the method can merge)."""

from __future__ import annotations

import inspect

from torch import nn


def task_type(model: nn.Module) -> str:
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"


def wrap(model: nn.Module, peft_config) -> nn.Module:
    import peft

    return peft.get_peft_model(model, peft_config)


class Mergeable:
    """Handlers of PEFT methods that merge into the weights (config field `merge`): the adapter
    (plus the trained head) is saved as its own artifact, then the merged model as the main one."""

    @staticmethod
    def adapter_only(model, cfg):
        return (model, "peft") if cfg.merge else None

    @staticmethod
    def finalize(model, cfg):
        return (model.merge_and_unload(), "full") if cfg.merge else (model, "peft")


def accept_past_key_values(model: nn.Module) -> nn.Module:
    """Transformers 5 renamed `past_key_values` to `cache` (the old name still works until
    5.40), and PEFT 0.21 refuses prefix tuning when the model's forward signature lacks the old
    name. A forwarding wrapper that names it restores what PEFT checks and passes the prefix on
    under the new name."""
    if "past_key_values" in inspect.signature(model.forward).parameters:
        return model
    orig = model.forward

    def forward(*args, past_key_values=None, **kwargs):
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        return orig(*args, **kwargs)

    model.forward = forward
    return model
