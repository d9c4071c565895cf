"""Learning curves for fine-tuning: how accuracy grows with labeled data, and where it stops.

A fine-tune per (training-set size n, seed), each in its own process through the method
comparison's cells (cached by config hash, so re-runs and added sizes reuse finished cells).
Subsets are nested (the first n of one seeded shuffle). Each subset trains for max(epochs,
min_steps optimizer steps), so the smallest subsets are not starved of updates.

Fit: error(n) = E + B / n^beta (the same robust fitter as the scale sweeps, bootstrap over
cells). E is the estimated error floor of this model, method and recipe on this task, so
1 - E is the accuracy ceiling; the examples a target accuracy needs follow from the fit, or the
target is beyond the ceiling.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.config import DataConfig, ModelSpec, TrainConfig
from supremum.errors import UserError
from supremum.limit.fit import bootstrap, fit_power, interval


class CurveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="curve name (cells under $SUPREMUM_HOME/compare/<name>)")
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataConfig
    method: dict = Field(default_factory=lambda: {"name": "lora"}, description="fine-tuning method config")
    train: TrainConfig = Field(default_factory=TrainConfig)
    fractions: list[float] = Field(default_factory=lambda: [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0],
                                   description="shares of the training set")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    min_steps: int = Field(60, ge=1, description="optimizer steps at least, however small the subset")
    split: str = Field("test", description="split the error is measured on")
    target: float | None = Field(None, gt=0, lt=1, description="accuracy to ask the needed examples for")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if len(set(v)) < 3 or any(not 0 < x <= 1 for x in v):
            raise ValueError("give at least 3 distinct fractions in (0, 1]")
        return sorted(set(v))


def parse_fractions(text: str) -> list[float]:
    try:
        return [float(Fraction(x.strip())) for x in text.split(",") if x.strip()]
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--fractions '{text}' is not a list of fractions",
                        "e.g. --fractions 1/32,1/8,1/2,1") from None


def compare_config(cfg: CurveConfig, n_train: int):
    from supremum.compare import CompareConfig, CompareEval, Variant

    variants = []
    for f in cfg.fractions:
        n = max(2, int(round(f * n_train)))
        epochs = max(cfg.train.epochs, cfg.min_steps * cfg.train.batch_size / n)
        variants.append(Variant(label=f"n={n}", method=cfg.method, train={"epochs": epochs},
                                data={"train_limit": n} if n < n_train else {}))
    name = cfg.name or f"curve-{cfg.model.name}-{Path(cfg.data.path).name}-{cfg.method.get('name')}"
    return CompareConfig(name=name, model=cfg.model, data=cfg.data, train=cfg.train, methods=variants,
                         seeds=cfg.seeds, evaluate=CompareEval(splits=[cfg.split]))


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
    n_train = training_size(cfg) if metric == "perplexity" else len(load_data(cfg.data).splits["train"])
    ccfg = compare_config(cfg, n_train)
    results = run_cells(ccfg, cells(ccfg), store, on_event or (lambda m: None))
    out = analyze_curve([(r["config"]["data"].get("train_limit") or n_train, r[metric][cfg.split], r["seed"])
                         for r in results], cfg.target, cfg.bootstrap, metric)
    out.update(name=ccfg.name, model=cfg.model.name, data=cfg.data.path, method=cfg.method, split=cfg.split,
               n_train=n_train, metric=metric)
    run_id = new_id()
    store.start_run(run_id, "curve", f"curve {ccfg.name}", cfg.model_dump(mode="json"), fingerprint())
    from supremum.limit.plots import curve_plot

    out["plots"] = [str(curve_plot(out, store.root / "curves" / ccfg.name / "learning_curve.png"))]
    store.finish_run(run_id, out)
    out["run_id"] = run_id
    return out


def training_size(cfg: CurveConfig) -> int:
    """Training blocks (or instruction examples) of a language-model corpus: the unit train_limit
    counts for language models."""
    from supremum.lm.data import load_lm_data, training_split
    from supremum.models import load_model

    _, tok = load_model(cfg.model.name, "causal-lm", gguf_file=cfg.model.gguf_file)
    return len(training_split(tok, load_lm_data(cfg.data), "train", cfg.data.max_length).ids)


def analyze_curve(points: list[tuple[int, float, int]], target: float | None, resamples: int,
                  metric: str = "accuracy") -> dict:
    """points: (training examples, accuracy or perplexity, seed) per cell. The fitted error is
    1 - accuracy, or for a language model the loss ln(perplexity) (nats per token), whose floor E
    gives the perplexity floor exp(E)."""
    n = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    err = np.clip(np.log(y) if metric == "perplexity" else 1.0 - y, 1e-6, None)
    if len(np.unique(n)) < 3:
        raise UserError("a learning curve needs at least 3 training-set sizes", "add fractions")
    fit = fit_power([n], err)
    boots = bootstrap([n], err, fit, n=resamples) if resamples else []
    band_n = np.logspace(math.log10(n.min()), math.log10(100 * n.max()), 60)
    pts = [{"n": int(a), "error": float(e), "seed": p[2]} for a, e, p in zip(n, err, points, strict=True)]
    out = {"points": pts,
           "fit": {"E": fit.E, "B": fit.A[0], "beta": fit.alpha[0], "objective": fit.objective,
                   "starts": fit.starts, "starts_agreeing": fit.agree, "bootstrap": len(boots)},
           "ceiling": {"accuracy": 1 - fit.E, "ci": sorted(1 - x for x in interval([b.E for b in boots]))},
           "band_n": band_n.tolist(),
           "band": (np.array([interval([float(b.predict(x)) for b in boots]) for x in band_n]).tolist()
                    if boots else None),
           "at_10x": {"n": 10 * n.max(), "accuracy": float(1 - fit.predict(10 * n.max())),
                      "ci": sorted(1 - x for x in interval([float(b.predict(10 * n.max())) for b in boots]))},
           "method": "error(n) = E + B/n^beta; Huber loss (delta 1e-3) on log-error residuals, L-BFGS-B from "
                     "the best grid starts; 95% percentile bootstrap over cells"}
    if metric == "perplexity":  # the same fit, read as loss: a floor of perplexity instead of a ceiling
        out["floor"] = {"perplexity": math.exp(fit.E), "ci": [math.exp(x) for x in interval([b.E for b in boots])]}
        out["at_10x"]["perplexity"] = float(math.exp(fit.predict(10 * n.max())))
        out["at_10x"]["ci"] = [math.exp(x) for x in interval([float(b.predict(10 * n.max())) for b in boots])]
        del out["ceiling"], out["at_10x"]["accuracy"]
        out["method"] = out["method"].replace("error(n)", "loss(n) = ln perplexity(n)")
    if target is not None:
        out["target"] = _needed(fit, boots, target)
    return out


def _needed(fit, boots, target: float) -> dict:
    """Examples for `target` accuracy: n = (B / (1 - target - E))^(1/beta), infinite when the
    target error is at or below the fitted floor."""
    def need(f) -> float:
        gap = (1 - target) - f.E
        if gap <= 0:
            return math.inf
        log_n = (math.log(f.A[0]) - math.log(gap)) / f.alpha[0]
        return math.exp(log_n) if log_n < 700 else math.inf  # beyond ~1e304 examples: unreachable

    n = need(fit)
    draws = [need(b) for b in boots]
    reach = float(np.mean([math.isfinite(x) for x in draws])) if draws else None
    finite = [x for x in draws if math.isfinite(x)]
    return {"accuracy": target, "examples": n, "reachable": math.isfinite(n),
            "share_of_resamples_reachable": reach,
            "examples_ci": interval(finite) if finite and reach and reach >= 0.975 else None,
            "note": ("beyond the fitted ceiling (or beyond 1e300 examples)" if not math.isfinite(n) else
                     "interval omitted: in some resamples the target is beyond the ceiling"
                     if reach is not None and reach < 0.975 else "")}
