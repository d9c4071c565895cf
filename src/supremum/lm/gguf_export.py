"""Write a (fine-tuned, merged, possibly layer-dropped) Llama-architecture model as GGUF, then let
llama.cpp quantize it.

llama.cpp's own converter (convert_hf_to_gguf.py) is a script in its source tree, not in the
llama-cpp-python wheel, so the Llama subset is written here with the `gguf` package's writer;
quantization itself is llama.cpp's (`llama_model_quantize`). Tokenizer metadata is copied from
the GGUF the base model came from when there is one (so llama.cpp tokenizes exactly as it does
for the shipped file), else built from the transformers tokenizer (byte-level BPE).
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import torch

from supremum.errors import UserError


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """The rotary layout llama.cpp expects for q/k (transformers' GGUF reader undoes it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
         "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}


def _rows(w: np.ndarray, gg: str, c) -> np.ndarray:
    """Output rows in llama.cpp's order (q and k are permuted for its rotary layout)."""
    if gg == "attn_q":
        return _permute(w, c.num_attention_heads)
    if gg == "attn_k":
        return _permute(w, c.num_key_value_heads or c.num_attention_heads)
    return w


def _tensors(model) -> dict[str, np.ndarray]:
    c = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"]}
    if not c.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    for i in range(c.num_hidden_layers):
        for hf, gg in NAMES.items():
            out[f"blk.{i}.{gg}.weight"] = _rows(sd[f"model.layers.{i}.{hf}.weight"], gg, c)
    return out


def write_lora_gguf(adapter_dir: Path, config, out: Path) -> dict:
    """A PEFT LoRA adapter as a llama.cpp LoRA GGUF (what convert_lora_to_gguf.py writes):
    lora_a [r, in] as is, lora_b [out, r] with q/k rows permuted like the base weights."""
    import gguf
    from safetensors import safe_open

    acfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    if acfg.get("peft_type") != "LORA" or acfg.get("use_dora") or acfg.get("modules_to_save"):
        raise UserError(f"{adapter_dir}: llama.cpp runs plain LoRA adapters only (not DoRA, other PEFT "
                        "methods, or adapters with extra trained modules)", "use method gguf to merge instead")
    if acfg.get("rank_pattern") or acfg.get("alpha_pattern"):
        raise UserError(f"{adapter_dir}: per-module ranks are not supported by llama.cpp adapters",
                        "use method gguf to merge instead")
    r, alpha = acfg["r"], acfg["lora_alpha"]
    if acfg.get("use_rslora"):
        alpha = alpha * r / np.sqrt(r)  # llama.cpp scales by alpha / r
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(alpha))
    n = 0
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "np") as f:
        for key in f.keys():
            parts = key.split(".")
            i, module = int(parts[parts.index("layers") + 1]), ".".join(parts[parts.index("layers") + 2:-2])
            gg = NAMES.get(module)
            if gg is None:
                raise UserError(f"{adapter_dir}: LoRA on '{module}' has no llama.cpp counterpart",
                                "target the attention and MLP projections only")
            t = f.get_tensor(key).astype(np.float32)
            side = "a" if parts[-2] == "lora_A" else "b"
            t = _rows(t, gg, config) if side == "b" else t
            w.add_tensor(f"blk.{i}.{gg}.weight.lora_{side}", np.ascontiguousarray(t))
            n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"rank": r, "alpha": float(alpha), "tensors": n}


def _check_supported(model) -> None:
    c = model.config
    kinds = {type(m).__name__ for m in model.modules()}
    if c.model_type != "llama" or any(k.startswith(("LowRank", "Int4", "Linear8bit")) for k in kinds):
        raise UserError(f"GGUF export supports plain Llama-architecture models (got {c.model_type}, "
                        f"{type(model).__name__})", "export the fine-tuned or layer-dropped model before "
                        "other compression")
    if any(getattr(model.get_submodule(f"model.layers.{i}.self_attn.q_proj"), "bias", None) is not None
           for i in range(c.num_hidden_layers)):
        raise UserError("GGUF export: attention biases are not supported", "use a model without them")
    if any(m.weight.shape != (m.out_features, m.in_features) for m in model.modules()
           if isinstance(m, torch.nn.Linear)):
        raise UserError("GGUF export: pruned (resized) layers are not supported",
                        "export the unpruned or layer-dropped model")


def _rope_theta(c) -> float:
    params = getattr(c, "rope_parameters", None) or {}  # transformers 5; older configs: rope_theta
    return float(params.get("rope_theta") or getattr(c, "rope_theta", 10000.0))


def _metadata(w, c) -> None:
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads or c.num_attention_heads)
    w.add_rope_freq_base(_rope_theta(c))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    w.add_rope_dimension_count(head_dim)


def _copy_tokenizer(w, source: Path) -> None:
    from gguf import GGUFReader

    reader = GGUFReader(str(source))
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if len(field.types) > 1 else None
            w.add_key_value(key, field.contents(), field.types[0], sub_type=sub)


def _build_tokenizer(w, tok) -> None:
    data = json.loads(tok.backend_tokenizer.to_str())
    if data["model"]["type"] != "BPE":
        raise UserError("GGUF export without a source GGUF supports byte-level BPE tokenizers only",
                        "start from a GGUF model (e.g. smollm2-135m) or a BPE tokenizer")
    vocab = tok.get_vocab()
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    special = set(tok.all_special_ids)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    if not merges:
        # llama.cpp refuses a BPE vocabulary without merges, and empty arrays do not survive the
        # writer; one merge of two ordinary tokens whose join is not in the vocabulary is inert
        # (llama.cpp falls back to the byte tokens of a merge it cannot map).
        plain = [t for i, t in enumerate(tokens) if i not in special]
        merges = [f"{plain[0]} {plain[1]}"]
    w.add_token_merges(merges)
    for name, setter in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("pad", w.add_pad_token_id)):
        tid = getattr(tok, f"{name}_token_id")
        if tid is not None:
            setter(tid)
    w.add_add_bos_token(False)


def write_gguf(model, tok, out: Path, source: Path | None) -> None:
    """An F32 GGUF of `model` at `out`."""
    import gguf

    _check_supported(model)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(str(getattr(model.config, "_name_or_path", "") or "supremum-export"))
    _metadata(w, model.config)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    _copy_tokenizer(w, source) if source else _build_tokenizer(w, tok)
    for name, arr in _tensors(model).items():
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src: Path, dst: Path, quant: str, threads: int) -> None:
    """llama.cpp's quantizer; K-quants fall back per tensor where a row is not a multiple of 256."""
    import llama_cpp

    ftype = getattr(llama_cpp, "LLAMA_FTYPE_ALL_F32" if quant == "f32" else f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama.cpp could not quantize {src} to {quant} (code {rc})")
