"""Accuracy against the number of labels (`supremum labels`): every approach at every label
budget x seeds, on one test set, with the advice per budget.

A budget of n labels is the first n rows of a seeded, class-stratified order of the training split
(`data.train_limit_stratify`), so a seed's subsets nest across budgets and each class keeps its
share; the seed of a cell draws both its labels and its training. Every point is scored on the
same split of the same data (only the training rows differ between cells), and nothing beyond
the budget is used to choose a model: gradient fine-tunes train a fixed number of steps and keep
their last weights (dev is scored for the record only).

Approaches are a registry (`APPROACHES`; add one with `register`): fine-tuning methods run as
cached compare cells in fresh processes (`compare.run_cells`), prompting a causal LM runs in this
process with its points cached beside them. A cell an approach cannot run (SetFit without a pair
of every class, a fine-tune without every class, a prompt longer than `incontext.max_shots`) is
skipped with its reason, never silently. The fitted learning curve of plain fine-tuning
(`limit.curve.analyze_curve`) gives its ceiling with the profile-likelihood interval.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.config import DataConfig, ModelSpec, Seeds, SelfTrainingConfig, TrainConfig, identity
from supremum.errors import UserError
from supremum.limit.summary import labels_pct as pct
from supremum.studies.learners import CheckedMethod
from supremum.studies.query import CheckedStrategy

DEFAULT_BUDGETS: list = [0, 8, 32, 128, 512, 2048, "all"]
DEFAULT_APPROACHES = ["zeroshot", "linear-probe", "setfit", "full", "lora"]  # active, self-training: opt-in


class InContextOptions(BaseModel):
    """The prompting approach (`zeroshot`): a causal LM scoring each label's verbalizer."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field("smollm2-135m", description="causal LM (alias, directory, .gguf or causal-LM artifact)")
    backend: Literal["pytorch", "llamacpp"] = Field("pytorch", description="pytorch, or llamacpp for a GGUF file")
    max_shots: int = Field(8, ge=0, description="in-context examples a prompt holds at most: budgets above it "
                           "are skipped (their extra labels would go unused)")
    template: str | None = Field(None, description="prompt with a {text} placeholder (default: zeroshot's)")
    verbalizers: dict[str, str] | None = Field(None, description="LABEL: WORD scored for each label "
                                               "(default: the label names)")
    batch_size: int = Field(16, ge=1, description="sequences per forward pass")


class ActiveOptions(BaseModel):
    """The active-learning approach (`active`): a simulated pool-based loop (studies.simulate) over
    the training split, labels hidden in an Oracle, scored at the budgets."""

    model_config = ConfigDict(extra="forbid")
    strategy: CheckedStrategy = Field("margin+kcenter",
                                      description="query strategy (as `supremum label --strategy`)")
    batch_size: int = Field(50, ge=1, description="labels queried per round (a batch ends early at a budget)")
    seed_size: int | None = Field(None, ge=2, description="random seed set (default: batch_size); smaller "
                                  "budgets are skipped")
    candidates: int = Field(10, ge=1, description="uncertainty+diversity: the diversity step picks among this "
                            "many times batch_size most uncertain texts")
    method: CheckedMethod = Field(default_factory=lambda: {"name": "linear-probe"},
                                  description="the learner each round trains (default linear-probe: the encoder "
                                  "embeds the pool once and a round refits the head in seconds; full fine-tunes "
                                  "every round from the base model)")


class StudySelfTraining(SelfTrainingConfig):
    """The self-training approach's settings (defaults: fine-tune's). The kept model is the last
    round's: choosing the best round by dev accuracy would spend labels beyond the budget."""

    keep: Literal["last"] = Field("last", description="the last round's model (dev labels choose nothing)")


