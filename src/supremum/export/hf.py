"""`hf`: a plain transformers directory (config.json, model.safetensors, tokenizer) that
`AutoModelFor...from_pretrained` loads with the predictions supremum's own load gives.

Adapters and deltas are merged into the base; structurally pruned sizes go into config.json
(`intermediate_size`, `num_attention_heads` with `head_dim`, `num_hidden_layers`), and the
result is checked against the model transformers builds from that config: a pruned model whose
sizes differ by layer, or that holds modules the transformers class lacks, is refused."""

from __future__ import annotations

import copy
from pathlib import Path

from supremum.artifact import Artifact
from supremum.export import ExportConfig, Refusal, register
from supremum.export.source import plain_model, pytorch_refusal, save_tokenizer


def _refuses(art: Artifact) -> str | None:
    return pytorch_refusal(art, "plain")


@register("hf", "plain transformers directory (adapters and deltas merged)", "transformers", _refuses)
def write(art: Artifact, out: Path, cfg: ExportConfig) -> dict:
    model, tok = plain_model(art)
    model.config = plain_config(model)
    model.save_pretrained(out)
    return {"dtype": str(next(model.parameters()).dtype).removeprefix("torch."), **save_tokenizer(art, tok, out)}


def plain_config(model):
    """A copy of the model's config with the layer sizes its weights have; Refusal when
    transformers, built from any config, would not have exactly these tensors."""
    config = copy.deepcopy(model.config)
    if _known_layout(model):
        _pruned_sizes(model, config)
    _same_tensors(model, config)
    return config


def _known_layout(model) -> bool:
    from supremum.compress import arch
    from supremum.errors import UserError

    try:
        arch.layer_list(model)
    except UserError:
        return False
    return True


def _pruned_sizes(model, config) -> None:
    from torch import nn

    from supremum.backends.modules import get_module
    from supremum.compress import arch

    _, layers = arch.layer_list(model)
    d = arch.head_dim(model)
    parts = [arch.parts(model, i) for i in range(len(layers))]
    if not all(isinstance(get_module(model, n), nn.Linear) for p in parts for n in (p.q, p.ffn_out)):
        return  # wrapped by a method's modules: the tensor check below names them
    heads = [get_module(model, p.q).out_features // d for p in parts]
    ffn = [get_module(model, p.ffn_out).in_features for p in parts]
    for what, sizes in (("attention heads", heads), ("feed-forward neurons", ffn)):
        if len(set(sizes)) > 1:
            raise Refusal(f"its pruned layers keep different numbers of {what} ({sizes}), and "
                          "config.json has one number for all layers")
    if heads and heads[0] != config.num_attention_heads:
        if getattr(config, "num_key_value_heads", None) == config.num_attention_heads:
            config.num_key_value_heads = heads[0]
        if "head_dim" in config.to_dict():
            config.head_dim = d
        config.num_attention_heads = heads[0]
    if ffn:
        config.intermediate_size = ffn[0]


def _same_tensors(model, config) -> None:
    """Refusal unless `type(model)(config)` has the same tensor names and shapes as `model`
    (built on the meta device: no memory, no initialization)."""
    import torch

    try:
        with torch.device("meta"):
            skeleton = type(model)(config)
    except ValueError as e:  # e.g. BERT: hidden size not a multiple of the head count
        raise Refusal(f"its pruned sizes have no config.json form ({e})") from None
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    extra, missing = sorted(have.keys() - want.keys()), sorted(want.keys() - have.keys())
    if extra or missing:
        raise Refusal(f"it holds tensors {type(model).__name__} does not have ({(extra or missing)[:2]}), "
                      "e.g. modules a method added")
    bad = [k for k in have if have[k] != want[k]]
    if bad:
        raise Refusal(f"its pruned shapes have no config.json form ({bad[0]}: {list(have[bad[0]])}, "
                      f"config.json gives {list(want[bad[0]])}; attention heads pruned from BERT change "
                      "the head size transformers derives)")
