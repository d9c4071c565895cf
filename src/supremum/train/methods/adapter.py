"""Houlsby bottleneck adapters (Houlsby et al., 2019): after the attention output projection
and after the feed-forward output projection of every layer, a down-projection, nonlinearity
and up-projection added back to its input; adapters, layer norms and the task head train.

Ours because the maintained library (AdapterHub `adapters` 1.3) requires transformers 4.57
and we use transformers 5; PEFT has no bottleneck adapter. The up-projection starts at zero,
so training starts from the pretrained function exactly. Not mergeable (the nonlinearity), so
the artifact is a delta over the base model.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.errors import UserError
from supremum.train.methods import MethodConfig, delta, register

if TYPE_CHECKING:
    import torch
    from torch import nn

# attention and feed-forward output projections: BERT-style, then Llama-style names
TARGETS = re.compile(r"\.(attention\.output\.dense|layer\.\d+\.output\.dense|self_attn\.o_proj|mlp\.down_proj)$")


class AdapterConfig(MethodConfig):
    name: Literal["adapter"] = "adapter"
    words: ClassVar[str | None] = "adapter fine-tune"
    default_lr: ClassVar[float] = 1e-3
    reduction: int = Field(16, ge=1, description="bottleneck width = hidden size / reduction")
    activation: Literal["gelu", "relu", "tanh"] = Field("gelu", description="bottleneck nonlinearity")


@functools.cache
def bottleneck_class() -> type:
    """The Bottleneck module class, made on first use so that importing this file (the method's
    config is part of the schema `--help` reads) does not load torch."""
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, inner: nn.Linear, reduction: int, activation: str):
            super().__init__()
            d = inner.out_features
            self.inner = inner
            self.down = nn.Linear(d, max(1, d // reduction))
            self.act = {"gelu": nn.GELU(), "relu": nn.ReLU(), "tanh": nn.Tanh()}[activation]
            self.up = nn.Linear(self.down.out_features, d)
            nn.init.normal_(self.down.weight, std=1e-2)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.inner(x)
            return y + self.up(self.act(self.down(y)))

    return Bottleneck


def _insert(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    from torch import nn

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and TARGETS.search(n)]
    if not names:
        raise UserError(f"adapter: no attention or feed-forward output projections found in "
                        f"{type(model).__name__}", "use lora for this architecture")
    for n in names:
        parent, attr = model.get_submodule(n.rsplit(".", 1)[0]), n.rsplit(".", 1)[1]
        setattr(parent, attr, bottleneck_class()(getattr(parent, attr), cfg.reduction, cfg.activation))
    return model


def _trains(name: str) -> bool:
    return ".down." in name or ".up." in name or "norm" in name.lower()


@register(AdapterConfig)
class Adapter:
    @staticmethod
    def apply(model: nn.Module, cfg: AdapterConfig, total_steps: int) -> nn.Module:
        return delta.train_only(_insert(model, cfg), _trains)

    @staticmethod
    def rebuild(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
        return _insert(model, cfg)

    @staticmethod
    def finalize(model: nn.Module, cfg: AdapterConfig) -> tuple[nn.Module, str]:
        return model, "delta"
