"""Domain-adaptive pretraining (Gururangan et al. 2020, "Don't Stop Pretraining"): the base model's
language-modelling objective continued on the user's unlabelled texts before fine-tuning.

Encoders with a masked-LM head class (BERT, RoBERTa, ...) train with transformers'
`DataCollatorForLanguageModeling` (BERT's 80/10/10 masking); decoders (Llama, ...) with the causal-LM
loss. The language model starts from exactly the base the classifier would start from (its base
model's weights are copied in), and its adapted base-model weights are written as a plain
transformers directory (the classifier's base model, e.g. BERT's pooler kept as it was) that the
fine-tune then loads as its base: adapters and deltas load over it too, so it stays next to the
artifact (`<artifact>-domain`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from supremum.config import DomainPretrainConfig
from supremum.errors import UserError
from supremum.fsutil import atomic_dir
from supremum.tasks import CAUSAL_LM, CLASSIFICATION

if TYPE_CHECKING:
    from torch import nn

RECORD = "domain_pretrain.json"
#: loss is measured on at most this many unlabelled texts (the same masks before and after)
EVAL_TEXTS = 2048


def adapt(name: str, gguf_file: str | None, texts: list[str], cfg: DomainPretrainConfig, max_length: int,
          seed: int, label_names: list[str], out: Path) -> dict:
    """Continue pretraining base model `name` on `texts` (cut to `max_length` tokens) for cfg.steps
    steps and write the adapted base model and tokenizer to `out` (atomically). Returns the record
    kept in the manifest: objective, steps, lr, texts, tokens, loss_before and loss_after (mean loss
    per predicted token on up to EVAL_TEXTS of the texts, the same masks before and after), the LM
    head's freshly initialized tensors, seconds and the directory. UserError for a model without a
    masked- or causal-LM head class, and on a non-finite loss."""
    import torch

    from supremum.models import load_model
    from supremum.preprocessing import preprocessing_for_model

    clf, tok = load_model(name, CLASSIFICATION, gguf_file=gguf_file, label_names=label_names)
    preprocessing_for_model(clf, tok, name, max_length)
    objective, lm_cls = _objective(clf, tok, name)
    lm, initialized = _load_lm(name, gguf_file, lm_cls)
    lm.base_model.load_state_dict(clf.base_model.state_dict(), strict=False)  # the very same start
    ids = tok(list(texts), truncation=True, max_length=max_length)["input_ids"]
    collate = _collator(tok, objective, cfg, seed)
    fixed = [_collator(tok, objective, cfg, seed + 1)([{"input_ids": x} for x in ids[i: i + cfg.batch_size]])
             for i in range(0, min(len(ids), EVAL_TEXTS), cfg.batch_size)]
    torch.manual_seed(seed)  # dropout
    before = lm_loss(lm, fixed, objective)
    t0 = time.perf_counter()
    _train(lm, ids, collate, cfg, seed)
    seconds = time.perf_counter() - t0
    after = lm_loss(lm, fixed, objective)
    clf.base_model.load_state_dict(lm.base_model.state_dict(), strict=False)
    record = {"base_model": name, "objective": objective, "steps": cfg.steps, "lr": cfg.lr,
              "batch_size": cfg.batch_size,
              **({"mlm_probability": cfg.mlm_probability} if objective == "masked-lm" else {}),
              "texts": len(ids), "tokens": sum(map(len, ids)), "eval_texts": min(len(ids), EVAL_TEXTS),
              "loss_before": before, "loss_after": after, "head_initialized": initialized,
              "seconds": round(seconds, 3), "dir": str(out.resolve())}
    _write(clf.base_model, tok, name, record, out)
    return record


def _objective(clf: nn.Module, tok, name: str) -> tuple[str, type]:
    import transformers as tf
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = clf.config.model_type
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and tok.mask_token is not None:
        return "masked-lm", tf.AutoModelForMaskedLM
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return CAUSAL_LM.name, CAUSAL_LM.model_class()
    raise UserError(f"model {name} ({kind}) has neither a masked-LM nor a causal-LM head class for "
                    "domain_pretrain", "drop domain_pretrain, or use an encoder or decoder model")


def _load_lm(name: str, gguf_file: str | None, lm_cls) -> tuple[nn.Module, list[str]]:
    """The LM of the same base; the names of head tensors the checkpoint lacked (initialized)."""
    from supremum.models.loading import Source, gguf_to_safetensors, resolve_source

    src = resolve_source(name, gguf_file)
    if src.kind == "tiny":
        from supremum.models.tiny import build_tiny

        lm, _ = build_tiny(name, lm_cls)
        return lm, ["(random tiny model)"]
    if src.kind == "gguf":
        src = Source("dir", str(gguf_to_safetensors(src)))
    try:
        lm, info = lm_cls.from_pretrained(src.path, output_loading_info=True)
    except OSError as e:
        raise UserError(f"model '{name}': cannot load its LM head class ({str(e).splitlines()[0]})",
                        "drop domain_pretrain, or use a local model directory") from None
    return lm, sorted(info.get("missing_keys", []))


def _collator(tok, objective: str, cfg: DomainPretrainConfig, seed: int):
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(tok, mlm=objective == "masked-lm",
                                           mlm_probability=cfg.mlm_probability, seed=seed)


def _train(lm: nn.Module, ids: list[list[int]], collate, cfg: DomainPretrainConfig, seed: int) -> None:
    import torch
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, math.ceil(0.06 * cfg.steps), cfg.steps)
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    lm.train()
    for step in range(1, cfg.steps + 1):
        if len(order) < cfg.batch_size:
            order += torch.randperm(len(ids), generator=g).tolist()
        take, order = order[: cfg.batch_size], order[cfg.batch_size:]
        batch = collate([{"input_ids": ids[i]} for i in take])
        if not (batch["labels"] != -100).any():  # nothing masked in this batch: no loss to take
            continue
        loss = lm(**batch).loss
        if not torch.isfinite(loss):
            raise UserError(f"domain_pretrain diverged at step {step} (loss {loss.item()})",
                            f"lower domain_pretrain.lr (now {cfg.lr})")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    lm.eval()


def lm_loss(lm: nn.Module, batches: list[dict], objective: str) -> float:
    """Mean loss per predicted token over `batches` (collated: input_ids, attention_mask, labels;
    -100 = not predicted); causal LMs predict each token from the ones before it."""
    import torch

    total, count = 0.0, 0
    was = lm.training
    lm.eval()
    with torch.inference_mode():
        for b in batches:
            labels = b["labels"][:, 1:] if objective == CAUSAL_LM.name else b["labels"]
            n = int((labels != -100).sum())
            if n:
                total += float(lm(**b).loss) * n  # transformers' loss: the mean over predicted tokens
                count += n
    lm.train(was)
    return total / count if count else float("nan")


def _write(base: nn.Module, tok, name: str, record: dict, out: Path) -> None:
    with atomic_dir(out) as tmp:
        base.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _copy_sentence_config(name, tmp)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _copy_sentence_config(name: str, dest: Path) -> None:
    """A sentence-transformers model's pooling declaration (modules.json and the module configs it
    names) goes along, so linear-probe and setfit pool the adapted encoder as they pooled the base."""
    from supremum.models.loading import resolve_source

    src = resolve_source(name)
    modules = Path(src.path) / "modules.json"
    if src.kind != "dir" or not modules.is_file():
        return
    shutil.copy(modules, dest / "modules.json")
    for m in json.loads(modules.read_text()):
        sub = m.get("path", "")
        if sub and (Path(src.path) / sub).is_dir():
            shutil.copytree(Path(src.path) / sub, dest / sub)
