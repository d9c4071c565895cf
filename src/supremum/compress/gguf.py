"""Export a causal LM to GGUF and run it with llama.cpp: the CPU kernels that make a small LM
decode fast (quantized dot products with AVX2/AVX-512/NEON), which eager PyTorch does not have."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from supremum.backends.llamacpp import GGUF_FILE, LORA_FILE, LlamaCppModel
from supremum.compress.configs import GgufConfig, GgufLoraConfig
from supremum.compress.registry import Compressed, register
from supremum.errors import UserError
from supremum.lm.gguf_export import quantize, write_gguf, write_lora_gguf
from supremum.tasks import CAUSAL_LM


def _source_gguf(ctx) -> Path | None:
    from supremum.models.loading import gguf_path

    try:
        return gguf_path(ctx.parent.manifest.base_model)
    except UserError:
        return None


@contextmanager
def _cleanup_on_error(work: Path):
    """Nothing half-written is left behind: the work directory goes if any step fails."""
    try:
        yield
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _export(model, ctx, out: Path, quant: str, threads: int | None) -> None:
    """`model` as an F32 GGUF next to `out`, quantized by llama.cpp into `out`."""
    f32 = out.with_name("f32.gguf")
    write_gguf(model, ctx.tokenizer, f32, _source_gguf(ctx))
    quantize(f32, out, quant, threads or torch.get_num_threads())
    f32.unlink()


@register(GgufConfig)
def gguf_export(model, cfg: GgufConfig, ctx) -> Compressed:
    if ctx.parent.task != CAUSAL_LM.pipeline_tag:
        raise UserError("gguf export is for causal language models", "use onnx for classifiers")
    work = Path(tempfile.mkdtemp(prefix="supremum-gguf-"))
    with _cleanup_on_error(work):
        _export(model, ctx, work / GGUF_FILE, cfg.quant, cfg.threads)
    runner = LlamaCppModel(work / GGUF_FILE, model.config)
    report = {"quant": cfg.quant, "gguf_mb": (work / GGUF_FILE).stat().st_size / 2**20,
              "tensor_types": runner.kernels()[0]}

    return Compressed(runner, [], report, write_weights=_mover(work, model.config, report))


def _mover(work: Path, config, report: dict):
    """Moves the GGUF files into the artifact and removes the work directory."""
    def write(_model, out: Path) -> dict:
        config.save_pretrained(out)
        for name in (GGUF_FILE, LORA_FILE):
            if (work / name).exists():
                shutil.move(work / name, out / name)
        shutil.rmtree(work, ignore_errors=True)
        return {"backend": "llamacpp", "gguf": report, "transforms": []}

    return write


def _adapter_dir(parent) -> Path:
    if parent.manifest.storage == "peft":
        return parent.path
    path = parent.manifest.adapter_artifact
    if not path or not (Path(path) / "adapter_config.json").exists():
        raise UserError(f"artifact {parent.id} has no LoRA adapter next to it", "fine-tune with --method "
                        "lora (the adapter is saved as <output>-adapter), or use method gguf")
    return Path(path)


@register(GgufLoraConfig)
def gguf_lora(model, cfg: GgufLoraConfig, ctx) -> Compressed:
    from supremum.models import load_model

    if ctx.parent.task != CAUSAL_LM.pipeline_tag or ctx.parent.manifest.compression:
        raise UserError("gguf-lora takes a LoRA fine-tune of a causal LM (before other compression)",
                        "run it on the artifact `finetune --method lora` wrote")
    adapter, base = _adapter_dir(ctx.parent), ctx.parent.manifest.base_model
    work = Path(tempfile.mkdtemp(prefix="supremum-gguf-"))
    with _cleanup_on_error(work):
        if cfg.base_quant == "source":
            src = _source_gguf(ctx)
            if src is None:
                raise UserError(f"base model '{base}' has no GGUF file", "pass base_quant=q8_0 (or another type)")
            shutil.copyfile(src, work / GGUF_FILE)
        else:
            _export(load_model(base, CAUSAL_LM)[0], ctx, work / GGUF_FILE, cfg.base_quant, cfg.threads)
        lora = write_lora_gguf(adapter, model.config, work / LORA_FILE)
    runner = LlamaCppModel(work / GGUF_FILE, model.config, lora=work / LORA_FILE)
    report = {"quant": cfg.base_quant, "lora": lora, "tensor_types": runner.kernels()[0],
              "gguf_mb": (work / GGUF_FILE).stat().st_size / 2**20,
              "adapter_mb": (work / LORA_FILE).stat().st_size / 2**20}
    return Compressed(runner, [], report, write_weights=_mover(work, model.config, report))
