"""Plots of a search: each trial's dev score at the time it ended, the best so far, pruned and failed trials."""

from __future__ import annotations

import math
from pathlib import Path


def search_history(trials: list[dict], path: Path, *, lm: bool = False) -> Path:
    """Dev score (accuracy, or perplexity for a language model) against minutes since the search
    began; complete trials as dots, pruned as crosses at their last reported score, failed trials
    as ticks on the axis; a step line for the best so far. Written atomically as PNG."""
    from supremum.limit.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    done = [t for t in trials if t["ended_s"] is not None]
    show = (lambda v: math.exp(-v)) if lm else (lambda v: 100 * v)
    for state, marker, label in (("COMPLETE", "o", "complete"), ("PRUNED", "x", "pruned")):
        key = "value" if state == "COMPLETE" else "last_reported"
        xs = [t for t in done if t["state"] == state and t.get(key) is not None]
        ax.scatter([t["ended_s"] / 60 for t in xs], [show(t[key]) for t in xs], marker=marker, s=22,
                   label=f"{label} ({len(xs)})")
    failed = [t for t in done if t["state"] == "FAIL"]
    if failed:
        ax.plot([t["ended_s"] / 60 for t in failed], [0] * len(failed), "|", transform=ax.get_xaxis_transform(),
                ms=12, color="C3", label=f"failed ({len(failed)})")
    best, steps = None, []
    for t in sorted((t for t in done if t["state"] == "COMPLETE"), key=lambda t: t["ended_s"]):
        if best is None or t["value"] > best:
            best = t["value"]
        steps.append((t["ended_s"] / 60, show(best)))
    if steps:
        ax.step([s[0] for s in steps], [s[1] for s in steps], where="post", color="k", lw=1, label="best so far")
    ax.set(xlabel="minutes since the search began", ylabel="dev perplexity" if lm else "dev accuracy (%)",
           title="Search history")
    ax.legend(fontsize=8)
    return save_png(fig, path)
