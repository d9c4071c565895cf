"""Compression stage: `compress(artifact, config) -> artifact`, one registered module per method.

A method is a typed config (pydantic, `method` a Literal, torch-free) plus a function
`run(model, config, ctx) -> Compressed` registered with `@register`; dispatch is by the config's
`method` name, as torchao dispatches `quantize_` by config type. The registry is `registry.py`;
a new method is one file in `methods/`. Importing this package registers every config
(`registry.discover`) and loads no implementation (they are imported when their method runs).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from supremum.compress.registry import (
    COMPRESSORS,
    CompressConfig,
    Compressed,
    Compressor,
    discover,
    method_phase,
    register,
    structural,
)
from supremum.errors import UserError
from supremum.recipe import build

__all__ = ["COMPRESSORS", "STRUCTURAL", "CompressConfig", "Compressed", "Compressor", "compress", "compressors",
           "config_union", "make_config", "method_phase", "register"]

discover()
#: methods that change the architecture; they must run before quantization, and distillation
#: learns from the nearest ancestor made without them
STRUCTURAL = structural()


def compressors() -> dict[str, Compressor]:
    return COMPRESSORS


def make_config(method: str, options: dict | None = None, source: str = "command line"):
    """The typed config of `method` from plain options (CLI KEY=VALUE, pipeline stages);
    errors name the key and the valid ones."""
    if method not in COMPRESSORS:
        raise UserError(f"unknown compression method '{method}'", f"use one of: {', '.join(COMPRESSORS)}")
    return build(COMPRESSORS[method].config_cls, {"method": method, **(options or {})}, source,
                 help_cmd="supremum compress --help")


def config_union():
    return Annotated[Union[tuple(c.config_cls for c in COMPRESSORS.values())],  # noqa: UP007
                     Field(discriminator="method")]


def compress(*args, **kwargs):
    from supremum.compress.stage import compress as run

    return run(*args, **kwargs)


# `supremum.compress(...)` is the public API function (see supremum.facade).
from supremum.facade import make_callable  # noqa: E402

make_callable(__name__)
