"""Quantization and casts in PyTorch: dynamic int8 (PyTorch's x86 int8 GEMM), weight-only int8
(torchao), weight-only int4 (PyTorch's int4 CPU kernel), fp16 and bf16.

The task head stays in full precision everywhere: it is tiny and the most sensitive layer.
`keep` names further layers to leave unquantized (`supremum sensitivity` finds them).
"""

from __future__ import annotations

import torch
from torch import nn

from supremum.backends.modules import Int4Linear, body_linears, get_module, set_module
from supremum.backends.transforms import ao_dynamic, torchao_quantize
from supremum.compress.configs import Bf16Config, Fp16Config, Int4WeightConfig, Int8DynamicConfig, Int8WeightConfig
from supremum.compress.registry import Compressed, register


@register(Int8DynamicConfig)
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


@register(Int8WeightConfig)
def int8_weight(model: nn.Module, cfg: Int8WeightConfig, ctx) -> Compressed:
    modules = body_linears(model, cfg.keep)
    model = torchao_quantize(model, modules, "int8-weight")
    return Compressed(model, [{"kind": "torchao", "scheme": "int8-weight", "modules": modules}],
                      {"quantized_layers": len(modules), "kept_fp32": cfg.keep})


@register(Int4WeightConfig)
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


register(Fp16Config)(_cast)
register(Bf16Config)(_cast)
