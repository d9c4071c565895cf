"""The answer first: which variant to ship. Under the user's budgets, the `pick` within them;
without budgets, the best variant, the smallest within 1 pt of it and the fastest within 1 pt
(1% of perplexity for causal LMs). Each is stated against one baseline (the most accurate
uncompressed model of the group) in numbers and its lineage in words, all from the stored
evaluations, and ties below the split's resolution are named as ties."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from supremum.frontier import sign
from supremum.frontier.scope import stage_of
from supremum.machine import busy_caveat
from supremum.tasks import CAUSAL_LM

WITHIN = 1.0  # points (a share metric) or percent (perplexity, bits per byte)
RELATIVE = ("perplexity", "bits_per_byte")
PERCENT = ("accuracy", "macro_f1")

#: words for lineage steps that are neither a fine-tuning method nor a compressor (those name
#: themselves: `MethodConfig.words`, `Compressor.words`); a name found nowhere is shown as it is
WORDS = {"delta": "delta fine-tune", "prompt-tuning": "prompt tuning", "temperature": "temperature scaling"}


def step_words(step: str) -> str:
    """How reports name one lineage step: 'lora' -> 'LoRA fine-tune', 'prune-heads' -> 'head pruning'."""
    from supremum.compress import COMPRESSORS
    from supremum.train.methods import METHODS

    words = (COMPRESSORS[step].words if step in COMPRESSORS
             else METHODS[step].config_cls.words if step in METHODS else WORDS.get(step))
    return words or step


def lineage_words(lineage: str) -> str:
    """'lora>prune-heads+onnx-int8-dynamic' -> 'LoRA fine-tune → head pruning → ONNX Runtime int8 (dynamic)'."""
    steps = lineage.replace(">", "+").split("+")
    return " → ".join(step_words(s.split(":")[0]) + (f" {s.split(':', 1)[1]}" if ":" in s else "")
                      for s in steps)


def name(row: dict) -> str:
    """How a variant is shown: its pipeline stage where it came from one, else its lineage."""
    return stage_of(row.get("path")) or row["lineage"]


def hover(row: dict) -> str:
    """The ids a reader may need, for a title attribute."""
    return f"artifact {row['artifact']} · eval run {row['run']} · lineage {row['lineage']}"


@dataclass
class Answer:
    role: str
    row: dict
    sentence: str
    ties: list[str] = field(default_factory=list)


def baseline(rows: list[dict], metric: str) -> dict:
    """The most accurate uncompressed variant (no '>' in its lineage), else the most accurate."""
    plain = [r for r in rows if ">" not in r["lineage"]] or rows
    return max(plain, key=lambda r: sign(metric) * r["metrics"][metric])


def quality_delta(row: dict, base: dict, metric: str) -> str:
    a, b = row["metrics"][metric], base["metrics"][metric]
    if metric in RELATIVE:
        return f"{100 * (a / b - 1):+.2f}% {metric}"
    return f"{100 * (a - b):+.2f}".replace("-", "−") + f" pt {metric}"


def sentence(row: dict, base: dict, metric: str, speed_cost: str) -> str:
    """'LoRA fine-tune → ONNX Runtime int8 (dynamic): 7.4× faster at batch 1, 3.8× smaller, −0.46 pt accuracy
    (90.74%) vs full': against the baseline, in its speed and size."""
    head = lineage_words(row["lineage"])
    if row["artifact"] == base["artifact"]:
        return f"{head}: the baseline, {metric} {value_text(row, metric)}"
    parts = []
    s0, s1 = base["costs"].get(speed_cost), row["costs"].get(speed_cost)
    where = "per decoded token" if speed_cost == "decode_ms" else "at batch 1"
    if s0 and s1:
        parts.append(f"{s0 / s1:.1f}× faster {where}" if s1 <= s0 else f"{s1 / s0:.1f}× slower {where}")
        if caveat := busy_caveat(**{name(base): base.get("load"), name(row): row.get("load")}):
            parts[-1] += f" ({caveat})"
    z0, z1 = base["costs"].get("size"), row["costs"].get("size")
    if z0 and z1:
        parts.append(f"{z0 / z1:.1f}× smaller" if z1 <= z0 else f"{z1 / z0:.1f}× larger")
    parts.append(quality_delta(row, base, metric))
    return f"{head}: {', '.join(parts)} ({value_text(row, metric)}) vs {name(base)}"