class LabelsConfig(BaseModel):
    """Everything `supremum labels` measures."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="study name (cells under $SUPREMUM_HOME/compare/<name>; default "
                             "labels-<model>-<data>)")
    model: ModelSpec = Field(default_factory=ModelSpec, description="encoder of the fine-tuning approaches")
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig, description="training settings of the gradient "
                               "fine-tunes (the fitted methods take only seed, threads and batch_size)")
    approaches: list[str] = Field(default_factory=lambda: list(DEFAULT_APPROACHES), min_length=1,
                                  description="approaches on the curve, in the order tried")
    methods: dict[str, dict] = Field(default_factory=dict, description="method options per fine-tuning approach, "
                                     "e.g. {setfit: {num_iterations: 5}}")
    incontext: InContextOptions = Field(default_factory=InContextOptions)
    active: ActiveOptions = Field(default_factory=ActiveOptions)
    self_training: StudySelfTraining = Field(default_factory=StudySelfTraining)
    budgets: list[int | Literal["all"]] = Field(default_factory=lambda: list(DEFAULT_BUDGETS), min_length=1,
                                                description="label budgets; 'all' is the whole training split")
    max_labels: dict[str, int] = Field(default_factory=lambda: {"setfit": 512},
                                       description="budgets above which an approach is not run (SetFit's pairs "
                                       "grow with the labels; raise it to measure)")
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2], min_length=1,
                             description="seeds: each draws its own labels and trains with them")
    min_steps: int = Field(60, ge=1, description="gradient fine-tunes: optimizer steps at least, however few "
                           "labels")
    split: str = Field("test", description="split every point is scored on")
    plain: str = Field("full", description="approach whose learning curve and ceiling are fitted")
    output: str | None = Field(None, description="directory of the plot (default: $SUPREMUM_HOME/labels/<name>)")

    @field_validator("approaches")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a not in APPROACHES]
        if unknown:
            raise ValueError(f"unknown approach '{unknown[0]}'; known: {', '.join(APPROACHES)}")
        if len(set(v)) < len(v):
            raise ValueError(f"approaches repeat ({', '.join(v)})")
        return v

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list) -> list:
        if any(b != "all" and (b < 0 or b == 1) for b in v):
            raise ValueError("a label budget is 0, 2 or more, or 'all' (1 label holds one class only)")
        return v


# -- the study: data, budgets and subsets ---------------------------------------------------------

class Study:
    """The loaded data, the resolved budgets and each (budget, seed)'s class counts."""

    def __init__(self, cfg: LabelsConfig, store):
        from supremum.data import load_data, stratified_order
        from supremum.lm.data import is_lm_data

        if is_lm_data(cfg.data):
            raise UserError(f"{cfg.data.path} is text without labels; an accuracy-vs-labels curve needs a "
                            "classification set", "give a table with a text and a label column")
        self.cfg, self.store = cfg, store
        self.data = load_data(cfg.data)
        if cfg.split not in self.data.splits or len(self.data.splits[cfg.split]) == 0:
            raise UserError(f"{cfg.data.path} has no labelled '{cfg.split}' split to score on",
                            "choose another --split (dev or test)")
        self.n_train = len(self.data.splits["train"])
        self.budgets = resolve_budgets(cfg, self.n_train, cfg.data.path)
        self.classes = len(self.data.label_names)
        self._y = self.data.splits["train"]["label"].to_numpy()
        self._orders = {s: stratified_order(self._y, s) for s in cfg.seeds}
        self.name = cfg.name or f"labels-{cfg.model.name.replace('/', '_')}-{Path(cfg.data.path).name}"
        self.output = Path(cfg.output) if cfg.output else store.root / "labels" / self.name

    def counts(self, budget: int, seed: int | None) -> list[int]:
        """Labels of each class in the (budget, seed) subset (budget 0: the seedless zero-shot cell)."""
        if budget == 0:
            return [0] * self.classes
        return np.bincount(self._y[self.rows(budget, seed)], minlength=self.classes).tolist()

    def rows(self, budget: int, seed: int) -> np.ndarray:
        """Training-split row indices (ascending) of the (budget, seed) subset, as data_for loads it."""
        return np.sort(self._orders[seed][:budget])

    def data_for(self, budget: int, seed: int) -> dict:
        """The data config (as a dict) of the (budget, seed) subset; the whole split at n_train."""
        d = self.cfg.data.model_dump()
        if 0 < budget < self.n_train:
            d.update(train_limit=budget, train_limit_seed=seed, train_limit_stratify=True)
        return d


