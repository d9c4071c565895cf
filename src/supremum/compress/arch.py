"""Where the prunable parts of a transformer live, for the two families we support: BERT-style
encoders and Llama-style decoders. Module names, not objects, so they go into manifests."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from supremum.errors import UserError


@dataclass(frozen=True)
class LayerParts:
    q: str
    k: str
    v: str
    o: str
    ffn_in: tuple[str, ...]  # linears producing the intermediate activations (up, gate)
    ffn_out: str             # the linear consuming them (down)


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    for path in ("bert.encoder.layer", "model.layers", "roberta.encoder.layer"):
        try:
            return path, model.get_submodule(path)
        except AttributeError:
            continue
    raise UserError(f"structural compression does not know the layout of {type(model).__name__}",
                    "supported: BERT-style encoders and Llama-style decoders")


def parts(model: nn.Module, i: int) -> LayerParts:
    path, layers = layer_list(model)
    p = f"{path}.{i}"
    if hasattr(layers[i], "attention"):
        return LayerParts(f"{p}.attention.self.query", f"{p}.attention.self.key",
                          f"{p}.attention.self.value", f"{p}.attention.output.dense",
                          (f"{p}.intermediate.dense",), f"{p}.output.dense")
    return LayerParts(f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj", f"{p}.self_attn.v_proj",
                      f"{p}.self_attn.o_proj", (f"{p}.mlp.gate_proj", f"{p}.mlp.up_proj"),
                      f"{p}.mlp.down_proj")


def head_dim(model: nn.Module) -> int:
    c = model.config
    return getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads


def check_heads_prunable(model: nn.Module) -> None:
    c = model.config
    kv = getattr(c, "num_key_value_heads", None)
    if kv is not None and kv != c.num_attention_heads:
        raise UserError("head pruning supports attention without grouped key/value heads",
                        "use prune-ffn or drop-layers for this model")
