"""Plots of a sweep and of a learning curve (matplotlib, PNG), written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from supremum.fsutil import write_bytes
from supremum.limit.fit import PowerFit, compute_optimal


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    write_bytes(path, buf.getvalue())
    return path


def _fits(analysis: dict) -> tuple[PowerFit, list[PowerFit]]:
    f = analysis["fit"]
    base = PowerFit(E=f["E"], A=[f["A"], f["B"]], alpha=[f["alpha"], f["beta"]], objective=f["objective"])
    boots = [PowerFit(E=p[0], A=[p[1], p[2]], alpha=[p[3], p[4]], objective=0.0)
             for p in analysis.get("bootstrap_params", [])]
    return base, boots


def frontier_band(analysis: dict, cs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Compute-optimal loss over `cs` from the fit, with the 95% bootstrap band (None without one)."""
    base, boots = _fits(analysis)
    mid = compute_optimal(base, cs)["loss"]
    if not boots:
        return mid, None, None
    curves = np.array([compute_optimal(b, cs)["loss"] for b in boots])
    return mid, np.nanquantile(curves, 0.025, axis=0), np.nanquantile(curves, 0.975, axis=0)


def sweep_figures(analysis: dict) -> dict:
    """name -> matplotlib figure (the caller saves or embeds and closes them)."""
    return {"loss_vs_compute": _loss_vs_compute(analysis), "isoflop": _isoflop(analysis),
            "limit": _limit(analysis)}


def sweep_plots(analysis: dict, out: Path) -> list[Path]:
    return [save_png(fig, out / f"{name}.png") for name, fig in sweep_figures(analysis).items()]


def _loss_vs_compute(a: dict):
    plt = pyplot()
    runs = a["runs"]
    c = np.array([r["flops"] for r in runs])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fitted = np.array([r.get("fitted", True) for r in runs])
    loss = np.array([r["loss"] for r in runs])
    sc = ax.scatter(c[fitted], loss[fitted], c=np.log10([r["N"] for r in runs])[fitted], cmap="viridis", s=18,
                    zorder=3)
    if (~fitted).any():
        ax.scatter(c[~fitted], loss[~fitted], facecolors="none", edgecolors="grey", s=18, zorder=3,
                   label="on the initial plateau (not fitted)")
    fig.colorbar(sc, ax=ax, label="log10 N (non-embedding parameters)")
    cs = np.logspace(np.log10(c.min()), np.log10(100 * c.max()), 80)
    mid, lo, hi = frontier_band(a, cs)
    ax.plot(cs, mid, color="C3", label="fit: compute-optimal loss")
    if lo is not None:
        ax.fill_between(cs, lo, hi, color="C3", alpha=0.2, label="95% bootstrap band")
    ax.axhline(a["fit"]["E"], color="k", ls="--", lw=1, label=f"E = {a['fit']['E']:.3f}")
    if "truth" in a:
        ax.axhline(a["truth"]["entropy_rate"], color="C2", ls=":", lw=1.5,
                   label=f"true H = {a['truth']['entropy_rate']:.3f}")
    ax.set(xscale="log", xlabel="training compute C = 6ND (FLOPs)", ylabel="held-out loss (nats/token)",
           title="Loss vs compute")
    ax.legend(fontsize=8)
    return fig


def _isoflop(a: dict):
    """Loss against N at fixed compute, from the fit (lines) and the runs nearest each level (dots)."""
    plt = pyplot()
    base, _ = _fits(a)
    runs = a["runs"]
    c = np.array([r["flops"] for r in runs])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    levels = np.logspace(np.log10(np.quantile(c, 0.3)), np.log10(10 * c.max()), 4)
    ns = np.logspace(np.log10(min(r["N"] for r in runs)) - 0.5, np.log10(max(r["N"] for r in runs)) + 1.5, 100)
    for i, lv in enumerate(levels):
        ax.plot(ns, base.predict(ns, lv / (6 * ns)), color=f"C{i}", label=f"C = {lv:.1e}")
        near = [r for r in runs if abs(np.log10(r["flops"] / lv)) < 0.15]
        ax.scatter([r["N"] for r in near], [r["loss"] for r in near], color=f"C{i}", s=16)
        opt = compute_optimal(base, lv)
        ax.scatter([opt["N"]], [opt["loss"]], marker="*", color=f"C{i}", s=90, edgecolor="k")
    ax.set(xscale="log", xlabel="N (non-embedding parameters)", ylabel="held-out loss (nats/token)",
           title="IsoFLOP curves (fit; stars: compute-optimal N)")
    lo = min(r["loss"] for r in runs)
    ax.set_ylim(a["fit"]["E"] - 0.05 * lo, max(r["loss"] for r in runs) * 1.05)
    ax.legend(fontsize=8)
    return fig


def _limit(a: dict):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    rows = [("fitted E", a["fit"]["E"], a["ci"]["E"]), ("best run", a["best_run"]["loss"], None)]
    if "truth" in a:
        t = a["truth"]
        rows.append(("true H", t["entropy_rate"], None))
        b = t["bayes_heldout"]
        rows.append(("Bayes, held-out", b["mean"], [b["mean"] - 1.96 * b["se"], b["mean"] + 1.96 * b["se"]]))
    for i, (_label, v, ci) in enumerate(rows):
        err = None if ci is None or np.isnan(ci[0]) else [[v - ci[0]], [ci[1] - v]]
        ax.errorbar([v], [i], xerr=err, fmt="o", color=f"C{i}", capsize=4)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set(xlabel="loss (nats/token)", title="The limit: fitted E (95% CI)")
    ax.invert_yaxis()
    return fig


