"""From a sweep's runs to the answer: the fitted limit E with its interval, the gap to it, what 10x
and 100x the compute would buy, the compute-optimal allocation, a held-out check of the fit's
predictions, and, for synthetic sources, E against the true entropy rate."""

from __future__ import annotations

import numpy as np

from supremum.limit.fit import (
    BOUNDS_EXP,
    PowerFit,
    bootstrap,
    compute_optimal,
    envelope_fit,
    fit_power,
    interval,
)

METHOD = ("L(N, D) = E + A/N^alpha + B/D^beta fitted on every run's final held-out loss (Huber loss, "
          "delta 1e-3, on log-loss residuals; L-BFGS-B from the 24 best of a 5,400-point grid of "
          "initializations; exponents bounded to [0.001, 4]); 95% percentile intervals from a bootstrap "
          "over runs; compute C = 6 N D with N the non-embedding parameters; compute-optimal allocation "
          "from the fitted form under C = 6 N D (Hoffmann et al. 2022, approaches 1 and 3)")


def _arrays(results: list[dict]):
    n = np.array([r["N"] for r in results], dtype=float)
    d = np.array([r["D"] for r in results], dtype=float)
    loss = np.array([r["loss"] for r in results], dtype=float)
    return n, d, 6.0 * n * d, loss


def _ci(boots: list[PowerFit], f) -> list[float]:
    return interval([f(b) for b in boots])


def analyze(results: list[dict], info: dict, cfg) -> dict:
    # A canonical order: runs finish in any order, and the fit must not depend on it.
    every = sorted(results, key=lambda r: (r["N"], r["D"], r.get("seed", 0)))
    cut = info["unigram_entropy"] * (1 - cfg.plateau) if cfg.plateau else float("inf")
    results = [r for r in every if r["loss"] < cut]
    if len(results) < 6:
        from supremum.errors import UserError

        raise UserError(f"the sweep has {len(results)} finished runs past the initial plateau (loss below "
                        f"{cut:.4f}); a 5-parameter fit needs at least 6", "add larger token budgets or sizes")
    n, d, c, loss = _arrays(results)
    fit = fit_power([n, d], loss)
    boots = bootstrap([n, d], loss, fit, n=cfg.bootstrap) if cfg.bootstrap else []
    best = int(np.argmin(loss))
    out = {
        "method": METHOD, "source": info["source"], "runs": _run_rows(every, cut),
        "plateau": {"unigram_entropy": info["unigram_entropy"], "share": cfg.plateau, "cutoff": cut,
                    "excluded": len(every) - len(results),
                    "rule": "runs whose held-out loss is within `share` of the training stream's unigram entropy "
                            "have learned little beyond token frequencies; the power law does not describe that "
                            "plateau, so they are listed but not fitted"},
        "fit": {**fit.as_dict(), "B": fit.A[1], "beta": fit.alpha[1], "A": fit.A[0], "alpha": fit.alpha[0],
                "bootstrap": len(boots)},
        "ci": {"E": _ci(boots, lambda b: b.E), "A": _ci(boots, lambda b: b.A[0]),
               "B": _ci(boots, lambda b: b.A[1]),
               "alpha": _ci(boots, lambda b: b.alpha[0]), "beta": _ci(boots, lambda b: b.alpha[1]),
               "a": _ci(boots, lambda b: compute_optimal(b, 1.0)["a"]),
               "b": _ci(boots, lambda b: compute_optimal(b, 1.0)["b"])},
        "best_run": {"loss": float(loss[best]), "N": n[best], "D": d[best], "flops": c[best],
                     "gap_to_E": float(loss[best] - fit.E),
                     "gap_ci": _ci(boots, lambda b: float(loss[best] - b.E))},
        "allocation": {"a": compute_optimal(fit, 1.0)["a"], "b": compute_optimal(fit, 1.0)["b"]},
        "predictions": _predictions(fit, boots, c.max(), cfg.budget_flops),
        "what_if": _what_if(fit, boots, n[best], d[best]),
        "envelope": _envelope(n, d, c, loss, cfg.bootstrap),
        "holdout": holdout_check(results, cfg.holdout, min(cfg.bootstrap, 200)),
    }
    out["compute_optimal_exponents_agree"] = _agree(out)
    out["warnings"] = _warnings(fit, out, loss)
    # Kept so plots and the report draw the uncertainty band without refitting.
    out["bootstrap_params"] = [[b.E, b.A[0], b.A[1], b.alpha[0], b.alpha[1]] for b in boots]
    out["fit"]["degenerate_resamples"] = int(sum(b.E < 0.02 * loss.min() for b in boots))
    if "entropy_rate" in info:
        out["truth"] = _truth(info, fit, out["ci"]["E"])
    return out


def _run_rows(results: list[dict], cut: float) -> list[dict]:
    keys = ("shape", "N", "D", "flops", "loss", "seed", "seconds", "tokens_per_s", "epochs", "lr", "curve",
            "cached")
    rows = ({**{k: r.get(k) for k in keys}, "fitted": r["loss"] < cut} for r in results)
    return sorted(rows, key=lambda r: (r["N"], r["D"], r["seed"]))


def _predictions(fit: PowerFit, boots: list[PowerFit], c_max: float, budget: float | None) -> list[dict]:
    out = []
    for label, c in [("10x largest run", 10 * c_max), ("100x largest run", 100 * c_max)] + (
            [("budget", budget)] if budget else []):
        opt = compute_optimal(fit, c)
        out.append({"label": label, "flops": c, "loss": float(opt["loss"]), "N": float(opt["N"]),
                    "D": float(opt["D"]),
                    "loss_ci": _ci(boots, lambda b, c=c: float(compute_optimal(b, c)["loss"])),
                    "N_ci": _ci(boots, lambda b, c=c: float(compute_optimal(b, c)["N"])),
                    "D_ci": _ci(boots, lambda b, c=c: float(compute_optimal(b, c)["D"]))})
    return out


