"""What actually ran, and why a compression did or did not make the model faster.

The rules below encode how CPU kernels behave (which is why they are hand-written): int8 GEMMs
need VNNI or AMX to beat fp32, weight-only schemes dequantize before an fp32 matmul, fp16 has no
native GEMM on most x86 CPUs, and zeros in dense weights cost as much as any other value.
"""

from __future__ import annotations

INT8_HW = ("amx_int8", "avx512_vnni", "avx_vnni")
BF16_HW = ("amx_bf16", "avx512_bf16")


def runtime(manifest: dict, isa: list[str], operators: list[str] | None = None) -> dict:
    """The kernels an artifact runs with on this machine, in words, plus the ISA seen."""
    kinds = {t["kind"]: t for t in manifest.get("transforms", [])}
    backend = manifest.get("backend", "pytorch")
    parts = []
    if backend == "ensemble":
        members = manifest.get("members", [])
        parts.append(f"ensemble of {len(members)} members run one after another, probabilities averaged ("
                     + ", ".join(m["lineage"] for m in members) + ")")
    elif backend == "llamacpp":
        quant = manifest.get("gguf", {}).get("quant", "?")
        parts.append("llama.cpp CPU kernels, " + ", ".join(operators or [quant]))
    elif backend == "onnxruntime":
        ops = set(operators or [])
        parts.append("ONNX Runtime CPU execution provider")
        if ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}:
            parts.append("int8 integer matmuls (MatMulInteger) with per-batch activation quantization")
        if "QLinearMatMul" in ops or "QuantizeLinear" in ops:
            parts.append("int8 matmuls with calibrated activation scales (QDQ)")
        if ops & {"Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu"}:
            parts.append("fused " + ", ".join(sorted(ops & {"Attention", "SkipLayerNormalization",
                                                              "BiasGelu", "FastGelu"})))
    else:
        parts.append("PyTorch eager")
        if "int8-dynamic" in kinds:
            parts.append(f"int8 GEMM ({kinds['int8-dynamic']['engine']} engine: fbgemm/oneDNN) with "
                         "activations quantized per batch")
        if "torchao" in kinds:
            parts.append("torchao int8 weight-only: weights dequantized to fp32 before each matmul")
        if "int4" in kinds:
            parts.append("int4 weight-only matmul with bf16 activations (aten _weight_int4pack_mm_for_cpu)")
        if "cast" in kinds:
            parts.append(f"{kinds['cast']['dtype']} weights and activations (oneDNN)")
        if "sparse" in kinds:
            parts.append("dense fp32 GEMM over weights containing zeros (no sparse kernel)")
        if "lowrank" in kinds:
            parts.append("two thin fp32 GEMMs per factorized layer")
        if len(parts) == 1:
            parts.append("fp32 GEMM (oneDNN/MKL)")
    return {"backend": backend, "kernels": "; ".join(parts), "isa": isa}


def why(manifest: dict, isa: list[str], speedup: float | None, batch: int = 1) -> str | None:
    """A sentence explaining a missing (< 1.1x) speedup; None when it paid off or is unknown."""
    if speedup is None or speedup >= 1.1:
        return None
    kinds = {t["kind"]: t for t in manifest.get("transforms", [])}
    has = set(isa)
    if "sparse" in kinds:
        return ("unstructured sparsity without sparse kernels: dense GEMMs multiply the zeros too; "
                "it saves disk (compact storage), not time. Use structured pruning for speed")
    if "torchao" in kinds:
        return ("weight-only int8 in eager PyTorch dequantizes each weight to fp32 before the matmul: "
                "memory falls, compute does not (a fused kernel needs torch.compile or a GPU)")
    if "int4" in kinds and batch > 1:
        return "the int4 kernel is tuned for small batches; at larger batches dequantization dominates"
    if "int8-dynamic" in kinds and not has & set(INT8_HW):
        return "no VNNI/AMX on this CPU, so int8 dot products are emulated with AVX2 and barely beat fp32"
    if "int8-dynamic" in kinds:
        return ("per-batch activation quantization and dequantization around each GEMM cost more "
                "than the int8 GEMM saves at this size")
    if "cast" in kinds and kinds["cast"]["dtype"] == "float16":
        return ("this CPU has no native fp16 GEMM (needs AVX512-FP16 or AMX-FP16): fp16 is "
                "converted to fp32 around each op")
    if "cast" in kinds and not has & set(BF16_HW):
        return "no AMX/avx512_bf16: bf16 matmuls are emulated and slower than fp32"
    if "lowrank" in kinds:
        return "the ranks kept are too high for two thin GEMMs to beat one wide one"
    if manifest.get("backend") == "onnxruntime":
        return "ONNX Runtime's fp32 kernels are no faster than PyTorch's oneDNN for this graph"
    return "per-call overhead (tokenization, Python, small matrices) dominates at this size"
