"""What actually ran, and why a compression did or did not make the model faster.

Per transform kind, the kernels and the reason live in its registration
(supremum.backends.transforms); this module adds what belongs to the backend as a whole.
"""

from __future__ import annotations

from supremum.artifact import Manifest
from supremum.backends.transforms import kinds_in


def runtime(manifest: Manifest, isa: list[str], operators: list[str] | None = None) -> dict:
    """The kernels an artifact runs with on this machine, in words, plus the ISA seen."""
    backend = manifest.backend
    parts = []
    if backend == "ensemble":
        parts.append(f"ensemble of {len(manifest.members)} members run one after another, probabilities "
                     "averaged (" + ", ".join(m.lineage for m in manifest.members) + ")")
    elif backend == "llamacpp":
        quant = manifest.gguf_quant or "?"
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
        # the GEMM kernel first (set by a quantization or cast, which only an export may follow),
        # then what the weights hold (zeros, factors)
        kinds = sorted(kinds_in(manifest.transforms), key=lambda ks: ks[0].followed_by != "export")
        parts += [kind.kernels(spec) for kind, spec in kinds if kind.kernels]
        if len(parts) == 1:
            parts.append("fp32 GEMM (oneDNN/MKL)")
    return {"backend": backend, "kernels": "; ".join(parts), "isa": isa}


def why(manifest: Manifest, isa: list[str], speedup: float | None, batch: int = 1) -> str | None:
    """A sentence explaining a missing (< 1.1x) speedup; None when it paid off or is unknown."""
    if speedup is None or speedup >= 1.1:
        return None
    for kind, spec in kinds_in(manifest.transforms):
        reason = kind.why(spec, frozenset(isa), batch)
        if reason:
            return reason
    if manifest.backend == "onnxruntime":
        return "ONNX Runtime's fp32 kernels are no faster than PyTorch's oneDNN for this graph"
    return "per-call overhead (tokenization, Python, small matrices) dominates at this size"
