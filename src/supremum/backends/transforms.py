"""Transform kinds: the changes compression makes to a PyTorch model, each registered once.

A compressed artifact lists its transforms in the manifest (`{"kind": ..., **spec}`, in the
order applied). Per kind, the registry holds how to rebuild the module structure on a plain
model before its tensors load, the compression phase it belongs to, which compression methods
may still follow it, the kernels it runs with, why it may not be faster, and what its layers are
in the formats other tools load (`LayerForm`); the order checks and ONNX refusals of `supremum
compress`, the explanations of `supremum eval` and the format checks of `supremum export` loop
over it, as torchao's
`quantize_` dispatches by config type. Registration order is the precedence of explanations:
the first kind whose `why` applies names the cause.

The CPU kernel rules in the sentences: int8 GEMMs need VNNI or AMX to beat fp32, weight-only
schemes dequantize before an fp32 matmul, fp16 has no native GEMM on most x86 CPUs, and zeros
in dense weights cost as much as any other value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from supremum.backends.modules import Int4Linear, LowRankLinear, get_module, set_module

Phase = Literal["structural", "numeric", "export"]
#: compression phases in the order they may run
PHASES: tuple[Phase, ...] = ("structural", "numeric", "export")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
INT8_HW = ("amx_int8", "avx512_vnni", "avx_vnni")
BF16_HW = ("amx_bf16", "avx512_bf16")

Rebuild = Callable[[nn.Module, dict], nn.Module]
#: (spec, ISA flags of this CPU, batch size) -> a sentence, or None when this kind is not the cause
Why = Callable[[dict, frozenset, int], "str | None"]


@dataclass(frozen=True)
class LayerForm:
    """What a transform kind's layers are outside supremum's PyTorch loader. The reasons are
    predicates after the words ("its <words> <not_onnx>"), so `compress` and `export` state the
    same fact in their own sentence."""

    words: str
    #: why transformers cannot build them from config.json (None: it can)
    not_plain: str | None
    #: why torch.onnx (TorchScript) cannot export them (None: it can, checked against PyTorch)
    not_onnx: str | None
    #: what the user can do instead when no export format applies
    instead: str | None = None


@dataclass(frozen=True)
class TransformKind:
    name: str
    phase: Phase
    rebuild: Rebuild
    #: the kernels it runs with, in words (None: nothing to say, plain fp32 GEMMs)
    kernels: Callable[[dict], str] | None
    why: Why
    #: the earliest phase of a compression method that may still follow it
    followed_by: Phase = "structural"
    #: (message with {id} and {method}, hint) when a method of an earlier phase is refused
    refusal: tuple[str, str] | None = None
    #: what its layers are for other runtimes (None: plain layers every format takes)
    form: LayerForm | None = None


TRANSFORMS: dict[str, TransformKind] = {}


def transform(name: str, phase: Phase, *, kernels: str | Callable[[dict], str] | None, why: str | Why,
              followed_by: Phase = "structural", refusal: tuple[str, str] | None = None,
              form: LayerForm | None = None):
    """Decorator on the rebuild function `fn(model, spec) -> model` of transform kind `name`.
    `kernels` and `why` are a fixed sentence or a function of the spec (and, for `why`, the ISA
    and batch size)."""
    def deco(fn: Rebuild) -> Rebuild:
        TRANSFORMS[name] = TransformKind(
            name, phase, fn, (lambda spec: kernels) if isinstance(kernels, str) else kernels,
            (lambda spec, isa, batch: why) if isinstance(why, str) else why, followed_by, refusal, form)
        return fn

    return deco


def kinds_in(transforms: list[dict]) -> list[tuple[TransformKind, dict]]:
    """(kind, its last spec) for each registered kind present, in registration order."""
    last = {t["kind"]: t for t in transforms}
    return [(k, last[k.name]) for k in TRANSFORMS.values() if k.name in last]


def layer_forms(transforms: list[dict]) -> list[LayerForm]:
    """The layer forms of `transforms`, in the order applied (kinds without one are left out)."""
    kinds = [TRANSFORMS.get(t["kind"]) for t in transforms]
    return [k.form for k in kinds if k is not None and k.form is not None]


# ---- quantization as applied on load and by the compressors -------------------------------

def ao_dynamic(model: nn.Module, modules: list[str], engine: str, per_channel: bool) -> nn.Module:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    torch.backends.quantized.engine = engine
    qc = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    return quantize_dynamic(model, dict.fromkeys(modules, qc), dtype=torch.qint8, inplace=True)


def torchao_quantize(model: nn.Module, modules: list[str], scheme: str) -> nn.Module:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    configs = {"int8-weight": Int8WeightOnlyConfig}
    wanted = set(modules)
    quantize_(model, configs[scheme](), filter_fn=lambda m, fqn: fqn in wanted)
    return model


# ---- the kinds, in the precedence of their explanations -----------------------------------

_QUANTIZED = ("artifact {id} is already quantized or cast; '{method}' must come before that",
              "run it on the unquantized parent, then quantize")
_PLAIN = "have no plain transformers form"


@transform("sparse", "numeric", kernels="dense fp32 GEMM over weights containing zeros (no sparse kernel)",
           why="unstructured sparsity without sparse kernels: dense GEMMs multiply the zeros too; "
               "it saves disk (compact storage), not time. Use structured pruning for speed")
def _rebuild_sparse(model: nn.Module, spec: dict) -> nn.Module:
    return model  # zeros are values: the tensors say everything (stored compactly, see weights)


@transform("torchao", "numeric", followed_by="export", refusal=_QUANTIZED,
           form=LayerForm("torchao int8 weight-only tensors", _PLAIN, None),
           kernels="torchao int8 weight-only: weights dequantized to fp32 before each matmul",
           why="weight-only int8 in eager PyTorch dequantizes each weight to fp32 before the matmul: "
               "memory falls, compute does not (a fused kernel needs torch.compile or a GPU)")
def _rebuild_torchao(model: nn.Module, spec: dict) -> nn.Module:
    return torchao_quantize(model, spec["modules"], spec["scheme"])


def _why_int4(spec: dict, isa: frozenset, batch: int) -> str | None:
    if batch > 1:
        return "the int4 kernel is tuned for small batches; at larger batches dequantization dominates"
    return None


@transform("int4", "numeric", followed_by="export", refusal=_QUANTIZED, why=_why_int4,
           form=LayerForm("int4-packed layers", _PLAIN, "have no ONNX form (torch.onnx cannot export "
                          "aten::_weight_int4pack_mm_for_cpu)"),
           kernels="int4 weight-only matmul with bf16 activations (aten _weight_int4pack_mm_for_cpu)")
def _rebuild_int4(model: nn.Module, spec: dict) -> nn.Module:
    for name in spec["modules"]:
        old = get_module(model, name)
        set_module(model, name, Int4Linear(old.in_features, old.out_features, spec["group_size"],
                                           old.bias is not None))
    return model


def _why_int8(spec: dict, isa: frozenset, batch: int) -> str:
    if not isa & set(INT8_HW):
        return "no VNNI/AMX on this CPU, so int8 dot products are emulated with AVX2 and barely beat fp32"
    return ("per-batch activation quantization and dequantization around each GEMM cost more "
            "than the int8 GEMM saves at this size")


@transform("int8-dynamic", "numeric", followed_by="export", refusal=_QUANTIZED, why=_why_int8,
           form=LayerForm("int8 dynamically quantized layers", _PLAIN, "have no ONNX form (torch.onnx cannot "
                          "export PyTorch's quantized::linear_dynamic)",
                          "compress the parent with onnx-int8-dynamic for an int8 ONNX graph"),
           kernels=lambda spec: f"int8 GEMM ({spec['engine']} engine: fbgemm/oneDNN) with "
                                "activations quantized per batch")
def _rebuild_int8_dynamic(model: nn.Module, spec: dict) -> nn.Module:
    return ao_dynamic(model, spec["modules"], spec["engine"], spec["per_channel"])


def _why_cast(spec: dict, isa: frozenset, batch: int) -> str | None:
    if spec["dtype"] == "float16":
        return ("this CPU has no native fp16 GEMM (needs AVX512-FP16 or AMX-FP16): fp16 is "
                "converted to fp32 around each op")
    if not isa & set(BF16_HW):
        return "no AMX/avx512_bf16: bf16 matmuls are emulated and slower than fp32"
    return None


@transform("cast", "numeric", followed_by="export", refusal=_QUANTIZED, why=_why_cast,
           form=LayerForm("float16/bfloat16 weights", None, "have no ONNX form here (the exporter writes fp32 "
                          "graphs: float16 mixes types ONNX Runtime refuses, bfloat16 does not export)",
                          "compress the parent with onnx or onnx-int8-dynamic for an ONNX graph"),
           kernels=lambda spec: f"{spec['dtype']} weights and activations (oneDNN)")
def _rebuild_cast(model: nn.Module, spec: dict) -> nn.Module:
    return model.to(DTYPES[spec["dtype"]])


@transform("lowrank", "structural", followed_by="numeric",
           refusal=("artifact {id} is factorized; '{method}' must come before lowrank",
                    "prune first, then factorize"),
           kernels="two thin fp32 GEMMs per factorized layer",
           form=LayerForm("low-rank factorized layers", _PLAIN, None),
           why="the ranks kept are too high for two thin GEMMs to beat one wide one")
def _rebuild_lowrank(model: nn.Module, spec: dict) -> nn.Module:
    for name, rank in spec["ranks"].items():
        old = get_module(model, name)
        set_module(model, name, LowRankLinear(old.in_features, old.out_features, rank,
                                              old.bias is not None))
    return model


def _no_cause(spec: dict, isa: frozenset, batch: int) -> None:
    return None  # smaller dense layers: fewer FLOPs, so no kernel reason it would not pay off


@transform("resize", "structural", kernels=None, why=_no_cause)
def _rebuild_resize(model: nn.Module, spec: dict) -> nn.Module:
    for name, (out_f, in_f) in spec["shapes"].items():
        old = get_module(model, name)
        set_module(model, name, nn.Linear(in_f, out_f, bias=old.bias is not None))
    return model


@transform("sentence-pooling", "structural", kernels=None, why=_no_cause,
           form=LayerForm("sentence-transformers pooling head", _PLAIN, None))
def _rebuild_sentence_pooling(model: nn.Module, spec: dict) -> nn.Module:
    from supremum.models.sentence import to_sentence_classifier

    # Not a compression: how linear-probe and setfit classifiers pool (see models.sentence).
    return to_sentence_classifier(model, spec["pooling"], spec["normalize"])