def resolve_budgets(cfg: LabelsConfig, n_train: int, where: str) -> list[int]:
    """Sorted distinct budgets in labels ('all' = n_train). A budget above n_train that was asked for
    is a UserError naming the size; the defaults above it are left out."""
    asked = "budgets" in cfg.model_fields_set
    out = set()
    for b in cfg.budgets:
        n = n_train if b == "all" else b
        if n > n_train:
            if asked:
                raise UserError(f"budget {n:,} is above the {n_train:,} training examples of {where}",
                                f"use budgets up to {n_train:,}, or 'all'")
            continue
        out.add(n)
    return sorted(out)


def split_digest(data, split: str) -> dict:
    """{"split", "examples", "sha256"} of the split's texts and labels: the set every point is scored on."""
    h = hashlib.sha256()
    for t, y in zip(data.texts(split), data.labels(split), strict=True):
        h.update(f"{y}\t{t}\n".encode())
    return {"split": split, "examples": len(data.labels(split)), "sha256": h.hexdigest()}


# -- approaches -------------------------------------------------------------------------------------

@dataclass
class Cell:
    """One (approach, budget, seed) to measure; seed None for a deterministic point."""

    approach: str
    budget: int
    seed: int | None
    key: str = ""  # cache identity (the compare cell hash)
    cached: bool = False


class Approach(ABC):
    """One way to use n labels. `skip` says why a cell cannot run (None: it can); `cells` lists the
    cells of a budget (hashes set, validated); `measure` returns each cell's score on the split in
    the order given ({"accuracy": float, "cached": bool, ...}). `title` names it in sentences."""

    name = ""

    def title(self, budget: int) -> str:
        return self.name

    def skip(self, study: Study, budget: int, seed: int) -> str | None:
        return None

    @abstractmethod
    def cells(self, study: Study, budget: int) -> list[Cell]: ...

    @abstractmethod
    def measure(self, study: Study, todo: list[Cell], say) -> list[dict]: ...

    def seconds(self, study: Study, todo: list[Cell]) -> tuple[float | None, str]:
        """Expected seconds of the cells not cached, and how they were found (None: unknown)."""
        return None, "not estimated"


APPROACHES: dict[str, Approach] = {}


def register(approach: Approach) -> Approach:
    """Add an approach to the registry (its name is the key `approaches` lists)."""
    APPROACHES[approach.name] = approach
    return approach


