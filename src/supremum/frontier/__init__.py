"""The accuracy-versus-cost frontier over every evaluated variant in the store, and picking the
best variant for a budget. Measurements are only compared within one group: the same
evaluation data and split, on the same machine; rows from other groups are listed apart with
the reason, never mixed in silently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from supremum.errors import UserError
from supremum.store import Store

COSTS = {
    "latency_b1": "batch-1 latency with tokenization, median (ms)",
    "latency_b1_model": "batch-1 latency of the model alone, median (ms)",
    "latency_b32": "batch-32 latency with tokenization, median (ms)",
    "size": "size on disk (MB)",
    "memory": "peak resident memory of the evaluating process (MB)",
    "params": "parameters",
    "decode_ms": "batch-1 greedy decode, median ms per token (causal LMs)",
    "ttft": "time to first token at batch 1 (ms, causal LMs)",
}
METRICS = ("accuracy", "macro_f1", "mcc", "ece", "perplexity", "bits_per_byte")
LOWER_IS_BETTER = ("perplexity", "bits_per_byte", "ece")
#: default (metric, cost) per task
DEFAULTS = {"text-classification": ("accuracy", "latency_b1"), "text-generation": ("perplexity", "decode_ms")}


def sign(metric: str) -> float:
    """+1 when higher is better, -1 when lower is (perplexity): compare sign * value."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


@dataclass
class Variant:
    artifact: str
    lineage: str
    data: str
    split: str
    machine: str
    metrics: dict
    costs: dict
    run: str
    path: str | None = None
    started: float = 0.0
    task: str = "text-classification"
    #: how the metric was measured where that changes its value (perplexity: window, stride, tokens)
    protocol: str = ""
    #: agreement of its explanations with its parent's (`explain --drift`), where measured
    explanation_agreement: dict | None = None
    #: examples the metric was computed on (classifiers), for its interval
    examples: int | None = None

    def group(self) -> tuple[str, str, str, str]:
        return (self.data, self.split, self.machine, self.protocol)


def _protocol(m: dict) -> str:
    d = m.get("perplexity_detail")
    return f"window {d['window']}, stride {d['stride']}, {d['tokens']} tokens" if d else ""


def _costs(m: dict) -> dict:
    c = m.get("cost") or {}
    lat = lambda b, k: ((c.get(b) or {}).get(k) or {}).get("median_ms")  # noqa: E731
    gen = c.get("generation") or {}
    return {"latency_b1": lat("latency_b1", "with_tokenization"),
            "latency_b1_model": lat("latency_b1", "model_only"),
            "latency_b32": lat("latency_b32", "with_tokenization"), "size": m.get("size_on_disk_mb"),
            "memory": c.get("peak_rss_mb"), "params": c.get("params"),
            "decode_ms": gen.get("decode_ms_per_token"), "ttft": gen.get("ttft_ms")}


def _metrics(m: dict) -> dict:
    """The comparable metrics of an evaluation; ECE (a fraction) from its calibration block."""
    return {k: (m.get("calibration") or {}).get("ece") if k == "ece" else m.get(k) for k in METRICS}


def explanation_agreement(drift: dict) -> dict:
    """The frontier's summary of an explain run's drift: occlusion's (it runs on every backend),
    else the first method's, top-5 overlap and Spearman mean, and the prediction agreement."""
    method = "occlusion" if "occlusion" in drift["methods"] else next(iter(drift["methods"]), None)
    s = drift["methods"].get(method, {})
    return {"against": drift["against"], "method": method, "examples": drift["compared"],
            "top5": ((s.get("top_k_overlap") or {}).get("5") or {}).get("mean"),
            "spearman": (s.get("spearman") or {}).get("mean"),
            "prediction_agreement": drift["prediction_agreement"]}


def variants(store: Store | None = None) -> list[Variant]:
    """The latest finished evaluation of each (artifact, data, split, machine): `eval` runs, and
    `zeroshot` runs (a causal LM prompted with k examples, no artifact), which name their variant;
    with the explanation agreement of the artifact's latest `explain` run against its parent."""
    store = store or Store()
    arts = {a["id"]: a for a in store.artifacts()}
    latest: dict[tuple, Variant] = {}
    runs = store.runs()
    agreement = {r["parents"][0]: explanation_agreement(r["metrics"]["drift"]) for r in runs
                 if r["kind"] == "explain" and r["status"] == "finished" and r.get("parents")
                 and (r.get("metrics") or {}).get("drift")}  # oldest first: the newest wins
    for r in runs:
        m = r.get("metrics") or {}
        if r["kind"] not in ("eval", "zeroshot") or r["status"] != "finished" or not any(k in m for k in METRICS):
            continue
        # A base model measured as it is (no artifact) is named by the model and its backend.
        base = f"{m['model']} ({m.get('backend', 'pytorch')})" if m.get("model") else None
        art = m.get("artifact") or m.get("variant") or base or (r.get("parents") or [None])[0]
        machine = (m.get("machine") or r.get("machine") or {}).get("cpu", "?")
        row = arts.get(art, {})
        lineage = m.get("lineage") or row.get("method") or "?"
        v = Variant(art, lineage, m.get("data", "?"), m.get("split", "?"), machine,
                    _metrics(m), _costs(m), r["id"], row.get("path"), r["started"],
                    m.get("task", "text-classification"), _protocol(m),
                    explanation_agreement=agreement.get(art), examples=m.get("examples"))
        key = (art, v.data, v.split, machine, v.protocol)
        latest.pop(key, None)  # runs come oldest first: keep the newest
        latest[key] = v
    return list(latest.values())


