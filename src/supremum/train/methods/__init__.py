"""Fine-tuning method registry.

A method is a typed config (a pydantic model whose `name` field is a Literal) and a handler
class registered with `@register`; one module per method or family (prompt learning holds
prefix, prompt and p-tuning). Every module of this package is imported when the package is
(`_discover`), so its `@register` runs: adding a method is one new file here (plus its test),
named nowhere else. The config union used by recipes, the CLI's `--method` choices and the
report's words for a lineage (`MethodConfig.words`) are all read from this registry. A method
module imports torch, PEFT and the like inside its functions: `supremum --help` imports every
method and must stay torch-free (tests/test_cli.py checks it).

Handlers: `apply(model, cfg, total_steps)` readies a fresh model so only the method's parameters
train; `finalize(model, cfg)` returns the model to save and its storage ("full" weights, a
"peft" adapter, or a "delta": only the trained tensors over the base model). Optional:
`adapter_only(model, cfg)` gives the small adapter artifact saved next to a merged one (called
before `finalize`, which may merge in place); `after_step(model, step)` runs after each
optimizer step, before gradients are cleared; `rebuild(model, cfg)` re-creates added modules
on the base model before a delta loads.

A method that does not train by gradient steps on the classification loss (a linear probe fit
by L-BFGS, SetFit's contrastive body training + logistic head) has `fit(model, cfg, ctx:
FitContext) -> TrainResult`, which replaces the training loop; its config lists the `train.*`
options it honours in `train_options` (any other set away from its default is refused when the
recipe is validated).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from torch import nn


class MethodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: learning rate used when the recipe does not set `train.lr`
    default_lr: ClassVar[float] = 5e-5
    #: the `train.*` options a method with its own `fit` honours (None: the training loop's, all)
    train_options: ClassVar[frozenset[str] | None] = None
    #: why the method cannot train with train.gradient_checkpointing (None: it can)
    no_gradient_checkpointing: ClassVar[str | None] = None
    #: how reports name the method in a lineage ("LoRA fine-tune"); None: its name as it is
    words: ClassVar[str | None] = None


@dataclass
class FitContext:
    """What a `fit` method gets: the tokenizer, the labelled data (`TaskData`: texts and label
    ids per split), the tokenized train and dev splits (`loop.Split`, dev None when absent),
    the train config and max length in tokens, and whether to show progress."""

    tokenizer: Any
    data: Any
    train: Any
    dev: Any
    train_cfg: Any
    max_length: int
    progress: bool = True


@dataclass(frozen=True)
class Method:
    config_cls: type[MethodConfig]
    apply: Callable[[nn.Module, Any, int], nn.Module]
    finalize: Callable[[nn.Module, Any], tuple[nn.Module, str]]
    adapter_only: Callable[[nn.Module, Any], tuple[nn.Module, str] | None] = lambda m, c: None
    after_step: Callable[[nn.Module, int], None] | None = None
    rebuild: Callable[[nn.Module, Any], nn.Module] = lambda m, c: m
    fit: Callable[[nn.Module, Any, FitContext], Any] | None = None


METHODS: dict[str, Method] = {}


def register(config_cls: type[MethodConfig]):
    def deco(handlers: type) -> type:
        name = config_cls.model_fields["name"].default
        optional = {k: getattr(handlers, k) for k in ("adapter_only", "after_step", "rebuild", "fit")
                    if hasattr(handlers, k)}
        METHODS[name] = Method(config_cls, handlers.apply, handlers.finalize, **optional)
        return handlers

    return deco


def method_for(cfg: MethodConfig) -> Method:
    return METHODS[cfg.name]  # type: ignore[attr-defined]


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total). PEFT's `modules_to_save` keeps a frozen copy of the head next to the
    trained one, so frozen duplicates are not counted in the total."""
    total = sum(p.numel() for n, p in model.named_parameters() if ".original_module." not in n)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def _discover() -> None:
    """Import every module of this package (in file-name order, the order `--method` lists them):
    importing registers. Helpers without `@register` (delta, peft_common) are imported too."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_discover()

AnyMethodConfig = Annotated[
    Union[tuple(m.config_cls for m in METHODS.values())],  # noqa: UP007
    Field(discriminator="name"),
]


def FullConfigDefault() -> MethodConfig:  # noqa: N802 - used as a pydantic default factory
    return METHODS["full"].config_cls()
