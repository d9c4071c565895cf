"""Learning curves for fine-tuning: how accuracy grows with labeled data, and where it stops.

A fine-tune per (training-set size n, seed), each in its own process through the method
comparison's cells (cached by config hash, so re-runs and added sizes reuse finished cells).
Subsets are nested (the first n of one seeded shuffle). Each subset trains for max(epochs,
min_steps optimizer steps), so the smallest subsets are not starved of updates, but never more
steps than the whole training set.

Fit: error(n) = E + B / n^beta (Hestness et al. 2017; Mukherjee et al. 2003), least squares in
error units, with the profile-likelihood confidence region of `limit.fit.curve_region`. E is the
error floor of this model, method and recipe on this task as measured on the chosen split, so
1 - E is the accuracy ceiling. Its interval is the range the runs allow: when they cannot tell a
floor from a slow power law, it reaches 100% and the verdict says "not identified" and what
runs would settle it. Predictions (2x, 10x the largest subset) and the examples a target needs
get their intervals from the same region; a residual bootstrap gives the share of resampled
curves in which a target is reachable.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from supremum.config import DataConfig, MethodDict, ModelSpec, Seeds, TrainConfig
from supremum.errors import UserError
from supremum.limit.fit import PowerFit, curve_bootstrap, curve_region
from supremum.tasks import CAUSAL_LM


class CurveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="curve name (cells under $SUPREMUM_HOME/compare/<name>)")
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataConfig
    method: MethodDict = Field(default_factory=lambda: {"name": "lora"},
                               description="fine-tuning method config, or its name")
    train: TrainConfig = Field(default_factory=TrainConfig)
    fractions: list[float] = Field(default_factory=lambda: [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0],
                                   description="shares of the training set")
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2])
    min_steps: int = Field(60, ge=1, description="optimizer steps at least, however small the subset (but no "
                           "more than the whole training set trains)")
    split: str = Field("test", description="split the error is measured on")
    target: float | None = Field(None, gt=0, lt=1, description="accuracy to ask the needed examples for")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if len(set(v)) < 3 or any(not 0 < x <= 1 for x in v):
            raise ValueError("give at least 3 distinct fractions in (0, 1]")
        return sorted(set(v))

    @model_validator(mode="after")
    def _runs(self):
        if len(self.fractions) * len(set(self.seeds)) < 4:
            raise ValueError(f"{len(self.fractions)} fractions x {len(set(self.seeds))} seeds give "
                             f"{len(self.fractions) * len(set(self.seeds))} runs; the fit has 3 parameters and "
                             "needs at least 4 runs to measure its noise: add a seed or a fraction")
        return self


def parse_fractions(text: str) -> list[float]:
    try:
        return [float(Fraction(x.strip())) for x in text.split(",") if x.strip()]
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--fractions '{text}' is not a list of fractions",
                        "e.g. --fractions 1/32,1/8,1/2,1") from None


def subset_sizes(fractions: list[float], n_train: int) -> list[int]:
    """Training examples of each fraction; UserError when two fractions give the same size."""
    sizes = [max(2, int(round(f * n_train))) for f in fractions]
    if len(set(sizes)) < len(sizes):
        shares = ", ".join(f"{f:.4g}" for f in fractions)
        raise UserError(f"the training set's {n_train:,} examples are too few for the fractions {shares}: they "
                        f"give the sizes {', '.join(map(str, sizes))}, some twice",
                        "give fewer, larger fractions (each must give its own number of examples)")
    return sizes


def compare_config(cfg: CurveConfig, n_train: int):
    from supremum.compare import CompareConfig, CompareEval, Variant

    sizes = subset_sizes(cfg.fractions, n_train)
    variants = []
    for n in sizes:
        # min_steps feeds small subsets; the whole training set trains as configured (the ceiling's
        # seeds' re-run is these cells, and must be the configuration it reports)
        epochs = cfg.train.epochs if n >= n_train else _subset_epochs(cfg, n, n_train)
        variants.append(Variant(label=f"n={n}", method=cfg.method, train={"epochs": epochs},
                                data={"train_limit": n} if n < n_train else {}))
    name = cfg.name or f"curve-{cfg.model.name}-{Path(cfg.data.path).name}-{cfg.method.get('name')}"
    return CompareConfig(name=name, model=cfg.model, data=cfg.data, train=cfg.train, methods=variants,
                         seeds=cfg.seeds, evaluate=CompareEval(splits=[cfg.split]))


def _subset_epochs(cfg: CurveConfig, n: int, n_train: int) -> float:
    """Epochs of a subset of n examples: at least min_steps optimizer steps (counting gradient
    accumulation), but never more steps than the whole training set trains, or a small set's
    curve would bend up at its last point."""
    from supremum.train.loop import plan_steps

    t = cfg.train
    if t.max_steps:  # the step cap trains every size alike; a changed epochs would only change the hash
        return t.epochs
    full = plan_steps(n_train, t)[1]
    per_epoch = plan_steps(n, t)[0]
    epochs = max(t.epochs, min(cfg.min_steps * t.batch_size * t.grad_accum / n, full / per_epoch))
    if math.ceil(epochs * per_epoch) > max(full, math.ceil(t.epochs * per_epoch)):  # full / per_epoch rounded up
        epochs = math.nextafter(epochs, 0.0)
    return epochs


def run_curve(cfg: CurveConfig, store=None, on_event=None) -> dict:
    from supremum.artifact import new_id
    from supremum.compare import cells, run_cells
    from supremum.data import load_data
    from supremum.lm.data import is_lm_data
    from supremum.machine import fingerprint
    from supremum.store import Store

    store = store or Store()
    metric = "perplexity" if is_lm_data(cfg.data) else "accuracy"
    if metric == "perplexity" and cfg.target is not None:
        raise UserError("--target is an accuracy, and a language model's curve is of perplexity",
                        "leave out --target; the fit reports the perplexity floor")
    if metric == "perplexity":
        n_train, n_eval = training_size(cfg), None
    else:
        splits = load_data(cfg.data).splits
        if cfg.split not in splits or len(splits[cfg.split]) == 0:
            raise UserError(f"{cfg.data.path} has no labelled '{cfg.split}' split to measure the curve on",
                            "choose another --split (dev or test)")
        n_train, n_eval = len(splits["train"]), len(splits[cfg.split])
    ccfg = compare_config(cfg, n_train)
    results = run_cells(ccfg, cells(ccfg), store, on_event or (lambda m: None))
    out = analyze_curve([(r["config"]["data"].get("train_limit") or n_train, r[metric][cfg.split], r["seed"])
                         for r in results], cfg.target, cfg.bootstrap, eval_examples=n_eval, n_train=n_train,
                        split=cfg.split, metric=metric, backtest=True)
    out.update(name=ccfg.name, model=cfg.model.name, data=cfg.data.path, method=cfg.method, split=cfg.split,
               n_train=n_train, metric=metric)
    run_id = new_id()
    from supremum.limit.plots import curve_plot

    with store.run(run_id, "curve", f"curve {ccfg.name}", cfg.model_dump(mode="json"), fingerprint()) as run:
        out["plots"] = [str(curve_plot(out, store.root / "curves" / ccfg.name / "learning_curve.png"))]
        run.finish(out)
    out["run_id"] = run_id
    return out


def training_size(cfg: CurveConfig) -> int:
    """Training blocks (or instruction examples) of a language-model corpus: the unit train_limit
    counts for language models."""
    from supremum.lm.data import load_lm_data, training_split
    from supremum.models import load_model

    _, tok = load_model(cfg.model.name, CAUSAL_LM, gguf_file=cfg.model.gguf_file)
    return len(training_split(tok, load_lm_data(cfg.data), "train", cfg.data.max_length).ids)


METHOD = ("error(n) = E + B/n^beta (Hestness et al. 2017), least squares in error units over every (size, "
          "seed) run: exhaustive over a 241 x 241 grid of (E, beta) with B solved exactly, polished by "
          "scipy least_squares; 0 <= E <= the largest measured error, B >= 0, beta in [0.01, 3]. 95% intervals "
          "from the profile likelihood: every (E, B, beta) whose residual sum of squares is within "
          "F(1, runs - 3) residual variances of the best (Bates & Watts 1988); the share of resamples "
          "reaching a target from a residual bootstrap (Efron & Tibshirani 1993)")


def analyze_curve(points: list[tuple[int, float, int]], target: float | None, resamples: int, *,
                  eval_examples: int | None = None, n_train: int | None = None, level: float = 0.95,
                  split: str | None = None, seed: int = 0, metric: str = "accuracy",
                  predict_at: list[float] | None = None, backtest: bool = False) -> dict:
    """The ceiling, predictions and target from learning-curve runs.

    points: (training examples, accuracy in [0, 1], seed) per run. eval_examples: size of the split
    the accuracies were measured on (its quantization, 1/eval_examples, bounds the noise from
    below so no interval has zero width; 10,000 when unknown). n_train: the whole training set,
    for the advice on what runs would pin the ceiling down. resamples: residual-bootstrap draws
    for the share of curves reaching `target` (0: not computed). metric "perplexity": the points
    hold perplexities and the fitted error is the loss ln(perplexity) (nats per token), whose floor
    E is read as the perplexity floor exp(E) (under "floor", in place of "ceiling").
    predict_at: training-set sizes to predict at; each gives {n, accuracy (perplexity), ci} under
    "predictions", in that order, the interval from the same profile-likelihood region (the
    curve's expected value at n, not a single run's: seed noise at n is not in it).
    backtest: with 4 or more sizes, also refit without the largest size and predict it (under
    "backtest"; see `_backtest`), the runs' own check of the extrapolations.
    Raises UserError with fewer than 3 sizes or 4 runs."""
    n = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    err = np.log(y) if metric == "perplexity" else 1.0 - y
    if len(np.unique(n)) < 3:
        raise UserError("a learning curve needs at least 3 training-set sizes", "add fractions")
    if len(n) < 4:
        raise UserError(f"a learning curve needs at least 4 runs to estimate its noise; it has {len(n)}",
                        "add seeds or fractions")
    quantum = 1.0 / (eval_examples or 10_000)
    if metric == "accuracy" and not err.any():
        out = _saturated(n, err, points, eval_examples or 10_000, level, split, target)
        if predict_at is not None:
            out["predictions"] = [{"n": float(x), **{k: out["at_2x"][k] for k in ("accuracy", "ci")}}
                                  for x in predict_at]
        return out
    region = curve_region(n, err, level=level, noise_var=quantum ** 2 / 12)
    fit = region.fit
    e_lo, e_hi = region.floor_ci()
    n_max = float(n.max())
    band_n = np.logspace(math.log10(n.min()), math.log10(100 * n_max), 60)
    pts = [{"n": int(a), "error": float(e), "seed": p[2]} for a, e, p in zip(n, err, points, strict=True)]
    out = {"points": pts,
           "split": split,
           "fit": {"E": fit.E, "B": fit.A[0], "beta": fit.alpha[0], "rss": region.rss, "runs": len(n),
                   "sigma": math.sqrt(region.s2), "dof": region.dof, "quantile": region.quantile},
           "ceiling": {"accuracy": 1 - fit.E, "ci": [1 - e_hi, 1 - e_lo], "level": level,
                       **_verdict(n, err, region, e_lo, e_hi, n_train)},
           "band_n": band_n.tolist(),
           "band": [list(_error_range(region, x)) if metric == "accuracy" else
                    _loss_range(region, x) for x in band_n],
           "at_1x": _at(region, n_max), "at_2x": _at(region, 2 * n_max), "at_10x": _at(region, 10 * n_max),
           "method": METHOD}
    if predict_at is not None:
        out["predictions"] = [_at(region, float(x)) for x in predict_at]
    if backtest and len(np.unique(n)) >= 4 and (n < n_max).sum() >= 4:
        out["backtest"] = _backtest(n, err, level, quantum ** 2 / 12, metric)
    if metric == "perplexity":  # the same fit, read as loss: a floor of perplexity instead of a ceiling
        _as_perplexity(out, region, e_lo, e_hi, n_max)
    if target is not None:
        boots = curve_bootstrap(n, err, fit, resamples=resamples, seed=seed) if resamples else []
        out["target"] = _needed(region, boots, target)
    return out


def _backtest(n: np.ndarray, err: np.ndarray, level: float, noise_var: float, metric: str) -> dict:
    """Fit without the largest size, predict it, and compare with what its runs measured: the one
    extrapolation of the curve whose answer is known. An interval that misses tells that the
    curve's intervals further out (2x, 10x, the ceiling) hold its parameter uncertainty only, not
    the error of the power-law form itself, and which way that error ran. The interval here adds
    the noise of the measured mean (t quantile x sqrt(s^2 / runs at that size), in quadrature),
    since what it is held against is a mean of a few runs, not the expected error. (Hold-out
    checks of learning-curve extrapolation: Viering & Loog 2022, "The Shape of Learning Curves: a Review".)"""
    from scipy import stats

    top = float(n.max())
    keep = n < top
    region = curve_region(n[keep], err[keep], level=level, noise_var=noise_var)
    measured = err[~keep]
    mid, (lo, hi) = float(region.fit.predict(top)), _loss_range(region, top)
    # the measured mean of k runs has its own noise, which the region (of the expected error) leaves out
    known = region.s2 > region.rss / region.dof  # the measurement floor, not the residuals, set s2
    q = stats.norm.ppf((1 + level) / 2) if known else stats.t.ppf((1 + level) / 2, region.dof)
    h = float(q) * math.sqrt(region.s2 / len(measured))
    lo, hi = max(mid - math.hypot(mid - lo, h), 0.0), mid + math.hypot(hi - mid, h)
    if metric == "perplexity":  # in loss units, as fitted: the measured mean loss, read as a perplexity
        pred, ci, meas, unit = math.exp(mid), [math.exp(lo), math.exp(hi)], math.exp(measured.mean()), ""
        gap = pred - meas
    else:
        pred, ci, meas, unit = 1 - mid, [1 - min(hi, 1.0), 1 - lo], float(1 - measured.mean()), " pt"
        gap = 100 * (pred - meas)
    inside = ci[0] <= meas <= ci[1]
    fmt = (lambda x: f"{x:.3f}") if metric == "perplexity" else (lambda x: f"{100 * x:.2f}%")
    sentence = (f"backtest: fitted without the largest size ({top:,.0f}), the curve predicted {fmt(pred)} "
                f"[{fmt(ci[0])}, {fmt(ci[1])}] there; its runs measured {fmt(meas)} (predicted - measured "
                f"{gap:+.2f}{unit}, {'inside' if inside else 'outside'} the interval)")
    if not inside:
        better = (meas > pred) if metric == "accuracy" else (meas < pred)
        if metric == "accuracy":
            off = "too low (ceiling included)" if better else "too high (ceiling included)"
        else:
            off = "too high (floor included)" if better else "too low (floor included)"
        sentence += (f". The power law was {'pessimistic' if better else 'optimistic'} at the next size: read "
                     f"the extrapolations as likely {off} and their intervals as too narrow")
    return {"fitted_sizes": sorted({int(x) for x in n[keep]}), "n": top, "runs": int((~keep).sum()),
            "predicted": pred, "ci": ci, "measured": meas, "error": gap, "inside": bool(inside),
            "sentence": sentence + "."}


def _saturated(n, err, points, n_eval: int, level: float, split: str | None, target: float | None) -> dict:
    """Every run scored 100%: no curve to fit. The error floor is bounded by the rule of three
    (no errors in n trials: the 95% upper bound of the error rate is about 3/n; Hanley &
    Lippman-Hand 1983), generalized as -ln(1 - level)/n."""
    bound = -math.log(1 - level) / n_eval
    pts = [{"n": int(a), "error": 0.0, "seed": p[2]} for a, p in zip(n, points, strict=True)]
    text = (f"saturated: every run scored 100% on the {n_eval:,} examples of the {split or 'held-out'} split at "
            f"every size; the error floor is below {100 * bound:.2f}% ({100 * level:.0f}%, rule of three), "
            "and only a larger or harder evaluation set would show more.")
    flat = {"accuracy": 1.0, "ci": [1 - bound, 1.0]}
    out = {"points": pts, "split": split,
           "fit": {"E": 0.0, "B": 0.0, "beta": 1.0, "rss": 0.0, "runs": len(n), "sigma": 0.0, "dof": len(n) - 3,
                   "quantile": None},
           "ceiling": {"accuracy": 1.0, "ci": [1 - bound, 1.0], "level": level, "verdict": "saturated",
                       "identified": True, "best_measured": 1.0, "sentence": text},
           "band_n": [], "band": [], "at_1x": {"n": float(n.max()), **flat},
           "at_2x": {"n": 2 * float(n.max()), **flat}, "at_10x": {"n": 10 * float(n.max()), **flat},
           "method": "rule of three (no errors observed)"}
    if target is not None:
        out["target"] = {"accuracy": target, "examples": float(n.min()), "reachable": True,
                         "examples_ci": [None, float(n.min())], "status": "reached at every measured size",
                         "share_of_resamples_reachable": None, "resamples": 0}
    return out


def _as_perplexity(out: dict, region, e_lo: float, e_hi: float, n_max: float) -> None:
    ceiling = out.pop("ceiling")
    out["floor"] = {"perplexity": math.exp(region.fit.E), "ci": [math.exp(e_lo), math.exp(e_hi)],
                    "level": ceiling["level"], "verdict": ceiling["verdict"], "identified": ceiling["identified"]}
    for key, x in (("at_1x", n_max), ("at_2x", 2 * n_max), ("at_10x", 10 * n_max)):
        out[key] = _at_perplexity(region, x)
    if "predictions" in out:
        out["predictions"] = [_at_perplexity(region, p["n"]) for p in out["predictions"]]
    out["method"] = METHOD.replace("error(n)", "loss(n) = ln perplexity(n)").replace("error units", "loss units")


def _loss_range(region, x: float) -> list[float]:
    """The fitted error (or loss) at x over the confidence region, unclamped."""
    return region.range(lambda E, A, al: E + A * x ** -al)


def _at_perplexity(region, x: float) -> dict:
    lo, hi = _loss_range(region, x)
    lo = max(lo, 0.0)  # a loss below 0 nats (perplexity below 1) is no prediction
    return {"n": x, "perplexity": math.exp(float(region.fit.predict(x))), "ci": [math.exp(lo), math.exp(hi)]}


def _at(region, x: float) -> dict:
    lo, hi = _error_range(region, x)
    return {"n": x, "accuracy": float(1 - region.fit.predict(x)), "ci": [1 - hi, 1 - lo]}


def _error_range(region, x: float) -> tuple[float, float]:
    """The error at x over the confidence region, within [0, 1]: a loose region allows curves that
    pass below 0 or above 1 error at sizes far from the runs, which no accuracy can be."""
    lo, hi = _loss_range(region, x)
    return max(lo, 0.0), min(hi, 1.0)


def _verdict(n: np.ndarray, err: np.ndarray, region, e_lo: float, e_hi: float, n_train: int | None) -> dict:
    """Whether the runs identify the floor, and what runs would pin it down."""
    sizes = np.unique(n)
    means = np.array([err[n == s].mean() for s in sizes])
    best = 1 - float(means.min())
    fall = float(means[0] - means[-1])
    sd = math.sqrt(region.s2)
    if e_lo <= 0.1 * float(means.min()):  # the runs allow the error to fall to a tenth of the best measured
        verdict = "not identified"
        text = (f"not identified: these runs allow any ceiling from {100 * (1 - e_hi):.1f}% to "
                f"{100 * (1 - e_lo):.1f}% (the error "
                f"{'fell' if fall > 0 else 'rose'} {100 * abs(fall):.1f} pt from {sizes[0]:,.0f} to "
                f"{sizes[-1]:,.0f} examples, run-to-run s.d. "
                f"{100 * sd:.1f} pt; a power law with next to no floor fits them as well as one with a floor)")
    elif e_hi - e_lo > max(fall, 0.0):
        verdict = "loosely identified"
        moved = (f"the {100 * fall:.1f} pt the error fell" if fall > 0 else
                 f"the error's change ({'no fall' if fall == 0 else f'it rose {100 * -fall:.1f} pt'})")
        text = (f"loosely identified: the interval ({100 * (e_hi - e_lo):.1f} pt wide) is wider than {moved} "
                "across the measured sizes")
    else:
        verdict = "identified"
        text = f"identified: the runs bound the floor to {100 * e_lo:.2f}-{100 * e_hi:.2f}% error"
    advice = []
    if verdict != "identified":
        if n_train is None or sizes[-1] < n_train:
            upto = f" (up to all {n_train:,} training examples)" if n_train else ""
            advice.append(f"runs on larger subsets{upto} would show whether the curve bends toward a floor")
        else:
            advice.append("the training set is used in full: only more labelled data would show where the "
                          "curve levels off")
        if sizes[-1] / sizes[0] < 16:
            advice.append(f"the sizes span only {sizes[-1] / sizes[0]:.0f}x; a wider range separates the floor "
                          "from the exponent")
        if sd > fall / 4:
            advice.append(f"more seeds per size would shrink the noise (s.d. {100 * sd:.1f} pt against a change "
                          f"of {100 * abs(fall):.1f} pt)")
    return {"verdict": verdict, "identified": verdict != "not identified", "best_measured": best,
            "sentence": text + ("; " + "; ".join(advice) if advice else "") + "."}


def _needed(region, boots: list[PowerFit], target: float) -> dict:
    """Examples for `target` accuracy: n = (B / (1 - target - E))^(1/beta), infinite when the
    target error is at or below the floor. The interval is the range over the confidence region;
    an end that is infinite (the region allows floors at or above the target error) is None, so
    the JSON holds no Infinity."""
    tau = 1 - target

    def need(E, A, al):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            gap = tau - np.asarray(E, dtype=float)
            return np.where(gap > 0, (np.asarray(A) / np.where(gap > 0, gap, 1.0)) ** (1 / np.asarray(al)), np.inf)

    fit = region.fit
    n = float(need(fit.E, fit.A[0], fit.alpha[0]))
    lo, hi = region.range(need)
    share = float(np.mean([b.E < tau for b in boots])) if boots else None
    if not math.isfinite(n):
        status = "beyond the ceiling"
    elif not math.isfinite(hi):
        status = "reachable per the fit, but the runs also allow a ceiling below the target"
    else:
        status = "reachable"
    return {"accuracy": target, "examples": n if math.isfinite(n) else None, "reachable": math.isfinite(n),
            "examples_ci": [x if math.isfinite(x) else None for x in (lo, hi)], "status": status,
            "share_of_resamples_reachable": share, "resamples": len(boots)}
