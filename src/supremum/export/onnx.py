"""`onnx`: the layout ONNX Runtime and Optimum's `ORTModelForSequenceClassification` read:
`model.onnx` (inputs input_ids and attention_mask, output logits) with config.json (labels) and
the tokenizer. Exported with supremum's compress exporter (torch.onnx, TorchScript) and checked
against PyTorch before it is kept; an artifact already ONNX is copied as it is."""

from __future__ import annotations

import shutil
from pathlib import Path

from supremum.artifact import MANIFEST, METRICS, Artifact
from supremum.export import ExportConfig, register
from supremum.export.source import plain_model, save_tokenizer, task_refusal

OPSET = 17
TOLERANCE = 1e-3  # largest logit difference from PyTorch accepted (fp32 graph)
CHECK_TEXTS = ["a short example", "a second, somewhat longer example text", "x"]


_refuses = task_refusal("text-classification",
                        "ONNX export covers classifiers, not causal LMs (no KV-cache inputs)",
                        "onnxruntime", "onnx")


@register("onnx", "ONNX graph for ONNX Runtime / Optimum", "onnx", _refuses)
def write(art: Artifact, out: Path, cfg: ExportConfig) -> dict:
    from supremum.backends.onnx import ONNX_FILE

    if art.manifest.backend == "onnxruntime":
        from transformers import AutoTokenizer

        for f in art.path.iterdir():
            if f.is_file() and f.name not in (MANIFEST, METRICS):
                shutil.copyfile(f, out / f.name)
        cut = save_tokenizer(art, AutoTokenizer.from_pretrained(str(art.path)), out)
        return {"source": "the artifact's own ONNX graph", **(art.manifest.onnx or {}), **cut}
    from supremum.compress.onnx import export

    model, tok = plain_model(art)
    export(model, tok, out / ONNX_FILE, OPSET)
    model.config.save_pretrained(out)
    return {"exporter": "torch.onnx (TorchScript)", "opset": OPSET,
            "max_abs_logit_diff_vs_pytorch": _check(model, tok, out / ONNX_FILE), **save_tokenizer(art, tok, out)}


def _check(model, tok, path: Path) -> float:
    """The largest logit difference between the graph and PyTorch on a few texts; an export
    beyond TOLERANCE is a fault of the exporter, never shipped."""
    import torch

    from supremum.backends.onnx import OrtModel

    enc = tok(CHECK_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    got = OrtModel(path, model.config, threads=1)(enc["input_ids"], enc["attention_mask"]).logits
    diff = float((got - want).abs().max())
    if not diff <= TOLERANCE:
        raise RuntimeError(f"ONNX export differs from PyTorch by {diff:.3g} in the logits (limit {TOLERANCE})")
    return diff
