"""The report's sections from other work: each appears only when the (scoped) store holds such
work, and says what it found in one sentence computed from the stored numbers.

A `Section` is a name, a title, `build(store) -> data | None` (None: nothing of that kind in
scope) and `takeaway(data) -> str`; `data` carries the table (`head`, `rows`) and an optional
`note`. Studies the report already draws with their figures (`supremum ceiling`, `labels`,
`curve`, `scale`) get their sentence from `limit_takeaway`.

Percentages: accuracy and ECE are stored as fractions and shown in % with one decimal in the
sentence (two in tables); perplexity with two decimals; changes in points (pt) or percent (%)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from supremum.frontier.scope import stage_of


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    build: Callable[[object], dict | None]
    takeaway: Callable[[dict], str]


def sections(store) -> list[dict]:
    """Every section with work in `store`, in registry order: {name, title, takeaway, head, rows, note}."""
    out = []
    for s in SECTIONS:
        data = s.build(store)
        if data:
            out.append({"name": s.name, "title": s.title, "takeaway": s.takeaway(data), "head": data["head"],
                        "rows": data["rows"], "note": data.get("note", "")})
    return out


def _pct(x: float | None, nd: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{nd}f}%"


def _finished(store, kind: str) -> list[dict]:
    """Finished runs of `kind` with metrics, oldest first."""
    return [r for r in store.runs() if r["kind"] == kind and r["status"] == "finished" and r.get("metrics")]


def _variant_names(store) -> dict[str, str]:
    """Artifact id -> its name as the rest of the report shows it (`answer.name`): its pipeline stage,
    else its lineage (every artifact of the store, so a scoped section still names a parent evaluated
    outside the scope)."""
    whole = getattr(store, "store", store)
    return {a["id"]: stage_of(a["path"]) or a.get("method") or a["id"] for a in whole.artifacts()}


def _latest_evals(store) -> dict[tuple[str, str, str], dict]:
    """(artifact, data, split) -> the metrics of its latest finished eval (any machine)."""
    return {(m["artifact"], m.get("data", "?"), m.get("split", "?")): m
            for r in _finished(store, "eval") for m in [r["metrics"]] if m.get("artifact")}


# -- calibration ------------------------------------------------------------------------------------

def calibration(store) -> dict | None:
    """Each `supremum calibrate` in scope: the calibrated artifact's evaluations against its parent's on
    the same data and split (ECE, adaptive ECE, NLL, accuracy), else the fit's own before/after on the
    dev split it was fitted on."""
    runs = _finished(store, "calibrate")
    if not runs:
        return None
    names, evals = _variant_names(store), _latest_evals(getattr(store, "store", store))
    found = []
    for r in runs:
        rec, child, parent = r["metrics"], r.get("artifact_id"), (r.get("config") or {}).get("parent")
        pairs = [(k[1], k[2], evals.get((parent, k[1], k[2])), m) for k, m in evals.items()
                 if k[0] == child and evals.get((parent, k[1], k[2])) and m.get("calibration")]
        base = {"variant": names.get(child, child), "parent": names.get(parent, parent),
                "temperature": rec["temperature"], "at_bound": rec.get("at_bound")}
        if pairs:
            for data, split, pm, cm in pairs:  # T's own dev split measures the fit, not calibration
                fitted_on = split == rec.get("split", "dev") and _same(data, rec.get("data"))
                found.append(base | {"split": split, "data": _name(data), "fitted_on": fitted_on,
                                     **_before_after(pm, cm)})
        else:
            fit = {k: (rec["before"][k], rec["after"][k]) for k in ("ece", "adaptive_ece", "nll")}
            found.append(base | {"split": rec.get("split", "dev"), "data": _name(rec.get("data")),
                                 "fitted_on": True, **fit, "accuracy": None})
    # a refit of the same artifact on the same data measures the same thing: the latest row stays
    found = list({(f["variant"], f["data"], f["split"]): f for f in found}.values())
    head = ["variant", "T", "measured on", "ECE %", "adaptive ECE %", "NLL", "accuracy %"]
    rows = [[f["variant"], f"{f['temperature']:.2f}",
             _measured_on(f),
             _arrow(f["ece"], 100), _arrow(f["adaptive_ece"], 100), _arrow(f["nll"], 1),
             "-" if f["accuracy"] is None else _arrow(f["accuracy"], 100)] for f in found]
    return {"found": found, "head": head, "rows": rows,
            "note": "Before → after temperature scaling (Guo et al. 2017); ECE over 15 equal-width bins, adaptive "
                    "ECE over 15 equal-mass bins, NLL in nats. Dividing logits by T keeps every prediction, so "
                    "accuracy does not move."}


def _measured_on(f: dict) -> str:
    where = (f"{f['data']} " if f["data"] != "?" else "") + f["split"]
    return where + (" (fitted on it)" if f["fitted_on"] else "")


def _name(data: str | None) -> str:
    from pathlib import Path

    return Path(data).name if data else "?"


def _same(a: str | None, b: str | None) -> bool:
    from pathlib import Path

    return a is not None and b is not None and Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _before_after(pm: dict, cm: dict) -> dict:
    pc, cc = pm["calibration"], cm["calibration"]
    return {"ece": (pc["ece"], cc["ece"]), "adaptive_ece": (pc["adaptive_ece"], cc["adaptive_ece"]),
            "nll": (pc["nll"], cc["nll"]), "accuracy": (pm.get("accuracy"), cm.get("accuracy"))}


def _arrow(pair: tuple, scale: float) -> str:
    a, b = pair  # no-break spaces: a narrow table cell never splits 'before → after' over lines
    return f"{scale * a:.2f}\u00a0→\u00a0{scale * b:.2f}"


def calibration_takeaway(d: dict) -> str:
    """The latest calibration, measured on held-out data where it was: e.g. 'Temperature scaling
    (T = 1.83) cut test ECE from 4.1% to 0.9% at unchanged accuracy (91.2%).'"""
    held = [f for f in d["found"] if not f["fitted_on"]]
    # a test split first (what a reader means by held out), else the latest held-out measurement
    f = ([f for f in held if f["split"] == "test"] or held or d["found"])[-1]
    before, after = f["ece"]
    verb = "cut" if after < before else "did not lower" if after == before else "raised"
    on = f" on {f['data']}" if f["data"] != "?" else ""
    s = (f"Temperature scaling of {f['parent']} (T = {f['temperature']:.2f}) {verb} {f['split']} ECE{on} from "
         f"{_pct(before)} to {_pct(after)}")
    if f["fitted_on"]:
        return s + (" on the examples T was fitted on; evaluate the calibrated artifact on held-out data to "
                    "measure it.")
    acc_b, acc_a = f["accuracy"]
    if acc_b is not None and acc_a is not None:
        s += (f" at unchanged accuracy ({_pct(acc_a)})" if round(100 * acc_b, 2) == round(100 * acc_a, 2)
              else f", accuracy {_pct(acc_b)} → {_pct(acc_a)}")
    return s + "."


