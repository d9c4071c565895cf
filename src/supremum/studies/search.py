"""The search for the best this model can do on this task, within a wall-clock budget.

Optuna (Akiba et al. 2019): a TPE sampler (Bergstra et al. 2011) over method, learning rate,
epochs, batch size, LoRA rank, warm-up, weight decay and layer-wise decay; each dev evaluation
is reported to a successive-halving pruner (Jamieson & Talwalkar 2016; Li et al. 2018,
Hyperband), which stops trials that trail the others at the same dev evaluation (the k-th of
each trial; with the default evaluation each epoch, after the same data). Every trial is an
ordinary fine-tuning run in the store. The study lives in an Optuna SQLite database under the
output directory, so a second call with the same study name resumes: finished trials are kept,
not redone. Only the best trial's artifact is kept unless `keep_all`.

Budget: no trial starts when the time spent in this call plus the expected trial time (median
of the study's finished trials; before any, the estimate machinery's) exceeds it.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from pathlib import Path
from typing import Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from supremum.errors import UserError
from supremum.fsutil import discard_dir
from supremum.train.config import FinetuneConfig
from supremum.train.methods import METHODS

TUNED = {"full", "lora"}  # methods whose knobs the space names (others get lr and the train keys)


def _lr_ranges() -> dict[str, tuple[float, float]]:
    # a decade either side of each method's default: PEFT methods train few weights and need more
    return {n: (m.config_cls.default_lr / 10, m.config_cls.default_lr * 10) for n, m in METHODS.items()}


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: dict[str, tuple[float, float]] = Field(default_factory=_lr_ranges,
                                               description="peak learning rate (low, high) per method, log scale")
    epochs: tuple[int, int] = Field((1, 4), description="passes over the training set (low, high)")
    batch_size: list[int] = Field(default_factory=lambda: [16, 32])
    lora_rank: list[int] = Field(default_factory=lambda: [4, 8, 16, 32])
    warmup_ratio: tuple[float, float] = Field((0.0, 0.1))
    weight_decay: tuple[float, float] = Field((0.0, 0.1))
    layer_decay: tuple[float, float] | None = Field((0.7, 1.0), description="full fine-tuning only; None: off")


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: FinetuneConfig = Field(description="model, data and the training settings the search leaves alone")
    methods: list[str] = Field(default_factory=lambda: ["full", "lora"], min_length=1)
    space: SearchSpace = Field(default_factory=SearchSpace)
    budget_minutes: float = Field(gt=0, description="wall-clock budget of this call")
    n_trials: int | None = Field(None, ge=1, description="at most this many trials in the study")
    seed: int = 0
    output: str = Field(description="directory: the study database and the kept artifacts")
    study_name: str = "search"
    pruner: Literal["successive_halving", "hyperband", "none"] = "successive_halving"
    min_resource: int = Field(1, ge=1, description="pruner: the dev evaluation (1st, 2nd, ...) at which pruning "
                              "may start; rungs at min_resource x reduction_factor^k evaluations")
    reduction_factor: int = Field(3, ge=2, description="pruner: keep the top 1/factor at each rung")
    enqueue: list[dict] = Field(default_factory=list, description="trials to run first (parameter dicts)")
    keep_all: bool = Field(False, description="keep every trial's artifact, not only the best's")

    @model_validator(mode="after")
    def _known(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
        fitted = [m for m in self.methods if METHODS[m].fit is not None]
        if fitted:  # no lr, epochs or dev evaluations during training for the pruner to use
            raise ValueError(f"methods {fitted} fit without the gradient loop whose settings the "
                             "search tunes; compare them with `supremum compare` instead")
        missing = [m for m in self.methods if m not in self.space.lr]
        if missing:
            raise ValueError(f"space.lr has no range for {missing}")
        return self


class TrialRecord(BaseModel):
    number: int
    state: str
    value: float | None
    seconds: float | None
    run_id: str | None
    params: dict
    error: str | None = Field(None, description="why a failed trial failed (e.g. it diverged)")
    ended_s: float | None = Field(None, description="seconds from the study's first trial start to this "
                                  "trial's end")
    last_reported: float | None = Field(None, description="the last dev score the trial reported (a pruned "
                                        "trial's standing when it was stopped)")


class SearchResult(BaseModel):
    best_value: float | None = Field(description="best dev score (accuracy; -loss for language models)")
    best_config: dict | None
    best_artifact: str | None
    trials: list[TrialRecord]
    pruned: int
    elapsed_seconds: float = Field(description="wall-clock seconds of this call")
    trial_seconds: float = Field(0.0, description="seconds spent in trials over every call (a resumed search "
                                 "counts its earlier calls' trials too)")
    stopped: str = Field(description="why no further trial started")


def containing(cfg: SearchConfig) -> tuple[SearchConfig, dict]:
    """The search widened to contain its base configuration, and that configuration as trial
    parameters (to enqueue first: the user's own setting is measured by the same protocol as every
    trial, and the best found can only be at least as good). Optuna refuses an enqueued categorical
    value outside its choices, so the choices and ranges grow to include the base's values."""
    base, sp = cfg.base, cfg.space
    name, t = base.method.name, base.train
    params: dict = {"method": name, f"lr_{name}": t.lr, "batch_size": t.batch_size,
                    "warmup_ratio": t.warmup_ratio, "weight_decay": t.weight_decay}
    lr = sp.lr.get(name, (t.lr, t.lr))
    widened = {"lr": {**sp.lr, name: (min(lr[0], t.lr), max(lr[1], t.lr))},
               "batch_size": sorted({*sp.batch_size, t.batch_size}),
               "warmup_ratio": _span(sp.warmup_ratio, t.warmup_ratio),
               "weight_decay": _span(sp.weight_decay, t.weight_decay)}
    if not t.max_steps:
        epochs = max(1, round(t.epochs))
        params["epochs"] = epochs
        widened["epochs"] = (min(sp.epochs[0], epochs), max(sp.epochs[1], epochs))
    if name == "lora":
        params["lora_rank"] = base.method.r
        widened["lora_rank"] = sorted({*sp.lora_rank, base.method.r})
    if name == "full" and sp.layer_decay is not None:
        params["layer_decay"] = t.layer_decay if t.layer_decay is not None else 1.0  # 1.0: no decay
        widened["layer_decay"] = _span(sp.layer_decay, params["layer_decay"])
    methods = cfg.methods if name in cfg.methods else [name, *cfg.methods]
    out = cfg.model_copy(update={"methods": methods, "space": sp.model_copy(update=widened)})
    return out, params


