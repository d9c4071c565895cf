"""The verdict of `supremum ceiling`: the flat keys a script reads, and one paragraph a person reads.

Keys (absent stages are `null` and named in `not_measured` with the reason):
`now.dev`; `best.dev`, `best.test` (the measured split; `best.split` names it), `best.config`,
`best.seeds`; `ceiling.accuracy`, `ceiling.ci`, `ceiling.verdict` (a language model: `ceiling.perplexity`,
the floor); `at_1x` and `at_10x` (the fit at the largest size and at 10x it); `labels_for_target`;
`label_noise.rate`, `label_noise.ci`,
`label_noise.suspects_path` (the measured split's), `label_noise.max_accuracy`; `resolution_pt`;
`backtest` (the curve refitted without its largest size, predicting it; `limit.curve._backtest`);
`search.trials` (a count; `search.history` holds each trial); `cheapest_within_1pt` (from the
frontier's evaluations of the same data and split, or null).
"""

from __future__ import annotations


def verdict(rec: dict, cfg) -> dict:
    """Adds the flat keys, the resolution and the paragraph to a ceiling record (in place)."""
    curve = rec.get("curve") or {}
    rec.setdefault("best", None)
    rec["ceiling"] = _ceiling(curve)
    rec["at_1x"], rec["at_10x"] = curve.get("at_1x"), curve.get("at_10x")
    rec["backtest"] = curve.get("backtest")
    rec["labels_for_target"] = curve.get("target")
    rec["resolution_pt"] = _resolution(rec, curve)
    rec.setdefault("label_noise", None)
    rec.setdefault("models", None)
    s = rec["search"]
    if isinstance(s["trials"], list):  # the count under `trials`, every trial's record under `history`
        s["history"], s["trials"] = s["trials"], len(s["trials"])
    rec["sentence"] = paragraph(rec)
    return rec


def _ceiling(curve: dict) -> dict | None:
    if not curve:
        return None
    c = curve.get("ceiling") or curve.get("floor")
    return {**c, "sentence": c.get("sentence")}


def _resolution(rec: dict, curve: dict) -> float | None:
    """Smallest difference (points) the measured split resolves at 95% (McNemar bound at the best
    model's accuracy; `limit.resolution`)."""
    from supremum.limit.resolution import resolution

    best = rec.get("best")
    n = curve.get("n_eval") or rec.get("n_eval")
    if not best or not n or rec["metric"] != "accuracy":
        return None
    return 100 * resolution(n, best["test"])


