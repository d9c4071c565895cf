"""Shims between the installed transformers and PEFT: what a model needs for PEFT to accept it,
both when a method wraps it for training (supremum.train.methods) and when an artifact's adapter
is loaded over it (supremum.backends.pytorch)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


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