def curve_plot(result: dict, path: Path) -> Path:
    return save_png(curve_figure(result), path)


def curve_figure(result: dict):
    plt = pyplot()
    pts = result["points"]
    split = result.get("split") or "held-out"
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.scatter([p["n"] for p in pts], [p["error"] for p in pts], s=16, label=f"runs ({split} error)")
    ns = np.logspace(np.log10(min(p["n"] for p in pts)), np.log10(100 * max(p["n"] for p in pts)), 80)
    f = result["fit"]
    ax.plot(ns, f["E"] + f["B"] * ns ** -f["beta"], color="C3", label="fit E + B/n^beta")
    if result.get("band"):
        band = np.array(result["band"])
        bn = np.array(result["band_n"])
        ax.fill_between(bn, band[:, 0], band[:, 1], color="C3", alpha=0.2, label="95% profile-likelihood band")
    lm = result.get("metric") == "perplexity"
    c = result.get("floor") if lm else result["ceiling"]
    what = f"{split} loss (ln perplexity)" if lm else f"{split} error"
    verdict = c.get("verdict", "fitted")
    ax.axhline(f["E"], color="k", ls="--", lw=1, label=f"floor: {what} {f['E']:.3f} ({verdict})")
    if not lm and c["ci"][0] == c["ci"][0]:
        ax.axhspan(1 - c["ci"][1], 1 - c["ci"][0], color="k", alpha=0.07, label="floor's 95% interval")
    ax.set(xscale="log", xlabel="training blocks" if lm else "labeled training examples",
           ylabel=what if lm else f"{split} error (1 - accuracy)", title="Learning curve")
    ax.legend(fontsize=8)
    return fig


def search_history(trials: list[dict], path: Path, *, lm: bool = False) -> Path:
    """The search-history figure (see `search_history_figure`) as PNG, written atomically."""
    return save_png(search_history_figure(trials, lm=lm), path)


def search_history_figure(trials: list[dict], *, lm: bool = False):
    """Dev score (accuracy %, or perplexity for a language model) against minutes since the search
    began; complete trials as dots, pruned as crosses at their last reported score, failed trials
    as ticks on the axis; a step line for the best so far."""
    import math

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
    return fig


def labels_plot(result: dict, path: Path) -> Path:
    return save_png(labels_figure(result), path)


def labels_figure(result: dict):
    """Accuracy against labels (symmetric-log x, so 0 labels has a place): each approach's mean
    over seeds with a mean ± s.d. band, plain fine-tuning's fitted curve with its 95%
    profile-likelihood band and ceiling interval, and the majority class."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for i, name in enumerate(result["approaches"]):
        rows = sorted((r for r in result["summary"] if r["approach"] == name), key=lambda r: r["budget"])
        if not rows:
            continue
        xs = np.array([r["budget"] for r in rows], dtype=float)
        mean = np.array([100 * r["mean"] for r in rows])
        sd = np.array([100 * (r["sd"] or 0.0) for r in rows])
        ax.plot(xs, mean, "o-", color=f"C{i}", ms=4, lw=1.2, label=name)
        ax.fill_between(xs, mean - sd, mean + sd, color=f"C{i}", alpha=0.18, lw=0)
    curve = result.get("curve") or {}
    if "fit" in curve:
        f = curve["fit"]
        ns = np.logspace(np.log10(min(p["n"] for p in curve["points"])), np.log10(10 * result["n_train"]), 80)
        ax.plot(ns, 100 * (1 - f["E"] - f["B"] * ns ** -f["beta"]), color="k", lw=1,
                label=f"{result['plain']}: fitted curve")
        if curve.get("band"):
            band = 100 * (1 - np.array(curve["band"]))
            ax.fill_between(curve["band_n"], band[:, 1], band[:, 0], color="k", alpha=0.08, lw=0,
                            label="fit's 95% band")
        c = curve["ceiling"]
        ax.axhline(100 * c["accuracy"], color="k", ls="--", lw=1,
                   label=f"ceiling {100 * c['accuracy']:.1f}% ({c.get('verdict', 'fitted')})")
        if c["ci"][0] == c["ci"][0]:
            ax.axhspan(100 * c["ci"][0], 100 * c["ci"][1], color="k", alpha=0.05)
    m = result["majority"]
    ax.axhline(100 * m["accuracy"], color="grey", ls=":", lw=1.2,
               label=f"majority class {100 * m['accuracy']:.1f}%")
    ax.set_xscale("symlog", linthresh=1)
    ticks = result["budgets"]
    ax.set_xticks(ticks, [f"all\n{b:,}" if b == result["n_train"] else f"{b:,}" for b in ticks], fontsize=7)
    ax.set_xlim(-0.2 if ticks[0] == 0 else ticks[0] / 1.5, ticks[-1] * (10 if "fit" in curve else 1.5))
    ax.set(xlabel="labelled training examples", ylabel=f"{result['split']} accuracy (%)",
           title=f"Accuracy against labels: {result['model']} on {Path(result['data']).name}")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig
