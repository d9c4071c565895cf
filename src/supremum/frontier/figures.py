"""The report's figures (matplotlib, Agg): the quality-versus-cost frontier with intervals, ties and
the baseline marked, and the training curves; each as inline SVG whose points carry <title> hover
text, and as PNG/SVG files. Labels are placed by adjustText and then kept inside the axes by
widening the limits, so none is clipped or stacked."""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass

from supremum.frontier.answer import PERCENT, hover, interval, name

#: one colour per method family, the same in every figure (matplotlib's tab10)
FAMILIES = {"fine-tune": "#1f77b4", "ONNX Runtime": "#ff7f0e", "quantization": "#2ca02c", "pruning": "#d62728",
            "distillation": "#9467bd", "low-rank": "#8c564b", "GGUF": "#e377c2", "other": "#7f7f7f"}


def family(lineage: str) -> str:
    """The family of a variant's last step: 'full>prune-heads+onnx-int8-dynamic' -> 'ONNX Runtime'."""
    if ">" not in lineage:
        return "fine-tune"
    last = lineage.replace(">", "+").split("+")[-1].split(":")[0]
    for prefix, fam in (("onnx", "ONNX Runtime"), ("gguf", "GGUF"), ("prune", "pruning"),
                        ("drop-layers", "pruning"), ("distill", "distillation"), ("lowrank", "low-rank"),
                        ("int", "quantization"), ("fp16", "quantization"), ("bf16", "quantization")):
        if last.startswith(prefix):
            return fam
    return "other"