def _what_if(fit: PowerFit, boots: list[PowerFit], n: float, d: float) -> list[dict]:
    """What 10x data, 10x parameters, or both would give the best run's model, per the fit."""
    out = []
    for label, nn, dd in [("best run as is", n, d), ("10x data", n, 10 * d), ("10x parameters", 10 * n, d),
                          ("10x both", 10 * n, 10 * d)]:
        out.append({"label": label, "N": nn, "D": dd, "loss": float(fit.predict(nn, dd)),
                    "loss_ci": _ci(boots, lambda b, nn=nn, dd=dd: float(b.predict(nn, dd)))})
    return out


def _envelope(n, d, c, loss, resamples: int) -> dict | None:
    """Approach 1: the runs on the loss-compute frontier give N_opt ~ C^a and D_opt ~ C^b directly."""
    env = envelope_fit(n, d, c, loss)
    if env is None:
        return None
    rng = np.random.default_rng(1)
    a_s, b_s = [], []
    for _ in range(resamples):
        i = rng.integers(0, len(loss), len(loss))
        e = envelope_fit(n[i], d[i], c[i], loss[i])
        if e is not None:
            a_s.append(e["a"])
            b_s.append(e["b"])
    return {**env, "a_ci": interval(a_s), "b_ci": interval(b_s), "frontier_runs": len(env["runs"]),
            "note": "from each run's final loss (one learning-rate schedule per run, so no intermediate "
                    "checkpoints are used)"}


def _agree(out: dict) -> bool | None:
    """Whether approach 1's and approach 3's parameter exponent intervals overlap."""
    env = out["envelope"]
    if env is None or any(np.isnan(env["a_ci"])) or any(np.isnan(out["ci"]["a"])):
        return None
    return bool(env["a_ci"][0] <= out["ci"]["a"][1] and out["ci"]["a"][0] <= env["a_ci"][1])


def holdout_check(results: list[dict], share: float, resamples: int) -> dict | None:
    """Refit without the largest-compute runs and predict them."""
    n, d, c, loss = _arrays(results)
    k = max(2, int(round(share * len(loss))))
    if share <= 0 or len(loss) - k < 6:
        return None
    order = np.argsort(-c, kind="stable")
    held, keep = order[:k], order[k:]
    fit = fit_power([n[keep], d[keep]], loss[keep])
    boots = bootstrap([n[keep], d[keep]], loss[keep], fit, n=resamples, seed=2) if resamples else []
    rows = []
    for i in held:
        pred = float(fit.predict(n[i], d[i]))
        rows.append({"shape": results[i].get("shape"), "N": n[i], "D": d[i], "flops": c[i], "loss": loss[i],
                     "predicted": pred, "rel_error": (pred - loss[i]) / loss[i],
                     "predicted_ci": _ci(boots, lambda b, i=i: float(b.predict(n[i], d[i])))})
    errs = np.abs([r["rel_error"] for r in rows])
    return {"held_out": k, "fit_on": int(len(keep)), "E": fit.E, "rows": rows,
            "max_abs_rel_error": float(errs.max()), "mean_abs_rel_error": float(errs.mean()),
            "max_fit_flops": float(c[keep].max())}


def _truth(info: dict, fit: PowerFit, e_ci: list[float]) -> dict:
    h = info["entropy_rate"]
    bay = info["bayes_heldout"]
    return {"entropy_rate": h, "entropy_rate_bits": h / np.log(2), "bayes_heldout": bay,
            "E": fit.E, "rel_error": (fit.E - h) / h, "H_in_ci": bool(e_ci[0] <= h <= e_ci[1]),
            "note": "entropy_rate is the source's exact limit (nats/token, infinite context); bayes_heldout is "
                    "the Bayes-optimal loss on the same held-out targets the runs are scored on (mean +- "
                    "standard error), i.e. the best any model can do there"}


def _warnings(fit: PowerFit, out: dict, loss: np.ndarray) -> list[str]:
    """Signs that the runs do not pin the form down; the numbers are still reported."""
    w = []
    if fit.E < 0.02 * loss.min():
        w.append("E is near 0: the runs do not constrain a floor (too few runs near convergence); "
                 "treat E and its interval as unidentified")
    lo, hi = BOUNDS_EXP
    for name, v in (("alpha", fit.alpha[0]), ("beta", fit.alpha[1])):
        if v <= lo * 1.01 or v >= hi * 0.99:
            w.append(f"{name} sits at its bound ({v:.3g}): that term is not identified by these runs")
    if fit.agree < max(2, fit.starts // 4):
        w.append(f"only {fit.agree} of {fit.starts} starts reached the best fit: the objective has several "
                 "optima; more runs, or runs nearer convergence, would settle it")
    ci_e = out["ci"]["E"]
    if ci_e[0] == ci_e[0] and ci_e[1] - ci_e[0] > 0.25 * fit.E:
        w.append("E's interval is wider than a quarter of E: the limit is only loosely known")
    h = out.get("holdout")
    if h and h["max_abs_rel_error"] > 0.05:
        w.append(f"the fit without the largest-compute runs mispredicts them by up to "
                 f"{100 * h['max_abs_rel_error']:.1f}%: extrapolations beyond the runs are unreliable")
    return w
