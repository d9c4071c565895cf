"""Compression stage: `compress(artifact, config) -> artifact`, one registered module per method.

A method is a typed config (pydantic, `method` a Literal) plus a function
`run(model, config, ctx) -> Compressed`, registered with `@register`; dispatch is by the
config's `method` name, as torchao dispatches `quantize_` by config type.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class CompressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: methods that change the architecture; they must run before quantization, and distillation
#: learns from the nearest ancestor made without them
STRUCTURAL = ("prune-heads", "prune-ffn", "drop-layers", "lowrank", "prune-iterative")


def method_phase(method: str) -> str:
    """The phase of a compression method (see supremum.backends.transforms.PHASES): structural
    methods change shapes, ONNX methods export, every other one changes values."""
    if method in STRUCTURAL:
        return "structural"
    return "export" if method.startswith("onnx") else "numeric"


@dataclass
class Compressed:
    model: Any
    #: transforms to append to the parent's (see supremum.backends.transforms)
    transforms: list[dict] = field(default_factory=list)
    #: what was done, for the manifest and the report (layers kept, sparsity, ranks ...)
    report: dict = field(default_factory=dict)
    #: replaces the default weight writer (ONNX files); returns manifest entries such as backend
    write_weights: Callable | None = None
    #: extra manifest entries
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Compressor:
    name: str
    config_cls: type[CompressConfig]
    run: Callable[[nn.Module, Any, Any], Compressed]
    summary: str


COMPRESSORS: dict[str, Compressor] = {}


def register(config_cls: type[CompressConfig], summary: str):
    def deco(fn: Callable) -> Callable:
        name = config_cls.model_fields["method"].default
        COMPRESSORS[name] = Compressor(name, config_cls, fn, summary)
        return fn

    return deco


@functools.cache
def _load_all() -> None:
    # Importing registers; this list is the only place that names every compression module.
    from supremum.compress import distill, gguf, lowrank, onnx, prune, quantize, schedule  # noqa: F401


def compressors() -> dict[str, Compressor]:
    _load_all()
    return COMPRESSORS


def make_config(method: str, options: dict | None = None, source: str = "command line"):
    """The typed config of `method` from plain options (CLI KEY=VALUE, pipeline stages);
    errors name the key and the valid ones."""
    from supremum.errors import UserError
    from supremum.recipe import build

    known = compressors()
    if method not in known:
        raise UserError(f"unknown compression method '{method}'", f"use one of: {', '.join(known)}")
    return build(known[method].config_cls, {"method": method, **(options or {})}, source,
                 help_cmd="supremum compress --help")


def config_union():
    _load_all()
    return Annotated[Union[tuple(c.config_cls for c in COMPRESSORS.values())],  # noqa: UP007
                     Field(discriminator="method")]


def compress(*args, **kwargs):
    from supremum.compress.stage import compress as run

    return run(*args, **kwargs)


# `supremum.compress(...)` is the public API function (see supremum.facade).
from supremum.facade import make_callable  # noqa: E402

make_callable(__name__)