def pareto(rows: list[Variant], metric: str, cost: str) -> list[Variant]:
    """Rows no other row beats on both: better (or equal) metric at lower (or equal) cost,
    strictly better on one. Sorted by cost."""
    usable = [r for r in rows if r.metrics.get(metric) is not None and r.costs.get(cost) is not None]
    q = lambda r: sign(metric) * r.metrics[metric]  # noqa: E731 - higher is better after this

    def dominated(a: Variant) -> bool:
        return any(q(b) >= q(a) and b.costs[cost] <= a.costs[cost]
                   and (q(b) > q(a) or b.costs[cost] < a.costs[cost]) for b in usable)

    return sorted((r for r in usable if not dominated(r)), key=lambda r: r.costs[cost])


def reference_group(rows: list[Variant], data: str | None, split: str | None,
                    measured: Callable[[Variant], bool] | None = None) -> tuple[str, str, str, str]:
    """The group to compare in: the given data/split (else the latest evaluation's), on this
    machine when it measured any of them, else on the machine of the latest evaluation.
    `measured` says whether a row has the costs the caller compares; only such rows choose the
    group (a later quality-only `eval --no-speed` must not switch it to a group with no costs),
    unless no row has them."""
    from supremum.machine import fingerprint

    chosen = [r for r in rows
              if (data is None or _same_data(r.data, data)) and (split is None or r.split == split)]
    if not chosen:
        raise UserError("no finished evaluation matches" + (f" data {data}" if data else "")
                        + (f" split {split}" if split else ""), "run `supremum eval <artifact>` first")
    if measured is not None:
        chosen = [r for r in chosen if measured(r)] or chosen
    latest = max(chosen, key=lambda r: r.started)
    data, split, protocol = latest.data, latest.split, latest.protocol
    here = fingerprint()["cpu"]
    if any(r.machine == here and r.data == data and r.split == split for r in chosen):
        return (data, split, here, protocol)
    return latest.group()


def _same_data(a: str, b: str) -> bool:
    from pathlib import Path

    return a == b or Path(a).name == Path(b).name or Path(a).resolve() == Path(b).resolve()


def split_by_group(rows: list[Variant], group: tuple) -> tuple[list[Variant], list[tuple[Variant, str]]]:
    same, other = [], []
    for r in rows:
        if r.group() == group:
            same.append(r)
        elif r.data != group[0] or r.split != group[1]:
            other.append((r, f"evaluated on {r.data} [{r.split}]"))
        elif r.protocol != group[3]:
            other.append((r, f"measured differently ({r.protocol} vs {group[3]})"))
        else:
            other.append((r, f"measured on another machine ({r.machine})"))
    return same, other


def group_task(same: list[Variant]) -> str:
    """text-generation when every row of the group is a causal LM, else text-classification."""
    return "text-generation" if same and {r.task for r in same} == {"text-generation"} else "text-classification"


def group_defaults(same: list[Variant], metric: str | None, cost: str | None) -> tuple[str, str]:
    """The task's metric and cost where not given (perplexity/decode for causal LMs)."""
    task = group_task(same)
    return metric or DEFAULTS[task][0], cost or DEFAULTS[task][1]


def has_cost(r: Variant, cost: str | None) -> bool:
    """Whether the row measured `cost` (else its task's default cost)."""
    return r.costs.get(cost or DEFAULTS.get(r.task, DEFAULTS["text-classification"])[1]) is not None


def frontier(metric: str | None = None, cost: str | None = None, data: str | None = None,
             split: str | None = None, store: Store | None = None) -> dict:
    rows = variants(store)
    group = reference_group(rows, data, split, lambda r: has_cost(r, cost))
    same, other = split_by_group(rows, group)
    metric, cost = group_defaults(same, metric, cost)
    check_metric_cost(metric, cost)
    task = group_task(same)
    unmeasured = f"no {cost} measured (evaluated with --no-speed?)"
    other = [(r, unmeasured if r.costs.get(cost) is None else why) for r, why in other]
    other += [(r, unmeasured if r.costs.get(cost) is None else f"no {metric} measured") for r in same
              if r.costs.get(cost) is None or r.metrics.get(metric) is None]
    same = [r for r in same if r.costs.get(cost) is not None and r.metrics.get(metric) is not None]
    front = pareto(same, metric, cost)
    ids = {r.artifact for r in front}
    return {"metric": metric, "cost": cost, "cost_meaning": COSTS[cost],
            "task": task,
            "group": {"data": group[0], "split": group[1], "machine": group[2], "protocol": group[3]},
            "frontier": [asdict(r) for r in front],
            "dominated": [asdict(r) for r in same if r.artifact not in ids],
            "not_comparable": [{**asdict(r), "reason": why} for r, why in other]}


def check_metric_cost(metric: str, cost: str) -> None:
    """UserError unless `metric` is one of METRICS and `cost` one of COSTS."""
    if metric not in METRICS:
        raise UserError(f"unknown metric '{metric}'", f"use one of: {', '.join(METRICS)}")
    if cost not in COSTS:
        raise UserError(f"unknown cost '{cost}'", f"use one of: {', '.join(COSTS)}")


# `supremum.frontier(...)` is the public API function (see supremum.facade).
from supremum.facade import make_callable  # noqa: E402

make_callable(__name__)
