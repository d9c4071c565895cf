"""Quantization and casts in PyTorch: dynamic int8 (PyTorch's x86 int8 GEMM), weight-only int8
(torchao), weight-only int4 (PyTorch's int4 CPU kernel), fp16 and bf16.

The task head stays in full precision everywhere: it is tiny and the most sensitive layer.
`keep` names further layers to leave unquantized (`supremum sensitivity` finds them).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from supremum.backends.modules import Int4Linear, body_linears, get_module, set_module
from supremum.backends.transforms import ao_dynamic, torchao_quantize
from supremum.compress import CompressConfig, Compressed, register

KEEP = Field(default_factory=list, description="linear layers to keep in full precision "
             "(names as in `supremum sensitivity`)")


class Int8DynamicConfig(CompressConfig):
    method: Literal["int8-dynamic"] = "int8-dynamic"
    per_channel: bool = Field(True, description="one weight scale per output channel (more accurate)")
    engine: Literal["x86", "fbgemm", "onednn", "qnnpack"] = Field(
        "x86", description="PyTorch quantized engine (x86 picks fbgemm or oneDNN per shape)")
    keep: list[str] = KEEP
    max_drop: float | None = Field(None, ge=0, description="accuracy points the dev metric may "
                                   "drop; the most sensitive layers stay fp32 until it holds")


class Int8WeightConfig(CompressConfig):
    method: Literal["int8-weight"] = "int8-weight"
    keep: list[str] = KEEP


class Int4WeightConfig(CompressConfig):
    method: Literal["int4-weight"] = "int4-weight"
    group_size: Literal[32, 64, 128, 256] = Field(32, description="input channels per scale/zero pair")
    keep: list[str] = KEEP


class Fp16Config(CompressConfig):
    method: Literal["fp16"] = "fp16"


class Bf16Config(CompressConfig):
    method: Literal["bf16"] = "bf16"


@register(Int8DynamicConfig, "int8 weights, activations quantized per batch at run time "
          "(PyTorch x86 int8 GEMM)")
def int8_dynamic(model: nn.Module, cfg: Int8DynamicConfig, ctx) -> Compressed:
    keep = list(cfg.keep)
    if cfg.max_drop is not None:
        from supremum.compress.sensitivity import keep_for_budget

        keep, search = keep_for_budget(model, ctx, "int8-dynamic", cfg.max_drop, keep)
    modules = body_linears(model, keep)
    model = ao_dynamic(model, modules, cfg.engine, cfg.per_channel)
    spec = {"kind": "int8-dynamic", "modules": modules, "engine": cfg.engine,
            "per_channel": cfg.per_channel}
    report = {"quantized_layers": len(modules), "kept_fp32": keep}
    if cfg.max_drop is not None:
        report["max_drop_search"] = search
    return Compressed(model, [spec], report)


@register(Int8WeightConfig, "int8 weights, fp32 activations (torchao Int8WeightOnlyConfig)")
def int8_weight(model: nn.Module, cfg: Int8WeightConfig, ctx) -> Compressed:
    modules = body_linears(model, cfg.keep)
    model = torchao_quantize(model, modules, "int8-weight")
    return Compressed(model, [{"kind": "torchao", "scheme": "int8-weight", "modules": modules}],
                      {"quantized_layers": len(modules), "kept_fp32": cfg.keep})


@register(Int4WeightConfig, "int4 weights in groups, fp32 activations (PyTorch int4 CPU kernel)")
def int4_weight(model: nn.Module, cfg: Int4WeightConfig, ctx) -> Compressed:
    modules, skipped = [], []
    for name in body_linears(model, cfg.keep):
        lin = get_module(model, name)
        if lin.in_features % cfg.group_size:
            skipped.append(name)  # the kernel needs whole groups along the input dimension
            continue
        set_module(model, name, Int4Linear.from_linear(lin, cfg.group_size))
        modules.append(name)
    spec = {"kind": "int4", "modules": modules, "group_size": cfg.group_size}
    return Compressed(model, [spec], {"quantized_layers": len(modules), "kept_fp32": cfg.keep,
                                      "skipped_not_divisible": skipped})


def _cast(model: nn.Module, cfg: Fp16Config | Bf16Config, ctx) -> Compressed:
    dtype = {"fp16": "float16", "bf16": "bfloat16"}[cfg.method]
    return Compressed(model.to(getattr(torch, dtype)), [{"kind": "cast", "dtype": dtype}],
                      {"dtype": dtype})


register(Fp16Config, "cast all weights to float16")(_cast)
register(Bf16Config, "cast all weights to bfloat16")(_cast)