def _span(r: tuple[float, float], x: float) -> tuple[float, float]:
    return (min(r[0], x), max(r[1], x))


def suggest(trial: optuna.Trial, cfg: SearchConfig, out: Path) -> FinetuneConfig:
    """The trial's FinetuneConfig: the base with the sampled values (ordinary run, own output)."""
    sp = cfg.space
    method = trial.suggest_categorical("method", cfg.methods)
    d = cfg.base.model_dump()  # not exclude_none: a None the user set (no clipping) must stay None
    m = d["method"] if d["method"]["name"] == method else {"name": method}
    if method == "lora":
        m["r"] = trial.suggest_categorical("lora_rank", sp.lora_rank)
    t = {**d["train"], "lr": trial.suggest_float(f"lr_{method}", *sp.lr[method], log=True),
         "batch_size": trial.suggest_categorical("batch_size", sp.batch_size),
         "warmup_ratio": trial.suggest_float("warmup_ratio", *sp.warmup_ratio),
         "weight_decay": trial.suggest_float("weight_decay", *sp.weight_decay)}
    if not t.get("max_steps"):  # with a step cap epochs change nothing: not sampled
        t["epochs"] = trial.suggest_int("epochs", *sp.epochs)
    t["layer_decay"] = None
    if method == "full" and sp.layer_decay is not None:
        t["layer_decay"] = trial.suggest_float("layer_decay", *sp.layer_decay)
    output = str(out / f"trial-{trial.number}")
    return FinetuneConfig.model_validate({**d, "method": m, "train": t, "output": output})


def _pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=cfg.min_resource, reduction_factor=cfg.reduction_factor)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=cfg.min_resource,
                                                  reduction_factor=cfg.reduction_factor)


#: what a study's intermediate values count (its user attribute `pruner_resource`)
RESOURCE = "dev_evaluation"


