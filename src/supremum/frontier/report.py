"""One self-contained report of the store (or of one pipeline, experiment or period): the answer
first (which variant to ship, under the user's budgets or not), the quality-versus-cost frontier
with intervals and ties, every variant by its stage name and lineage, what each step along the
frontier bought, training curves, sensitivity, comparisons, studies and the sections from other
work (calibration, explanations, forgetting: `frontier.sections`), each with its takeaway. HTML
(a Jinja2 template, autoescaped; plots inline SVG with hover titles; no scripts, nothing fetched)
for browsers, with each figure also written as PNG and SVG beside it; Markdown for terminals and
pull requests."""

from __future__ import annotations

from pathlib import Path

from supremum.artifact import open_artifact
from supremum.compare import table
from supremum.errors import UserError
from supremum.frontier import error_analysis, frontier, sign
from supremum.frontier.answer import Answer, answers, baseline, hover, lineage_words, name
from supremum.frontier.figures import Figure, curves_figure, frontier_figure, pyplot, render
from supremum.frontier.markdown import md_cell
from supremum.frontier.scope import scoped, stage_of
from supremum.frontier.sections import limit_takeaway, sections
from supremum.fsutil import write_bytes
from supremum.machine import busy_caveat
from supremum.store import Store
from supremum.tasks import CAUSAL_LM

PLOTS = (("latency_b1", "batch-1 latency with tokenization (ms)"), ("size", "size on disk (MB)"),
         ("memory", "peak memory (MB)"))
LM_PLOTS = (("decode_ms", "batch-1 greedy decode (ms per token)"), ("size", "size on disk (MB)"),
            ("memory", "peak memory (MB)"))
BUDGETS = ("max_latency_ms", "max_size_mb", "max_drop")
#: lineage steps that leave every cost as it was (the step changes only the probabilities)
COST_FREE = {"temperature"}


def bought(res: dict) -> list[str]:
    """One sentence per compressed variant whose parent was measured in the same group, in the
    order of the frontier's cost (cheapest first)."""
    rows = {r["artifact"]: r for r in res["frontier"] + res["dominated"]}
    cost, metric = res["cost"], res["metric"]
    out: list[tuple[float, str]] = []
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
        step = r["lineage"].rsplit("+", 1)[-1].rsplit(">", 1)[-1]
        ece = (f", ECE {100 * p['metrics']['ece']:.2f}% -> {100 * r['metrics']['ece']:.2f}%"
               if p["metrics"].get("ece") is not None and r["metrics"].get("ece") is not None else "")
        # temperature scaling divides the logits by T on the same weights: a speed ratio would be noise
        gains = "no cost change (the same weights)" if step in COST_FREE else _gains(cost, speed, p, r)
        out.append((r["costs"][cost], f"{step} (on {p['lineage']}) bought {gains} at {quality}{ece}"))
    return [text for _, text in sorted(out)]


#: what a parent/child ratio of each cost means, said in words (size is said on its own below)
_GAIN = {"latency_b1": "{:.2f}x at batch 1", "latency_b1_model": "{:.2f}x at batch 1 (model alone)",
         "latency_b32": "{:.2f}x at batch 32", "decode_ms": "{:.2f}x in decode",
         "ttft": "{:.2f}x to the first token", "memory": "{:.2f}x less memory",
         "params": "{:.2f}x fewer parameters"}


def _gains(cost: str, ratio: float, p: dict, r: dict) -> str:
    """'3.04x at batch 1 and 3.8x smaller': the ratio of the cost the frontier compares, named by
    that cost (a size-only frontier says only how much smaller), then the size ratio."""
    size = p["costs"]["size"] / r["costs"]["size"] if r["costs"].get("size") and p["costs"].get("size") else None
    parts = [] if cost == "size" else [_GAIN[cost].format(ratio)]
    if parts and (caveat := busy_caveat(**{p["lineage"]: p.get("load"), r["lineage"]: r.get("load")})):
        parts[-1] += f" ({caveat})"
    if size is not None:
        parts.append(f"{size:.1f}x smaller")
    return " and ".join(parts) or "nothing measured"


def _parent_id(path: str) -> str | None:
    try:
        parents = open_artifact(path, verify=False).manifest.parents
    except UserError:  # moved, deleted or corrupt since it was recorded: no lineage to draw
        return None
    return parents[0] if parents else None