@dataclass
class Figure:
    """A rendered figure: `slug` names its files, `caption` states its scales."""

    slug: str
    title: str
    svg: str
    png: bytes
    caption: str = ""


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render(fig, slug: str, title: str, titles: dict[str, str] | None = None, caption: str = "") -> Figure:
    """SVG (prolog dropped, ids prefixed by `slug`, a <title> in each element named in `titles`) and
    PNG of `fig`, which is closed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")  # studies' figures are not constrained-layout
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    for gid, text in (titles or {}).items():
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{html.escape(text)}</title>', 1)
    # matplotlib's ids (clip paths, glyphs) repeat across figures: make them unique in the page
    svg = re.sub(r'(id="|url\(#|href="#)', lambda m: f"{m.group(1)}{slug}-", svg)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=150, bbox_inches="tight")
    pyplot().close(fig)
    return Figure(slug, title, svg, png.getvalue(), caption)


def keep_labels_inside(ax, texts, rounds: int = 8) -> None:
    """Widen the axes' limits until every text's extent lies inside the axes: labels are anchored
    in data coordinates, so widening a side moves them inwards relative to the frame."""
    for _ in range(rounds):
        ax.figure.canvas.draw()
        box = ax.get_window_extent()
        over = [0.0, 0.0, 0.0, 0.0]  # left, right, bottom, top: overshoot as a share of the frame
        for t in texts:
            e = t.get_window_extent()
            over = [max(over[0], (box.x0 - e.x0) / box.width), max(over[1], (e.x1 - box.x1) / box.width),
                    max(over[2], (box.y0 - e.y0) / box.height), max(over[3], (e.y1 - box.y1) / box.height)]
        if max(over) <= 0:
            return
        _widen(ax, "x", over[0], over[1])
        _widen(ax, "y", over[2], over[3])


def _widen(ax, axis: str, lo_share: float, hi_share: float) -> None:
    """Extend one axis by these shares of its span (plus a margin), in log space on a log axis."""
    log = (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log"
    f, g = (math.log10, lambda v: 10 ** v) if log else (float, float)
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    span = f(hi) - f(lo)
    grow = lambda share: 1.3 * share + 0.02 if share > 0 else 0.0  # noqa: E731
    new = (g(f(lo) - grow(lo_share) * span), g(f(hi) + grow(hi_share) * span))
    ax.set_xlim(*new) if axis == "x" else ax.set_ylim(*new)


def frontier_figure(res: dict, cost_label: str, slug: str, pt: float | None, base: dict | None) -> Figure:
    """Quality (with its 95% interval where n is known) against one cost; frontier points filled,
    dominated ones hollow, colour by method family, the baseline ringed, the band of differences
    the split cannot resolve shaded."""
    fig, titles, caption = frontier_axes(res, cost_label, slug, pt, base)
    return render(fig, slug, f"{res['metric']} vs {cost_label}", titles, caption)


def frontier_axes(res: dict, cost_label: str, slug: str, pt: float | None, base: dict | None):
    """The open figure of `frontier_figure`, its hover titles (gid -> text) and its caption."""
    from adjustText import adjust_text

    plt = pyplot()
    cost, metric = res["cost"], res["metric"]
    scale = 100.0 if metric in PERCENT else 1.0
    rows = res["frontier"] + res["dominated"]
    on = {r["artifact"] for r in res["frontier"]}
    fig, ax = plt.subplots(figsize=(10, 4.6), layout="constrained")
    titles, texts, ys_all, xs = {}, [], [], [r["costs"][cost] for r in rows]
    for i, r in enumerate(rows):
        x, y = r["costs"][cost], scale * r["metrics"][metric]
        ci = interval(r, metric)
        lo, hi = (scale * ci[0], scale * ci[1]) if ci else (y, y)
        ys_all += [lo, hi]
        colour = FAMILIES[family(r["lineage"])]
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]] if ci else None, fmt="s" if r["artifact"] in on else "o",
                    color=colour, mfc=colour if r["artifact"] in on else "white", ms=8, capsize=3, lw=1,
                    gid=f"{slug}-p{i}", zorder=3)
        titles[f"{slug}-p{i}"] = (f"{name(r)}: {metric} {y:.2f}{'%' if scale == 100 else ''}"
                                  + (f" [{lo:.2f}–{hi:.2f}]" if ci else "")
                                  + f", {cost_label} {x:.3g}; {hover(r)}")
        label = name(r) + (" (baseline)" if base and r["artifact"] == base["artifact"] else "")
        texts.append(ax.text(x, y, label, fontsize=10, clip_on=False, zorder=4))
        if base and r["artifact"] == base["artifact"]:
            ax.plot([x], [y], "o", ms=16, mfc="none", mec="black", lw=1, zorder=2)
    front = res["frontier"]
    ax.step([r["costs"][cost] for r in front], [scale * r["metrics"][metric] for r in front], where="post", lw=1,
            color="black", alpha=0.5, zorder=1)
    caption = _axes(ax, xs, ys_all, metric, scale, cost_label, pt, rows)
    for fam in sorted({family(r["lineage"]) for r in rows}):
        ax.plot([], [], "s", color=FAMILIES[fam], label=fam)
    ax.legend(fontsize=9, loc="best")
    fig.canvas.draw()
    adjust_text(texts, ax=ax, ensure_inside_axes=True, expand=(1.1, 1.3), time_lim=2,
                arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6})
    keep_labels_inside(ax, texts)
    (y0, y1), log = ax.get_ylim(), ax.get_xscale() == "log"
    scales = (f"Vertical axis {y0:.2f}–{y1:.2f}{' %' if scale == 100.0 else ''} (not from 0); horizontal axis "
              f"{'logarithmic' if log else 'linear'}.")
    return fig, titles, scales + caption


def _axes(ax, xs, ys, metric, scale, cost_label, pt, rows) -> str:
    """Limits a reader is not misled by, the resolution band; returns the caption's notes."""
    lo, hi = min(ys), max(ys)
    if scale == 100.0:  # at least 2 points tall, so a 0.4-pt gap does not fill the plot
        mid, half = (lo + hi) / 2, max((hi - lo) / 2, 1.0)
        lo, hi = mid - half, mid + half
    pad = 0.15 * (hi - lo or abs(hi) or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    log = min(xs) > 0 and max(xs) / min(xs) > 10
    if log:  # plain numbers on the ticks (2, 5, 10, 20), not 2x10^0
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    best = max(scale * r["metrics"][metric] for r in rows)
    if pt and metric == "accuracy":
        ax.axhspan(best - pt, best, color="grey", alpha=0.15, lw=0,
                   label=f"within {pt:.1f} pt of the best: a tie")
    unit = " (%)" if scale == 100.0 else ""
    ax.set_ylabel(metric + unit)
    ax.set_xlabel(cost_label + (" (log scale)" if log else ""))
    ax.grid(alpha=0.3)
    caption = ""
    if any(r.get("examples") for r in rows) and metric == "accuracy":
        caption += " Bars: 95% Wilson intervals over the evaluated examples (test-set size only, not seeds)."
    if pt and metric == "accuracy":
        caption += f" Shaded: differences below the split's resolution ({pt:.1f} pt), drawn as ties."
    return caption + " Filled squares: on the frontier; ring: the baseline."


def ema(values: list[float], span: int) -> list[float]:
    """Exponential moving average, alpha = 2 / (span + 1), started at the first value."""
    out, a = [], 2 / (span + 1)
    for v in values:
        out.append(v if not out else a * v + (1 - a) * out[-1])
    return out


def curves_figure(runs: list[dict], names: dict[str, str], slug: str = "curves") -> Figure | None:
    """Training loss per fine-tune (EMA, raw trace faint), the dev metric on a second axis where
    recorded, and the kept (best) checkpoint marked. `names`: run id -> display name."""
    runs = [r for r in runs if (r.get("metrics") or {}).get("loss_curve")][-6:]
    if not runs:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    dev_ax, titles, dev_name = None, {}, None
    for i, r in enumerate(runs):
        m, colour = r["metrics"], f"C{i}"
        steps, loss = [p["step"] for p in m["loss_curve"]], [p["loss"] for p in m["loss_curve"]]
        ax.plot(steps, loss, color=colour, alpha=0.2, lw=0.8)
        ax.plot(steps, ema(loss, max(3, len(loss) // 20)), color=colour, lw=1.8,
                label=names.get(r["id"], r["id"][:8]), gid=f"{slug}-r{i}")
        titles[f"{slug}-r{i}"] = f"{names.get(r['id'], '')}: run {r['id']}, {r.get('command') or ''}"
        evals = [e for e in m.get("evals") or [] if "dev_accuracy" in e or "dev_loss" in e]
        if evals:
            key = "dev_accuracy" if "dev_accuracy" in evals[0] else "dev_loss"
            dev_ax = dev_ax or ax.twinx()
            dev_name = key.replace("_", " ")
            dev_ax.plot([e["step"] for e in evals], [e[key] for e in evals], "--", marker=".", color=colour, lw=1)
            kept = [e for e in evals if e["step"] == m.get("best_step")]
            if kept:
                dev_ax.plot([kept[0]["step"]], [kept[0][key]], "*", ms=14, color=colour, mec="black", zorder=5,
                            gid=f"{slug}-k{i}")
                titles[f"{slug}-k{i}"] = f"kept checkpoint: step {kept[0]['step']}, {dev_name} {kept[0][key]:.4g}"
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (EMA; raw faint)")
    if dev_ax is not None:
        dev_ax.set_ylabel(f"{dev_name} (dashed; ★ kept checkpoint)")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return render(fig, slug, "Training curves", titles,
                  "Solid: training loss smoothed by an exponential moving average; faint: per-step loss"
                  + ("; dashed: dev metric at each evaluation, ★ the checkpoint kept." if dev_ax else "."))
