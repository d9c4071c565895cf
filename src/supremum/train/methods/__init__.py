"""Fine-tuning method registry.

A method is one module holding its typed config (a pydantic model whose `name` field is a
Literal) and its handlers, registered with `@register`. The config union used by recipes is
built from this registry, so adding a method touches only its own file and the import list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class MethodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: learning rate used when the recipe does not set `train.lr`
    default_lr: ClassVar[float] = 5e-5


@dataclass(frozen=True)
class Method:
    config_cls: type[MethodConfig]
    #: wraps or modifies a freshly loaded model so that only the method's parameters train
    apply: Callable[[nn.Module, Any], nn.Module]
    #: returns (model to save, storage kind): "full" weights or a "peft" adapter
    finalize: Callable[[nn.Module, Any], tuple[nn.Module, str]]


METHODS: dict[str, Method] = {}


def register(config_cls: type[MethodConfig]):
    def deco(handlers: type) -> type:
        name = config_cls.model_fields["name"].default
        METHODS[name] = Method(config_cls, handlers.apply, handlers.finalize)
        return handlers

    return deco


def method_for(cfg: MethodConfig) -> Method:
    return METHODS[cfg.name]  # type: ignore[attr-defined]


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


# Importing registers. Keep this list the only place that names every method.
from supremum.train.methods import full, lora  # noqa: E402,F401

AnyMethodConfig = Annotated[
    Union[tuple(m.config_cls for m in METHODS.values())],  # noqa: UP007
    Field(discriminator="name"),
]


def FullConfigDefault() -> MethodConfig:  # noqa: N802 - used as a pydantic default factory
    return METHODS["full"].config_cls()
