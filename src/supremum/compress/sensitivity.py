"""Per-layer sensitivity: the dev-metric change when only one linear layer is quantized (int8,
int4) or pruned (50% magnitude), everything else untouched; and the search that keeps the most
sensitive layers in full precision until a quantized model is within an accuracy budget.

Layers are changed in place and restored, so one model copy serves the whole sweep.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from supremum import backends
from supremum.backends.modules import Int4Linear, body_linears, get_module, set_module
from supremum.backends.transforms import ao_dynamic
from supremum.compress.context import Context
from supremum.tasks.scoring import AccuracyScorer, LossScorer

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


# The dev scorers are the tasks' (`Task.scorer`); the old names stay importable.
Scorer, LMScorer = AccuracyScorer, LossScorer


def scorer_for(model, ctx, split: str = "dev", limit: int | None = None):
    """The parent task's dev scorer of `model` on the first `limit` examples of `split`."""
    return ctx.task.scorer(model, ctx, split, limit)


def layer_sensitivity(model, scorer: AccuracyScorer | LossScorer, schemes=SCHEMES,
                      layers: list[str] | None = None) -> dict:
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
    out.update({"artifact": art.id, "data": data_cfg.path, "split": split, "examples": scorer.size,
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
