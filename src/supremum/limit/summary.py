"""The answer of a sweep or a learning curve in words and tables, shared by the CLI and the report."""

from __future__ import annotations

import math

Tables = list[tuple[str, list[str], list[list[str]]]]


def ci(v: list[float] | None, fmt: str = ".4f") -> str:
    return "-" if not v or v[0] != v[0] else f"[{v[0]:{fmt}}, {v[1]:{fmt}}]"


def scale_summary(a: dict) -> tuple[list[str], Tables, list[str]]:
    """The limit first, then the evidence: (lines, tables, closing lines)."""
    f, c = a["fit"], a["ci"]
    degenerate = f.get("degenerate_resamples", 0)
    lines = [f"limit E = {f['E']:.4f} nats/token, 95% CI {ci(c['E'])} ({f['bootstrap']} bootstrap resamples"
             + (f", {degenerate} of them collapsed to E ~ 0" if degenerate else "")
             + f"; {f['starts_agreeing']} of {f['starts']} starts reached the best fit)"]
    pl = a.get("plateau")
    if pl and pl["excluded"]:
        lines.append(f"{pl['excluded']} of {len(a['runs'])} runs left out of the fit: still on the initial "
                     f"plateau (loss >= {pl['cutoff']:.4f}, within {100 * pl['share']:.0f}% of the unigram "
                     f"entropy {pl['unigram_entropy']:.4f})")
    if "truth" in a:
        t = a["truth"]
        lines.append(f"true entropy rate H = {t['entropy_rate']:.4f}; E - H = {100 * t['rel_error']:+.2f}% of H; "
                     f"H {'inside' if t['H_in_ci'] else 'OUTSIDE'} the CI; Bayes-optimal loss on the held-out "
                     f"targets {t['bayes_heldout']['mean']:.4f} +- {t['bayes_heldout']['se']:.4f}")
    b = a["best_run"]
    lines.append(f"best run: loss {b['loss']:.4f} (N={b['N']:.3g}, D={b['D']:.3g}); gap to E {b['gap_to_E']:.4f} "
                 f"{ci(b['gap_ci'])}")
    lines.append(f"L = E + A/N^alpha + B/D^beta: alpha {f['alpha']:.3f} {ci(c['alpha'], '.3f')}, beta "
                 f"{f['beta']:.3f} {ci(c['beta'], '.3f')}; compute-optimal N ~ C^{a['allocation']['a']:.2f} "
                 f"{ci(c['a'], '.2f')}, D ~ C^{a['allocation']['b']:.2f} {ci(c['b'], '.2f')}")
    lines += [f"warning: {x}" for x in a.get("warnings", [])]
    env = a.get("envelope")
    if env:
        lines.append(f"envelope (approach 1, {env['frontier_runs']} frontier runs): N ~ C^{env['a']:.2f} "
                     f"{ci(env['a_ci'], '.2f')}, D ~ C^{env['b']:.2f} {ci(env['b_ci'], '.2f')}")
    tables: Tables = [
        ("what more compute buys", ["compute-optimal at", "FLOPs", "loss", "95% CI", "N", "D"],
         [[p["label"], f"{p['flops']:.3g}", f"{p['loss']:.4f}", ci(p["loss_ci"]), f"{p['N']:.3g}", f"{p['D']:.3g}"]
          for p in a["predictions"]]),
        ("what more data or parameters buy", ["best run's model with", "N", "D", "predicted loss", "95% CI"],
         [[w["label"], f"{w['N']:.3g}", f"{w['D']:.3g}", f"{w['loss']:.4f}", ci(w["loss_ci"])]
          for w in a["what_if"]])]
    tail = []
    h = a.get("holdout")
    if h:
        tail.append(f"held-out check: refit on {h['fit_on']} runs without the {h['held_out']} largest-compute "
                    "ones "
                    f"predicts them with max |error| {100 * h['max_abs_rel_error']:.2f}% (mean "
                    f"{100 * h['mean_abs_rel_error']:.2f}%)")
    tail.append(f"method: {a['method']}")
    tail += [f"plot: {p}" for p in a.get("plots", [])]
    return lines, tables, tail


