"""The stages of `supremum ceiling` (see `studies.ceiling`), each a function of the best
configuration found and the store, plus the plan of its cost in units of one measured trial."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, Field

from supremum.config import identity
from supremum.errors import UserError
from supremum.train.config import FinetuneConfig

OVERHEAD = 1.15  # a cell is a fresh process that also loads the model and scores dev and the split


class Plan(BaseModel):
    """Seconds a stage is expected to take, from the best trial's measured fine-tune time."""

    stage: str
    seconds: float
    runs: float = Field(description="fine-tunes, in units of one full-data trial")


def output_dir(cfg, store) -> Path:
    """Where a ceiling study of `cfg` (a CeilingConfig) writes: its `output`, or one directory
    per model and data file under the store."""
    if cfg.output:
        return Path(cfg.output)
    return store.root / "ceiling" / f"{cfg.base.model.name.replace('/', '_')}-{Path(cfg.base.data.path).name}"


def is_lm(cfg) -> bool:
    from supremum.tasks import CAUSAL_LM, resolve_task

    return resolve_task(cfg.base) is CAUSAL_LM


def check_split(cfg, lm: bool) -> str:
    """The split the best configuration and the ceiling are measured on, checked before training,
    with the learning curve's subset sizes (two fractions giving one size is a UserError)."""
    if lm:
        return cfg.split
    from supremum.data import load_data
    from supremum.limit.curve import subset_sizes

    splits = load_data(cfg.base.data).splits
    if cfg.split not in splits or len(splits[cfg.split]) == 0:
        raise UserError(f"{cfg.base.data.path} has no labelled '{cfg.split}' split to measure on",
                        "choose another --split (dev or test)")
    subset_sizes(cfg.fractions, len(splits["train"]))  # the curve's sizes, before the search spends the budget
    return cfg.split


# -- 1. search -----------------------------------------------------------------------------------

def search(cfg, store, out: Path, minutes: float) -> dict:
    """The search, with the user's configuration enqueued first; returns its record, the "now"
    (trial of the user's configuration) and the best trial (config, artifact, seconds)."""
    from supremum.studies.search import SearchConfig, containing, first_trial_estimate, run_search

    scfg = SearchConfig(base=cfg.base, methods=cfg.methods, space=cfg.space, budget_minutes=minutes,
                        n_trials=cfg.n_trials, seed=cfg.seed, output=str(out / "search"), study_name="ceiling")
    scfg, now = containing(scfg)
    scfg = scfg.model_copy(update={"enqueue": [now]})
    if not (out / "search" / "study.db").exists():  # checked before the study's file is made
        est = first_trial_estimate(scfg, store)
        if est is not None and est > minutes * 60:
            need = est / cfg.search_share / 60 * 3
            raise UserError(f"the ceiling budget of {cfg.budget_minutes:g} min cannot hold one search trial "
                            f"(one needs at least {est:.3g} s of training; the search gets "
                            f"{100 * cfg.search_share:.0f}% of the budget)",
                            f"give --budget-minutes {need:.2g} or more (room for a few trials)")
    res = run_search(scfg, store)
    lm = is_lm(cfg)
    record = res.model_dump(exclude={"best_config"})
    from supremum.studies.search import same_params

    mine = [t for t in res.trials if same_params(now, t.params) and t.state != "WAITING"]
    first = next((t for t in mine if t.state == "COMPLETE"), mine[-1] if mine else None)
    now_rec = {"trial": first.number if first else None, "state": first.state if first else None, "params": now,
               "dev": _score(first.value, lm) if first and first.value is not None else None,
               "error": first.error if first else None}
    best = None
    if res.best_value is not None:
        t = max((x for x in res.trials if x.state == "COMPLETE"), key=lambda x: x.value)
        best = {"config": res.best_config, "artifact": res.best_artifact, "seconds": t.seconds,
                "trial": t.number, "dev": _score(t.value, lm), "params": t.params}
    return {"record": record, "now": now_rec, "best": best}


def _score(value: float, lm: bool) -> float:
    """The study maximizes accuracy, or minus the dev loss of a language model (shown as perplexity)."""
    return math.exp(-value) if lm else value


# -- 2./3. the best configuration over seeds, and its learning curve ------------------------------