class FineTune(Approach):
    """A fine-tuning method on the budget's labels, as a compare cell (fresh process, cached).
    `options` and `train` are fixed method and training options of this approach (a fine-tune
    option such as self-training is one more registered FineTune); the study's `methods` entry
    for it overrides `options`. `per_class`: labels of every class a cell needs."""

    def __init__(self, name: str, method: str, title: str, per_class: int = 1, why: str = "",
                 options: dict | None = None, train: dict | None = None):
        self.name, self.method, self._title, self.per_class, self.why = name, method, title, per_class, why
        self.options, self.train = options or {}, train or {}

    def title(self, budget: int) -> str:
        return self._title

    def skip(self, study: Study, budget: int, seed: int) -> str | None:
        cap = study.cfg.max_labels.get(self.name)
        if cap is not None and budget > cap:
            return f"above max_labels.{self.name}={cap:,}"
        rarest = min(study.counts(budget, seed))
        if rarest < self.per_class:
            need = "a labelled example" if self.per_class == 1 else f"{self.per_class} labelled examples"
            have = "there are none" if budget == 0 else f"{budget:,} labels hold {rarest} of the rarest class"
            return f"needs {need} of every class{self.why}; {have}"
        return None

    def compare_config(self, study: Study, budget: int, seed: int):
        from supremum.compare import CompareConfig, CompareEval, Variant
        from supremum.train.loop import plan_steps
        from supremum.train.methods import METHODS

        cfg = study.cfg
        method = {"name": self.method, **self.options, **cfg.methods.get(self.name, {})}
        honoured = METHODS[self.method].config_cls.train_options
        train = {**cfg.train.model_dump(exclude_unset=True), **self.train}
        if honoured is None:  # the gradient loop: fixed steps, last weights, dev never chooses
            _, total = plan_steps(budget, cfg.train.model_copy(update=self.train))
            steps = train.get("max_steps") or max(cfg.min_steps, total)
            train.update(max_steps=steps, eval_every=steps, keep_best=False)
        else:
            train = {k: v for k, v in train.items() if k in honoured}
        return CompareConfig(name=study.name, model=cfg.model, data=cfg.data, seeds=[seed],
                             methods=[Variant(label=f"{self.name} n={budget}", method=method, train=train,
                                              data=study.data_for(budget, seed))],
                             evaluate=CompareEval(splits=[cfg.split]))

    def cells(self, study: Study, budget: int) -> list[Cell]:
        from supremum.compare import cell_dir, cells, is_cached

        out = []
        for seed in study.cfg.seeds:
            cc = self.compare_config(study, budget, seed)
            c = cells(cc)[0]
            out.append(Cell(self.name, budget, seed, c["hash"],
                            is_cached(cell_dir(study.store, cc, c) / "result.json", cc.evaluate.splits,
                                      cc.evaluate.perturb)))
        return out

    def measure(self, study: Study, todo: list[Cell], say) -> list[dict]:
        from supremum.compare import cells, run_cells

        out = []
        for c in todo:
            cc = self.compare_config(study, c.budget, c.seed)
            r = run_cells(cc, cells(cc), study.store, say)[0]
            out.append({"accuracy": r["accuracy"][study.cfg.split], "cached": r["cached"],
                        "train_seconds": r["train_seconds"], "artifact": r["artifact"]})
        return out

    def seconds(self, study: Study, todo: list[Cell]) -> tuple[float | None, str]:
        from supremum.estimate import training_rate
        from supremum.machine import fingerprint

        runs = [r for r in study.store.runs() if r["status"] == "finished"
                and (r["machine"] or {}).get("cpu") == fingerprint()["cpu"]]
        if not todo:
            return 0.0, "every cell cached"
        from supremum.train.methods import METHODS

        if METHODS[self.method].config_cls.train_options is not None:
            return None, f"not estimated ({self.method} fits outside the gradient loop, whose rate is kept)"
        cc = self.compare_config(study, todo[0].budget, todo[0].seed)
        rate = training_rate(cc, runs, self.method)
        if rate is None:
            return None, f"not estimated: no past {self.method} fine-tune of {study.cfg.model.name} here"
        examples = sum(self.examples(study, c) for c in todo)
        extra, note = self.beyond_training(study, todo, rate[0])
        return (examples / rate[0] + extra,
                f"{examples:,} training examples at {rate[0]:.1f}/s ({rate[1]}){note}")

    def beyond_training(self, study: Study, todo: list[Cell], rate: float) -> tuple[float, str]:
        """(seconds, "; how") the cells spend besides their training examples, given the training
        rate (examples/s): none for a plain fine-tune."""
        return 0.0, ""

    def examples(self, study: Study, c: Cell) -> int:
        """Training examples (optimizer steps x batch) of a gradient fine-tune's cell."""
        return self.config_examples(study, self.compare_config(study, c.budget, c.seed))

    def config_examples(self, study: Study, cc) -> int:
        """Training examples of the cell whose CompareConfig is `cc` (built once per cell: a
        subclass's compare_config may read files)."""
        return cc.methods[0].train["max_steps"] * study.cfg.train.batch_size * study.cfg.train.grad_accum