def run_names(store) -> dict[str, str]:
    """Fine-tune run id -> 'stage (method)' for pipeline stages, else 'method fine-tune of model'."""
    out = {}
    for r in store.runs():
        if r["kind"] != "finetune":
            continue
        cfg = r.get("config") or {}
        method = lineage_words(((cfg.get("method") or {}).get("name")) or "?")
        stage = stage_of(r.get("artifact_path") or cfg.get("output"))
        model = (cfg.get("model") or {}).get("name", "?")
        out[r["id"]] = f"{stage} ({method})" if stage else f"{method} of {model}"
    return out


def sensitivity_figure(m: dict, slug: str, top: int = 15) -> Figure:
    """Horizontal bars: dev-accuracy change (points) per layer and scheme, most sensitive on top."""
    plt = pyplot()
    layers = m["layers"][:top][::-1]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(layers) + 1.4), layout="constrained")
    width = 0.8 / max(1, len(m["schemes"]))
    for k, scheme in enumerate(m["schemes"]):
        ys = [i + k * width for i in range(len(layers))]
        ax.barh(ys, [r.get(scheme) or 0.0 for r in layers], height=width, label=scheme)
    ax.set_yticks([i + 0.4 - width / 2 for i in range(len(layers))], [r["layer"] for r in layers], fontsize=8)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("dev accuracy change when only this layer is compressed (points)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return render(fig, slug, "Sensitivity")


def sensitivity_tables(store) -> list[tuple[dict, dict]]:
    """(artifact row, result) of each `supremum sensitivity` recorded in an artifact's metrics."""
    import json

    out = []
    for a in store.artifacts():
        p = Path(a["path"]) / "metrics.json"
        if p.exists():
            for key, m in json.loads(p.read_text()).items():
                if key.startswith("sensitivity:"):
                    out.append((a, m))
    return out


def build(store: Store | None = None, metric: str | None = None, data: str | None = None,
          split: str | None = None, budgets: dict | None = None, pipeline: str | None = None,
          experiment: str | None = None, since: str | None = None) -> dict:
    """Everything the report shows, from the store's records (scoped by pipeline, experiment and
    `since`, an ISO date). `budgets`: max_latency_ms, max_size_mb, max_drop (points below the best;
    percent of perplexity for causal LMs); any given makes the summary the pick within them."""
    store = scoped(store or Store(), pipeline, experiment, since)
    lims, secs = limits(store), sections(store)
    try:
        main = frontier(metric, None, data, split, store)
        plots = LM_PLOTS if main["task"] == CAUSAL_LM.pipeline_tag else PLOTS
        fronts = {cost: frontier(main["metric"], cost, data, split, store) for cost, _ in plots}
        # a cost no variant measured (an eval without --speed) has nothing to plot
        plots = [p for p in plots if _plotted(fronts[p[0]])] or plots[:1]
    except UserError:
        if not lims and not secs:
            raise
        fronts, plots = None, PLOTS  # a store with only studies (sweeps, explanations...) still gets its report
    main = fronts[plots[0][0]] if fronts else None
    pt, source = resolution(main, lims) if main else (None, "")
    scope = ", ".join(f"{k} {v}" for k, v in (("pipeline", pipeline), ("experiment", experiment),
                                              ("since", since)) if v)
    return {"fronts": fronts, "main": main, "plots": plots, "bought": bought(main) if fronts else [],
            "store": store, "comparisons": comparisons(store), "limits": lims, "scope": scope,
            "resolution": pt, "resolution_source": source, "sections": secs,
            "error_analysis": error_analysis.section(main, store, lims),
            "answers": summary(main, pt, budgets or {}, store) if main else []}


def summary(main: dict, pt: float | None, budgets: dict, store) -> list[Answer]:
    """The answer block: the pick under `budgets` when any is given, else best / smallest / fastest."""
    from supremum.frontier.pick import pick

    budgets = {k: v for k, v in budgets.items() if v is not None}
    unknown = set(budgets) - set(BUDGETS)
    if unknown:
        raise UserError(f"unknown report budget(s) {sorted(unknown)}", f"use: {', '.join(BUDGETS)}")
    if not budgets:
        return answers(main, pt)
    rows, metric = main["frontier"] + main["dominated"], main["metric"]
    drop = budgets.pop("max_drop", None)
    floor = None
    if drop is not None and rows:
        if drop < 0:
            raise UserError(f"--max-drop {drop}: a drop is not negative", "give points below the best, e.g. 1")
        best = max(rows, key=lambda r: sign(metric) * r["metrics"][metric])["metrics"][metric]
        floor = best * (1 + drop / 100) if sign(metric) < 0 else best - drop / 100
    g = main["group"]
    picked = pick(budgets, metric=metric, min_metric=floor, data=g["data"], split=g["split"], store=store)
    words = {"max_latency_ms": "{:g} ms at batch 1", "max_size_mb": "{:g} MB", "max_decode_ms": "{:g} ms/token"}
    text = [words[k].format(v) for k, v in budgets.items()]
    text += [f"at most {drop:g} {'%' if sign(metric) < 0 else 'pt'} below the best"] if drop is not None else []
    return answers(main, pt, picked, ", ".join(text))


def resolution(main: dict, lims: list) -> tuple[float | None, str]:
    """The accuracy resolution (points) and where it comes from: the latest `supremum ceiling` on this
    data and split, else the conservative bound from the number of evaluated examples."""
    from supremum.limit.resolution import resolution as from_n

    pt = resolution_for(main, lims)
    if pt is not None:
        return pt, "measured by supremum ceiling on this split"
    rows = main["frontier"] + main["dominated"]
    n = min((r["examples"] for r in rows if r.get("examples")), default=None)
    if main["metric"] != "accuracy" or not n or not rows:
        return None, ""
    best = max(r["metrics"]["accuracy"] for r in rows)
    return (100 * from_n(n, best), f"the smallest difference {n} examples resolve at 95% near {100 * best:.1f}% "
            "accuracy, assuming independent errors (conservative; `supremum ceiling` measures it)")


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


def markdown(rep: dict, figure_dir: str | None = None) -> str:
    """The report as Markdown; figures linked from `figure_dir` (relative to the file) when given."""
    lines = [f"# supremum report{': ' + rep['scope'] if rep['scope'] else ''}"]
    lines += _markdown_frontier(rep, figure_dir) if rep["fronts"] is not None else []
    lines += error_analysis.markdown(rep["error_analysis"]) if rep["error_analysis"] else []
    for s in rep["comparisons"]:
        head, rows = table(s)
        lines += ["", f"## Method comparison {s['name']}: {s['model']} on `{s['data']}`", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", s["method"]]
    for kind, name_, m in rep["limits"]:
        head, tables, tail = _limit_text(kind, m)
        lines += ["", f"## {_limit_title(kind, name_, m)}", "", f"**{limit_takeaway(kind, m)}**", ""]
        lines += [f"- {x}" for x in head]
        for title, cols, rows in tables:
            lines += ["", f"{title}:", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        meaning = ["", MEANING] if kind not in NO_MEANING else []
        lines += [""] + [x for x in tail if not x.startswith("plot: ")] + meaning
    for s in rep["sections"]:
        lines += ["", f"## {s['title']}", "", f"**{s['takeaway']}**", "", "| " + " | ".join(s["head"]) + " |",
                  "|" + "---|" * len(s["head"])]
        lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in s["rows"]]
        lines += ["", s["note"]] if s["note"] else []
    return "\n".join(lines) + "\n"


def _markdown_answer(rep: dict) -> list[str]:
    pt = rep["resolution"]
    out = ["", "## Which variant to ship", ""]
    for a in rep["answers"]:
        tie = (f" Tied within the split's resolution ({pt:.1f} pt) with {', '.join(a.ties)}."
               if a.ties else "")
        out.append(f"- **{a.role}: {name(a.row)}** (`{a.row['artifact']}`): {a.sentence}.{tie}")
    if pt:
        out += ["", f"Resolution: {pt:.1f} pt, {rep['resolution_source']}."]
    return out


def _cost_cells(res: dict, c: dict) -> tuple[list[str], list[str]]:
    """Column names and cells of a variant's costs: decode speed for causal LMs, latency else."""
    if res.get("task") == CAUSAL_LM.pipeline_tag:
        rate = 1000 / c["decode_ms"] if c.get("decode_ms") else None
        return (["decode ms/token", "tokens/s", "first token ms", "size MB", "memory MB"],
                [_f(c.get("decode_ms")), _f(rate), _f(c.get("ttft")), _f(c["size"]), _f(c["memory"])])
    return (["b1 ms", "b32 ms", "size MB", "memory MB"],
            [_f(c["latency_b1"]), _f(c["latency_b32"]), _f(c["size"]), _f(c["memory"])])


def _ece_cells(res: dict, r: dict | None) -> list[str]:
    """Classifiers: the ECE column (15 bins, %); causal LMs measured on reference text: the
    forgetting column (reference-perplexity change against the parent, %); its name when `r` is None."""
    if res.get("task") == CAUSAL_LM.pipeline_tag:
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


def _plotted(res: dict) -> bool:
    """Whether a frontier has a point to draw (some variant measured its cost)."""
    return bool(res["frontier"] or res["dominated"])


def _markdown_frontier(rep: dict, figure_dir: str | None) -> list[str]:
    res = rep["main"]
    g = res["group"]
    lines = _markdown_answer(rep)
    lines += ["", f"Evaluated on `{g['data']}` [{g['split']}], machine {g['machine']}.",
              "", "## Steps along the frontier", ""]
    lines += [f"1. {s}" for s in rep["bought"]] or ["- (no compressed variant with a measured parent)"]
    if figure_dir:
        lines += ["", *(f"![{res['metric']} vs {label}]({figure_dir}/frontier-{cost}.svg)"
                        for cost, label in rep["plots"] if _plotted(rep["fronts"][cost]))]
    names = _cost_cells(res, {"size": None, "memory": None, "latency_b1": None, "latency_b32": None})[0]
    names += _ece_cells(res, None)
    pt = rep.get("resolution")
    lines += ["", f"## Variants ({res['metric']} vs {res['cost_meaning']}; * = on the Pareto frontier)", ""]
    if pt:
        lines += [f"≈ marks accuracy within {pt:.1f} pt of the best, below the split's resolution: "
                  "not evidence of a worse model.", ""]
    lines += ["| | variant | artifact | lineage | " + res["metric"] + " | " + " | ".join(names) + " |",
              "|---|---|---|---|---|" + "---|" * len(names)]
    on = {r["artifact"] for r in res["frontier"]}
    for r in res["frontier"] + res["dominated"]:
        mark = "*" if r["artifact"] in on else ""
        mark += " ≈" if within_resolution(res, r, pt) else ""
        lines.append(f"| {mark} | {name(r)} | {r['artifact']} | {r['lineage']} | {_metric_text(res, r)} | "
                     + " | ".join(_cost_cells(res, r["costs"])[1] + _ece_cells(res, r)) + " |")
    for r in res["not_comparable"]:
        lines.append(f"\nNot compared: {name(r)} ({r['artifact']}, {r['lineage']}): {r['reason']}")
    for r, g in generated_answers(rep["store"], res):
        lines += ["", f"## Generated answers of {r['artifact']} ({r['lineage']})", "",
                  f"{g['examples']} prompts, {g['decoding']}; chrF {r['metrics']['chrf']:.2f}, BLEU "
                  f"{r['metrics']['bleu']:.2f}, ROUGE-L {r['metrics']['rouge_l']:.2f}, exact match "
                  f"{r['metrics']['exact_match']:.4f}. All of them: `{g['outputs']}`.", "",
                  "| | chrF | prompt | reference | output |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {e['chrf']:.1f} | {md_cell(e['prompt'])} | {md_cell(e['reference'])} | "
                  f"{md_cell(e['output'])} |" for label, e in _examples(g)]
    return lines


def _metric_text(res: dict, r: dict) -> str:
    """The metric with its 95% Wilson interval over the evaluated examples where known."""
    from supremum.frontier.answer import interval

    ci = interval(r, res["metric"])
    return f"{r['metrics'][res['metric']]:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def generated_answers(store: Store, res: dict) -> list[tuple[dict, dict]]:
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


def _generated(r: dict, g: dict) -> dict:
    """A variant's generated answers for the page: its scores and its best and worst examples."""
    m = r["metrics"]
    return {"name": name(r), "hover": hover(r), "lineage": lineage_words(r["lineage"]),
            "summary": f"{g['examples']} prompts, {g['decoding']}; chrF {m['chrf']:.2f}, BLEU {m['bleu']:.2f}, "
                       f"ROUGE-L {m['rouge_l']:.2f}, exact match {m['exact_match']:.4f}",
            "outputs": str(g["outputs"]),
            "rows": [{"label": label, "chrf": f"{e['chrf']:.1f}", "prompt": e["prompt"],
                      "reference": e["reference"], "output": e["output"]} for label, e in _examples(g)]}


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


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def figures(rep: dict) -> dict:
    """Every figure of the report, rendered once: {'frontier': [...], 'curves': Figure | None,
    'sensitivity': [(artifact row, m, Figure)], 'limits': [[Figure, ...] per study]}."""
    base = baseline(rep["main"]["frontier"] + rep["main"]["dominated"], rep["main"]["metric"]) \
        if rep["main"] and rep["main"]["frontier"] else None
    fronts = [frontier_figure(rep["fronts"][cost], label, f"frontier-{cost}", rep["resolution"], base)
              for cost, label in rep["plots"] if _plotted(rep["fronts"][cost])] if rep["fronts"] else []
    store = rep["store"]
    runs = [r for r in store.runs() if r["kind"] == "finetune"]
    sens = [(a, m, sensitivity_figure(m, f"sensitivity-{i}"))
            for i, (a, m) in enumerate(sensitivity_tables(store))]
    lims = []
    for i, (kind, _, m) in enumerate(rep["limits"]):
        lims.append([render(f, f"{kind}-{i}-{k}", kind) for k, f in enumerate(_figures(kind, m))])
    return {"frontier": fronts, "curves": curves_figure(runs, run_names(store)), "sensitivity": sens,
            "limits": lims}


def render_html(rep: dict, figs: dict | None = None) -> str:
    """The page (Jinja2 template `templates/report.html.j2`, autoescaped)."""
    import jinja2

    figs = figs or figures(rep)
    env = jinja2.Environment(loader=jinja2.PackageLoader("supremum.frontier", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2").render(**_page(rep, figs))


def _page(rep: dict, figs: dict) -> dict:
    res, pt = rep["main"], rep["resolution"]
    page = {"scope": rep["scope"], "main": res, "resolution": pt, "resolution_source": rep["resolution_source"],
            "bought": rep["bought"], "frontier_figures": figs["frontier"], "curves": figs["curves"],
            "answers": [{"role": a.role, "name": name(a.row), "hover": hover(a.row), "sentence": a.sentence,
                         "ties": a.ties} for a in rep["answers"]],
            "variant_head": [], "variant_rows": [], "not_comparable": [], "generated": [],
            "error_analysis": rep["error_analysis"]}
    if res:
        on = {r["artifact"] for r in res["frontier"]}
        cost_names = _cost_cells(res, {"size": None, "memory": None, "latency_b1": None, "latency_b32": None})[0]
        page["variant_head"] = ["frontier", "variant", "lineage", res["metric"], *cost_names,
                                *_ece_cells(res, None)]
        page["variant_rows"] = [{"mark": "*" if r["artifact"] in on else "", "name": name(r), "hover": hover(r),
                                 "lineage": lineage_words(r["lineage"]), "tie": within_resolution(res, r, pt),
                                 "cells": [_metric_text(res, r), *_cost_cells(res, r["costs"])[1],
                                           *_ece_cells(res, r)]}
                                for r in res["frontier"] + res["dominated"]]
        page["not_comparable"] = [{"name": name(r), "hover": hover(r), "lineage": lineage_words(r["lineage"]),
                                   "reason": r["reason"]} for r in res["not_comparable"]]
        page["generated"] = [_generated(r, g) for r, g in generated_answers(rep["store"], res)]
    page["comparisons"] = [{"name": s["name"], "model": s["model"], "data": s["data"], "method": s["method"],
                            "head": table(s)[0], "rows": table(s)[1]} for s in rep["comparisons"]]
    page["sensitivity"] = [{"artifact": a["id"], "name": stage_of(a["path"]) or a.get("method") or a["id"],
                            "figure": f, "schemes": m["schemes"],
                            "rows": [[r["layer"], *("" if r.get(s) is None else f"{r[s]:+.2f}"
                                                    for s in m["schemes"])]
                                     for r in m["layers"][:15]]} for a, m, f in figs["sensitivity"]]
    page["limits"] = []
    for (kind, name_, m), lfigs in zip(rep["limits"], figs["limits"], strict=True):
        head, tables, tail = _limit_text(kind, m)
        page["limits"].append({"title": _limit_title(kind, name_, m), "takeaway": limit_takeaway(kind, m),
                               "head": head, "figures": lfigs,
                               "tables": [{"title": t, "cols": c, "rows": r} for t, c, r in tables],
                               "tail": [x for x in tail if not x.startswith("plot: ")],
                               "meaning": MEANING if kind not in NO_MEANING else ""})
    page["sections"] = rep["sections"]
    return page


def write_report(out: str | Path, fmt: str = "html", **kw) -> Path:
    """Write the report to `out` and its figures as PNG and SVG into `<out stem>-figures/` beside it."""
    rep = build(**kw)
    out = Path(out)
    figs = figures(rep)
    fig_dir = out.with_name(out.stem + "-figures")
    every = [*figs["frontier"], *([figs["curves"]] if figs["curves"] else []),
             *(f for _, _, f in figs["sensitivity"]), *(f for fs in figs["limits"] for f in fs)]
    for f in every:
        write_bytes(fig_dir / f"{f.slug}.png", f.png)
        prolog = '<?xml version="1.0" encoding="utf-8"?>\n'
        write_bytes(fig_dir / f"{f.slug}.svg", (prolog + f.svg).encode("utf-8"))
    text = render_html(rep, figs) if fmt == "html" else markdown(rep, fig_dir.name if every else None)
    write_bytes(out, text.encode("utf-8"))
    return out
