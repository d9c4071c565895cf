"""One self-contained report of the store: Pareto plots (inline SVG, no scripts, no network),
every variant with its lineage, what each compression step bought, per-layer sensitivity,
training curves and the machine. HTML for browsers, Markdown for terminals and pull requests."""

from __future__ import annotations

import html
import io
from pathlib import Path

from supremum.artifact import open_artifact
from supremum.compare import table
from supremum.errors import UserError
from supremum.frontier import frontier
from supremum.fsutil import write_bytes
from supremum.store import Store

PLOTS = (("latency_b1", "batch-1 latency with tokenization (ms)"), ("size", "size on disk (MB)"),
         ("memory", "peak memory (MB)"))
LM_PLOTS = (("decode_ms", "batch-1 greedy decode (ms per token)"), ("size", "size on disk (MB)"),
            ("memory", "peak memory (MB)"))


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog so it can sit inside HTML


def pareto_plot(res: dict, label: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    cost, metric = res["cost"], res["metric"]
    for rows, style, name in ((res["dominated"], "o", "dominated"), (res["frontier"], "s", "frontier")):
        xs = [r["costs"][cost] for r in rows]
        ys = [r["metrics"][metric] for r in rows]
        ax.plot(xs, ys, style, label=name, alpha=0.6 if name == "dominated" else 1.0)
        for r, x, y in zip(rows, xs, ys, strict=True):
            ax.annotate(r["lineage"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = res["frontier"]
    ax.step([r["costs"][cost] for r in front], [r["metrics"][metric] for r in front], where="post", lw=1)
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def bought(res: dict) -> list[str]:
    """One sentence per compressed variant whose parent was measured in the same group."""
    rows = {r["artifact"]: r for r in res["frontier"] + res["dominated"]}
    cost, metric = res["cost"], res["metric"]
    out = []
    for r in rows.values():
        if ">" not in r["lineage"] or not r.get("path"):
            continue
        parent = _parent_id(r["path"])
        p = rows.get(parent)
        if p is None or not p["costs"][cost] or not r["costs"][cost]:
            continue
        speed = p["costs"][cost] / r["costs"][cost]
        if metric in ("perplexity", "bits_per_byte"):
            quality = f"{100 * (r['metrics'][metric] / p['metrics'][metric] - 1):+.2f}% {metric}"
        else:
            quality = f"{100 * (r['metrics'][metric] - p['metrics'][metric]):+.2f} pt {metric}"
        size = p["costs"]["size"] / r["costs"]["size"] if r["costs"]["size"] else float("nan")
        step = r["lineage"].rsplit("+", 1)[-1].rsplit(">", 1)[-1]
        where = "in decode" if cost == "decode_ms" else "at batch 1"
        ece = (f", ECE {100 * p['metrics']['ece']:.2f}% -> {100 * r['metrics']['ece']:.2f}%"
               if p["metrics"].get("ece") is not None and r["metrics"].get("ece") is not None else "")
        out.append(f"{step} (on {p['lineage']}) bought {speed:.2f}x {where} and {size:.1f}x smaller "
                   f"at {quality}{ece}")
    return sorted(out)


def _parent_id(path: str) -> str | None:
    try:
        parents = open_artifact(path, verify=False).manifest.parents
    except UserError:  # moved, deleted or corrupt since it was recorded: no lineage to draw
        return None
    return parents[0] if parents else None


def curves_plot(store: Store) -> str | None:
    runs = [r for r in store.runs() if r["kind"] == "finetune" and (r.get("metrics") or {}).get("loss_curve")]
    if not runs:
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for r in runs[-8:]:
        curve = r["metrics"]["loss_curve"]
        ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], lw=1, label=r["id"][:8])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def sensitivity_plot(m: dict, top: int = 15) -> str:
    """Horizontal bars: dev-accuracy change (points) per layer and scheme, most sensitive on top."""
    import matplotlib.pyplot as plt

    layers = m["layers"][:top][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.28 * len(layers) + 1.2))
    width = 0.8 / max(1, len(m["schemes"]))
    for k, scheme in enumerate(m["schemes"]):
        ys = [i + k * width for i in range(len(layers))]
        ax.barh(ys, [r.get(scheme) or 0.0 for r in layers], height=width, label=scheme)
    ax.set_yticks([i + 0.4 - width / 2 for i in range(len(layers))], [r["layer"] for r in layers], fontsize=7)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("dev accuracy change when only this layer is compressed (points)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    svg = _svg(fig)
    plt.close(fig)
    return svg


def sensitivity_tables(store: Store) -> list[tuple[str, dict]]:
    import json

    out = []
    for a in store.artifacts():
        p = Path(a["path"]) / "metrics.json"
        if p.exists():
            for key, m in json.loads(p.read_text()).items():
                if key.startswith("sensitivity:"):
                    out.append((a["id"], m))
    return out


def build(store: Store | None = None, metric: str | None = None, data: str | None = None,
          split: str | None = None) -> dict:
    from supremum.errors import UserError

    store = store or Store()
    lims = limits(store)
    try:
        main = frontier(metric, None, data, split, store)
        plots = LM_PLOTS if main["task"] == "text-generation" else PLOTS
        fronts = {cost: frontier(main["metric"], cost, data, split, store) for cost, _ in plots}
    except UserError:
        if not lims:
            raise
        fronts, plots = None, PLOTS  # a store with only scale sweeps or learning curves still gets its report
    main = fronts[plots[0][0]] if fronts else None
    return {"fronts": fronts, "main": main, "plots": plots, "bought": bought(main) if fronts else [],
            "store": store, "comparisons": comparisons(store), "limits": lims,
            "resolution": resolution_for(main, lims) if main else None}


def resolution_for(res: dict, lims: list[tuple[str, str, dict]]) -> float | None:
    """The smallest accuracy difference (points) the frontier's evaluation split resolves, from the
    latest `supremum ceiling` measured on the same data and split; None when there is none."""
    g = res["group"]
    if res["metric"] != "accuracy":
        return None
    found = [m["resolution_pt"] for kind, _, m in lims if kind == "ceiling" and m.get("resolution_pt") is not None
             and m.get("split") == g["split"] and _same_path(m["data"], g["data"])]
    return found[-1] if found else None


def _same_path(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def within_resolution(res: dict, r: dict, pt: float | None) -> bool:
    """Whether a variant's accuracy is closer to the best variant's than the split can resolve."""
    if pt is None:
        return False
    best = max(x["metrics"][res["metric"]] for x in res["frontier"] + res["dominated"])
    value = r["metrics"][res["metric"]]
    return value != best and 100 * (best - value) < pt


MEANING = ("What the limit means: E is the loss this family of models, trained this way on this source, "
           "approaches as parameters and data grow without bound, extrapolated from the runs by the fitted "
           "form; the interval is the spread of that extrapolation over resampled runs. It does not cover "
           "a different architecture, tokenizer, training rule or data distribution, nor error from the "
           "functional form itself (checked on synthetic sources whose limit is known, and by predicting the "
           "largest runs from the others).")


NO_MEANING = ("ceiling", "labels")  # studies that state their own meaning


def limits(store: Store) -> list[tuple[str, str, dict]]:
    """(kind, name, result) of the latest finished scale sweep per source and learning curve per name."""
    latest: dict[tuple[str, str], dict] = {}
    for r in store.runs():
        m = r.get("metrics")
        if r["status"] != "finished" or not m:
            continue
        if r["kind"] == "scale":
            latest[("scale", (r["config"] or {}).get("name") or r["command"])] = m
        elif r["kind"] == "curve":
            latest[("curve", m["name"])] = m
        elif r["kind"] == "ceiling":
            latest[("ceiling", m["output"])] = m
        elif r["kind"] == "labels":
            latest[("labels", m["name"])] = m
    return [(k, n, m) for (k, n), m in latest.items()]


def _limit_title(kind: str, name: str, m: dict) -> str:
    if kind == "ceiling":
        return f"How good can {m['model']} get on {m['data']}?"
    if kind == "labels":
        return f"Accuracy against labels {name}: {m['model']} fine-tuned, {m['lm']} prompted, on {m['data']}"
    if kind == "curve":
        return f"Learning curve {name}: {m['model']} ({m['method'].get('name')}) on {m['data']}"
    src = m["source"]
    return f"Is there a limit? {src.get('kind')} source " + ", ".join(
        f"{k}={v}" for k, v in src.items() if k != "kind")


def comparisons(store: Store) -> list[dict]:
    """The latest finished `supremum compare` summary of each comparison name."""
    latest: dict[str, dict] = {}
    for r in store.runs():
        if r["kind"] == "compare" and r["status"] == "finished" and r.get("metrics"):
            latest[r["metrics"]["name"]] = r["metrics"]
    return list(latest.values())


def markdown(rep: dict) -> str:
    lines = ["# supremum report"] if rep["fronts"] is None else _markdown_frontier(rep)
    for s in rep["comparisons"]:
        head, rows = table(s)
        lines += ["", f"## Method comparison {s['name']}: {s['model']} on `{s['data']}`", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", s["method"]]
    for kind, name, m in rep["limits"]:
        head, tables, tail = _limit_text(kind, m)
        lines += ["", f"## {_limit_title(kind, name, m)}", ""] + [f"- {x}" for x in head]
        for title, cols, rows in tables:
            lines += ["", f"{title}:", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        meaning = ["", MEANING] if kind not in NO_MEANING else []
        lines += [""] + [x for x in tail if not x.startswith("plot: ")] + meaning
    return "\n".join(lines) + "\n"


def _cost_cells(res: dict, c: dict) -> tuple[list[str], list[str]]:
    """Column names and cells of a variant's costs: decode speed for causal LMs, latency else."""
    if res.get("task") == "text-generation":
        rate = 1000 / c["decode_ms"] if c.get("decode_ms") else None
        return (["decode ms/token", "tokens/s", "first token ms", "size MB", "memory MB"],
                [_f(c.get("decode_ms")), _f(rate), _f(c.get("ttft")), _f(c["size"]), _f(c["memory"])])
    return (["b1 ms", "b32 ms", "size MB", "memory MB"],
            [_f(c["latency_b1"]), _f(c["latency_b32"]), _f(c["size"]), _f(c["memory"])])


def _ece_cells(res: dict, r: dict | None) -> list[str]:
    """Classifiers: the ECE column (15 bins, %); causal LMs measured on reference text: the
    forgetting column (reference-perplexity change against the parent, %); its name when `r` is None."""
    if res.get("task") == "text-generation":
        rows = res["frontier"] + res["dominated"]
        if not any(x["metrics"].get("forgetting") is not None for x in rows):
            return []
        if r is None:
            return ["forgetting %"]
        f = r["metrics"].get("forgetting")
        return ["-" if f is None else f"{f:+.2f}"]
    if r is None:
        return ["ECE %"]
    ece = r["metrics"].get("ece")
    return [_f(None if ece is None else 100 * ece)]


def _markdown_frontier(rep: dict) -> list[str]:
    res = rep["main"]
    g = res["group"]
    lines = ["# supremum report", "", f"Evaluated on `{g['data']}` [{g['split']}], machine {g['machine']}.",
             "", "## What each step bought", ""]
    lines += [f"- {s}" for s in rep["bought"]] or ["- (no compressed variant with a measured parent)"]
    names = _cost_cells(res, {"size": None, "memory": None, "latency_b1": None, "latency_b32": None})[0]
    names += _ece_cells(res, None)
    lines += ["", f"## Variants ({res['metric']} vs {res['cost_meaning']}; * = on the Pareto frontier)", "",
              "| | artifact | lineage | " + res["metric"] + " | " + " | ".join(names) + " |",
              "|---|---|---|---|" + "---|" * len(names)]
    on = {r["artifact"] for r in res["frontier"]}
    pt = rep.get("resolution")
    if pt:
        lines.insert(-3, f"≈ marks accuracy within {pt:.1f} pt of the best, the smallest difference this split "
                     "resolves at 95% (from supremum ceiling): not evidence of a worse model.\n")
    for r in res["frontier"] + res["dominated"]:
        mark = "*" if r["artifact"] in on else ""
        mark += " ≈" if within_resolution(res, r, pt) else ""
        lines.append(f"| {mark} | {r['artifact']} | {r['lineage']} | "
                     f"{r['metrics'][res['metric']]:.4f} | "
                     + " | ".join(_cost_cells(res, r["costs"])[1] + _ece_cells(res, r)) + " |")
    for r in res["not_comparable"]:
        lines.append(f"\nNot compared: {r['artifact']} ({r['lineage']}): {r['reason']}")
    for r, g in answers(rep["store"], res):
        lines += ["", f"## Generated answers of {r['artifact']} ({r['lineage']})", "",
                  f"{g['examples']} prompts, {g['decoding']}; chrF {r['metrics']['chrf']:.2f}, BLEU "
                  f"{r['metrics']['bleu']:.2f}, ROUGE-L {r['metrics']['rouge_l']:.2f}, exact match "
                  f"{r['metrics']['exact_match']:.4f}. All of them: `{g['outputs']}`.", "",
                  "| | chrF | prompt | reference | output |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {e['chrf']:.1f} | {_cell(e['prompt'])} | {_cell(e['reference'])} | "
                  f"{_cell(e['output'])} |" for label, e in _examples(g)]
    return lines


def answers(store: Store, res: dict) -> list[tuple[dict, dict]]:
    """(variant, its generation_quality block) of each variant in the group scored with --generate."""
    out = []
    for r in res["frontier"] + res["dominated"]:
        if r["metrics"].get("chrf") is None:
            continue
        run = store.get_run(r["run"]) or {}
        g = (run.get("metrics") or {}).get("generation_quality")
        if g:
            out.append((r, g))
    return out


def _examples(g: dict) -> list[tuple[str, dict]]:
    """The best and the worst answers by sentence chrF (an example in both lists shown once)."""
    best = [("best", e) for e in g["best"]]
    seen = {e["index"] for _, e in best}
    return best + [("worst", e) for e in g["worst"] if e["index"] not in seen]


def _cell(text: str, width: int = 120) -> str:
    """Text for a Markdown table cell: one line, pipes escaped, cut at `width` characters."""
    one = " ".join(text.split()).replace("|", "\\|")
    return one if len(one) <= width else one[: width - 1] + "…"


def _limit_text(kind: str, m: dict):
    from supremum.limit.summary import curve_summary, labels_summary, scale_summary
    from supremum.limit.verdict import rows

    if kind == "ceiling":  # the verdict's table, then its paragraph
        return [], [("The verdict", ["quantity", "value", "how"], [list(r) for r in rows(m)])], [m["sentence"]]
    if kind == "labels":
        return labels_summary(m)
    return (curve_summary if kind == "curve" else scale_summary)(m)


def _figures(kind: str, m: dict) -> list:
    from supremum.limit.plots import curve_figure, search_history_figure, sweep_figures

    if kind == "labels":
        from supremum.limit.plots import labels_figure

        return [labels_figure(m)]
    if kind == "ceiling":
        lm = m["metric"] == "perplexity"
        figs = [search_history_figure(m["search"]["history"], lm=lm)] if m["search"].get("history") else []
        return figs + ([curve_figure(m["curve"])] if m.get("curve") else [])
    return [curve_figure(m)] if kind == "curve" else list(sweep_figures(m).values())


def _limit_html(kind: str, name: str, m: dict) -> str:
    import matplotlib.pyplot as plt

    head, tables, tail = _limit_text(kind, m)
    figs = _figures(kind, m)
    svgs = []
    for fig in figs:
        svgs.append(_svg(fig))
        plt.close(fig)
    parts = [f"<h2>{html.escape(_limit_title(kind, name, m))}</h2><ul>"
             + "".join(f"<li>{html.escape(x)}</li>" for x in head) + "</ul>", *svgs]
    for title, cols, rows in tables:
        ths = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts.append(f"<h3>{html.escape(title)}</h3><table><tr>{ths}</tr>{trs}</table>")
    parts += [f"<p>{html.escape(x)}</p>" for x in tail if not x.startswith("plot: ")]
    return "\n".join(parts) + (f"<p><em>{html.escape(MEANING)}</em></p>" if kind not in NO_MEANING else "")


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def render_html(rep: dict) -> str:
    body = ["<h1>supremum report</h1>"] if rep["fronts"] is None else _html_frontier(rep)
    for s in rep["comparisons"]:
        head, rows = table(s)
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        body.append(f"<h2>Method comparison {html.escape(s['name'])}: {html.escape(s['model'])} on "
                    f"{html.escape(s['data'])}</h2><table><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                    + f"</tr>{cells}</table><p>{html.escape(s['method'])}</p>")
    for art, m in sensitivity_tables(rep["store"]):
        rows = "".join(f"<tr><td>{html.escape(r['layer'])}</td>" + "".join(
            f"<td>{'' if r.get(s) is None else f'{r[s]:+.2f}'}</td>" for s in m["schemes"]) + "</tr>"
            for r in m["layers"][:15])
        body.append(f"<h2>Sensitivity of {html.escape(art)} (points, most sensitive first)</h2>"
                    + sensitivity_plot(m) + "<table>"
                    f"<tr><th>layer</th>{''.join(f'<th>{s}</th>' for s in m['schemes'])}</tr>{rows}</table>")
    body += [_limit_html(kind, name, m) for kind, name, m in rep["limits"]]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>supremum report</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "td,th{padding:2px 8px;text-align:right}</style></head><body>"
            + "\n".join(body) + "</body></html>")


def _html_frontier(rep: dict) -> list[str]:
    res = rep["main"]
    g = res["group"]
    body = ["<h1>supremum report</h1>",
            f"<p>Evaluated on {html.escape(g['data'])} [{html.escape(g['split'])}], machine "
            f"{html.escape(g['machine'])}.</p><h2>What each step bought</h2><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in rep["bought"]) + "</ul>"]
    for cost, label in rep["plots"]:
        body.append(f"<h2>{html.escape(rep['fronts'][cost]['metric'])} vs {html.escape(label)}</h2>")
        body.append(pareto_plot(rep["fronts"][cost], label))
    curves = curves_plot(rep["store"])
    if curves:
        body += ["<h2>Training curves</h2>", curves]
    pt = rep.get("resolution")
    note = (f"<p>Grey rows: accuracy within {pt:.1f} pt of the best, the smallest difference this split "
            "resolves at 95% (from supremum ceiling): not evidence of a worse model.</p>") if pt else ""
    body.append("<h2>Variants</h2>" + note + _html_table(res, pt))
    for r, g in answers(rep["store"], res):
        rows = "".join(f"<tr><td>{label}</td><td>{e['chrf']:.1f}</td>" + "".join(
            f"<td style='text-align:left'>{html.escape(e[k])}</td>" for k in ("prompt", "reference", "output"))
            + "</tr>" for label, e in _examples(g))
        m = r["metrics"]
        body.append(f"<h2>Generated answers of {html.escape(r['artifact'])} ({html.escape(r['lineage'])})</h2>"
                    f"<p>{g['examples']} prompts, {html.escape(g['decoding'])}; chrF {m['chrf']:.2f}, BLEU "
                    f"{m['bleu']:.2f}, ROUGE-L {m['rouge_l']:.2f}, exact match {m['exact_match']:.4f}. All of "
                    f"them: <code>{html.escape(str(g['outputs']))}</code></p><table><tr><th></th><th>chrF</th>"
                    f"<th>prompt</th><th>reference</th><th>output</th></tr>{rows}</table>")
    return body


def _html_table(res: dict, pt: float | None = None) -> str:
    on = {r["artifact"] for r in res["frontier"]}
    names = _cost_cells(res, {"size": None, "memory": None, "latency_b1": None, "latency_b32": None})[0]
    head = ["frontier", "artifact", "lineage", res["metric"], *names, *_ece_cells(res, None)]
    rows = []
    for r in res["frontier"] + res["dominated"]:
        cells = ["*" if r["artifact"] in on else "", r["artifact"], r["lineage"],
                 f"{r['metrics'][res['metric']]:.4f}", *_cost_cells(res, r["costs"])[1], *_ece_cells(res, r)]
        grey = within_resolution(res, r, pt)
        tr = ("<tr style='color:#999' title='within the split&#39;s resolution of the best'>" if grey else "<tr>")
        rows.append(tr + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    for r in res["not_comparable"]:
        rows.append(f"<tr><td></td><td>{html.escape(r['artifact'])}</td><td>{html.escape(r['lineage'])}</td>"
                    f"<td colspan=5>not compared: {html.escape(r['reason'])}</td></tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def write_report(out: str | Path, fmt: str = "html", **kw) -> Path:
    rep = build(**kw)
    text = render_html(rep) if fmt == "html" else markdown(rep)
    write_bytes(Path(out), text.encode("utf-8"))
    return Path(out)