class InContext(Approach):
    """Prompting a causal LM with the budget's labels as in-context examples (`evaluate.zeroshot`):
    0 labels is zero-shot (one deterministic point), n <= max_shots labels are an n-shot prompt of
    exactly the seed's n labelled examples."""

    name = "zeroshot"

    def title(self, budget: int) -> str:
        return "zero-shot prompting" if budget == 0 else f"{budget}-shot prompting"

    def skip(self, study: Study, budget: int, seed: int) -> str | None:
        cap = study.cfg.incontext.max_shots
        if budget > cap:
            return f"a prompt holds at most incontext.max_shots={cap} examples; more labels would go unused"
        return None

    def zcfg(self, study: Study, budget: int, seed: int | None):
        from supremum.evaluate.zeroshot import DEFAULT_TEMPLATE, ZeroShotConfig

        o = study.cfg.incontext
        return ZeroShotConfig(model=o.model, backend=o.backend, data=study.data_for(budget, seed or 0),
                              split=study.cfg.split, shots=[budget], seeds=[seed or 0],
                              template=o.template or DEFAULT_TEMPLATE, verbalizers=o.verbalizers,
                              batch_size=o.batch_size, speed=False)

    def _key(self, study: Study, budget: int, seed: int | None) -> str:
        from supremum.hashing import content_hash

        z = identity(self.zcfg(study, budget, seed), exclude={"batch_size", "speed", "warmup",
                                                                            "repeats", "threads", "limit"})
        return content_hash({"approach": self.name, "config": z}, length=12)

    def _path(self, study: Study, key: str) -> Path:
        return study.store.root / "compare" / study.name / key / "result.json"

    def cells(self, study: Study, budget: int) -> list[Cell]:
        seeds = [None] if budget == 0 else study.cfg.seeds
        out = []
        for s in seeds:
            key = self._key(study, budget, s)
            out.append(Cell(self.name, budget, s, key, self._path(study, key).exists()))
        return out

    def measure(self, study: Study, todo: list[Cell], say) -> list[dict]:
        import json

        from supremum.fsutil import write_json

        out, loaded = [], []
        for i, c in enumerate(todo):
            path = self._path(study, c.key)
            if path.exists():
                out.append({**json.loads(path.read_text()), "cached": True})
                continue
            seed = f" seed {c.seed}" if c.seed is not None else ""  # zero-shot: no seed
            say(f"[{i + 1}/{len(todo)}] {self.title(c.budget)}{seed}")
            res = self._score(study, c, loaded)
            write_json(path, res)
            out.append({**res, "cached": False})
        return out

    def _score(self, study: Study, c: Cell, loaded: list) -> dict:
        from supremum.data import load_data
        from supremum.evaluate.zeroshot import check_template, load_lm, run_shots, verbalizer_words

        z = self.zcfg(study, c.budget, c.seed)
        check_template(z.template)
        words = verbalizer_words(study.data.label_names, z.verbalizers)
        if not loaded:  # the model once per call, after the checks
            loaded.append(load_lm(z))
        data = study.data if c.budget in (0, study.n_train) else load_data(z.data)
        r = run_shots(*loaded[0], z, c.budget, data, words)
        return {"accuracy": r["accuracy"]["mean"], "acc_norm": r["acc_norm"]["mean"],
                "shot_rows": r["per_seed"][0]["shot_rows"], "seconds": r["per_seed"][0]["seconds"]}


register(InContext())
register(FineTune("linear-probe", "linear-probe", "a linear probe"))
register(FineTune("setfit", "setfit", "SetFit", per_class=2, why=" (a positive pair of each)"))
register(FineTune("full", "full", "plain fine-tuning"))
register(FineTune("lora", "lora", "LoRA"))

from supremum.studies import labels_approaches  # noqa: E402, F401, I001  (registers active and self-training)


# -- plan, run --------------------------------------------------------------------------------------

def plan(cfg: LabelsConfig, store=None) -> dict:
    """Every cell (to run or cached) and every skipped one with its reason, before anything trains;
    fine-tune cells are validated here (a bad method option is a UserError now). Returns
    {"study", "cells": [Cell], "skipped": [...], "approaches": {name: {cells, cached, seconds, basis}}}."""
    from supremum.store import Store

    study = Study(cfg, store or Store())
    todo, skipped, per = [], [], {}
    for name in cfg.approaches:
        a = APPROACHES[name]
        mine = []
        for b in study.budgets:
            why = {s: a.skip(study, b, s) for s in cfg.seeds}
            for reason in dict.fromkeys(r for r in why.values() if r):
                skipped.append({"approach": name, "budget": b, "seeds": [s for s, r in why.items() if r == reason],
                                "reason": reason})
            if all(why.values()):
                continue
            mine += [c for c in a.cells(study, b) if c.seed is None or not why[c.seed]]
        seconds, basis = a.seconds(study, [c for c in mine if not c.cached])
        per[name] = {"cells": len(mine), "cached": sum(c.cached for c in mine), "seconds": seconds, "basis": basis}
        todo += mine
    return {"study": study, "cells": todo, "skipped": skipped, "approaches": per}


