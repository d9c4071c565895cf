"""What the CLI shows: the printers of every command's result (the `--json` output aside), and the
selection of runs for `supremum runs` and `show`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from supremum.errors import UserError
from supremum.evaluate.result import EvalResult
from supremum.tasks import CAUSAL_LM

# Piped output (files, CI logs, tests) gets full-width tables instead of rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def print_compress(child) -> None:
    step = child.manifest.compression[-1]
    steps = [c.method for c in child.manifest.compression]
    chain = " -> ".join([child.manifest.method or "?", *steps])
    out.print(f"artifact {child.id}: {child.path}  ({chain}, parent {child.manifest.parents[0]})")
    for k, v in step.report.items():
        out.print(f"  {k}: {json.dumps(v, default=str) if isinstance(v, dict | list) else v}", markup=False)


def print_sensitivity(res: dict, top: int) -> None:
    if "baseline_loss" in res:
        out.print(f"baseline dev loss {res['baseline_loss']:.4f} on {res['examples']} {res['split']} "
                  f"blocks; change when only this layer is changed, most sensitive first: {res['unit']}",
                  markup=False)
    else:
        out.print(f"baseline accuracy {res['baseline_accuracy']:.4f} on {res['examples']} {res['split']} "
                  f"examples; change in points when only this layer is changed, most sensitive first")
    t = Table("layer", *res["schemes"])
    for r in res["layers"][:top]:
        t.add_row(r["layer"], *("n/a" if r[s] is None else f"{r[s]:+.2f}" for s in res["schemes"]))
    out.print(t)
    if len(res["layers"]) > top:
        out.print(f"... {len(res['layers']) - top} more (--top N, or --json for all)")


LM_COST_COLUMNS = ("decode ms/token", "tokens/s", "first token ms", "size MB", "memory MB", "params")


def _fmt(x, f: str) -> str:
    return "-" if x is None else format(x, f)


def _variant_row(v: dict, metric: str) -> list[str]:
    c = v["costs"]
    if v.get("task") == CAUSAL_LM.pipeline_tag:
        rate = 1000 / c["decode_ms"] if c.get("decode_ms") else None
        costs = [_fmt(c.get("decode_ms"), ".1f"), _fmt(rate, ".1f"), _fmt(c.get("ttft"), ".0f")]
    else:
        costs = [_fmt(c["latency_b1"], ".2f"), _fmt(c["latency_b32"], ".1f")]
    ece = [] if v.get("task") == CAUSAL_LM.pipeline_tag else [_fmt(_pct(v["metrics"].get("ece")), ".2f")]
    return [v["artifact"], v["lineage"], _fmt(v["metrics"].get(metric), ".4f"), *costs, _fmt(c["size"], ".1f"),
            _fmt(c["memory"], ".0f"), _fmt(c["params"], ","), *ece]


def _agreement_column(res: dict) -> tuple[str, ...]:
    """The explanation agreement with the parent (`explain --drift`): a column only when a row has it."""
    rows = res["frontier"] + res["dominated"]
    return ("expl. top-5 vs parent",) if any(v.get("explanation_agreement") for v in rows) else ()


def _agreement(v: dict, column: tuple) -> list[str]:
    a = v.get("explanation_agreement")
    if not column:
        return []
    return [f"{_fmt(a['top5'], '.2f')} (rho {_fmt(a['spearman'], '.2f')})" if a else "-"]


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _ece_column(res: dict) -> tuple[str, ...]:
    """Classifiers: the expected calibration error (15 bins, %) next to the costs."""
    return () if res.get("task") == CAUSAL_LM.pipeline_tag else ("ECE %",)


def _columns(res: dict) -> tuple[str, ...]:
    return LM_COST_COLUMNS if res.get("task") == CAUSAL_LM.pipeline_tag else COST_COLUMNS


COST_COLUMNS = ("b1 ms", "b32 ms", "size MB", "memory MB", "params")


def print_frontier(res: dict) -> None:
    g = res["group"]
    proto = f" ({g['protocol']})" if g.get("protocol") else ""
    out.print(f"Pareto frontier: {res['metric']} vs {res['cost_meaning']}; evaluated on {g['data']} "
              f"\\[{g['split']}]{proto}, machine {g['machine']}")
    agree = _agreement_column(res)
    t = Table("artifact", "lineage", res["metric"], *_columns(res), *_ece_column(res), *agree, title="frontier")
    for v in res["frontier"]:
        t.add_row(*_variant_row(v, res["metric"]), *_agreement(v, agree))
    out.print(t)
    if res["dominated"]:
        d = Table("artifact", "lineage", res["metric"], *_columns(res), *_ece_column(res), *agree,
                  title="dominated")
        for v in res["dominated"]:
            d.add_row(*_variant_row(v, res["metric"]), *_agreement(v, agree))
        out.print(d)
    for v in res["not_comparable"]:
        out.print(f"not compared: {v['artifact']} ({v['lineage']}): {v['reason']}", markup=False)


def print_pick(res: dict) -> None:
    if res["pick"]:
        v = res["pick"]
        c = v["costs"]
        speed = (f"decode {_fmt(c.get('decode_ms'), '.1f')} ms/token" if v.get("task") == CAUSAL_LM.pipeline_tag
                 else f"b1 {_fmt(c['latency_b1'], '.2f')} ms")
        out.print(f"pick: {v['artifact']} ({v['lineage']}) {res['metric']} {v['metrics'][res['metric']]:.4f}, "
                  f"{speed}, {_fmt(c['size'], '.1f')} MB; "
                  f"{res['within_budget']} of {res['considered']} variants fit", markup=False)
        if v.get("path"):
            out.print(f"  {v['path']}", markup=False)
        return
    out.print(f"no variant meets every constraint ({res['considered']} considered); met by none: "
              f"{', '.join(res['unmet_by_every_variant']) or 'each is met by some, but not together'}",
              markup=False)
    for v in res["closest"]:
        over = ", ".join(f"{k} {'missing' if x == float('inf') else f'+{100 * x:.0f}%'}"
                         for k, x in v["violations"].items())
        out.print(f"  closest: {v['artifact']} ({v['lineage']}): {over}", markup=False)


def print_pipeline(rows: list[dict], dry_run: bool) -> None:
    t = Table("stage", "kind", "from", "method", "status", "artifact", "estimate s", "seconds", "error",
              title="plan" if dry_run else "pipeline")
    for r in rows:
        method = r["method"]["name"] if isinstance(r["method"], dict) else (r["method"] or "")
        t.add_row(r["stage"], r["kind"], r["from"] or "", method, r["status"], r.get("artifact", ""),
                  f"{r['estimate_s']:.0f}" if "estimate_s" in r else "",
                  f"{r['seconds']:.1f}" if "seconds" in r else "", r.get("error", ""))
    out.print(t)


def print_finetune_data(info: dict) -> None:
    """What a fine-tune read (columns, sizes, splits made, duplicates), to stderr; printed
    before training starts (finetune's on_data)."""
    if "blocks" in info:
        err.print(f"data: {info['kind']} ({info['characters']['train']:,} training characters); "
                  f"{info['blocks']['train']:,} training and {info['blocks']['dev']:,} dev "
                  + ("blocks" if info["kind"] == "text" else "examples"), markup=False)
    else:
        err.print(data_line(info), markup=False)
    for split, how in (info.get("splits_made") or {}).items():
        err.print(f"data: made {split} split: {how}", markup=False)
    if full := info.get("filled_max_length"):
        err.print(f"data: {full['train']:,} training and {full['dev']:,} dev texts fill all {full['max_length']} "
                  "tokens and are cut there if longer (--max-length raises it, up to the model's positions)",
                  markup=False)
    dup = info.get("duplicates", {})
    if any(dup.values()) and "dedup" not in info:
        err.print(f"data: duplicates/overlap {dup} (pass --dedup to drop them)", markup=False)


def print_finetune(res) -> None:
    """The run's results (the data summary is print_finetune_data's, before training)."""
    m, info = res.metrics, res.data_info
    if m.get("device_note"):
        err.print(f"note: {m['device_note']}", markup=False)
    if "dev_loss" in m or "blocks" in info:
        return _print_lm_finetune(res)
    _print_unlabeled(m)
    acc = m["dev_accuracy"]
    out.print(f"run {res.run_id}: {m['steps']} steps, dev accuracy "
              f"{acc:.4f} (best at step {m['best_step']})" if acc is not None else
              f"run {res.run_id}: {m['steps']} steps")
    out.print(f"trainable {m['trainable_params']:,} / {m['total_params']:,} parameters "
              f"({m['trainable_fraction']:.2%}); {m['train_samples_per_s']:.1f} training samples/s")
    out.print(f"artifact {res.artifact.id}: {res.artifact.path}")


def data_line(info: dict) -> str:
    """The columns a classifier fine-tune read, how each was found, and the split sizes."""
    cols = info.get("columns", {})
    auto = cols.get("auto_detected", [])
    text_how = (" (guessed: the longest texts; no column has a usual text name, pass --text-column to choose)"
                if "text" in cols.get("guessed", []) else " (auto)" if "text" in auto else "")
    return (f"data: text column '{cols.get('text')}'{text_how}, "
            f"label column '{cols.get('label')}'{' (auto)' if 'label' in auto else ''}; sizes {info.get('sizes')}")


def _print_unlabeled(m: dict) -> None:
    """Domain pretraining and self-training rounds, when the fine-tune ran them."""
    if dp := m.get("domain_pretrain"):
        out.print(f"domain pretraining: {dp['steps']} steps of {dp['objective']} on {dp['texts']:,} unlabelled "
                  f"texts, loss {dp['loss_before']:.4f} -> {dp['loss_after']:.4f}", markup=False)
    if st := m.get("self_training"):
        for r in st["rounds_run"]:
            acc = "n/a" if r["dev_accuracy"] is None else f"{r['dev_accuracy']:.4f}"
            added = ", ".join(f"{k} {v}" for k, v in r["per_class"].items())
            out.print(f"self-training round {r['round']}: {r['pseudo_labelled']:,} pseudo-labelled "
                      f"({added}), dev accuracy {acc}", markup=False)
        if st.get("stopped_because"):
            out.print(f"self-training: {st['stopped_because']}", markup=False)
        out.print(f"self-training: kept round {st['kept_round']} ({st['kept_because']})", markup=False)


def _print_lm_finetune(res) -> None:
    m = res.metrics
    dev = (f", dev loss {m['dev_loss']:.4f} (perplexity {m['dev_perplexity']:.2f}, best at step "
           f"{m['best_step']})") if m.get("dev_loss") is not None else ""
    out.print(f"run {res.run_id}: {m['steps']} steps{dev}", markup=False)
    out.print(f"trainable {m['trainable_params']:,} / {m['total_params']:,} parameters "
              f"({m['trainable_fraction']:.2%}); {m['train_samples_per_s']:.2f} training sequences/s")
    out.print(f"artifact {res.artifact.id}: {res.artifact.path}")


def print_lm_eval(m: dict, name: str) -> None:
    d = m["perplexity_detail"]
    out.print(f"{name} scored {m.get('scored') or str(d['tokens']) + ' tokens'}", markup=False)
    out.print(f"perplexity {m['perplexity']:.3f}   loss {m['loss']:.4f} nats/token   "
              f"{m['bits_per_byte']:.4f} bits/byte")
    out.print(f"[dim]method: {d['method']}[/]")
    if "cost" in m:
        c = EvalResult(m).cost
        g = c.generation
        out.print(f"params {c.params:,}   weights {c.weights_mb:.1f} MB"
                  + (f"   on disk {c.size:.1f} MB" if "size_on_disk_mb" in m else "")
                  + f"   peak RSS {c.memory:.0f} MB   threads {g.threads}")
        out.print(f"decode {g.decode_tokens_per_s:.1f} tokens/s ({g.decode_ms_per_token:.1f} ms/token, "
                  f"p95 {g.decode_ms_p95:.1f})   prefill {g.prefill_tokens_per_s:.0f} tokens/s   "
                  f"time to first token {g.ttft_ms:.0f} ms")
        _print_busy(c.load, "times")
        out.print(f"[dim]method: {g.method}[/]")
    vs = m.get("vs_parent")
    if vs and "perplexity_change" in vs:
        out.print(f"vs parent {vs['parent']}: perplexity {vs['perplexity_change']:+.2%}"
                  + (f", decode {vs['decode_speedup']:.2f}x" if vs.get("decode_speedup") else "")
                  + (f" ({vs['busy']})" if vs.get("busy") else ""), markup=False)
    elif vs:
        out.print(f"vs parent {vs['parent']}: {vs['note']}", markup=False)
    for s in m.get("samples", [])[:3]:
        out.print(f"sample: {s['prompt']!r} -> {s['completion']!r}", markup=False)
    _print_generation_quality(m)
    f = m.get("forgetting")
    if f:
        vs = (f"; {f['parent']}: {f['parent_perplexity']:.3f}, change {f['change_pct']:+.2f}%"
              if f.get("change_pct") is not None else "")
        out.print(f"reference perplexity on {f['file']} ({f['tokens']} tokens): {f['perplexity']:.3f}{vs}",
                  markup=False)


def _print_generation_quality(m: dict) -> None:
    g = m.get("generation_quality")
    if not g:
        return
    out.print(f"answers to {g['examples']} prompts ({g['decoding']}): exact match {m['exact_match']:.4f}   "
              f"chrF {m['chrf']:.2f}   BLEU {m['bleu']:.2f}   ROUGE-L {m['rouge_l']:.2f}"
              + (f"   ({g['truncated']} cut at {g['max_new_tokens']} tokens)" if g["truncated"] else ""),
              markup=False)
    for label in ("best", "worst"):
        for r in g[label][:1]:
            out.print(f"  {label} (chrF {r['chrf']:.1f}): {r['prompt']!r} -> {r['output']!r} "
                      f"(reference {r['reference']!r})", markup=False)
    if g.get("outputs"):
        out.print(f"[dim]every prompt, reference and output: {g['outputs']}[/]")


def print_eval(m: dict, art) -> None:
    if m.get("task") == CAUSAL_LM.pipeline_tag:
        return print_lm_eval(m, art.id)
    prep = m.get("preprocessing") or {}
    how = (f"; max length {prep['max_length']} tokens ("
           + ("given" if "max_length" in prep["overridden"] else "as trained") + ")") if prep else ""
    out.print(f"{art.id} scored {m.get('scored') or m['examples']}{how}", markup=False)
    out.print(f"accuracy {m['accuracy']:.4f}   macro-F1 {m['macro_f1']:.4f}   MCC {m['mcc']:.4f}")
    t = Table("class", "precision", "recall", "f1", "support")
    for name, c in m["per_class"].items():
        t.add_row(name, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"]))
    out.print(t)
    names = list(m["per_class"])
    cm = Table("true \\ predicted", *names)
    for name, row in zip(names, m["confusion_matrix"], strict=True):
        cm.add_row(name, *map(str, row))
    out.print(cm)
    if m.get("calibration"):
        _print_calibration(m["calibration"])
    if m.get("error_analysis"):
        _print_slices(m["error_analysis"])
    if m.get("robustness"):
        rob = Table("perturbation", "accuracy", "vs clean (pt)", title="robustness")
        for name, r in m["robustness"].items():
            if name != "method":
                rob.add_row(name, f"{r['accuracy']:.4f}", f"{r['delta_pt']:+.2f}")
        out.print(rob)
        out.print(f"[dim]method: {m['robustness']['method']}[/]", markup=True)
    if "cost" in m:
        _print_cost(m)


def _print_slices(e: dict) -> None:
    t = Table("slice", "value", "examples", "accuracy", "95% interval", title="accuracy by slice")
    for r in e["slices"]:
        t.add_row(Text(r["slice"]), Text(str(r["value"])), str(r["examples"]), f"{r['accuracy']:.4f}",
                  f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
    out.print(t)
    if e.get("predictions"):
        out.print(f"per-example predictions: {e['predictions']}", markup=False)


def _print_calibration(c: dict) -> None:
    temp = f" (temperature {c['temperature']:.3f})" if c.get("temperature") is not None else ""
    out.print(f"calibration{temp}: ECE {100 * c['ece']:.2f}%   adaptive ECE {100 * c['adaptive_ece']:.2f}%   "
              f"Brier {c['brier']:.4f}   NLL {c['nll']:.4f}   accuracy-coverage area {c['selective']['area']:.4f}",
              markup=False)
    vs = c.get("vs_parent")
    if vs and "ece_delta_pt" in vs:
        out.print(f"  vs parent {vs['parent']}: ECE {vs['ece_delta_pt']:+.2f} pt, adaptive ECE "
                  f"{vs['adaptive_ece_delta_pt']:+.2f} pt, NLL {vs['nll_delta']:+.4f}", markup=False)
    cov = ", ".join(f"c>={a['threshold']:g}: {100 * a['coverage']:.0f}% at {_fmt(a['accuracy'], '.3f')}"
                    for a in c["selective"]["at"] if a["threshold"] >= 0.5)
    out.print(f"  abstain below confidence c (coverage at accuracy): {cov}", markup=False)


def print_calibrate(child) -> None:
    c = child.manifest.temperature_fit
    b, a = c.before, c.after
    out.print(f"artifact {child.id}: {child.path}  ({child.lineage}, parent {child.manifest.parents[0]})",
              markup=False)
    out.print(f"temperature {c.temperature:.4f} fitted on {c.examples:,} {c.split} examples of "
              f"{Path(c.data).name}: NLL {b.nll:.4f} -> {a.nll:.4f}, ECE {100 * b.ece:.2f}% -> "
              f"{100 * a.ece:.2f}%, Brier {b.brier:.4f} -> {a.brier:.4f}; predictions unchanged",
              markup=False)
    if c.at_bound:
        out.print(f"note: {c.at_bound}", markup=False)
    if c.replaces_temperature is not None:
        out.print(f"note: a refit from the uncalibrated logits; it replaces the parent's T = "
                  f"{c.replaces_temperature:.4f} (the 'before' numbers are the uncalibrated model's)",
                  markup=False)


def _print_busy(load: dict | None, what: str) -> None:
    from supremum.machine import busy

    if text := busy(load):
        out.print(f"note: the machine was busy while timing ({text}): the {what} above include waiting "
                  "for other work; time again on an idle machine", markup=False)


def _print_cost(m: dict) -> None:
    c = EvalResult(m).cost
    trainable = f" ({c.trainable_params:,} trained)" if c.trainable_params else ""
    out.print(f"params {c.params:,}{trainable}   weights {c.weights_mb:.1f} MB   on disk "
              f"{c.size:.1f} MB   peak RSS {c.memory:.0f} MB   threads {c.threads}")
    for lat in (c.b1, c.b32):
        out.print(f"batch {lat.batch_size:>2}: model {lat.model_median_ms:.2f} ms (p95 {lat.model_p95_ms:.2f}), "
                  f"with tokenization {lat.median_ms:.2f} ms (p95 {lat.p95_ms:.2f}); "
                  f"{lat.throughput_per_s:.1f} sentences/s")
    _print_busy(c.load, "latencies")
    out.print(f"[dim]method: {c.method}[/]")
    out.print(f"runs with: {m['runtime']['kernels']}; CPU ISA: {', '.join(m['runtime']['isa'])}",
              markup=False)
    vs = m.get("vs_parent")
    if vs and "speedup_b1" in vs:
        busy = f" ({vs['busy']})" if vs.get("busy") else ""
        out.print(f"vs parent {vs['parent']}: {vs['speedup_b1']:.2f}x at batch 1, "
                  f"{vs['speedup_b32']:.2f}x at batch 32{busy}, accuracy {vs['accuracy_delta_pt']:+.2f} pt",
                  markup=False)
        for b in ("b1", "b32"):
            if vs[f"why_{b}"] and not vs.get("busy"):  # a busy ratio says nothing about kernels
                out.print(f"  no speed-up at {b}: {vs[f'why_{b}']}", markup=False)
    elif vs:
        out.print(f"vs parent {vs['parent']}: {vs['note']}", markup=False)


def _headline(r: dict) -> float | None:
    m = r.get("metrics") or {}
    return m.get("accuracy", m.get("dev_accuracy"))


def select_runs(kind, status, sort, limit) -> list[dict]:
    from supremum.store import Store

    rows = Store().runs()
    rows = [r for r in rows if (kind is None or r["kind"] == kind)
            and (status is None or r["status"] == status)]
    keys = {"started": lambda r: r["started"], "accuracy": lambda r: _headline(r) or -1.0,
            "kind": lambda r: r["kind"], "status": lambda r: r["status"]}
    if sort not in keys:
        raise UserError(f"cannot sort by '{sort}'", f"use one of: {', '.join(keys)}")
    rows.sort(key=keys[sort])
    return rows[-limit:] if limit else rows


def print_runs(rows: list[dict]) -> None:
    t = Table("run", "kind", "status", "started", "model / artifact", "method", "data",
              "accuracy / ppl", "samples/s", "artifact")
    for r in rows:
        cfg, m = r.get("config") or {}, r.get("metrics") or {}
        acc = _headline(r)
        ppl = m.get("perplexity") or m.get("dev_perplexity")  # causal LMs: eval, or fine-tune's dev
        data = (cfg.get("data") or {}).get("path", "")
        model = cfg.get("model")  # a base-model evaluation records the model's name as a string
        name = model if isinstance(model, str) else (model or {}).get("name")
        what = name or ",".join(r.get("parents") or []) or _limit_what(r)
        if r["kind"] in ("scale-run", "scale"):
            src = cfg.get("source")
            data = src.get("path", src.get("kind", "")) if isinstance(src, dict) else str(src or "")
        t.add_row(r["id"], r["kind"], r["status"],
                  dt.datetime.fromtimestamp(r["started"]).strftime("%Y-%m-%d %H:%M"), what,
                  (cfg.get("method") or {}).get("name", ""), Path(data).name if data else "",
                  f"{acc:.4f}" if acc is not None else (f"ppl {ppl:.2f}" if ppl else ""),
                  f"{m.get('train_samples_per_s', '')}",
                  r.get("artifact_id") or "")
    out.print(t if rows else "no runs yet (run `supremum finetune`)")


def _limit_what(r: dict) -> str:
    """Scale runs have no model name: their shape, budget and loss; a sweep: its limit."""
    cfg, m = r.get("config") or {}, r.get("metrics") or {}
    if r["kind"] == "scale-run":
        return f"d{cfg.get('d')}L{cfg.get('layers')} D={cfg.get('tokens', 0):,}" + (
            f" loss {m['loss']:.4f}" if "loss" in m else "")
    if r["kind"] == "scale" and "fit" in m:
        return f"limit E={m['fit']['E']:.4f} ({len(m.get('runs', []))} runs)"
    return ""


def describe(ref: str) -> dict:
    from supremum.artifact import open_artifact
    from supremum.store import Store

    store = Store()
    if Path(ref).is_dir():
        art = open_artifact(ref, verify=False)
        return {"artifact": art.manifest.as_dict(), "metrics": art.metrics}
    run = store.get_run(ref)
    if run is not None:
        return {"run": run}
    row = store.get_artifact(ref)
    if row is not None:
        art = open_artifact(row["path"], verify=False)
        return {"artifact": art.manifest.as_dict(), "metrics": art.metrics, "path": row["path"]}
    raise UserError(f"no run or artifact with id '{ref}'", "see `supremum runs` for ids")


def print_cells(rows: list[dict]) -> None:
    t = Table("variant", "seed", "hash", "status", title="comparison cells")
    for r in rows:
        t.add_row(r["variant"], str(r["seed"]), r["hash"], r["status"])
    out.print(t)


def print_compare(s: dict) -> None:
    from supremum.compare import table

    head, rows = table(s)
    t = Table(*head, title=f"{s['name']}: {s['model']} on {s['data']} ({len(s['rows'][0]['seeds'])} seeds)")
    for r in rows:
        t.add_row(*r)
    out.print(t)
    out.print(f"method: {s['method']}; {s['cached_cells']} of {s['cells']} cells reused", markup=False)



def print_scale_plan(p: dict) -> None:
    t = Table("shape", "tokens", "seed", "status", title=f"scale plan: {p['source']['kind']} ({p['dir']})")
    for r in p["runs"]:
        t.add_row(r["shape"], f"{r['tokens']:,}", str(r["seed"]), r["status"])
    out.print(t)
    if p["estimated_seconds"]:
        out.print(f"estimated {p['estimated_seconds'] / 60:.1f} min on {p['jobs']} processes (probe: 3 timed "
                  "steps per shape)", markup=False)
    if p["entropy_rate"] is not None:
        out.print(f"true entropy rate of the source: {p['entropy_rate']:.4f} nats/token", markup=False)


def _print_summary(lines: list[str], tables: list[tuple[str, list[str], list[list[str]]]],
                   tail: list[str]) -> None:
    for line in lines:
        out.print(line, markup=False)
    for title, head, rows in tables:
        t = Table(*head, title=title)
        for r in rows:
            t.add_row(*r)
        out.print(t)
    for line in tail:
        out.print(line, markup=False)


def print_scale(a: dict) -> None:
    from supremum.limit.summary import scale_summary

    _print_summary(*scale_summary(a))


def print_ceiling(r: dict) -> None:
    from rich.table import Table

    from supremum.limit.verdict import rows

    t = Table(title=f"How good can {r['model']} get on {r['data']}?")
    for col in ("quantity", "value", "how"):
        t.add_column(col)
    for row in rows(r):
        t.add_row(*row)
    out.print(t)
    out.print(r["sentence"], markup=False)
    from pathlib import Path

    files = sorted(p.name for p in Path(r["output"]).glob("*") if p.suffix in (".png", ".csv"))
    out.print(f"details: {r['output']} ({', '.join(files) or 'no plots'})", markup=False)


def print_curve(r: dict) -> None:
    from supremum.limit.summary import curve_summary

    _print_summary(*curve_summary(r))


def print_zeroshot(r: dict) -> None:
    """One row per k: mean ± s.d. over seeds of accuracy, macro-F1 and acc_norm, and the cost."""
    pct = lambda s: f"{100 * s['mean']:.1f}" + ("" if s["sd"] is None else f" ± {100 * s['sd']:.1f}")  # noqa: E731
    verb = ", ".join(f"{k}={v!r}" for k, v in r["verbalizers"].items())
    out.print(f"{r['model']} ({r['backend']}) on {r['data']} [{r['split']}], {r['examples']} texts; "
              f"verbalizers {verb}", markup=False)
    t = Table("shots", "seeds", "accuracy %", "macro-F1 %", "acc_norm %", "examples/s", "b1 ms")
    for k in r["results"]:
        res = EvalResult(k)
        measured, c = res.measured_cost, res.cost
        t.add_row(str(k["shots"]), str(k["accuracy"]["n"]), pct(k["accuracy"]), pct(k["macro_f1"]),
                  pct(k["acc_norm"]), f"{c.examples_per_s:.1f}" if measured else "-",
                  f"{c.latency_b1:.1f}" if measured else "-")
    out.print(t)
    m = r["majority"]
    out.print(f"majority class ('{m['label']}' for every text): accuracy {100 * m['accuracy']:.1f}%, "
              f"macro-F1 {100 * m['macro_f1']:.1f}%", markup=False)


def print_harness(r: dict) -> None:
    """`supremum lm-eval`: per task the frontier's metrics (%), examples scored, shots, seconds."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    t = Table("task", "split", "accuracy %", "acc_norm %", "exact match %", "examples", "shots", "seconds",
              title=f"lm-eval on {r['model']}")
    for task, m in r["tasks"].items():
        t.add_row(task, m["split"], pct(m.get("accuracy")), pct(m.get("acc_norm")), pct(m.get("exact_match")),
                  str(m["examples"]), str(m["lm_eval"]["n_shot"]), f"{m['eval_seconds']:.1f}")
    out.print(t)


def print_explain_lm(r: dict, shown: int = 3, top: int = 5) -> None:
    """Per prompt: its continuation and, per method, the prompt tokens that raise its
    log-probability most; where the files are."""
    out.print(f"explain {r['artifact']} ({r['lineage']}): {r['settings']['score']}; run {r['run']}", markup=False)
    for i, e in enumerate(r["examples"][:shown]):
        out.print(f"#{i}: {e['prompt']!r} -> {e['continuation']!r}", markup=False)
        for m, a in e["methods"].items():
            order = sorted(range(len(a["sequence"])), key=lambda j: -a["sequence"][j])[:top]
            toks = ", ".join(f"{a['prompt_tokens'][j]!r} {a['sequence'][j]:+.3g}" for j in order)
            out.print(f"  {m} ({a['seconds']:.1f} s): {toks}", markup=False)
    out.print(f"files: {r['output']}/explanations.json, explanations.html", markup=False)


def print_explain(r: dict, shown: int = 3, top: int = 5) -> None:
    """The faithfulness table (methods, then random with its s.d. over seeds), the top words of
    the first examples per method, what was skipped and where the files are."""
    out.print(f"explain {r['artifact']} ({r['lineage']}, {r['backend']}): {r['source']}; run {r['run']}",
              markup=False)
    f = r["faithfulness"]
    t = Table("attribution", "comprehensiveness ↑", "sufficiency ↓", "comp. / random", "seconds",
              title=f"faithfulness (ERASER AOPC over {', '.join(map(str, r['settings']['aopc_percents']))}% "
                    "of the words)")
    for m in r["methods"]:
        ratio = f[m]["comprehensiveness_vs_random"]
        t.add_row(m, f"{f[m]['comprehensiveness']:.4f}", f"{f[m]['sufficiency']:.4f}",
                  f"{ratio:.2f}x" if ratio is not None else "-", f"{r['seconds'][m]:.1f}")
    rc, rs = f["random"]["comprehensiveness"], f["random"]["sufficiency"]
    t.add_row(f"random ({len(r['settings']['seeds'])} seeds)", f"{rc['mean']:.4f} ± {rc['sd']:.4f}",
              f"{rs['mean']:.4f} ± {rs['sd']:.4f}", "1.00x", "")
    out.print(t)
    for i, e in enumerate(r["examples"][:shown]):
        true = f", true {e['label']}" if e["label"] is not None else ""
        out.print(f"#{i}: predicted {e['predicted']} ({e['probability']:.3f}{true})", markup=False)
        for m in r["methods"]:
            order = sorted(range(len(e["words"])), key=lambda j: -e["scores"][m][j])[:top]
            words = ", ".join(f"{e['words'][j]} {e['scores'][m][j]:+.3g}" for j in order)
            delta = e["details"].get(m, {}).get("convergence_delta")
            out.print(f"  {m}: {words}" + (f"  (delta {delta:+.2g})" if delta is not None else ""), markup=False)
    for m, why in r["skipped"].items():
        out.print(f"{m} not run: {why}", markup=False)
    if d := r.get("drift"):
        out.print(f"explanation drift against {d['against']} ({d['against_lineage']}), {d['compared']} of "
                  f"{d['examples']} examples, scores for the parent's predicted class:", markup=False)
        for s in d["methods"].values():
            out.print(f"  {s['sentence']}", markup=False)
        for m, why in d["skipped"].items():
            out.print(f"  {m} not compared: the parent cannot run it ({why})", markup=False)
    out.print(f"written: {Path(r['output']) / 'explanations.json'}, {Path(r['output']) / 'explanations.html'}",
              markup=False)


def print_label(state, where) -> None:
    """The loop's rounds (labels, changed predictions, eval accuracy, decision) and what to do next."""
    t = Table("round", "labels", "changed %", "eval acc %", "decision")
    for r in state.rounds:
        t.add_row(str(r.round), str(r.labelled), "-" if r.changed is None else f"{100 * r.changed:.2f}",
                  "-" if r.eval_accuracy is None else f"{100 * r.eval_accuracy:.2f}", r.decision.reason)
    if state.rounds:
        out.print(t)
    if state.stopped is not None:
        model = state.rounds[-1].artifact
        data = f"{where}/labelled.csv"
        out.print(f"stopped ({state.stopped.rule}): {len(state.labelled)} labels in {data}"
                  + (f"; the last round's model: {model}" if model else
                     f"; train the final model on them with `supremum finetune --data {data}`"), markup=False)
    else:
        out.print(f"next: label {state.pending_file} ({len(state.pending)} texts), then run the same "
                  "command without options", markup=False)


def print_simulation(res: dict, where) -> None:
    """Mean ± s.d. accuracy per strategy at each label count, and the labels each strategy needed
    to reach random sampling's accuracy at the budget."""
    ns = [p["n_labels"] for p in res["summary"]["random"]]
    t = Table("strategy", *[str(n) for n in ns], title=f"accuracy % by labels ({res['eval_examples']} texts)")
    for s, pts in res["summary"].items():
        t.add_row(s, *[f"{100 * p['mean']:.1f}" + (f" ± {100 * p['std']:.1f}" if p["std"] is not None else "")
                       for p in pts])
    out.print(t)
    for line in match_lines(res):
        out.print(line, markup=False)
    out.print(f"details: {where}/simulation.json, {where}/simulation.png", markup=False)


def match_lines(res: dict) -> list[str]:
    """One sentence per strategy of a simulation: the labels with which it reaches random
    sampling's accuracy at the budget (and stays there), or that it does not, with the accuracy
    it ends at."""
    ref = res["match"]["reference"]
    target = f"random's {100 * ref['mean']:.1f}% at {ref['n_labels']} labels"
    lines = []
    for s, m in res["match"]["strategies"].items():
        if m["n_labels"] is not None:
            lines.append(f"{s}: reaches {target} with {m['n_labels']} labels ({100 * m['share']:.0f}%)")
        else:
            end = res["summary"][s][-1]["mean"]
            lines.append(f"{s}: does not reach {target} within the budget (it ends at {100 * end:.1f}%)")
    return lines


def print_labels(r: dict) -> None:
    from supremum.limit.summary import labels_summary

    lines, tables, tail = labels_summary(r)
    _print_summary(lines, tables, [*tail, f"{r['cells']['total']} cells ({r['cells']['cached']} cached); plot: "
                                         f"{r['plot']}"])


def print_labels_plan(p: dict) -> None:
    out.print(p["plan"], markup=False)
    for name, a in p["approaches"].items():
        if not a["cells"]:
            out.print(f"  {name}: no cell to run (every budget skipped, below)", markup=False)
            continue
        est = f"about {a['seconds'] / 60:.1f} min ({a['basis']})" if a["seconds"] is not None else a["basis"]
        out.print(f"  {name}: {a['cells']} cells, {a['cached']} cached; {est}", markup=False)
    for s in p["skipped"]:
        seeds = ", ".join(map(str, s["seeds"]))
        out.print(f"  skipped {s['approach']} at {s['budget']:,} labels (seeds {seeds}): {s['reason']}",
                  markup=False)
