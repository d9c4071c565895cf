"""The compressor registry: each method's typed config, phase and summary, and its `run`.

A method is declared in two halves. Its config (pydantic, `method` a Literal) is registered in
`compress/configs.py` with `@compressor(phase, module, summary)`; that module imports no torch,
so `supremum compress --help`, recipe validation and `run --dry-run` read every method's options
without loading a kernel. Its `run(model, config, ctx) -> Compressed` lives in `module` and is
registered there with `@register(Config)`; `Compressor.run` imports that module on first use
(as the export formats load theirs), so only the method that runs loads its libraries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: see supremum.backends.transforms.PHASES (the phases a transform kind closes)
Phase = Literal["structural", "numeric", "export"]


class CompressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


#: (model, config, supremum.compress.context.Context) -> Compressed
Run = Callable[[Any, Any, Any], Compressed]
#: method name -> its run function, filled as implementation modules are imported
RUNS: dict[str, Run] = {}


@dataclass(frozen=True)
class Compressor:
    name: str
    config_cls: type[CompressConfig]
    #: structural methods change shapes and must run before quantization; export methods write
    #: another runtime's graph; every other one changes values (numeric)
    phase: Phase
    #: the module whose `@register` provides `run`
    module: str
    summary: str

    def run(self, model, cfg, ctx) -> Compressed:
        importlib.import_module(self.module)
        return RUNS[self.name](model, cfg, ctx)


COMPRESSORS: dict[str, Compressor] = {}


def _method_name(config_cls: type[CompressConfig]) -> str:
    return config_cls.model_fields["method"].default


def compressor(phase: Phase, module: str, summary: str):
    """Class decorator registering a method's config; `module` is the short name of the
    `supremum.compress` module that implements it."""
    def deco(config_cls: type[CompressConfig]) -> type[CompressConfig]:
        name = _method_name(config_cls)
        COMPRESSORS[name] = Compressor(name, config_cls, phase, f"supremum.compress.{module}", summary)
        return config_cls

    return deco


def register(config_cls: type[CompressConfig]):
    """Decorator on the `run` function implementing `config_cls`'s method."""
    def deco(fn: Run) -> Run:
        RUNS[_method_name(config_cls)] = fn
        return fn

    return deco


def method_phase(method: str) -> Phase:
    """The phase of a compression method (see supremum.backends.transforms.PHASES)."""
    return COMPRESSORS[method].phase