def run_labels(cfg: LabelsConfig, store=None, on_event=None, on_data=None) -> dict:
    """Measure every cell of `plan`, summarize, fit plain fine-tuning's curve, write the plot, and
    record one store run (kind "labels"). Returns the record (see `record`). `on_data(data info)`
    runs once the data is read (the CLI prints the columns it found and the split sizes)."""
    from supremum.artifact import new_id
    from supremum.machine import fingerprint
    from supremum.store import Store

    store = store or Store()
    say = on_event or (lambda m: None)
    p = plan(cfg, store)
    study = p["study"]
    if on_data is not None:
        on_data(study.data.info)
    say(plan_line(p))
    points = []
    say = _counted(say, sum(not c.cached for c in p["cells"]))
    for name in cfg.approaches:
        todo = [c for c in p["cells"] if c.approach == name]
        for c, r in zip(todo, APPROACHES[name].measure(study, todo, say), strict=True):
            points.append({"approach": name, "budget": c.budget, "seed": c.seed, "hash": c.key,
                           "label_counts": study.counts(c.budget, c.seed), **r})
    with store.run(new_id(), "labels", f"labels {study.name}", cfg.model_dump(mode="json"), fingerprint()) as row:
        rec = record(study, points, p["skipped"])
        from supremum.limit.plots import labels_plot

        rec["plot"] = str(labels_plot(rec, study.output / "labels.png"))
        row.finish(rec)
    return rec


def _counted(say, total: int):
    """`say` with each cell's "[i/n]" (counted by the approach, or by the compare cells one
    fine-tune runs as, always [1/1]) renumbered over every cell the study runs."""
    import itertools
    import re

    seen = itertools.count(1)

    def inner(m: str) -> None:
        say(re.sub(r"^\[\d+/\d+\] ", lambda _: f"[{next(seen)}/{total}] ", m))
    return inner


def plan_line(p: dict) -> str:
    """'34 cells (12 cached, 22 to run): zeroshot 7, ...; 6 skipped; training about 12 min; not estimated:
    setfit' (skipped: cells, one per seed of each skipped budget)."""
    total = len(p["cells"])
    cached = sum(c.cached for c in p["cells"])
    parts = ", ".join(f"{k} {v['cells']}" for k, v in p["approaches"].items())
    known = sum(v["seconds"] or 0 for v in p["approaches"].values())
    unknown = [k for k, v in p["approaches"].items() if v["seconds"] is None and v["cells"] > v["cached"]]
    skipped = sum(len(s["seeds"]) for s in p["skipped"])
    line = f"{total} cells ({cached} cached, {total - cached} to run): {parts}; {skipped} skipped"
    if known:
        line += f"; training about {known / 60:.1f} min"
    if unknown:
        line += f"; not estimated: {', '.join(unknown)}"
    return line


def spread(values: list[float]) -> dict:
    """Mean, sample s.d. and Student-t 95% interval over seeds (s.d. and interval None for one value)."""
    from supremum.limit.resolution import seed_spread

    if len(values) < 2:
        return {"mean": float(values[0]), "sd": None, "ci": None, "n": 1}
    s = seed_spread(values)
    ci = [max(0.0, s["ci"][0]), min(1.0, s["ci"][1])]  # accuracies: the interval held to [0, 1]
    return {"mean": s["mean"], "sd": s["std"], "ci": ci, "n": len(values)}


def record(study: Study, points: list[dict], skipped: list[dict]) -> dict:
    from supremum.evaluate.zeroshot import majority_baseline

    cfg = study.cfg
    groups: dict[tuple[str, int], list[dict]] = {}
    for p in points:
        groups.setdefault((p["approach"], p["budget"]), []).append(p)
    summary = [{"approach": a, "budget": b, "title": APPROACHES[a].title(b), "seeds": [p["seed"] for p in ps],
                **spread([p["accuracy"] for p in ps]),
                **({"pseudo_labelled": [p["pseudo_labelled"] for p in ps]} if "pseudo_labelled" in ps[0] else {})}
               for (a, b), ps in groups.items()]
    maj = majority_baseline(study.data.labels("train"), study.data.labels(cfg.split), study.data.label_names)
    rec = {"kind": "labels", "name": study.name, "model": cfg.model.name, "lm": cfg.incontext.model,
           "data": cfg.data.path, "split": cfg.split, "test": split_digest(study.data, cfg.split),
           "n_train": study.n_train, "labels": study.data.label_names, "budgets": study.budgets,
           "seeds": cfg.seeds, "approaches": cfg.approaches, "majority": {"label": maj["label"],
                                                                          "accuracy": maj["accuracy"]},
           "points": points, "summary": summary, "skipped": skipped,
           "cells": {"total": len(points), "cached": sum(bool(p["cached"]) for p in points)},
           "curve": fit_plain(study, points), "plain": cfg.plain, "method": METHOD}
    rec["sentences"] = sentences(summary, study.n_train, rec["curve"], cfg.plain, maj["accuracy"])
    return rec


