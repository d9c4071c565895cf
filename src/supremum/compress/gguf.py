"""Export a causal LM to GGUF and run it with llama.cpp: the CPU kernels that make a small LM
decode fast (quantized dot products with AVX2/AVX-512/NEON), which eager PyTorch does not have."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from supremum.compress import CompressConfig, Compressed, register
from supremum.errors import UserError
from supremum.lm.gguf_export import QUANTS, quantize, write_gguf
from supremum.lm.llamacpp import GGUF_FILE, LlamaCppModel


class GgufConfig(CompressConfig):
    method: Literal["gguf"] = "gguf"
    quant: Literal[QUANTS] = Field("q8_0", description="llama.cpp weight type: f32, f16, q8_0, q6_k, "
                                   "q5_k_m, q4_k_m, q4_0, q4_1 (K-quants fall back per tensor where a row "
                                   "is not a multiple of 256)")
    threads: int | None = Field(None, ge=1, description="quantization threads (default: torch's)")


def _source_gguf(ctx) -> Path | None:
    from supremum.models.loading import gguf_path

    try:
        return gguf_path(ctx.parent.manifest["base_model"])
    except UserError:
        return None


@register(GgufConfig, "export to GGUF and quantize with llama.cpp (q8_0, q4_k_m, ...); runs on llama.cpp")
def gguf_export(model, cfg: GgufConfig, ctx) -> Compressed:
    if ctx.parent.task != "text-generation":
        raise UserError("gguf export is for causal language models", "use onnx for classifiers")
    work = Path(tempfile.mkdtemp(prefix="supremum-gguf-"))
    try:
        write_gguf(model, ctx.tokenizer, work / "f32.gguf", _source_gguf(ctx))
        quantize(work / "f32.gguf", work / GGUF_FILE, cfg.quant, cfg.threads or torch.get_num_threads())
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    (work / "f32.gguf").unlink()
    runner = LlamaCppModel(work / GGUF_FILE, model.config)
    report = {"quant": cfg.quant, "gguf_mb": (work / GGUF_FILE).stat().st_size / 2**20,
              "tensor_types": runner.kernels()[0]}

    def write(_model, out: Path) -> dict:
        model.config.save_pretrained(out)
        shutil.move(work / GGUF_FILE, out / GGUF_FILE)
        shutil.rmtree(work, ignore_errors=True)
        return {"backend": "llamacpp", "gguf": report, "transforms": []}

    return Compressed(runner, [], report, write_weights=write)
