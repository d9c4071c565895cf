"""QLoRA (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"): LoRA adapters
trained over a frozen base whose linear layers are stored in 4-bit NormalFloat (NF4) with double
quantization (the quantization constants quantized too), computing in bfloat16. The 4-bit layers
are bitsandbytes' `Linear4bit`; PEFT puts its LoRA layers over them.

On save the adapter is merged into a *dequantized* base: each 4-bit weight is dequantized to
float32 and the LoRA update added, so the saved model is an ordinary float model (no bitsandbytes
needed to load it), and no second rounding to 4 bits is applied to the merged weights. The merged
model's outputs are compared with the trained model's on a fixed probe and the difference is
recorded (`merge_check` in the training metrics): it is the gap between computing in bf16 over 4-bit
weights and in float32 over their dequantized values.

Training needs a CUDA GPU: `finetune` refuses QLoRA on any other device with one line (bitsandbytes'
CPU fallback runs the same arithmetic, far too slowly to train with; the tests use it on tiny models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.errors import UserError
from supremum.train.methods import peft_common, register
from supremum.train.methods.lora import LoraConfig

if TYPE_CHECKING:
    from torch import nn

#: the heads that stay full precision and train fully (PEFT's modules_to_save for classifiers)
HEADS = ("classifier", "score", "lm_head", "pooler")


class QloraConfig(LoraConfig):
    """LoRA's options (rank, alpha, dropout, target modules, rsLoRA, DoRA, merge) and the 4-bit base's."""

    name: Literal["qlora"] = "qlora"  # type: ignore[assignment]
    words: ClassVar[str | None] = "QLoRA fine-tune"
    # QLoRA keeps the paper's 0.1 (Dettmers et al. 2023 used 0.1 up to 13B): it trains on GPUs,
    # where the mask draw costs little, and its hashes stay those of earlier runs
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA input")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type of the frozen base (NF4: "
                                              "the QLoRA paper's NormalFloat)")
    double_quant: bool = Field(True, description="quantize the per-block quantization constants too "
                               "(about 0.4 bits per weight saved)")


def require_bitsandbytes():
    try:
        import bitsandbytes
    except ImportError:
        raise UserError("method qlora needs the bitsandbytes package, which is not installed",
                        "pip install 'supremum[gpu]' (or pip install bitsandbytes)") from None
    return bitsandbytes


def quantize_linears(model: nn.Module, cfg: QloraConfig) -> list[str]:
    """Replace every nn.Linear outside the heads by a bitsandbytes Linear4bit holding the same
    weight (quantized when the model moves to its device); returns the replaced modules' names."""
    import torch

    bnb = require_bitsandbytes()
    names = [n for n, m in model.named_modules()
             if type(m) is torch.nn.Linear and not any(h in n.split(".") for h in HEADS)]
    for name in names:
        parent, _, child = name.rpartition(".")
        lin = model.get_submodule(name)
        q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                              compute_dtype=torch.bfloat16, compress_statistics=cfg.double_quant,
                              quant_type=cfg.quant_type)
        q.weight = bnb.nn.Params4bit(lin.weight.data.clone(), requires_grad=False,
                                     compress_statistics=cfg.double_quant, quant_type=cfg.quant_type)
        if lin.bias is not None:
            q.bias = torch.nn.Parameter(lin.bias.data.clone(), requires_grad=False)
        setattr(model.get_submodule(parent) if parent else model, child, q)
    return names


@register(QloraConfig)
class Qlora:
    @staticmethod
    def apply(model: nn.Module, cfg: QloraConfig, total_steps: int) -> nn.Module:
        import peft

        targets = quantize_linears(model, cfg)
        if not targets:
            raise UserError("method qlora found no linear layers to quantize in this model",
                            "use --method lora")
        model.to("cpu")  # Params4bit quantizes on its first move; a later .to(cuda) moves the 4-bit data
        # every quantized linear gets an adapter unless target_modules names which
        names = sorted({n.rpartition(".")[2] for n in targets})
        chosen = names if cfg.target_modules == "all-linear" else cfg.target_modules
        return peft_common.wrap(model, peft.LoraConfig(
            task_type=peft_common.task_type(model), r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
            target_modules=chosen, use_rslora=cfg.rslora, use_dora=cfg.dora))

    @staticmethod
    def adapter_only(model, cfg):
        return (model, "peft") if cfg.merge else None

    @staticmethod
    def finalize(model, cfg):
        if not cfg.merge:
            return model, "peft"
        merged = merge_dequantized(model)
        return merged, "full"


def merge_dequantized(model) -> nn.Module:
    """The float32 model computing W = dequantize(W_4bit) + LoRA delta in every adapted layer (the
    heads as trained); `merge_check` on it: the largest absolute logit difference to the trained
    model on a fixed probe, and the share of positions (LMs) or examples whose argmax agrees."""
    import torch

    merged = {name: _dequantized_linear(module) for name, module in model.named_modules()
              if hasattr(module, "get_delta_weight") and _is_4bit(getattr(module, "base_layer", None))}
    probe = _probe(model)
    for m in model.modules():
        # On a CPU with AVX512-BF16, bitsandbytes 0.50 repacks 4-bit weights for its own kernel at the
        # first eval-mode forward: scales rounded to bf16, and layers narrower than one quantization
        # block fail. Off, the CPU computes as CUDA does (dequantize, then a bf16 matmul).
        if _is_4bit(m):
            m.support_avx512bf16_for_cpu = False
    with torch.inference_mode():
        model.eval()
        before = model(**probe).logits.float()
    for name, lin in merged.items():
        _replace(model, name, lin)
    out = model.merge_and_unload()  # no LoRA layers remain: this unwraps PEFT (and the trained heads)
    out.float()
    with torch.inference_mode():
        after = out(**probe).logits.float()
    out.merge_check = {"probe_tokens": int(probe["input_ids"].numel()),
                       "max_abs_logit_diff": float((after - before).abs().max()),
                       "argmax_agreement": float((after.argmax(-1) == before.argmax(-1)).float().mean()),
                       "what": "trained (4-bit base, bf16 compute, LoRA) vs merged (dequantized float32 base "
                               "+ LoRA delta) on token ids 1..32"}
    return out


def _is_4bit(layer) -> bool:
    return layer is not None and type(layer).__name__ == "Linear4bit"


def _dequantized_linear(lora_layer):
    import bitsandbytes.functional as bf
    import torch

    base = lora_layer.base_layer
    data, state = base.weight.data, base.weight.quant_state
    if getattr(state, "packing_format_for_cpu", False):
        # Repacked by bitsandbytes' CPU inference path (see merge_dequantized); its own inverse,
        # private in bitsandbytes 0.50, restores the layout dequantize_4bit reads.
        data, state = bf._convert_weight_packed_for_cpu_inverse(data, state)
    w = bf.dequantize_4bit(data, state).float().cpu()
    for adapter in lora_layer.active_adapters:
        w = w + lora_layer.get_delta_weight(adapter).float().cpu()
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=base.bias is not None)
    lin.weight = torch.nn.Parameter(w, requires_grad=False)
    if base.bias is not None:
        lin.bias = torch.nn.Parameter(base.bias.data.float().cpu(), requires_grad=False)
    return lin


def _replace(model, name: str, new) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _probe(model) -> dict:
    import torch

    from supremum import device

    vocab = model.get_base_model().config.vocab_size
    ids = (torch.arange(1, 33) % vocab).unsqueeze(0).to(device.of(model))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