def _signed(x: float) -> str:
    """+1.2 / -0.4, and 0.0 rather than -0.0."""
    return "0.0" if round(x, 1) == 0 else f"{x:+.1f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def paragraph(rec: dict) -> str:
    """The verdict in words: now, best, ceiling, label noise, 10x labels, resolution, what's missing."""
    lm = rec["metric"] == "perplexity"
    fmt = (lambda x: "n/a" if x is None else f"{x:.2f}") if lm else _pct
    unit = "dev perplexity" if lm else "dev"
    parts = [f"now {fmt(rec['now']['dev'])} {unit} (your configuration)"]
    sb = rec.get("search_best")
    if sb:
        mine = sb["trial"] == rec["now"].get("trial")
        parts.append(f"the search's best trial: {fmt(sb['dev'])} {unit}"
                     + (" (your configuration itself)" if mine else f" (trial {sb['trial']})"))
    b = rec.get("best")
    if b:
        sd = b["test_std"] if lm else 100 * b["test_std"]
        dev = "" if b["split"] == "dev" else f"{fmt(b['dev'])} {unit}, "  # measured on dev: one number, not two
        parts.append(f"its re-run over {len(b['seeds'])} seeds {dev}{fmt(b['test'])} ± "
                     f"{sd:.2f}{'' if lm else ' pt'} {b['split']} ({_describe(b['config'])})")
    c = rec.get("ceiling")
    if c and not lm:
        parts.append(f"ceiling with unlimited labels {_pct(c['accuracy'])} {_ci(c['ci'])} ({c['verdict']})")
    elif c:
        parts.append(f"perplexity floor with unlimited data {c['perplexity']:.2f} "
                     f"[{c['ci'][0]:.2f}, {c['ci'][1]:.2f}] ({c['verdict']})")
    ln = rec.get("label_noise")
    if ln:
        parts.append(f"label noise {_pct(ln['rate'])} {_ci(ln['ci'])} caps the {rec['split']} set at "
                     f"{_pct(ln['max_accuracy'])}" + _against_cap(ln["max_accuracy"], b, c, lm))
    t1, t10 = rec.get("at_1x"), rec.get("at_10x")
    if t1 and t10 and not lm:  # fit against fit: the measured mean's distance from the fit is not a gain
        parts.append(f"10x the labels buys {_signed(100 * (t10['accuracy'] - t1['accuracy']))} pt by the fit "
                     f"({_pct(t1['accuracy'])} -> {_pct(t10['accuracy'])} {_ci(t10['ci'])})")
    bt = rec.get("backtest")
    if bt and not bt["inside"] and c:
        parts.append(f"but the curve's own backtest missed its largest size ({_bt(bt, lm)}), so read these "
                     "extrapolations with care")
    if rec.get("resolution_pt") is not None:
        parts.append(f"the {rec['split']} set resolves differences of {rec['resolution_pt']:.1f} pt or more")
    if b and not lm:
        parts.append(_cheapest(rec.get("cheapest_within_1pt"), b))
    for stage, why in rec.get("not_measured", {}).items():
        parts.append(f"{stage.replace('_', ' ')} not measured: {why}")
    return "; ".join(parts) + "."


def _against_cap(cap: float, best: dict | None, ceiling: dict | None, lm: bool) -> str:
    """The label-noise cap read against the measured best and the fitted ceiling: a best above
    the cap means the rate is overestimated; a ceiling identified above it (its whole interval),
    that the test set's own errors would stop the gains before the model does."""
    if lm:
        return ""
    if best and best["test"] > cap:
        return (f" (the best re-run already scores {_pct(best['test'])}, above it: the rate is likely "
                "overestimated)")
    if ceiling and ceiling.get("verdict") in ("identified", "saturated") and ceiling["ci"][0] > cap:
        return (" (below the fitted ceiling: the test set's own label errors, not the model, would stop the "
                "gains first)")
    return ""


def _cheapest(c: dict | None, best: dict) -> str:
    if c is None:
        return (f"the cheapest variant within 1 pt: none evaluated on this split yet; compress the best artifact "
                f"(supremum compress, or a supremum run pipeline), evaluate the variants, then supremum pick "
                f"--min-accuracy {best['test'] - 0.01:.3f}")
    if c["artifact"] is None:
        return (f"no variant within 1 pt among the {c['considered']} evaluated on this split on {c['machine']}; "
                f"compress the best artifact (supremum compress), evaluate it, then supremum pick --min-accuracy "
                f"{best['test'] - 0.01:.3f}")
    return (f"the cheapest variant within 1 pt is {c['artifact']} ({c['lineage']}: {_pct(c['value'])}, "
            f"{c['cost']} {c['cost_value']:.3g}, of {c['considered']} evaluated on {c['machine']})")


def _describe(config: dict) -> str:
    m, t = config.get("method", {}), config.get("train", {})
    bits = [m.get("name", "?")]
    if m.get("name") == "lora":
        bits.append(f"r {m.get('r')}")
    bits.append(f"lr {t.get('lr'):.2g}" if t.get("lr") else "lr default")
    if t.get("max_steps"):
        bits.append(f"{t['max_steps']} steps")
    else:
        bits.append(f"{t.get('epochs'):g} epoch{'' if t.get('epochs') == 1 else 's'}")
    bits.append(f"batch {t.get('batch_size')}")
    return ", ".join(bits)