class CurveCells:
    """The learning-curve cells of the best configuration; the full-data cells are the seeds' re-run,
    so the curve reuses them (cells are cached by config hash)."""

    def __init__(self, best: FinetuneConfig, cfg, split: str, store, lm: bool):
        from supremum.compare import cells
        from supremum.limit.curve import CurveConfig, compare_config, training_size

        d = best.model_dump(mode="json")
        self.curve_cfg = CurveConfig(name=f"ceiling-{_slug(cfg, store)}", model=d["model"], data=d["data"],
                                     method=d["method"], train=d["train"], fractions=cfg.fractions,
                                     seeds=cfg.seeds, min_steps=cfg.min_steps, split=split, target=cfg.target,
                                     bootstrap=cfg.bootstrap)
        self.lm, self.split, self.store = lm, split, store
        self.metric = "perplexity" if lm else "accuracy"
        self.majority = None
        if lm:
            self.n_train, self.n_eval = training_size(self.curve_cfg), None
        else:
            from supremum.data import load_data

            splits = load_data(best.data).splits
            self.n_train, self.n_eval = len(splits["train"]), len(splits[split])
            # the accuracy of always answering the training set's most common class, on the split
            top = splits["train"]["label"].value_counts().idxmax()
            self.majority = float((splits[split]["label"] == top).mean())
        self.compare = compare_config(self.curve_cfg, self.n_train)
        self.compare.evaluate.splits = list(dict.fromkeys(["dev", split]))
        self.all = cells(self.compare)
        self.full = [c for c in self.all if not c["config"]["data"].get("train_limit")]
        self.subsets = [c for c in self.all if c["config"]["data"].get("train_limit")]

    def uncached(self, todo: list[dict]) -> list[dict]:
        from supremum.compare import cell_dir, is_cached

        ev = self.compare.evaluate
        return [c for c in todo
                if not is_cached(cell_dir(self.store, self.compare, c) / "result.json", ev.splits, ev.perturb)]

    def run(self, todo: list[dict], say) -> list[dict]:
        from supremum.compare import run_cells

        return run_cells(self.compare, todo, self.store, say)

    def work(self, c: dict) -> float:
        """Training work of a cell in units of one full-data trial (steps scale with examples x epochs)."""
        t = self.compare.train
        if t.max_steps:
            return 1.0
        n = c["config"]["data"].get("train_limit") or self.n_train
        return n * c["config"]["train"].get("epochs", t.epochs) / (self.n_train * t.epochs)


def _slug(cfg, store) -> str:
    return output_dir(cfg, store).name


def plan_seeds(cfg, trial_s: float, curve: CurveCells | None = None):
    runs = len(curve.uncached(curve.full)) if curve else len(cfg.seeds)
    return Plan(stage="seeds", seconds=runs * trial_s * OVERHEAD, runs=runs)


def plan_curve(cfg, curve: CurveCells, trial_s: float):
    runs = sum(curve.work(c) for c in curve.uncached(curve.subsets + curve.full))
    return Plan(stage="curve", seconds=runs * trial_s * OVERHEAD, runs=runs)


def plan_folds(cfg, trial_s: float):
    runs = cfg.folds * (cfg.folds - 1) / cfg.folds  # k fine-tunes on (k - 1) / k of the data
    return Plan(stage="label_noise", seconds=runs * trial_s * OVERHEAD, runs=runs)


def plan_models(cfg, trial_s: float):
    # each rung at the measured model's time: a lower bound for larger rungs, which the verdict says
    return Plan(stage="models", seconds=len(cfg.models) * trial_s * OVERHEAD, runs=len(cfg.models))


def seeds(curve: CurveCells, best: dict, say) -> dict:
    """The best configuration over every seed: per-seed scores, mean, s.d. and t-interval on dev
    and on the measured split (perplexity for a language model)."""
    from supremum.limit.resolution import seed_spread

    res = curve.run(curve.full, say)
    per = [{"seed": r["seed"], "dev": r[curve.metric]["dev"], curve.split: r[curve.metric][curve.split],
            "artifact": r["artifact"], "run_id": r["run_id"], "train_seconds": r["train_seconds"],
            "total_params": r.get("total_params")} for r in res]
    dev = seed_spread([p["dev"] for p in per])
    test = seed_spread([p[curve.split] for p in per])
    if not curve.lm:  # a t-interval of accuracies from few seeds can pass 0 or 1: held to what is possible
        for x in (dev, test):
            x["ci"] = [max(0.0, x["ci"][0]), min(1.0, x["ci"][1])]
    cfgd = {k: v for k, v in best["config"].items() if k not in ("output", "tracking")}
    return {"dev": dev["mean"], "dev_std": dev["std"], "dev_ci": dev["ci"], "test": test["mean"],
            "test_std": test["std"], "test_ci": test["ci"], "split": curve.split, "seeds": per,
            "config": cfgd, "params": best["params"], "search_dev": best["dev"], "trial": best["trial"],
            "artifact": best["artifact"], "metric": curve.metric}