METHOD = ("each budget n is the first n rows of a seeded class-stratified order of the training split (nested "
          "across budgets; the seed also seeds training); every point is scored on the same split; gradient "
          "fine-tunes train max(min_steps, the epochs' steps) and keep their last weights (no labels beyond the "
          "budget choose a model); mean, sample s.d. and Student-t 95% interval over seeds; the best approach "
          "per budget is the highest mean; a crossover is interpolated linearly in log labels between the "
          "measured means of the two budgets it lies between, or read off plain fine-tuning's fitted curve")


def fit_plain(study: Study, points: list[dict]) -> dict:
    """analyze_curve over plain fine-tuning's points with labels (its ceiling and interval), or
    {"not_fitted": why}."""
    from supremum.limit.curve import analyze_curve

    pts = [(p["budget"], p["accuracy"], p["seed"]) for p in points
           if p["approach"] == study.cfg.plain and p["budget"] > 0]
    if not pts:
        return {"not_fitted": f"{study.cfg.plain} has no measured point"}
    try:
        return analyze_curve(pts, None, 0, eval_examples=len(study.data.labels(study.cfg.split)),
                             n_train=study.n_train, split=study.cfg.split)
    except UserError as e:
        return {"not_fitted": f"{study.cfg.plain}: {e.message}"}


# -- the advice -------------------------------------------------------------------------------------

def _round2(x: float) -> str:
    return f"{float(f'{x:.2g}'):,.0f}"


def sentences(summary: list[dict], n_train: int, curve: dict | None = None, plain: str = "full",
              majority: float | None = None) -> list[str]:
    """One sentence per budget with points: the approach with the highest mean there, then which
    approach overtakes it at which budget (from the measured means: interpolated in log labels
    between the two budgets the crossing lies between, or "by" a budget when the overtaker has no
    point before it), else the first budget where another approach passes its accuracy (when it has
    no larger budget), else where `plain`'s fitted curve reaches its accuracy beyond every budget.

    A budget where an approach measured with fewer labels is still ahead names that one (labels can
    be left unused); one less than the best's s.d. behind it is named beside the advice. A budget
    where no approach's mean beats `majority` (the majority class's accuracy) says so instead of
    naming one; approaches with exactly the best mean are named together as a tie.

    A self-training row whose seeds added no pseudo-label at all (`pseudo_labelled` all 0) is plain
    fine-tuning under another name: it is left out of the advice, and a sentence says so.

    summary: rows {approach, budget, title, mean, sd[, pseudo_labelled]}. curve: analyze_curve's
    record of `plain` (or None)."""
    idle = [r for r in summary if r.get("pseudo_labelled") and all(x == 0 for x in r["pseudo_labelled"])]
    summary = [r for r in summary if r not in idle]
    at: dict[int, dict[str, dict]] = {}
    for r in summary:
        at.setdefault(r["budget"], {})[r["approach"]] = r
    budgets = sorted(at)
    plain_title = next((r["title"] for r in summary if r["approach"] == plain), plain)
    out = []
    for b in budgets:
        best = max(at[b].values(), key=lambda r: r["mean"])
        where = f"all {b:,}" if b == n_train else f"{b:,}"
        # labels can always be left unused: a point with fewer labels that is ahead stays the advice
        fewer = max((r for x in budgets if x < b for r in at[x].values()), key=lambda r: r["mean"], default=None)
        if fewer is not None and fewer["mean"] > best["mean"] and (majority is None or fewer["mean"] > majority):
            out.append(f"with {where} labels {fewer['title']} with {fewer['budget']:,} labels ({pct(fewer)}) "
                       f"still beats every approach given {where} (best: {best['title']}, {pct(best)}).")
            continue
        if majority is not None and best["mean"] <= majority:
            out.append(f"with {where} labels no approach beats the majority class ({100 * majority:.1f}%; "
                       f"best: {best['title']}, {pct(best)}).")
            continue
        tied = [r for r in at[b].values() if r is not best and r["mean"] == best["mean"]]
        if tied:  # the same mean, each with its own spread
            each = " and ".join(f"{r['title']} ({pct(r)})" for r in [best, *tied])
            out.append(f"with {where} labels {each} tie.")
            continue
        tail = (_overtaken(best, b, budgets, at) or _passed(best, b, budgets, at)
                or _fitted(best, budgets, curve, plain, plain_title) or "")
        out.append(f"with {where} labels use {best['title']} ({pct(best)}){_near(best, fewer)}{tail}.")
    for r in idle:
        where = f"all {r['budget']:,}" if r["budget"] == n_train else f"{r['budget']:,}"
        out.append(f"with {where} labels {r['title']} added no pseudo-label in any seed (no unlabelled text was "
                   "confident enough): it is plain fine-tuning there, left out of the advice.")
    return out