# -- explanations -----------------------------------------------------------------------------------

def explanations(store) -> dict | None:
    """The latest `supremum explain` per artifact: each method's faithfulness (ERASER comprehensiveness
    and sufficiency, comprehensiveness over random deletions) and, with --against, the drift."""
    latest = {(r.get("parents") or ["?"])[0]: r for r in _finished(store, "explain")}
    if not latest:
        return None
    names = _variant_names(store)
    found = []
    for art, r in latest.items():
        m = r["metrics"]
        drift = m.get("drift") or {}
        for method in m.get("methods", []):
            f = m["faithfulness"][method]
            dm = (drift.get("methods") or {}).get(method) or {}
            top = ((dm.get("top_k_overlap") or {}).get("5") or {}).get("mean")
            found.append({"variant": names.get(art, art), "method": method, "examples": m.get("examples"),
                          "comprehensiveness": f["comprehensiveness"], "sufficiency": f["sufficiency"],
                          "vs_random": f.get("comprehensiveness_vs_random"), "top5": top,
                          "random": m["faithfulness"]["random"]["comprehensiveness"]["mean"],
                          "agreement": drift.get("prediction_agreement") if drift else None,
                          "page": f"{m.get('output', '')}/explanations.html"})
    head = ["variant", "method", "examples", "comprehensiveness", "sufficiency", "× random",
            "top-5 kept vs parent", "predictions agree"]

    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    rows = [[f["variant"], f["method"], str(f["examples"]), f"{f['comprehensiveness']:.3f}",
             f"{f['sufficiency']:.3f}", num(f["vs_random"], ".2f"), num(f["top5"], ".2f"),
             "-" if f["agreement"] is None else _pct(f["agreement"], 0)] for f in found]
    pages = sorted({f["page"] for f in found})
    return {"found": found, "head": head, "rows": rows,
            "note": "Comprehensiveness: how much the predicted class's probability drops when the method's top "
                    "words are removed (higher is more faithful); sufficiency: how much it drops when only they "
                    "are kept (lower is better); × random: comprehensiveness over that of random words. The words "
                    "of each example: " + ", ".join(pages) + "."}