def open_study(cfg: SearchConfig) -> optuna.Study:
    """The study under cfg.output (created, or loaded to resume). UserError for a study whose
    trials reported another resource (optimizer steps, before evaluations were counted): its
    pruner rungs would compare the two units."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = (out / "study.db").resolve()
    study = optuna.create_study(study_name=cfg.study_name, storage=f"sqlite:///{db}", load_if_exists=True,
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                pruner=_pruner(cfg))
    if study.user_attrs.get("pruner_resource") != RESOURCE:
        if any(t.intermediate_values for t in study.trials):
            raise UserError(f"{db}: study '{cfg.study_name}' was pruned by optimizer step, and this version "
                            "prunes by dev evaluation; its trials cannot be resumed with the new pruner",
                            f"delete {db} or give another output directory")
        study.set_user_attr("pruner_resource", RESOURCE)
    return study


def trial_seconds(study: optuna.Study) -> float | None:
    """Median wall-clock seconds of the study's finished trials (complete or pruned)."""
    done = [t.duration.total_seconds() for t in study.trials
            if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL and t.duration]
    return statistics.median(done) if done else None


def first_trial_estimate(cfg: SearchConfig, store) -> float | None:
    """Training seconds of the cheapest trial (fewest epochs, the base batch) by the estimate
    machinery: a lower bound, as loading the model and dev evaluations are not counted."""
    from supremum.data import load_data
    from supremum.estimate import finetune_seconds
    from supremum.tasks import CAUSAL_LM, resolve_task

    base = cfg.base
    if resolve_task(base) is CAUSAL_LM:  # the probe times classifier batches; LM trials start unchecked
        return None
    if not base.train.max_steps:
        base = base.model_copy(update={"train": base.train.model_copy(update={"epochs": cfg.space.epochs[0]})})
    runs = [r for r in store.runs() if r["status"] == "finished"]
    seconds, _ = finetune_seconds(base, runs, cfg.methods[0], len(load_data(base.data).splits["train"]))
    return seconds


def run_search(cfg: SearchConfig, store=None) -> SearchResult:
    """Run trials until the budget, n_trials or the study is done; returns the study's record.

    Raises UserError when the budget cannot hold one trial (by the estimate, before any runs)."""
    from supremum.data import say_once

    with say_once():  # every trial loads the same data: its notes are said once
        return _run_search(cfg, store)


def _run_search(cfg: SearchConfig, store=None) -> SearchResult:
    from supremum.store import Store

    store = store or Store()
    t0 = time.monotonic()
    budget = cfg.budget_minutes * 60
    study = open_study(cfg)
    _close_stale(study)
    if trial_seconds(study) is None:
        est = first_trial_estimate(cfg, store)
        if est is not None and est > budget:
            raise UserError(f"the search budget of {cfg.budget_minutes:g} min cannot hold one trial "
                            f"(one needs at least {est:.2g} s of training)",
                            f"give budget_minutes {est / 60 * 3:.2g} or more (room for a few trials)")
    for params in cfg.enqueue:  # once: again only if a killed process left it unfinished
        if not any(same_params(params, t.params) for t in study.trials if _settled(t)):
            study.enqueue_trial(params)
    stopped = "budget"
    while True:
        if cfg.n_trials is not None and _started(study) >= cfg.n_trials:
            stopped = "n_trials"
            break
        per_trial = trial_seconds(study)
        if per_trial is not None and time.monotonic() - t0 + per_trial > budget:
            break
        _one_trial(study, cfg, store)
        if time.monotonic() - t0 >= budget:
            break
    return _result(study, cfg, time.monotonic() - t0, stopped)


def _settled(t: optuna.trial.FrozenTrial) -> bool:
    """Finished with a result (a failure that was the search's finding, like divergence, counts),
    or still queued; a trial failed because its process died (no recorded error) does not."""
    S = optuna.trial.TrialState
    return t.state in (S.COMPLETE, S.PRUNED, S.WAITING) or (t.state == S.FAIL and "error" in t.user_attrs)


def same_params(fixed: dict, params: dict) -> bool:
    """Whether a trial's parameters hold every fixed (enqueued) value (floats to 1e-9 relative);
    the parameters an enqueued trial leaves open are sampled, so they may be anything."""
    if not fixed.keys() <= params.keys():
        return False
    return all(math.isclose(x, y, rel_tol=1e-9) if isinstance(x, float) or isinstance(y, float) else x == y
               for x, y in ((fixed[k], params[k]) for k in fixed))


