"""Pick the best variant within a budget, or say which constraint cannot be met and what comes
closest."""

from __future__ import annotations

from dataclasses import asdict

from pydantic import BaseModel, ConfigDict, Field

from supremum.errors import UserError
from supremum.frontier import (
    Variant,
    check_metric_cost,
    group_defaults,
    has_cost,
    reference_group,
    sign,
    split_by_group,
    variants,
)
from supremum.store import Store

LIMITS = {"max_latency_ms": "latency_b1", "max_size_mb": "size", "max_memory_mb": "memory",
          "max_params": "params", "max_decode_ms": "decode_ms"}
#: limits on a measured quantity other than a cost: name -> metric (upper bounds)
METRIC_LIMITS = {"max_forgetting": "forgetting"}


class PickLimits(BaseModel):
    """A budget for `pick`: every limit is a positive upper bound (None = no limit); the floor is
    on the quality metric, the ceiling on perplexity (or bits per byte)."""

    model_config = ConfigDict(extra="forbid")
    max_latency_ms: float | None = Field(None, gt=0, description="batch-1 latency with tokenization (ms)")
    max_size_mb: float | None = Field(None, gt=0, description="size on disk (MB)")
    max_memory_mb: float | None = Field(None, gt=0, description="peak resident memory (MB)")
    max_params: float | None = Field(None, gt=0, description="parameter count")
    max_decode_ms: float | None = Field(None, gt=0, description="causal LMs: decode ms per token")
    min_accuracy: float | None = Field(None, ge=-1, le=1, description="floor on the metric (accuracy and "
                                       "macro-F1 lie in 0-1, MCC in -1-1)")
    max_perplexity: float | None = Field(None, gt=0, description="causal LMs: ceiling on perplexity "
                                         "(or bits per byte)")
    min_score: float | None = Field(None, description="causal LMs: floor on a generation metric (--metric "
                                    "chrf, bleu, rouge_l: 0-100; exact_match: 0-1)")
    max_forgetting: float | None = Field(None, ge=0, description="causal LMs: most reference-perplexity "
                                         "rise against the parent, in % (eval --reference-data); a "
                                         "variant without that measurement does not qualify")


def violations(v: Variant, limits: dict[str, float], metric: str, min_metric: float | None) -> dict:
    """Constraint -> relative excess (0.1 = 10% over the limit); empty when all are met."""
    out = {}
    for name, limit in limits.items():
        value = v.metrics.get(METRIC_LIMITS[name]) if name in METRIC_LIMITS else v.costs.get(LIMITS[name])
        if value is None:
            out[name] = float("inf")
        elif value > limit:
            # relative excess; a forgetting limit (%) may be 0, so it counts in units of at least 1%
            out[name] = (value - limit) / (max(limit, 1.0) if name in METRIC_LIMITS else limit)
    if min_metric is not None:  # a floor, or a ceiling for lower-is-better metrics (perplexity)
        value, s = v.metrics.get(metric), sign(metric)
        key = f"{'min' if s > 0 else 'max'}_{metric}"
        if value is None or s * value < s * min_metric:
            out[key] = float("inf") if value is None else abs(min_metric - value) / min_metric
    return out


def pick(limits: dict[str, float], *, metric: str | None = None, min_metric: float | None = None,
         data: str | None = None, split: str | None = None, store: Store | None = None) -> dict:
    """`min_metric` is the floor on the metric (the ceiling for perplexity)."""
    limits = {k: v for k, v in limits.items() if v is not None}
    unknown = set(limits) - set(LIMITS) - set(METRIC_LIMITS)
    if unknown:
        raise UserError(f"unknown limit(s) {sorted(unknown)}", f"use: {', '.join([*LIMITS, *METRIC_LIMITS])}")
    from supremum.recipe import build

    build(PickLimits, limits, "pick limits", help_cmd="supremum pick --help")  # positive, else UserError
    rows = variants(store)
    # the group is chosen among rows that measured every limited cost (else the task's default)
    costs = [LIMITS[n] for n in limits if n in LIMITS]
    group = reference_group(rows, data, split, lambda r: all(has_cost(r, c) for c in costs)
                            if costs else has_cost(r, None))
    same, _ = split_by_group(rows, group)
    metric, cost = group_defaults(same, metric, None)
    check_metric_cost(metric, cost)
    same = [r for r in same if r.metrics.get(metric) is not None]
    scored = [(r, violations(r, limits, metric, min_metric)) for r in same]
    ok = [r for r, v in scored if not v]
    base = {"group": {"data": group[0], "split": group[1], "machine": group[2], "protocol": group[3]},
            "metric": metric,
            "limits": limits, "min_metric": min_metric, "considered": len(same)}
    if ok:
        best = max(ok, key=lambda r: (sign(metric) * r.metrics[metric], -(r.costs.get(cost) or 0)))
        return {**base, "pick": asdict(best), "within_budget": len(ok)}
    floor = f"{'min' if sign(metric) > 0 else 'max'}_{metric}"
    names = list(limits) + ([floor] if min_metric is not None else [])
    unmet = [n for n in names if all(n in v for _, v in scored)]
    closest = sorted(scored, key=lambda rv: sum(x for x in rv[1].values()))[:3]
    return {**base, "pick": None, "unmet_by_every_variant": unmet,
            "closest": [{**asdict(r), "violations": v} for r, v in closest]}


def cheapest(min_metric: float, *, data: str, split: str, metric: str = "accuracy", cost: str | None = None,
             store: Store | None = None) -> dict | None:
    """The cheapest variant (by `cost`, default the task's: latency at batch 1 with tokenization)
    whose `metric` is at least `min_metric`, among evaluations of `data`/`split` in one machine's
    group; None when nothing evaluated there measured the cost. Returns {artifact, lineage,
    metric, value, cost, cost_value, considered, machine}; artifact, lineage, value and
    cost_value are None when variants were evaluated but none holds `min_metric`."""
    rows = [r for r in variants(store) if r.metrics.get(metric) is not None]
    try:
        group = reference_group(rows, data, split, lambda r: has_cost(r, cost))
    except UserError:
        return None
    same, _ = split_by_group(rows, group)
    _, cost = group_defaults(same, metric, cost)
    ok = [r for r in same if r.costs.get(cost) is not None and r.metrics[metric] >= min_metric]
    best = min(ok, key=lambda r: (r.costs[cost], -r.metrics[metric]), default=None)
    return {"artifact": best and best.artifact, "lineage": best and best.lineage, "metric": metric,
            "value": best and best.metrics[metric], "cost": cost, "cost_value": best and best.costs[cost],
            "considered": len(same), "machine": group[2]}