def _num(x: float, nd: int) -> str:
    """`x` to `nd` decimals, never '-0.000'."""
    s = f"{x:.{nd}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def explanations_takeaway(d: dict) -> str:
    """The most faithful method (highest comprehensiveness) of the latest explained variant, and its
    drift from the parent where measured."""
    last = d["found"][-1]["variant"]
    rows = [f for f in d["found"] if f["variant"] == last]
    best = max(rows, key=lambda f: f["comprehensiveness"])
    from supremum.explain.faithfulness import MIN_DROP

    # Below 10x the floor the drop does not survive the sentence's 3 decimals: the model does not
    # rest on particular words, and naming a "most faithful" method would rank noise.
    if best["comprehensiveness"] < 10 * MIN_DROP:
        return (f"On {last}, removing words barely moves the predicted class's probability (top words "
                f"{_num(best['comprehensiveness'], 4)}, random words {_num(best['random'], 4)}): no method's "
                "ranking can be judged faithful.")
    drop = _num(best["comprehensiveness"], 3)
    s = (f"On {last}, {best['method']} is the most faithful of {len(rows)} method{'s' if len(rows) > 1 else ''}: "
         f"removing its top words lowers the predicted class's probability by {drop}")
    s += f", {best['vs_random']:.1f}× random words" if best["vs_random"] is not None else ""
    if best["top5"] is not None:
        s += (f"; it keeps {best['top5']:.2f} of the parent's top-5 words and predictions agree on "
              f"{_pct(best['agreement'], 0)}")
    return s + "."


# -- forgetting -------------------------------------------------------------------------------------

def forgetting(store) -> dict | None:
    """Causal-LM evaluations with --reference-data: reference perplexity against the parent's, same tokens."""
    found = []
    names = _variant_names(store)
    for key, m in _latest_evals(store).items():
        f = m.get("forgetting")
        if not f:
            continue
        found.append({"variant": names.get(key[0], m.get("lineage", key[0])), "reference": f["reference"],
                      "tokens": f["tokens"], "perplexity": f["perplexity"], "parent": f.get("parent"),
                      "parent_perplexity": f.get("parent_perplexity"), "change": f.get("change_pct")})
    if not found:
        return None
    head = ["variant", "reference text", "tokens", "perplexity", "parent perplexity", "change %"]
    rows = [[f["variant"], f["reference"], f"{f['tokens']:,}", f"{f['perplexity']:.2f}",
             "-" if f["parent_perplexity"] is None else f"{f['parent_perplexity']:.2f}",
             "-" if f["change"] is None else f"{f['change']:+.2f}"] for f in found]
    return {"found": found, "head": head, "rows": rows,
            "note": "Perplexity on general reference text of each variant and of the model it came from, the same "
                    "tokens, window and stride in the same run (`supremum eval --reference-data`); a rise is what "
                    "fine-tuning or compression made the model forget."}


def forgetting_takeaway(d: dict) -> str:
    """The variant that forgot the most (largest rise in reference perplexity), or that none got worse."""
    compared = [f for f in d["found"] if f["change"] is not None]
    if not compared:
        f = d["found"][-1]
        return (f"{f['variant']} has reference perplexity {f['perplexity']:.2f} on {f['reference']}; no parent "
                "was scored beside it, so nothing says what it forgot.")
    worst = max(compared, key=lambda f: f["change"])
    if round(worst["change"], 1) <= 0:  # a rise the sentence would show as +0.0% is not a rise
        change = f"{worst['change']:+.1f}".replace("-0.0", "+0.0")
        return (f"No variant got worse on {worst['reference']}: the largest change is {change}% "
                f"({worst['variant']}, {worst['parent_perplexity']:.2f} → {worst['perplexity']:.2f}).")
    return (f"Most forgetting: {worst['variant']}, whose perplexity on {worst['reference']} rose "
            f"{worst['change']:.1f}% "
            f"over its parent's ({worst['parent_perplexity']:.2f} → {worst['perplexity']:.2f})"
            + (f"; {len(compared)} variants compared." if len(compared) > 1 else "."))