def value_text(row: dict, metric: str) -> str:
    v = row["metrics"][metric]
    if metric not in PERCENT:
        return f"{v:.4g}"
    ci = interval(row, metric)
    return f"{100 * v:.2f}%" + (f" [{100 * ci[0]:.1f}–{100 * ci[1]:.1f}]" if ci else "")


def interval(row: dict, metric: str, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of accuracy over the n evaluated examples (None for other metrics or
    when n was not recorded): the uncertainty from the test set's size alone, not from seeds."""
    n = row.get("examples")
    if metric != "accuracy" or not n:
        return None
    from scipy.stats import binomtest

    ci = binomtest(round(row["metrics"][metric] * n), n).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def close_to(rows: list[dict], best: dict, metric: str, within: float) -> list[dict]:
    """Rows within `within` points (percent, for perplexity) of the best."""
    b = best["metrics"][metric]
    if metric in RELATIVE:
        return [r for r in rows if r["metrics"][metric] <= b * (1 + within / 100)]
    return [r for r in rows if sign(metric) * (b - r["metrics"][metric]) * 100 <= within + 1e-9]


def ties(rows: list[dict], row: dict, metric: str, pt: float | None) -> list[str]:
    """Names of the other variants whose accuracy differs from `row`'s by less than `pt` points."""
    if pt is None or metric != "accuracy":
        return []
    v = row["metrics"][metric]
    return [name(r) for r in rows if r["artifact"] != row["artifact"] and 100 * abs(r["metrics"][metric] - v) < pt]


def answers(res: dict, pt: float | None, picked: dict | None = None, budget: str = "") -> list[Answer]:
    """The summary rows of frontier result `res` (same shape as `frontier()`), `picked` the `pick`
    result under the budgets described by `budget` (None: no budgets given)."""
    rows = res["frontier"] + res["dominated"]
    if not rows:
        return []
    metric = res["metric"]
    speed = "decode_ms" if res.get("task") == CAUSAL_LM.pipeline_tag else "latency_b1"
    base = baseline(rows, metric)
    say = lambda r: sentence(r, base, metric, speed)  # noqa: E731
    if picked is not None:
        if picked.get("pick") is None:
            unmet = ", ".join(picked.get("unmet_by_every_variant") or []) or "the budget as a whole"
            return [Answer(f"Nothing meets {budget}", base, f"no variant meets {unmet}; the baseline is "
                           + say(base))]
        row = next((r for r in rows if r["artifact"] == picked["pick"]["artifact"]), picked["pick"])
        return [Answer(f"Recommended under {budget}", row, say(row), ties(rows, row, metric, pt))]
    best = max(rows, key=lambda r: (sign(metric) * r["metrics"][metric], -(r["costs"].get(speed) or math.inf)))
    near = close_to(rows, best, metric, WITHIN)
    unit = "%" if metric in RELATIVE else " pt"
    out = [Answer("Best", best, say(best), ties(rows, best, metric, pt))]
    for role, cost in (("Smallest", "size"), ("Fastest", speed)):
        measured = [r for r in near if r["costs"].get(cost) is not None]
        if not measured:
            continue
        r = min(measured, key=lambda r: (r["costs"][cost], -sign(metric) * r["metrics"][metric]))
        if len(out) > 1 and out[-1].row["artifact"] == r["artifact"]:  # one variant is both: say it once
            out[-1].role = f"Smallest and fastest within {WITHIN:g}{unit} of the best"
        else:
            out.append(Answer(f"{role} within {WITHIN:g}{unit} of the best", r, say(r), ties(rows, r, metric, pt)))
    return out