def _near(best: dict, fewer: dict | None) -> str:
    """", within one s.d. of <the best point with fewer labels>" when the labels bought less than the
    seed spread (a measured MR case: plain fine-tuning on 512 labels, 75.6 ± 1.6%, against zero-shot
    prompting with none, 75.4%)."""
    if fewer is None or not best.get("sd") or best["mean"] - fewer["mean"] >= best["sd"]:
        return ""
    return f", within one s.d. of {fewer['title']} with {fewer['budget']:,} labels ({pct(fewer)})"


def _overtaken(best: dict, b: int, budgets: list[int], at: dict) -> str | None:
    a = best["approach"]
    prev = {k: r["mean"] - best["mean"] for k, r in at[b].items() if k != a}
    last_b = b
    for x in (x for x in budgets if x > b and a in at[x]):
        ahead = [r for k, r in at[x].items() if k != a and r["mean"] > at[x][a]["mean"]]
        if ahead:
            r = max(ahead, key=lambda r: r["mean"])
            d2, d1 = r["mean"] - at[x][a]["mean"], prev.get(r["approach"])
            if d1 is None or last_b == 0:
                return f"; {r['title']} overtakes it by {x:,} labels (measured means)"
            cross = math.exp(math.log(last_b) + (math.log(x) - math.log(last_b)) * (-d1) / (d2 - d1))
            return f"; {r['title']} overtakes it at ~{_round2(cross)} labels (measured means)"
        prev = {k: r["mean"] - at[x][a]["mean"] for k, r in at[x].items() if k != a}
        last_b = x
    return None


def _passed(best: dict, b: int, budgets: list[int], at: dict) -> str | None:
    """When `best` has no larger budget: the first larger budget where another approach's mean passes it."""
    if any(x > b and best["approach"] in at[x] for x in budgets):
        return None
    for x in (x for x in budgets if x > b):
        ahead = [r for r in at[x].values() if r["mean"] > best["mean"]]
        if ahead:
            r = max(ahead, key=lambda r: r["mean"])
            return f"; {r['title']} passes that by {x:,} labels (measured means)"
    return None


def _fitted(best: dict, budgets: list[int], curve: dict | None, plain: str, title: str) -> str | None:
    """What `plain`'s fitted curve says of `best`'s accuracy beyond every measured budget: where it
    reaches it (up to 100x the largest budget), or that its whole ceiling interval lies below it.
    None when the fit does not identify its ceiling: its extrapolation would be a guess."""
    if not curve or "fit" not in curve or best["approach"] == plain or curve["ceiling"].get("verdict") not in (
            "identified", "saturated"):  # "loosely identified": an interval wider than the fall it explains
        return None
    f, c = curve["fit"], curve["ceiling"]
    if c["ci"][1] < best["mean"]:
        return (f"; {title}'s fitted ceiling ({100 * c['accuracy']:.1f}%, 95% CI up to {100 * c['ci'][1]:.1f}%) "
                "stays below it (fitted curve)")
    gap = 1 - f["E"] - best["mean"]
    if gap <= 0 or f["B"] <= 0:
        return None
    need = (f["B"] / gap) ** (1 / f["beta"])
    if need <= budgets[-1]:
        return None
    if need > 100 * budgets[-1]:
        return f"; {title}'s fitted curve reaches that only beyond {100 * budgets[-1]:,} labels (fitted curve)"
    return f"; {title} would reach that at ~{_round2(need)} labels (fitted curve)"