def curve(curve: CurveCells, cfg, store, out: Path, say) -> dict:
    """The learning curve of the best configuration: `limit.curve.analyze_curve` over every
    (subset, seed) cell, its plot under `out`."""
    from supremum.limit.curve import analyze_curve
    from supremum.limit.plots import curve_plot

    res = curve.run(curve.all, say)
    pts = [(r["config"]["data"].get("train_limit") or curve.n_train, r[curve.metric][curve.split], r["seed"])
           for r in res]
    a = analyze_curve(pts, cfg.target if not curve.lm else None, cfg.bootstrap, eval_examples=curve.n_eval,
                      n_train=curve.n_train, split=curve.split, metric=curve.metric, backtest=True)
    a.update(n_train=curve.n_train, metric=curve.metric, name=curve.compare.name)
    a["plot"] = str(curve_plot(a, out / "learning_curve.png"))
    return a


# -- 4. label noise ------------------------------------------------------------------------------

def label_noise(best: FinetuneConfig, artifact: str, cfg, split: str, out: Path, store, say) -> dict:
    """Confident learning on k-fold out-of-fold probabilities of the best configuration (train) and
    the best model's probabilities (dev and the measured split); see `studies.oof`."""
    import json

    from supremum.fsutil import write_json
    from supremum.hashing import content_hash
    from supremum.studies.oof import label_noise_stage

    splits = tuple(dict.fromkeys(["dev", split]))
    key = content_hash({"config": identity(best, exclude={"output"}), "artifact": str(artifact),
                        "folds": cfg.folds, "splits": splits})[:16]
    cache = out / "label_noise.json"  # a resumed ceiling does not refit the folds
    if cache.exists() and (got := json.loads(cache.read_text())).get("key") == key:
        return got["result"]
    res = label_noise_stage(best, artifact, cfg.folds, out, store, splits=splits, on_event=say)
    m = res["splits"][split]  # the measured split's at top level, whichever it is
    res.update(rate=m["rate"], ci=m["ci"], suspects_path=m["suspects_path"], split=split)
    res.setdefault("max_accuracy", 1 - m["rate"])
    res.setdefault("max_accuracy_ci", [1 - m["ci"][1], 1 - m["ci"][0]])
    write_json(cache, {"key": key, "result": res})
    return res


# -- 5. the model axis ---------------------------------------------------------------------------

def models(best: FinetuneConfig, cfg, split: str, store, lm: bool, say, measured: dict | None = None) -> dict:
    """The best configuration (first seed) on each named model: score against total parameters, and
    the least-squares slope per doubling of parameters (Student-t interval from 3 rungs on)."""
    from supremum.compare import CompareConfig, CompareEval, Variant, cells, run_cells

    d = best.model_dump(mode="json")
    metric = "perplexity" if lm else "accuracy"
    rows = []
    if measured:  # the model the search tuned: its seeds' mean
        rows.append({"model": best.model.name, "total_params": measured["seeds"][0].get("total_params"),
                     "dev": measured["dev"], "test": measured["test"]})
    for name in (m for m in cfg.models if m != best.model.name):
        cc = CompareConfig(name=f"ceiling-models-{_slug(cfg, store)}", model={"name": name}, data=d["data"],
                           train=d["train"], methods=[Variant(label=name, method=d["method"])],
                           seeds=cfg.seeds[:1], evaluate=CompareEval(splits=list(dict.fromkeys(["dev", split]))))
        r = run_cells(cc, cells(cc), store, say)[0]
        rows.append({"model": name, "total_params": _total_params(r, store), "dev": r[metric]["dev"],
                     "test": r[metric][split]})
    return {"points": rows, "metric": metric, "split": split, **_slope(rows)}


def _total_params(r: dict, store) -> int | None:
    if r.get("total_params"):
        return r["total_params"]
    run = store.get_run(r["run_id"]) or {}
    return (run.get("metrics") or {}).get("total_params")


def _slope(rows: list[dict]) -> dict:
    import numpy as np
    from scipy import stats

    ok = [r for r in rows if r["total_params"]]
    if len({r["total_params"] for r in ok}) < 2:
        return {"slope_per_doubling": None, "fit": "fewer than 2 model sizes: no fit"}
    x = np.log2([r["total_params"] for r in ok])
    y = np.array([r["test"] for r in ok], dtype=float)
    fit = stats.linregress(x, y)
    out = {"slope_per_doubling": float(fit.slope), "fit": "least squares of the score on log2(total parameters)"}
    if len(ok) >= 3:
        half = float(stats.t.ppf(0.975, len(ok) - 2)) * float(fit.stderr)
        out["slope_ci"] = [float(fit.slope) - half, float(fit.slope) + half]
    return out
