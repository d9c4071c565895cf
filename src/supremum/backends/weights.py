"""Saving and rebuilding compressed PyTorch models without pickle.

A compressed artifact stores config.json (the architecture before compression), the weights in
`model.safetensors`, and `transforms` in the manifest: the ordered list of changes (resized
layers, low-rank factors, casts, quantized layers; see supremum.backends.transforms) that turn
the plain architecture into the compressed one. Loading replays the transforms on an empty
model, then loads the tensors, so a compressed model reloads in a fresh process exactly as it
was saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from supremum.backends.modules import get_module
from supremum.backends.transforms import TRANSFORMS
from supremum.errors import UserError
from supremum.tasks import Task, get_task

WEIGHTS = "model.safetensors"


# ---- tensors in and out ------------------------------------------------------------------

def _is_ao_dynamic(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")


def dump_state(model: nn.Module, sparse: list[str] = ()) -> tuple[dict, dict]:
    """(plain tensors, string metadata) for safetensors, whatever layers the model holds."""
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    tensors: dict[str, torch.Tensor] = {}
    dyn = _dyn_names(model)
    for name in dyn:
        w, b = model.get_submodule(name)._packed_params._weight_bias()
        tensors.update(_qtensor_to_plain(name, w))
        if b is not None:
            tensors[f"{name}.bias"] = b.detach()
    # A tied output head is the embedding matrix: stored once, re-tied on load (see _tied).
    rest = {k: v for k, v in model.state_dict().items()
            if "_packed_params" not in k and k.rsplit(".", 1)[0] not in dyn and not _tied(model, k)}
    flat, meta = flatten_tensor_state_dict(rest)
    tensors.update(flat)
    for name in sparse:
        tensors.update(_sparse_encode(name, tensors.pop(name)))
    return {k: v.contiguous() for k, v in tensors.items()}, meta


def _dyn_names(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if _is_ao_dynamic(m)}


def _qtensor_to_plain(name: str, w: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {f"{name}.weight_int8": w.int_repr()}
    if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        out[f"{name}.weight_scales"] = w.q_per_channel_scales().double()
        out[f"{name}.weight_zero_points"] = w.q_per_channel_zero_points().long()
    else:
        out[f"{name}.weight_scales"] = torch.tensor([w.q_scale()], dtype=torch.float64)
        out[f"{name}.weight_zero_points"] = torch.tensor([w.q_zero_point()], dtype=torch.long)
    return out


def _plain_to_qtensor(tensors: dict, name: str) -> torch.Tensor:
    q = tensors.pop(f"{name}.weight_int8")
    scales, zps = tensors.pop(f"{name}.weight_scales"), tensors.pop(f"{name}.weight_zero_points")
    if scales.numel() == 1 and q.shape[0] != 1:
        return torch._make_per_tensor_quantized_tensor(q, float(scales[0]), int(zps[0]))
    return torch._make_per_channel_quantized_tensor(q, scales, zps, 0)


def _sparse_encode(name: str, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Non-zero values plus a bit mask: 4 bytes per kept weight and 1 bit per weight."""
    flat = w.flatten()
    mask = flat != 0
    bits = torch.from_numpy(np.packbits(mask.numpy()))
    return {f"{name}.__values": flat[mask].clone(), f"{name}.__mask": bits,
            f"{name}.__shape": torch.tensor(list(w.shape), dtype=torch.long)}


def _sparse_decode(tensors: dict, name: str) -> torch.Tensor:
    values, bits = tensors.pop(f"{name}.__values"), tensors.pop(f"{name}.__mask")
    shape = tensors.pop(f"{name}.__shape").tolist()
    n = int(np.prod(shape))
    mask = torch.from_numpy(np.unpackbits(bits.numpy())[:n].astype(bool))
    dense = torch.zeros(n, dtype=values.dtype)
    dense[mask] = values
    return dense.reshape(shape)


def write_weights(transforms: list[dict]):
    """A `write_weights` hook for save_artifact that stores any compressed model."""
    sparse = [n for t in transforms if t["kind"] == "sparse" for n in t["tensors"]]

    def write(model: nn.Module, out: Path) -> dict:
        model.config.save_pretrained(out)
        tensors, meta = dump_state(model, sparse)
        save_file(tensors, str(out / WEIGHTS), metadata=meta)
        return {"transforms": transforms}

    return write


def load_transformed(art, task: str | Task):
    """(model, tokenizer) of a PyTorch artifact with transforms: the plain architecture from
    config.json, each transform's structure replayed in order, then the stored tensors."""
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(str(art.path))
    config = tf.AutoConfig.from_pretrained(str(art.path))
    # random init, overwritten below; keeps computed buffers right
    model = get_task(task).model_class().from_config(config)
    for t in art.manifest.transforms:
        if t["kind"] not in TRANSFORMS:
            raise UserError(f"{art.path}: unknown transform '{t['kind']}' in the manifest",
                            "this artifact was written by a newer supremum; upgrade")
        model = TRANSFORMS[t["kind"]].rebuild(model, t)
    _load_tensors(model, art.path / WEIGHTS, art.manifest.transforms)
    return model.eval(), tok


def _load_tensors(model: nn.Module, path: Path, transforms: list[dict]) -> None:
    from safetensors import safe_open
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    for name in [n for t in transforms if t["kind"] == "sparse" for n in t["tensors"]]:
        tensors[name] = _sparse_decode(tensors, name)
    dyn = _dyn_names(model)
    for name in sorted(dyn):
        bias = tensors.pop(f"{name}.bias", None)
        get_module(model, name).set_weight_bias(_plain_to_qtensor(tensors, name), bias)
    state, leftover = unflatten_tensor_state_dict(tensors, meta) if meta else (tensors, [])
    expected = {k for k in model.state_dict() if k.rsplit(".", 1)[0] not in dyn and "_packed_params" not in k}
    missing = [k for k in expected - state.keys() if not _tied(model, k)]
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected or leftover:
        raise UserError(f"{path}: weights do not match the recorded architecture "
                        f"(missing {sorted(missing)[:3]}, unexpected {unexpected[:3]})", "re-create the artifact")
    for key, value in state.items():
        _assign(model, key, value)
    model.tie_weights()


def _assign(model: nn.Module, key: str, value: torch.Tensor) -> None:
    """Set a parameter or buffer by name, keeping quantized tensor subclasses as they are
    (load_state_dict would copy into the skeleton's own tensor types)."""
    owner, _, attr = key.rpartition(".")
    mod = model.get_submodule(owner)
    if attr in mod._parameters:
        # Trainable like from_pretrained's parameters (pruning scores and distillation need
        # gradients); quantized tensor subclasses stay frozen.
        plain = type(value) is torch.Tensor and value.is_floating_point()
        mod._parameters[attr] = nn.Parameter(value, requires_grad=plain)
    else:
        mod._buffers[attr] = value


def _tied(model: nn.Module, key: str) -> bool:
    return key.endswith("lm_head.weight") and getattr(model.config, "tie_word_embeddings", False)
