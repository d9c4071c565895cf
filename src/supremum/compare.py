"""Method comparison: a matrix of fine-tuning variants x seeds on one dataset, each cell trained
and evaluated in its own process, summarized as mean +- std over seeds with a note where a
difference is within noise.

Each cell's identity is a content hash of its resolved fine-tune config, so a re-run skips the
cells already done (after a crash, or after adding a variant). The summary is one `compare` run
in the store, which `supremum report` shows.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.config import DataConfig, MethodDict, ModelSpec, Seeds, TrainConfig, identity
from supremum.errors import UserError
from supremum.fsutil import discard_dir, write_json
from supremum.jobs.worker import WorkerFailed
from supremum.machine import fingerprint
from supremum.store import Store
from supremum.train.config import FinetuneConfig


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, description="name in the table (default: the method name)")
    method: MethodDict = Field(description="method config, e.g. {name: lora, r: 16}, or a name")
    train: dict = Field(default_factory=dict, description="training overrides for this variant")
    data: dict = Field(default_factory=dict,
                       description="data overrides for this variant, e.g. {train_limit: 500}")
    finetune: dict = Field(default_factory=dict, description="other fine-tune config keys of this variant, "
                           "e.g. {self_training: {rounds: 2}} (with data.unlabeled)")

    @field_validator("finetune")
    @classmethod
    def _other_keys(cls, v: dict) -> dict:
        taken = sorted(set(v) & {"model", "data", "train", "method", "output"})
        if taken:
            raise ValueError(f"finetune keys {taken} have their own variant field or are set per cell")
        return v


class CompareEval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    splits: list[str] = Field(default_factory=lambda: ["dev", "test"], description="splits evaluated")
    perturb: str | None = Field(None, description="robustness perturbations also evaluated, e.g. typo:0.05")


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="comparison name (cells go under $SUPREMUM_HOME/compare/<name>)")
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig, description="shared training settings")
    methods: list[Variant | str] = Field(description="variants: a method name, or {label, method, train}")
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2], description="one run per seed per variant")
    grid: dict[str, list] = Field(default_factory=dict, description="dotted keys crossed with every variant, "
                                  "e.g. {train.lr: [3e-4, 1e-3]}")
    evaluate: CompareEval = Field(default_factory=CompareEval)
    noise_p: float = Field(0.05, gt=0, lt=1, description="Welch t-test p-value above which a difference "
                           "to the best variant is called within noise")
    executor: Literal["local", "ray"] = Field("local", description="where cells run: local processes or a Ray "
                                              "cluster ($RAY_ADDRESS)")
    jobs: int = Field(1, ge=1, description="cells at once (keep 1 on one machine: parallel cells distort each "
                      "other's time and memory)")
    cpus_per_cell: int = Field(1, ge=1, description="CPUs Ray reserves per cell")

    @field_validator("methods")
    @classmethod
    def _variants(cls, v: list) -> list[Variant]:
        out = [Variant(method={"name": x}) if isinstance(x, str) else x for x in v]
        labels = [x.label or x.method.get("name") for x in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"variant labels repeat ({labels}); give each variant a distinct label:")
        return out


def cells(cfg: CompareConfig) -> list[dict]:
    """Every (variant, grid point, seed) as a validated fine-tune config with its label and hash.
    `run` (and `--dry-run`) build them all before the first cell runs, so a bad method, train or
    data override key in the last variant is a UserError before anything trains."""
    from supremum.recipe import set_path
    from supremum.train.finetune import config_hash

    keys = list(cfg.grid)
    out = []
    for v in cfg.methods:
        for point in itertools.product(*(cfg.grid[k] for k in keys)):
            label = (v.label or v.method.get("name", "")) + "".join(
                f" {k.split('.')[-1]}={x}" for k, x in zip(keys, point, strict=True))
            for seed in cfg.seeds:
                # run with local paths absolute; hashed with them as typed (the hashes cells had before)
                raw, typed = ({"model": cfg.model.model_dump(), "data": {**data, **v.data},
                               "train": {**train, **v.train, "seed": seed}, "method": dict(v.method), **v.finetune}
                              for data, train in (
                                  (cfg.data.model_dump(), cfg.train.model_dump(exclude_unset=True)),
                                  (identity(cfg.data), identity(cfg.train, exclude_unset=True))))
                for k, x in zip(keys, point, strict=True):
                    set_path(raw, k.split("."), x)
                    set_path(typed, k.split("."), x)
                _validate(raw, label)
                h = config_hash(_validate(typed, label))[:12]
                out.append({"variant": label, "method": v.method.get("name"), "seed": seed, "config": raw,
                            "hash": h})
    return out


def _validate(raw: dict, label: str) -> FinetuneConfig:
    from supremum.recipe import build

    return build(FinetuneConfig, raw, f"compare variant '{label}'")


def cell_dir(store: Store, cfg: CompareConfig, cell: dict) -> Path:
    return store.root / "compare" / cfg.name / cell["hash"]


def run(cfg: CompareConfig, store: Store | None = None, on_event=None) -> dict:
    store = store or Store()
    say = on_event or (lambda m: None)
    todo = cells(cfg)
    from supremum.artifact import new_id

    run_id = new_id()
    with store.run(run_id, "compare", "", cfg.model_dump(mode="json"), fingerprint()) as row:
        summary = summarize(run_cells(cfg, todo, store, say), cfg)
        row.finish(summary)
    return summary


def run_cells(cfg: CompareConfig, todo: list[dict], store: Store, say) -> list[dict]:
    """Every cell's result, from its cache or trained and evaluated now (one process each),
    in the order of `todo`."""
    from supremum.jobs.cells import run_in_order
    from supremum.jobs.executor import runner

    run = runner(cfg.executor)

    def one(i: int, c: dict) -> dict:
        say(f"[{i + 1}/{len(todo)}] {c['variant']} seed {c['seed']}")
        return _run_cell(c, cell_dir(store, cfg, c), cfg, store, run)

    for c in todo:
        _complete_splits(c, cell_dir(store, cfg, c), cfg, store, run, say)
    results = run_in_order(todo, lambda c: cell_dir(store, cfg, c) / "result.json", one, cfg.jobs)
    return [{**c, **r, "cached": cached} for c, (r, cached) in zip(todo, results, strict=True)]


def _to_evaluate(result: Path, splits: list[str], perturb: str | None = None) -> list[str]:
    """The asked splits a cached result lacks, and the last one again when its robustness lacks an
    asked perturbation (a classifier's: robustness is measured on the last split)."""
    r = json.loads(result.read_text())
    scores = r.get("accuracy") or r.get("perplexity") or {}
    out = [s for s in splits if s not in scores]
    unmeasured = set(_robustness_names(perturb)) - set(r.get("robustness") or {})
    if "accuracy" in r and unmeasured and splits[-1] not in out:
        out.append(splits[-1])
    return out


def _robustness_names(perturb: str | None) -> list[str]:
    """The robustness keys an evaluation with `perturb` writes (evaluate.stage._robustness)."""
    from supremum.augment import parse_perturb, perturb_key

    return [perturb_key(name, rate) for name, rate in parse_perturb(perturb)] if perturb else []


def is_cached(result: Path, splits: list[str], perturb: str | None = None) -> bool:
    """A cell's result.json exists and holds every split (and perturbation) asked: what
    run_cells will not redo."""
    return result.exists() and not _to_evaluate(result, splits, perturb)


def _complete_splits(cell: dict, d: Path, cfg: CompareConfig, store: Store, run, say) -> None:
    """A cached cell evaluated on other splits or perturbations (the cell hash is the fine-tune's
    alone, so a study asking for another split finds it): its kept artifact is evaluated on what
    is missing, in a fresh process, and the result gains it; with no sound artifact left, the
    result is removed and the cell trains again."""
    from supremum.artifact import open_artifact

    result, splits, perturb = d / "result.json", cfg.evaluate.splits, cfg.evaluate.perturb
    if not result.exists() or not (todo := _to_evaluate(result, splits, perturb)):
        return
    try:
        open_artifact(d / "artifact")  # every file's hash: a broken artifact trains again
    except UserError as e:
        say(f"{d.name}: the cached cell was not evaluated on {', '.join(todo)} and its artifact is "
            f"unusable ({e.message}); running it again")
        result.unlink()
        discard_dir(d / "artifact")
        return
    say(f"{d.name}: the cached cell was not evaluated on {', '.join(todo)}; evaluating its artifact")
    new = _worker(cell, {"config": cell["config"], "artifact": str(d / "artifact"), "splits": todo,
                         "perturb": perturb if splits[-1] in todo else None, "store": str(store.root)},
                  cfg, run)
    res = json.loads(result.read_text())
    metric = next(k for k in ("accuracy", "perplexity") if k in new)
    res.setdefault(metric, {}).update(new[metric])
    if splits[-1] in todo:  # robustness belongs to the last split asked, as in a fresh cell
        res["robustness"] = new["robustness"]
    write_json(result, res)


def _run_cell(cell: dict, d: Path, cfg: CompareConfig, store: Store, run) -> dict:
    """Train and evaluate in a fresh process: peak memory and time are this cell's alone."""
    spec = {"config": {**cell["config"], "output": str(d / "artifact")}, "splits": cfg.evaluate.splits,
            "perturb": cfg.evaluate.perturb, "store": str(store.root)}
    res = _worker(cell, spec, cfg, run)
    write_json(d / "result.json", res)
    return res


def _worker(cell: dict, spec: dict, cfg: CompareConfig, run) -> dict:
    """supremum.compare_worker's JSON line for `spec`; its failure is the cell's one-line error."""
    try:
        stdout = run("supremum.compare_worker", spec, cfg.cpus_per_cell)
    except WorkerFailed as e:
        raise UserError(f"compare cell '{cell['variant']}' seed {cell['seed']} failed: {e}",
                        "run that fine-tune alone to see why") from None
    return json.loads(stdout.strip().splitlines()[-1])


def _ms(xs: list[float]) -> dict:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else None, "n": len(xs)}


