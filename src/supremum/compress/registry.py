"""The compressor registry: each method's typed config, phase, summary and words, and its `run`.

A method is a config (pydantic, `method` a Literal) registered with `@compressor(phase, summary)`
and a function `run(model, config, ctx) -> Compressed` registered with `@register(Config)`.
Configs must load without torch, so `supremum compress --help`, recipe validation and
`run --dry-run` read every method's options without loading a kernel; `run` may need torch.

Adding a method is one file in `supremum/compress/methods/` (plus its test): the config and its
`run` together, torch and the method's libraries imported inside `run`. `discover()` imports
every module there when `supremum.compress` is imported, and `Compressor.run` finds `run` in the
config's own module. The built-in families whose implementations share code (prune, quantize,
onnx, gguf, distill, lowrank) keep their configs in `compress/configs.py` and name their torch
module with `module=`; `Compressor.run` imports it on first use (as the export formats load
theirs), so only the method that runs loads its libraries.
"""

from __future__ import annotations

import importlib
import pkgutil
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
    #: how reports name the method in a lineage ("head pruning"); None: its name as it is
    words: str | None = None

    def run(self, model, cfg, ctx) -> Compressed:
        importlib.import_module(self.module)
        return RUNS[self.name](model, cfg, ctx)


COMPRESSORS: dict[str, Compressor] = {}


def _method_name(config_cls: type[CompressConfig]) -> str:
    return config_cls.model_fields["method"].default


def compressor(phase: Phase, summary: str, *, module: str | None = None, words: str | None = None):
    """Class decorator registering a method's config. `module`: the short name of the
    `supremum.compress` module whose `@register` provides `run` (default: the config's own module,
    a one-file method). `words`: how reports name it (default: its name)."""
    def deco(config_cls: type[CompressConfig]) -> type[CompressConfig]:
        name = _method_name(config_cls)
        where = f"supremum.compress.{module}" if module else config_cls.__module__
        COMPRESSORS[name] = Compressor(name, config_cls, phase, where, summary, words)
        return config_cls

    return deco


def register(config_cls: type[CompressConfig]):
    """Decorator on the `run` function implementing `config_cls`'s method."""
    def deco(fn: Run) -> Run:
        RUNS[_method_name(config_cls)] = fn
        return fn

    return deco


def discover() -> None:
    """Register every method: the built-in configs, then each module of `supremum.compress.methods`
    in file-name order (the order `supremum compress --help` lists them)."""
    importlib.import_module("supremum.compress.configs")
    methods = importlib.import_module("supremum.compress.methods")
    for mod in pkgutil.iter_modules(methods.__path__):
        importlib.import_module(f"{methods.__name__}.{mod.name}")


def structural() -> tuple[str, ...]:
    """Methods that change the architecture: they must run before quantization, and distillation
    learns from the nearest ancestor made without them."""
    return tuple(name for name, c in COMPRESSORS.items() if c.phase == "structural")


def method_phase(method: str) -> Phase:
    """The phase of a compression method (see supremum.backends.transforms.PHASES)."""
    return COMPRESSORS[method].phase