def rows(rec: dict) -> list[tuple[str, str, str]]:
    """The console table: (quantity, value, how it was measured)."""
    lm = rec["metric"] == "perplexity"
    f = (lambda x: f"{x:.2f}") if lm else _pct
    out = [("now (your configuration)", f(rec["now"]["dev"]) if rec["now"]["dev"] is not None else "n/a",
            f"dev, search trial {rec['now'].get('trial')}")]
    s = rec["search"]
    out.append(("search", f"{s['trials']} trial{'' if s['trials'] == 1 else 's'}, {s['pruned']} pruned",
                f"Optuna TPE, stopped: {s['stopped']}"))
    sb = rec.get("search_best")
    if sb:
        out.append(("best trial of the search", f(sb["dev"]), f"dev, trial {sb['trial']}, one seed"))
    b = rec.get("best")
    if b:
        out.append(("best re-run, dev", f"{f(b['dev'])} ± {_sd(b['dev_std'], lm)}", f"{len(b['seeds'])} seeds, "
                    "mean ± s.d."))
        if b["split"] != "dev":
            out.append((f"best re-run, {b['split']}", f"{f(b['test'])} {_band(b['test_ci'], lm)}",
                        "95% t-interval of the mean"))
    if rec.get("majority") is not None:
        out.append(("majority class", _pct(rec["majority"]), f"{rec['split']}, always the most common label"))
    c = rec.get("ceiling")
    if c:
        v = f"{c['perplexity']:.2f}" if lm else _pct(c["accuracy"])
        out.append(("floor (perplexity)" if lm else "ceiling (labels -> inf)", f"{v} {_band(c['ci'], lm)}",
                    c["verdict"]))
    if rec.get("at_10x") and not lm:
        out.append(("at 10x the labels", f"{_pct(rec['at_10x']['accuracy'])} {_ci(rec['at_10x']['ci'])}",
                    "learning-curve fit"))
    if rec.get("backtest"):
        bt = rec["backtest"]
        out.append((f"backtest at {bt['n']:,.0f}", _bt(bt, lm), "refit without the largest size, "
                    + ("inside" if bt["inside"] else "OUTSIDE") + " its 95% interval"))
    if rec.get("labels_for_target"):
        t = rec["labels_for_target"]
        out.append((f"labels for {_pct(t['accuracy'])}", f"{t['examples']:,.0f}" if t["examples"] else "—",
                    t["status"]))
    ln = rec.get("label_noise")
    if ln:
        out.append((f"label noise ({rec['split']})", f"{_pct(ln['rate'])} {_ci(ln['ci'])}",
                    "confident learning (cleanlab)"))
        out.append((f"most a {rec['split']} set can show", _pct(ln["max_accuracy"]), "1 - label-error rate"))
    if rec.get("resolution_pt") is not None:
        out.append(("resolution", f"{rec['resolution_pt']:.1f} pt", "95%, McNemar bound"))
    m = rec.get("models")
    if m and m.get("slope_per_doubling") is not None:
        out.append(("per doubling of parameters", f"{100 * m['slope_per_doubling']:+.1f} pt" if not lm
                    else f"{m['slope_per_doubling']:+.2f}", m["fit"]))
    for stage, why in rec.get("not_measured", {}).items():
        out.append((stage.replace("_", " "), "not measured", why))
    return out


def _bt(bt: dict, lm: bool) -> str:
    if lm:
        return f"predicted {bt['predicted']:.2f} {_band(bt['ci'], lm)}, measured {bt['measured']:.2f}"
    return f"predicted {_pct(bt['predicted'])} {_ci(bt['ci'])}, measured {_pct(bt['measured'])}"


def _sd(x: float, lm: bool) -> str:
    return f"{x:.2f}" if lm else f"{100 * x:.2f} pt"


def _band(ci, lm: bool) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if lm else _ci(ci)
