"""The built-in compression families' typed configs, registered with their phase, summary, words
and implementing module (see supremum.compress.registry; a new method is one file in
`compress/methods/` instead). Pydantic only: no torch, so help, recipe validation and dry runs
read these without loading a kernel. Registration order is the order `supremum compress --help`
lists the methods (these first, then `compress/methods/`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from supremum.compress.registry import CompressConfig, compressor

#: llama.cpp weight types (GGML), as llama.cpp's quantize tool names them
QUANTS = ("f32", "f16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q5_1", "q4_k_m", "q4_0", "q4_1")

# ---- distillation (distill.py) -------------------------------------------------------------


@compressor("numeric", "train a smaller student on the teacher's softened logits "
            "(+ hidden-state and attention losses)", module="distill", words="distillation")
class DistillConfig(CompressConfig):
    method: Literal["distill"] = "distill"
    teacher: str | None = Field(None, description="teacher artifact (path or id) [default: the "
                                "nearest ancestor not structurally compressed]")
    student: str | None = Field(None, description="a model (alias, directory, hub id) to train as "
                                "the student instead of the artifact given; it must share the tokenizer")
    temperature: float = Field(2.0, gt=0, description="softmax temperature of the KL term")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KL term (1 - alpha: hard labels)")
    hidden_weight: float = Field(0.0, ge=0, description="weight of the hidden-state MSE")
    attention_weight: float = Field(0.0, ge=0, description="weight of the attention-map MSE")
    epochs: float = Field(3.0, gt=0, description="passes over the training data")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps")
    lr: float = Field(1e-4, gt=0, description="peak learning rate")
    batch_size: int = Field(32, ge=1, description="examples per step")
    bf16: bool = Field(False, description="bfloat16 autocast (fast with AMX/avx512_bf16)")
    seed: int = Field(42, description="seed of shuffling and dropout")
    eval_every: int | None = Field(None, ge=1, description="dev evaluation every N steps "
                                   "(default: each epoch); the best is kept")


# ---- llama.cpp (gguf.py) -------------------------------------------------------------------


@compressor("numeric", "export to GGUF and quantize with llama.cpp (q8_0, q4_k_m, ...); runs on llama.cpp",
            module="gguf", words="GGUF")
class GgufConfig(CompressConfig):
    method: Literal["gguf"] = "gguf"
    quant: Literal[QUANTS] = Field("q8_0", description="llama.cpp weight type: f32, f16, q8_0, q6_k, "
                                   "q5_k_m, q5_0, q5_1, q4_k_m, q4_0, q4_1 (K-quants fall back per tensor "
                                   "where a row is not a multiple of 256)")
    threads: int | None = Field(None, ge=1, description="quantization threads (default: torch's)")


@compressor("numeric", "LoRA fine-tunes on llama.cpp: the base model's quantized GGUF (as shipped, or "
            "exported) plus the LoRA adapter as a GGUF applied at run time, never requantized",
            module="gguf", words="GGUF LoRA")
class GgufLoraConfig(CompressConfig):
    method: Literal["gguf-lora"] = "gguf-lora"
    base_quant: Literal[("source", *QUANTS)] = Field(
        "source", description="the base model's weights: source = its own GGUF file as shipped (e.g. "
        "smollm2-135m's Q4_1), or a llama.cpp type to export and quantize the base to")
    threads: int | None = Field(None, ge=1, description="quantization threads (default: torch's)")


# ---- low-rank factorization (lowrank.py) ---------------------------------------------------


@compressor("structural", "SVD-factorize linear layers to a rank or retained energy, then recover",
            module="lowrank", words="low-rank factorization")
class LowRankConfig(CompressConfig):
    method: Literal["lowrank"] = "lowrank"
    rank: int | None = Field(None, ge=1, description="rank kept in every factorized layer")
    energy: float | None = Field(None, gt=0, le=1, description="keep the smallest rank whose singular "
                                 "values hold this share of the squared spectrum (per layer)")
    recover_epochs: float = Field(1.0, ge=0, description="recovery epochs of distillation from the "
                                  "unfactorized model (0: none)")
    recover_max_steps: int | None = Field(None, ge=1, description="cap on recovery steps")
    lr: float = Field(1e-4, gt=0, description="recovery learning rate")
    bf16: bool = Field(False, description="bfloat16 autocast during recovery")

    @model_validator(mode="after")
    def _one_target(self):
        if (self.rank is None) == (self.energy is None):
            raise ValueError("set exactly one of rank or energy")
        return self


# ---- ONNX Runtime (onnx.py) ----------------------------------------------------------------


@compressor("export", "export to ONNX and run with ONNX Runtime (fp32, fused graph)",
            module="onnx", words="ONNX Runtime fp32")
class OnnxConfig(CompressConfig):
    method: Literal["onnx"] = "onnx"
    opset: int = Field(17, ge=14, le=21, description="ONNX opset of the export")
    optimize: bool = Field(True, description="fuse attention, LayerNorm and GELU with ONNX "
                           "Runtime's transformer optimizer (kept only if predictions agree)")


@compressor("export", "ONNX Runtime dynamic int8 (weights int8, activations per batch)",
            module="onnx", words="ONNX Runtime int8 (dynamic)")
class OnnxInt8DynamicConfig(OnnxConfig):
    method: Literal["onnx-int8-dynamic"] = "onnx-int8-dynamic"
    per_channel: bool = Field(True, description="one weight scale per output channel")


@compressor("export", "ONNX Runtime static int8, activation ranges calibrated on training texts (QDQ)",
            module="onnx", words="ONNX Runtime int8 (static)")
class OnnxInt8StaticConfig(OnnxConfig):
    method: Literal["onnx-int8-static"] = "onnx-int8-static"
    per_channel: bool = Field(True, description="one weight scale per output channel")
    calibration_size: int = Field(128, ge=1, description="training texts used to calibrate "
                                  "activation ranges")
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="how activation ranges are chosen from calibration data "
        "(histogram methods fail on graphs whose attention mask holds -inf)")


# ---- pruning (prune.py) --------------------------------------------------------------------

SCORE = Field("taylor", description="importance: taylor (first-order, on calibration data) or "
              "magnitude (weight norms, data-free)")
CALIB = Field(256, ge=1, description="training examples used for importance scores")


@compressor("numeric", "unstructured magnitude pruning to a sparsity (smaller on disk, not faster)",
            module="prune", words="magnitude pruning")
class MagnitudeConfig(CompressConfig):
    method: Literal["prune-magnitude"] = "prune-magnitude"
    sparsity: float = Field(0.5, gt=0, lt=1, description="fraction of weights set to zero")
    scope: Literal["layer", "global"] = Field("layer", description="rank weights within each layer "
                                              "or across all layers")


class ScoredConfig(CompressConfig):
    score: Literal["taylor", "magnitude"] = SCORE
    calibration_size: int = CALIB


@compressor("structural", "remove the least important attention heads (smaller, faster dense model)",
            module="prune", words="head pruning")
class HeadsConfig(ScoredConfig):
    method: Literal["prune-heads"] = "prune-heads"
    amount: float = Field(0.25, gt=0, lt=1, description="fraction of all attention heads removed "
                          "(ranked globally; every layer keeps at least one)")


@compressor("structural", "remove the least important feed-forward neurons in each layer",
            module="prune", words="FFN pruning")
class FfnConfig(ScoredConfig):
    method: Literal["prune-ffn"] = "prune-ffn"
    amount: float = Field(0.3, gt=0, lt=1, description="fraction of feed-forward neurons removed "
                          "in each layer")


@compressor("structural", "remove whole transformer layers (recover with distill)",
            module="prune", words="layer dropping")
class DropLayersConfig(CompressConfig):
    method: Literal["drop-layers"] = "drop-layers"
    keep: list[int] | None = Field(None, description="indices of the layers to keep (0-based)")
    num_layers: int | None = Field(None, ge=1, description="layers to keep, chosen by `choose`")
    choose: Literal["even", "importance"] = Field(
        "even", description="even: spread over the depth, always keeping the last "
        "(DistilBERT-style); importance: highest Taylor scores")
    calibration_size: int = CALIB


# ---- quantization and casts (quantize.py) --------------------------------------------------

KEEP = Field(default_factory=list, description="linear layers to keep in full precision "
             "(names as in `supremum sensitivity`)")


@compressor("numeric", "int8 weights, activations quantized per batch at run time "
            "(PyTorch x86 int8 GEMM)", module="quantize", words="PyTorch int8 (dynamic)")
class Int8DynamicConfig(CompressConfig):
    method: Literal["int8-dynamic"] = "int8-dynamic"
    per_channel: bool = Field(True, description="one weight scale per output channel (more accurate)")
    engine: Literal["x86", "fbgemm", "onednn", "qnnpack"] = Field(
        "x86", description="PyTorch quantized engine (x86 picks fbgemm or oneDNN per shape)")
    keep: list[str] = KEEP
    max_drop: float | None = Field(None, ge=0, description="accuracy points the dev metric may "
                                   "drop; the most sensitive layers stay fp32 until it holds")


@compressor("numeric", "int8 weights, fp32 activations (torchao Int8WeightOnlyConfig)",
            module="quantize", words="int8 weights")
class Int8WeightConfig(CompressConfig):
    method: Literal["int8-weight"] = "int8-weight"
    keep: list[str] = KEEP


@compressor("numeric", "int4 weights in groups, fp32 activations (PyTorch int4 CPU kernel)",
            module="quantize", words="int4 weights")
class Int4WeightConfig(CompressConfig):
    method: Literal["int4-weight"] = "int4-weight"
    group_size: Literal[32, 64, 128, 256] = Field(32, description="input channels per scale/zero pair")
    keep: list[str] = KEEP


@compressor("numeric", "cast all weights to float16", module="quantize", words="fp16")
class Fp16Config(CompressConfig):
    method: Literal["fp16"] = "fp16"


@compressor("numeric", "cast all weights to bfloat16", module="quantize", words="bf16")
class Bf16Config(CompressConfig):
    method: Literal["bf16"] = "bf16"
