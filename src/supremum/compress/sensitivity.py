"""Per-layer sensitivity: the dev-metric change when only one linear layer is quantized (int8,
int4) or pruned (50% magnitude), everything else untouched; and the search that keeps the most
sensitive layers in full precision until a quantized model is within an accuracy budget.

Layers are changed in place and restored, so one model copy serves the whole sweep.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from supremum import backends
from supremum.backends.modules import Int4Linear, body_linears, get_module, set_module
from supremum.backends.transforms import ao_dynamic
from supremum.compress.context import Context
from supremum.infer import predict_logits

SCHEMES = ("int8", "int4", "prune50")


def _variant(lin: nn.Linear, scheme: str) -> nn.Module | None:
    if scheme == "int8":
        from torch.ao.nn.quantized.dynamic import Linear as DynLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        src = copy.copy(lin)
        src.qconfig = per_channel_dynamic_qconfig
        return DynLinear.from_float(src)
    if scheme == "int4":
        return Int4Linear.from_linear(lin, 32) if lin.in_features % 32 == 0 else None
    new = copy.deepcopy(lin)
    with torch.no_grad():
        w = new.weight
        w[w.abs() <= w.abs().flatten().kthvalue(max(1, w.numel() // 2)).values] = 0
    return new


class Scorer:
    """Accuracy of the model on a fixed set of texts, in its current state."""

    baseline_key = "baseline_accuracy"
    baseline_sign = 1.0  # reported baseline = sign x score
    unit = "accuracy points vs the unchanged model (negative: worse)"

    def __init__(self, model, tok, texts: list[str], labels: list[int], prep) -> None:
        self.model, self.pad = model, tok.pad_token_id
        self.ids, self.labels = prep.tokenize(tok, texts), np.asarray(labels)

    def __call__(self) -> float:
        logits = predict_logits(self.model, self.ids, self.pad)
        return float((logits.argmax(-1) == self.labels).mean())


class LMScorer:
    """Minus the mean token NLL of a causal LM on fixed dev blocks; 100 x its change is about
    minus the percent change in perplexity."""

    baseline_key = "baseline_loss"
    baseline_sign = -1.0  # the score is minus the loss
    unit = ("-100 x change in dev loss (nats/token) vs the unchanged model, about minus the % change "
            "in perplexity (negative: worse)")

    def __init__(self, model, split) -> None:
        from supremum.lm.metrics import dev_scorer

        self.model, self.split, self.score = model, split, dev_scorer()

    def __call__(self) -> float:
        return self.score(self.model, self.split)[0]


def scorer_for(model, ctx, split: str = "dev", limit: int | None = None):
    if ctx.is_lm:
        enc = ctx.encoded(split)
        enc.ids, enc.labels = enc.ids[:limit], enc.labels[:limit]
        return LMScorer(model, enc)
    data = ctx.data
    return Scorer(model, ctx.tokenizer, data.texts(split)[:limit], data.labels(split)[:limit], ctx.prep)


def layer_sensitivity(model, scorer: Scorer, schemes=SCHEMES, layers: list[str] | None = None) -> dict:
    torch.backends.quantized.engine = "x86"
    base = scorer()
    rows = []
    for name in layers or body_linears(model):
        lin = get_module(model, name)
        row = {"layer": name}
        for scheme in schemes:
            new = _variant(lin, scheme)
            if new is None:
                row[scheme] = None
                continue
            set_module(model, name, new)
            row[scheme] = 100 * (scorer() - base)  # points; negative is a loss
            set_module(model, name, lin)
        rows.append(row)
    rows.sort(key=lambda r: min(v for k, v in r.items() if k != "layer" and v is not None))
    return {scorer.baseline_key: scorer.baseline_sign * base, "layers": rows, "schemes": list(schemes),
            "unit": scorer.unit}


def sensitivity(art, data_cfg, split: str | None = None, schemes=SCHEMES, limit: int | None = None) -> dict:
    """Library entry for `supremum sensitivity`: measure and rank every linear layer; the
    result is recorded in the artifact's metrics (the report reads it from there). The split
    is chosen as eval chooses it: dev of the training data, any other file whole."""
    from supremum.preprocessing import WHOLE, eval_split

    split = eval_split(art, data_cfg, split)
    model, tok = backends.load(art)
    scorer = scorer_for(model, Context(art, tok, data_cfg, whole=split == WHOLE), split, limit)
    t0 = time.perf_counter()
    out = layer_sensitivity(model, scorer, schemes)
    n = len(scorer.split.ids) if isinstance(scorer, LMScorer) else len(scorer.labels)
    out.update({"artifact": art.id, "data": data_cfg.path, "split": split, "examples": n,
                "seconds": time.perf_counter() - t0})
    art.record_metrics(f"sensitivity:{split}", out)
    return out


def keep_for_budget(model, ctx, method: str, max_drop: float, keep: list[str]) -> tuple[list[str], dict]:
    """Greedy: quantize everything, then return layers to fp32 from the most sensitive down
    until the dev accuracy is within `max_drop` points. Scored on the dev split."""
    scorer = scorer_for(model, ctx)
    sens = layer_sensitivity(model, scorer, ("int8",))
    base, order = scorer.baseline_sign * sens[scorer.baseline_key], [r["layer"] for r in sens["layers"]]
    keep, tried = list(keep), []
    for extra in [None, *order]:
        if extra is not None:
            keep.append(extra)
        trial = ao_dynamic(copy.deepcopy(model), body_linears(model, keep), "x86", True)
        scorer.model = trial
        drop = 100 * (base - scorer())
        tried.append({"kept_fp32": len(keep), "drop_pt": drop})
        if drop <= max_drop:
            break
    return keep, {scorer.baseline_key: sens[scorer.baseline_key], "max_drop_pt": max_drop, "steps": tried,
                  "scored_on": "dev split (the layers chosen are fitted to it)"}