def _median(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def metric_of(results: list[dict]) -> str:
    """"perplexity" for cells of causal LMs (lower is better), else "accuracy"."""
    return "perplexity" if results and "perplexity" in results[0] else "accuracy"


def summarize(results: list[dict], cfg: CompareConfig) -> dict:
    from scipy.stats import ttest_ind

    primary = "test" if "test" in cfg.evaluate.splits else cfg.evaluate.splits[0]
    metric = metric_of(results)
    better = min if metric == "perplexity" else max
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["variant"], []).append(r)
    rows = []
    for label, rs in groups.items():
        row = {"variant": label, "method": rs[0]["method"], "seeds": [r["seed"] for r in rs],
               "trainable_params": rs[0]["trainable_params"], "trainable_fraction": rs[0]["trainable_fraction"],
               "train_seconds": _median([r["train_seconds"] for r in rs]),
               "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
        for split in cfg.evaluate.splits:
            row[split] = _ms([r[metric][split] for r in rs])
        for name in _robustness_names(cfg.evaluate.perturb) if metric == "accuracy" else []:
            row[name] = _ms([r["robustness"][name] for r in rs])
        rows.append(row)
    best = better(rows, key=lambda r: r[primary]["mean"])
    best_xs = [r[metric][primary] for r in groups[best["variant"]]]
    for row in rows:
        if row is best:
            row["note"] = "best"
            continue
        xs = [r[metric][primary] for r in groups[row["variant"]]]
        if len(xs) < 2 or len(best_xs) < 2:
            row["note"] = "one seed: noise unknown"
            continue
        p = float(ttest_ind(xs, best_xs, equal_var=False).pvalue)
        if p != p:  # identical constant samples
            p = 1.0
        row["p_vs_best"] = p
        row["note"] = (f"within noise of {best['variant']} (p={p:.2f})" if p >= cfg.noise_p
                       else f"{'worse than' if metric == 'perplexity' else 'below'} {best['variant']} (p={p:.3f})")
    return {"name": cfg.name, "data": cfg.data.path, "model": cfg.model.name, "primary_split": primary,
            "metric": metric, "rows": rows, "cells": len(results),
            "cached_cells": sum(r["cached"] for r in results),
            "method": f"mean and sample std over seeds; notes: Welch t-test of {primary} {metric} against "
                      f"the best variant, within noise when p >= {cfg.noise_p}; train_seconds is the median "
                      "over seeds of training time only; peak_rss_mb is the highest peak RSS of the cell "
                      "processes (training and evaluation)"}


def accuracy_columns(s: dict) -> list[str]:
    """Accuracy columns of a summary: the splits, then the robustness probes."""
    fixed = {"variant", "method", "seeds", "trainable_params", "trainable_fraction", "train_seconds",
             "peak_rss_mb", "note", "p_vs_best"}
    return [k for k in s["rows"][0] if k not in fixed] if s["rows"] else []


def pm(m: dict | None, scale: float = 100) -> str:
    """'88.65 ± 0.21' from a mean/std summary (x100: accuracy in percent)."""
    if not m:
        return "-"
    return f"{scale * m['mean']:.2f}" + (f" ± {scale * m['std']:.2f}" if m.get("std") is not None else "")


def table(s: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a summary as text, for the CLI, Markdown and HTML."""
    cols = accuracy_columns(s)
    lm = s.get("metric") == "perplexity"
    head = ["variant", *[f"{c} {'perplexity' if lm else 'acc %'}" for c in cols], "trainable", "train s",
            "peak MB", "note"]
    rows = [[r["variant"], *[pm(r.get(c), 1 if lm else 100) for c in cols],
             f"{r['trainable_params']:,} ({100 * r['trainable_fraction']:.2f}%)",
             f"{r['train_seconds']['median']:.0f}", f"{r['peak_rss_mb']:.0f}", r["note"]] for r in s["rows"]]
    return head, rows
