"""Sentence-embedding classifiers: an encoder, pooled as sentence-transformers pools it (masked
mean or the first token, optionally L2-normalized), under one linear layer.

A transformers `*ForSequenceClassification` model classifies its own pooled output (BERT: the
[CLS] state through a dense+tanh "pooler"), which is not the embedding a sentence-transformer
(all-MiniLM-L6-v2: masked mean, then normalized) was trained to produce. Linear probes and SetFit
put their head on that embedding, so `to_sentence_classifier` turns a loaded classifier into one
that pools the sentence-transformers way, keeping its parameter names (`<base>.*`,
`classifier.*`): the artifact stores ordinary safetensors plus a `sentence-pooling` transform
(registered in supremum.backends.transforms) that replays this on load.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn

Pooling = Literal["mean", "cls"]
TRANSFORM = "sentence-pooling"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: Pooling,
         normalize: bool) -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, hidden): sentence-transformers' Pooling (mean over unmasked
    tokens, clamped denominator 1e-9; or token 0) and Normalize (L2, eps 1e-12)."""
    import torch.nn.functional as F

    if pooling == "cls":
        emb = hidden[:, 0]
    else:
        m = (attention_mask if attention_mask is not None
             else hidden.new_ones(hidden.shape[:2])).unsqueeze(-1).to(hidden.dtype)
        emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(emb, p=2, dim=1) if normalize else emb


class SentencePooled:
    """Mixin placed before a transformers sequence-classification class: the forward pools the
    base model's last hidden state (`sentence_pooling`: {"pooling", "normalize"}) and applies
    `classifier` (a Linear, hidden -> labels). Other keyword arguments (output_hidden_states,
    output_attentions: distillation reads them) go to the base model, whose hidden states and
    attentions are returned. Loss: mean cross-entropy when labels are given."""

    sentence_pooling: dict

    def _encode(self, input_ids, attention_mask, token_type_ids, **kwargs):
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return out, pool(out.last_hidden_state, attention_mask, **self.sentence_pooling)

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """(batch, hidden) sentence embeddings: what the classifier reads."""
        return self._encode(input_ids, attention_mask, token_type_ids)[1]

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        import torch.nn.functional as F
        from transformers.modeling_outputs import SequenceClassifierOutput

        out, emb = self._encode(input_ids, attention_mask, token_type_ids, **kwargs)
        logits = self.classifier(emb)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                        attentions=out.attentions)


@cache
def _pooled_class(cls: type) -> type:
    # One subclass per architecture, made once: instances keep every method and attribute of
    # the transformers class (config, base_model, prune_heads ...) and only the forward changes.
    return type(f"SentencePooled{cls.__name__}", (SentencePooled, cls), {})


def to_sentence_classifier(model: nn.Module, pooling: Pooling, normalize: bool) -> nn.Module:
    """The same model object, now pooling as a sentence-transformer; a classifier head that is
    not one Linear over the hidden size (RoBERTa's dense+out_proj) becomes one, freshly
    initialized. Raises ValueError for a model without a base model."""
    from torch import nn

    if getattr(model, "base_model", model) is model:
        raise ValueError(f"{type(model).__name__} has no separate base model to pool")
    if not isinstance(model, SentencePooled):
        model.__class__ = _pooled_class(type(model))
    model.sentence_pooling = {"pooling": pooling, "normalize": normalize}
    hidden, n = model.config.hidden_size, model.config.num_labels
    head = getattr(model, "classifier", None)
    if not (isinstance(head, nn.Linear) and head.in_features == hidden and head.out_features == n):
        model.classifier = nn.Linear(hidden, n)
    return model


def transform_spec(model: nn.Module) -> dict | None:
    """The manifest transform that rebuilds this model's pooling, or None for a plain classifier."""
    if not isinstance(model, SentencePooled):
        return None
    return {"kind": TRANSFORM, **model.sentence_pooling}


def declared_pooling(model_dir: str | Path | None) -> tuple[Pooling, bool] | None:
    """(pooling, normalize) a sentence-transformers model directory declares in modules.json
    and its Pooling config, or None when it declares none (not a sentence-transformer).
    Raises ValueError for a pooling other than mean or first token (max, weighted)."""
    if model_dir is None or not (Path(model_dir) / "modules.json").is_file():
        return None
    root = Path(model_dir)
    modules = json.loads((root / "modules.json").read_text())
    kinds = {m["type"].rsplit(".", 1)[-1]: m.get("path", "") for m in modules}
    if "Pooling" not in kinds:
        return None
    cfg = json.loads((root / kinds["Pooling"] / "config.json").read_text())
    if cfg.get("pooling_mode_cls_token"):
        mode: Pooling = "cls"
    elif cfg.get("pooling_mode_mean_tokens"):
        mode = "mean"
    else:
        raise ValueError(f"{root}: sentence-transformers pooling other than mean or cls ({cfg})")
    return mode, "Normalize" in kinds