def curve_summary(r: dict) -> tuple[list[str], Tables, list[str]]:
    if r.get("metric") == "perplexity":
        return _lm_curve_summary(r)
    f = r["fit"]
    split = r.get("split") or "held-out"
    by_n: dict[int, list[float]] = {}
    for p in r["points"]:
        by_n.setdefault(p["n"], []).append(1 - p["error"])
    rows = [[f"{n:,}", str(len(accs)), f"{100 * sum(accs) / len(accs):.2f}",
             f"{100 * (1 - f['E'] - f['B'] * n ** -f['beta']):.2f}"] for n, accs in sorted(by_n.items())]

    def pct(v):
        return ci([100 * x for x in v], ".2f")

    c = r["ceiling"]
    if "verdict" not in c:  # a curve stored before intervals came from the profile likelihood
        c = {**c, "verdict": "interval from the earlier bootstrap over cells, which can collapse to zero width",
             "sentence": "re-run `supremum curve` (cached cells are reused) for the interval the data allow"}
    lines = [f"{split} accuracy ceiling {100 * c['accuracy']:.2f}%, 95% CI {pct(c['ci'])}: {c['verdict']} "
             f"(error = {f['E']:.4f} + {f['B']:.3g}/n^{f['beta']:.3f}; {f.get('runs', len(r['points']))} runs"
             + (f", residual s.d. {100 * f['sigma']:.2f} pt)" if "sigma" in f else ")"), c["sentence"]]
    for key, label in (("at_2x", "2x"), ("at_10x", "10x")):
        if key not in r:
            continue
        a = r[key]
        lines.append(f"with {label} the data ({a['n']:,.0f} examples): {100 * a['accuracy']:.2f}% {pct(a['ci'])}")
    if r.get("backtest"):
        lines.append(r["backtest"]["sentence"])
    tg = r.get("target")
    if tg:
        if not tg["reachable"]:
            msg = f"target {100 * tg['accuracy']:.1f}% is beyond the ceiling"
        elif "status" not in tg:
            msg = f"target {100 * tg['accuracy']:.1f}% needs about {tg['examples']:,.0f} examples"
        elif tg["examples_ci"][0] is None:  # saturated: reached at the smallest size measured
            msg = (f"target {100 * tg['accuracy']:.1f}% is {tg['status']} (the smallest: "
                   f"{tg['examples']:,.0f} examples)")
        else:
            lo, hi = tg["examples_ci"]
            msg = (f"target {100 * tg['accuracy']:.1f}% needs about {tg['examples']:,.0f} examples, 95% CI "
                   f"[{lo:,.0f}, {'beyond the ceiling' if hi is None else f'{hi:,.0f}'}] ({tg['status']})")
        if tg["share_of_resamples_reachable"] is not None:
            msg += (f"; reachable in {100 * tg['share_of_resamples_reachable']:.0f}% of "
                    f"{tg.get('resamples', '')} bootstrap resamples")
        lines.append(msg)
    tables: Tables = [(f"learning curve: {r.get('name', '')}",
                       ["examples", "seeds", f"{split} accuracy (mean)", "fit"], rows)]
    tail = [f"method: {r['method']}"] + [f"plot: {p}" for p in r.get("plots", [])]
    return lines, tables, tail


def _lm_curve_summary(r: dict) -> tuple[list[str], Tables, list[str]]:
    """A language model's learning curve: loss ln(perplexity) = E + B/n^beta over training blocks."""
    f = r["fit"]
    by_n: dict[int, list[float]] = {}
    for p in r["points"]:
        by_n.setdefault(p["n"], []).append(math.exp(p["error"]))
    rows = [[f"{n:,}", str(len(ppl)), f"{sum(ppl) / len(ppl):.3f}",
             f"{math.exp(f['E'] + f['B'] * n ** -f['beta']):.3f}"] for n, ppl in sorted(by_n.items())]
    fl, a = r["floor"], r["at_10x"]
    lines = [f"perplexity floor {fl['perplexity']:.3f}, 95% CI {ci(fl['ci'], '.3f')} (ln perplexity = "
             f"{f['E']:.4f} + {f['B']:.3g}/n^{f['beta']:.3f}; {f.get('runs', len(r['points']))} runs; "
             f"{fl.get('verdict', 'fitted')})",
             f"with 10x the data ({a['n']:,.0f} blocks): perplexity {a['perplexity']:.3f} {ci(a['ci'], '.3f')}"]
    if r.get("backtest"):
        lines.append(r["backtest"]["sentence"])
    tables: Tables = [(f"learning curve: {r['name']}",
                       ["blocks", "seeds", f"{r['split']} perplexity (mean)", "fit"], rows)]
    tail = [f"method: {r['method']}"] + [f"plot: {p}" for p in r.get("plots", [])]
    return lines, tables, tail


def labels_pct(row: dict) -> str:
    """'81.0 ± 2.0%' (mean ± s.d. over seeds), or '52.3%' for one value."""
    if row.get("sd") is None:
        return f"{100 * row['mean']:.1f}%"
    return f"{100 * row['mean']:.1f} ± {100 * row['sd']:.1f}%"


def labels_table(r: dict) -> tuple[list[str], list[list[str]]]:
    """A labels record's approaches x budgets: mean ± s.d. accuracy (%), '-' where not run."""
    cells = {(s["approach"], s["budget"]): s for s in r["summary"]}
    head = ["approach", *[f"all {b:,}" if b == r["n_train"] else f"{b:,}" for b in r["budgets"]]]
    rows = [[a, *[labels_pct(cells[(a, b)]) if (a, b) in cells else "-" for b in r["budgets"]]]
            for a in r["approaches"]]
    return head, rows


def labels_summary(r: dict) -> tuple[list[str], Tables, list[str]]:
    """The advice per budget, the points, then the fitted ceiling, what was skipped and the method."""
    head, rows = labels_table(r)
    c = r["curve"]
    if "fit" in c:
        lo, hi = c["ceiling"]["ci"]
        fit = (f"{r['plain']}: fitted ceiling {100 * c['ceiling']['accuracy']:.1f}% (95% CI {100 * lo:.1f}-"
               f"{100 * hi:.1f}%, {c['ceiling']['verdict']})")
    else:
        fit = f"{r['plain']}: no fitted curve ({c['not_fitted']})"
    tail = [f"majority class ('{r['majority']['label']}'): {100 * r['majority']['accuracy']:.1f}%", fit]
    tail += [f"skipped {s['approach']} at {s['budget']:,} labels (seeds {', '.join(map(str, s['seeds']))}): "
             f"{s['reason']}" for s in r["skipped"]]
    title = (f"{r['split']} accuracy % over {r['test']['examples']:,} texts, the same for every point "
             "(mean ± s.d. over seeds)")
    return list(r["sentences"]), [(title, head, rows)], tail + [f"method: {r['method']}"]