def _started(study: optuna.Study) -> int:
    """Trials that count toward n_trials: finished with a result, or running; a trial whose process
    died (failed with no recorded error) is not one, so an interrupted search is not cut short."""
    S = optuna.trial.TrialState
    return sum(t.state == S.RUNNING or (_settled(t) and t.state != S.WAITING) for t in study.trials)


def _close_stale(study: optuna.Study) -> None:
    """Trials left RUNNING by a process that died: failed, so they neither count as running nor
    block the budget's median (one process per study; concurrent workers are not supported)."""
    for t in study.trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _one_trial(study: optuna.Study, cfg: SearchConfig, store) -> None:
    from supremum.train.divergence import Diverged
    from supremum.train.finetune import finetune

    trial = study.ask()
    ft = suggest(trial, cfg, Path(cfg.output))

    evals = itertools.count(1)

    def report(step: int, score: float) -> None:
        # The pruner's resource is the dev evaluation's number, not the optimizer step: trials of
        # another batch size reach an epoch at other steps (they were compared after unequal
        # training), and with evaluations hundreds of steps apart one report crossed several
        # geometric rungs at once, so a trial survived only by beating every trial before it.
        k = next(evals)
        trial.report(score, k)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (dev evaluation {k})")

    command = f"search {Path(cfg.output).resolve()} {cfg.study_name} trial {trial.number}"
    try:
        res = finetune(ft, store=store, progress=False, command=command, on_eval=report)
    except optuna.TrialPruned as e:
        discard_dir(ft.output)
        run_id = _run_of(store, command)
        if run_id:
            store.prune_run(run_id, str(e))
        trial.set_user_attr("run_id", run_id)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except Diverged as e:  # too high a learning rate is a result of the search, not a stop
        discard_dir(ft.output)
        trial.set_user_attr("run_id", _run_of(store, command))
        trial.set_user_attr("error", str(e))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    except BaseException:  # bad data, an interrupt: not left RUNNING in the study, then raised
        discard_dir(ft.output)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    trial.set_user_attr("run_id", res.run_id)
    trial.set_user_attr("artifact", str(res.artifact.path))
    trial.set_user_attr("config", ft.model_dump(mode="json"))
    value = res.metrics.get("dev_accuracy")
    if value is None:
        value = -res.metrics["dev_loss"]
    prior = _best(study)
    study.tell(trial, value)
    if cfg.keep_all:
        return
    if prior is None or value > prior.value:
        if prior is not None:
            discard_dir(prior.user_attrs.get("artifact"))
    else:
        discard_dir(ft.output)


def _run_of(store, command: str) -> str | None:
    """The store's run of a trial that ended without a result (the store marked it failed; a
    pruned one is then re-marked `pruned`)."""
    runs = [r for r in store.runs() if r["command"] == command]
    return max(runs, key=lambda r: r["started"])["id"] if runs else None


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return max(done, key=lambda t: t.value) if done else None


def _result(study: optuna.Study, cfg: SearchConfig, elapsed: float, stopped: str) -> SearchResult:
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    t0 = min(starts) if starts else None
    trials = [TrialRecord(number=t.number, state=t.state.name, value=t.value,
                          seconds=t.duration.total_seconds() if t.duration else None,
                          run_id=t.user_attrs.get("run_id"), params=t.params, error=t.user_attrs.get("error"),
                          ended_s=(t.datetime_complete - t0).total_seconds() if t.datetime_complete else None,
                          last_reported=t.intermediate_values[max(t.intermediate_values)]
                          if t.intermediate_values else None)
              for t in study.trials]
    best = _best(study)
    return SearchResult(best_value=best.value if best else None,
                        best_config=best.user_attrs.get("config") if best else None,
                        best_artifact=best.user_attrs.get("artifact") if best else None,
                        trials=trials, pruned=sum(t.state == "PRUNED" for t in trials),
                        elapsed_seconds=round(elapsed, 3), stopped=stopped,
                        trial_seconds=round(sum(t.seconds or 0.0 for t in trials), 3))
