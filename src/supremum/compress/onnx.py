"""ONNX export (torch.onnx) and ONNX Runtime quantization (dynamic and calibrated static int8).

Every exported or quantized graph is checked against its source on calibration texts; the
largest logit difference and the prediction agreement go into the report, and a graph-level
optimization that changes predictions is dropped rather than shipped.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from supremum.backends.onnx import ONNX_FILE, OrtModel
from supremum.compress.configs import OnnxConfig, OnnxInt8DynamicConfig, OnnxInt8StaticConfig
from supremum.compress.registry import Compressed, register
from supremum.errors import UserError
from supremum.infer import predict_logits

CHECK_TEXTS = 64
# Fused ops (Attention, SkipLayerNorm) are outside ONNX shape inference; their outputs are float.
_FLOAT_DEFAULT = {"DefaultTensorType": 1}


@contextlib.contextmanager
def _quiet():
    """The exporter and ORT's quantizer warn through warnings and the root logger about things
    we check ourselves (the graph is verified against PyTorch afterwards)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class _Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model: nn.Module, tok, path: Path, opset: int) -> None:
    enc = tok(["a short example", "a second, somewhat longer example text"], padding=True,
              return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"])
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    # The TorchScript exporter (dynamo=False): the dynamo one needs onnxscript and takes
    # minutes on BERT-sized models; the TorchScript graph is what ORT's optimizer expects.
    with _quiet():
        torch.onnx.export(_Logits(model).eval(), args, str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)


def _optimize(src: Path, dst: Path, config) -> bool:
    from onnxruntime.transformers.optimizer import optimize_model

    kind = {"bert": "bert", "llama": "gpt2", "gpt2": "gpt2"}.get(getattr(config, "model_type", ""))
    if kind is None:
        return False
    opt = optimize_model(str(src), model_type=kind, num_heads=0, hidden_size=0, opt_level=1)
    opt.save_model_to_file(str(dst))
    return True


def _agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    return {"max_abs_logit_diff": float(np.abs(ref - got).max()) if ref.size else 0.0,
            "prediction_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()) if ref.size else 1.0,
            "check_texts": len(ref)}


def _logits(model, ctx, texts: list[str]) -> np.ndarray:
    """Logits of texts tokenized as the parent was trained (its max length and truncation side)."""
    return predict_logits(model, ctx.prep.tokenize(ctx.tokenizer, texts), ctx.tokenizer.pad_token_id,
                          batch_size=16)


def _fp32_graph(model, tok, cfg: OnnxConfig, ctx, work: Path) -> tuple[OrtModel, dict]:
    """An fp32 ONNX graph (exported, optimized if that keeps predictions) and its check."""
    if isinstance(model, OrtModel):
        return model, {"source": "parent ONNX graph"}
    texts = ctx.calibration_texts(CHECK_TEXTS)
    ref = _logits(model, ctx, texts)
    plain = work / "plain.onnx"
    export(model, tok, plain, cfg.opset)
    report = {"exporter": "torch.onnx (TorchScript)", "opset": cfg.opset, "optimized": False}
    best = OrtModel(plain, model.config)
    report["check_vs_pytorch"] = _agreement(ref, _logits(best, ctx, texts))
    if cfg.optimize and _optimize(plain, work / "opt.onnx", model.config):
        opt = OrtModel(work / "opt.onnx", model.config)
        check = _agreement(ref, _logits(opt, ctx, texts))
        if check["prediction_agreement"] == 1.0 and check["max_abs_logit_diff"] < 1e-2:
            best, report["optimized"], report["check_vs_pytorch"] = opt, True, check
        else:
            report["optimizer_rejected"] = check
    return best, report


def _writer(path: Path, info: dict):
    """Moves the graph into the artifact and removes its temporary directory."""
    def write(_model, out: Path) -> dict:
        _model.config.save_pretrained(out)
        shutil.move(path, out / ONNX_FILE)
        shutil.rmtree(path.parent, ignore_errors=True)
        return {"backend": "onnxruntime", "onnx": info, "transforms": []}

    return write


def _finish(graph: OrtModel, report: dict, work: Path) -> Compressed:
    kept = Path(tempfile.mkdtemp(prefix="supremum-onnx-")) / ONNX_FILE
    shutil.copyfile(graph.path, kept)
    shutil.rmtree(work, ignore_errors=True)
    model = OrtModel(kept, graph.config)
    report["operators"] = model.kernels()
    return Compressed(model, [], report, write_weights=_writer(kept, report))


@register(OnnxConfig)
def onnx_fp32(model, cfg: OnnxConfig, ctx) -> Compressed:
    work = Path(tempfile.mkdtemp(prefix="supremum-onnx-"))
    graph, report = _fp32_graph(model, ctx.tokenizer, cfg, ctx, work)
    return _finish(graph, report, work)


@register(OnnxInt8DynamicConfig)
def onnx_int8_dynamic(model, cfg: OnnxInt8DynamicConfig, ctx) -> Compressed:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    work = Path(tempfile.mkdtemp(prefix="supremum-onnx-"))
    graph, report = _fp32_graph(model, ctx.tokenizer, cfg, ctx, work)
    out = work / "int8.onnx"
    with _quiet():
        quantize_dynamic(str(graph.path), str(out), weight_type=QuantType.QInt8,
                         per_channel=cfg.per_channel, extra_options=_FLOAT_DEFAULT)
    return _quantized(graph, out, report, ctx, work)


@register(OnnxInt8StaticConfig)
def onnx_int8_static(model, cfg: OnnxInt8StaticConfig, ctx) -> Compressed:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    work = Path(tempfile.mkdtemp(prefix="supremum-onnx-"))
    graph, report = _fp32_graph(model, ctx.tokenizer, cfg, ctx, work)
    out = work / "int8.onnx"
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[cfg.calibration]
    reader = _Calibration(ctx, ctx.calibration_texts(cfg.calibration_size), graph.input_names)
    with _quiet():
            quantize_static(str(graph.path), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=cfg.per_channel, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, calibrate_method=method,
                        nodes_to_quantize=_weight_matmuls(graph.path),
                        extra_options={**_FLOAT_DEFAULT, "ActivationSymmetric": False,
                                       "WeightSymmetric": True})
    report["calibration"] = {"texts": cfg.calibration_size, "method": cfg.calibration,
                             "source": f"a seeded sample of {ctx.describe_training_split()}"}
    return _quantized(graph, out, report, ctx, work)


@contextlib.contextmanager
def _calibration_errors(method: str):
    try:
        yield
    except ValueError as e:
        if "not finite" not in str(e):
            raise
        raise UserError(f"onnx-int8-static: calibration '{method}' met infinite activations ({e})",
                        "use calibration=minmax") from None


def _quantized(graph: OrtModel, out: Path, report: dict, ctx, work: Path) -> Compressed:
    texts = ctx.calibration_texts(CHECK_TEXTS)
    q = OrtModel(out, graph.config)
    report["check_vs_fp32_onnx"] = _agreement(_logits(graph, ctx, texts), _logits(q, ctx, texts))
    return _finish(q, report, work)


def _weight_matmuls(path: Path) -> list[str]:
    """MatMul nodes with a constant weight: quantizing the activation-by-activation matmuls
    inside attention costs accuracy and buys little, and the pooler and task head (Gemm) stay
    fp32 as in every other quantizer here."""
    import onnx

    graph = onnx.load(str(path)).graph
    consts = {t.name for t in graph.initializer}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and any(i in consts for i in n.input)]


class _Calibration:
    """ORT CalibrationDataReader: one padded batch of 8 texts at a time."""

    def __init__(self, ctx, texts: list[str], input_names: list[str]) -> None:
        from supremum.data.batching import collate

        ids = ctx.prep.tokenize(ctx.tokenizer, texts)  # as the parent was trained, not a fixed length
        self.batches = []
        for i in range(0, len(ids), 8):
            enc = collate(ids[i:i + 8], ctx.tokenizer.pad_token_id)
            feed = {"input_ids": enc["input_ids"].numpy().astype(np.int64),
                    "attention_mask": enc["attention_mask"].numpy().astype(np.int64)}
            if "token_type_ids" in input_names:
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            self.batches.append({k: v for k, v in feed.items() if k in input_names})
        self.it = iter(self.batches)

    def get_next(self):
        return next(self.it, None)

    def rewind(self) -> None:
        self.it = iter(self.batches)