SECTIONS = (Section("calibration", "Calibration: does a confidence of 0.8 mean right 80% of the time?",
                    calibration, calibration_takeaway),
            Section("explanations", "Explanations: which words the predictions rest on", explanations,
                    explanations_takeaway),
            Section("forgetting", "Forgetting: perplexity on general text against the parent", forgetting,
                    forgetting_takeaway))


# -- studies drawn with their figures ----------------------------------------------------------------

def ceiling_takeaway(m: dict) -> str:
    """E.g. 'Best 88.2% test; ceiling 91.3% [89.8, 92.4]; label noise caps the test set at 97.1%.'"""
    if m["metric"] == "perplexity":
        b, c = m.get("best"), m.get("ceiling")
        now = m["now"]["dev"]
        parts = [f"best {b['test']:.2f} {b['split']} perplexity" if b
                 else f"now {'n/a' if now is None else f'{now:.2f}'} dev perplexity"]
        parts.append(f"floor {c['perplexity']:.2f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]" if c
                     else "floor not measured")
        return "; ".join(parts).capitalize() + "."
    b, c, ln = m.get("best"), m.get("ceiling"), m.get("label_noise")
    parts = [f"best {_pct(b['test'])} {b['split']}" if b else f"now {_pct(m['now']['dev'])} dev"]
    parts.append(f"ceiling {_pct(c['accuracy'])} [{100 * c['ci'][0]:.1f}, {100 * c['ci'][1]:.1f}]" if c
                 else "ceiling not measured")
    if ln:
        parts.append(f"label noise caps the {m['split']} set at {_pct(ln['max_accuracy'])}")
    s = "; ".join(parts)
    return s[0].upper() + s[1:] + "."


def labels_takeaway(m: dict) -> str:
    """At the largest budget: the leading approach and its mean (and the runner-up); with a zero-label
    point, how prompting without labels compares with the majority class."""
    at: dict[int, list[dict]] = {}
    for r in m["summary"]:
        at.setdefault(r["budget"], []).append(r)
    top = max(b for b in at if b > 0) if any(b > 0 for b in at) else 0
    ranked = sorted(at[top], key=lambda r: -r["mean"])
    maj = m["majority"]["accuracy"]
    where = f"all {top:,}" if top == m["n_train"] else f"{top:,}"
    s = f"With {where} labels {ranked[0]['title']} leads ({_pct(ranked[0]['mean'])})"
    if len(ranked) > 1:
        s += f" over {ranked[1]['title']} ({_pct(ranked[1]['mean'])})"
    if top and 0 in at:
        z = max(at[0], key=lambda r: r["mean"])
        gap = 100 * (z["mean"] - maj)
        # at the sentence's precision (0.1 pt), a gap that rounds to zero is no gain over the majority class
        s += (f"; with no labels {z['title']} is no better than the majority class ({_pct(maj)})"
              if round(gap, 1) <= 0 else
              f"; with no labels {z['title']} reaches {_pct(z['mean'])}, {gap:.1f} pt over the majority class")
    return s + "."


def curve_takeaway(m: dict) -> str:
    if m.get("metric") == "perplexity":
        fl, a = m["floor"], m["at_10x"]
        return (f"Perplexity floor {fl['perplexity']:.2f} [{fl['ci'][0]:.2f}, {fl['ci'][1]:.2f}]; 10x the data "
                f"gives {a['perplexity']:.2f}.")
    c = m["ceiling"]
    s = f"Ceiling {_pct(c['accuracy'])} [{100 * c['ci'][0]:.1f}, {100 * c['ci'][1]:.1f}]"
    return s + (f"; 10x the data gives {_pct(m['at_10x']['accuracy'])}." if m.get("at_10x") else ".")


def scale_takeaway(m: dict) -> str:
    f, c, b = m["fit"], m["ci"]["E"], m["best_run"]
    return (f"The loss approaches E = {f['E']:.3f} nats/token [{c[0]:.3f}, {c[1]:.3f}]; the best run "
            f"({b['loss']:.3f}) is {b['gap_to_E']:.3f} above it.")


LIMIT_TAKEAWAYS = {"ceiling": ceiling_takeaway, "labels": labels_takeaway, "curve": curve_takeaway,
                   "scale": scale_takeaway}


def limit_takeaway(kind: str, m: dict) -> str:
    return LIMIT_TAKEAWAYS[kind](m)
