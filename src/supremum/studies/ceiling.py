"""How good can this model get on this task: the best found, the ceiling with its interval, and
what holds it there (`supremum ceiling`).

One call, one wall-clock budget, five measurements, each an ordinary, cached piece of the store:

1. the search (`studies.search`: Optuna TPE with successive-halving pruning), which starts with
   the user's own configuration ("now") so the two are measured the same way;
2. the best configuration re-run with several seeds (mean, s.d., Student-t interval; dev and the
   measured split);
3. its learning curve (nested subsets x the same seeds, `limit.curve`): the ceiling as labels
   grow without end, the accuracy at 2x and 10x the labels, the labels a target needs;
4. label noise by confident learning on k-fold out-of-fold probabilities (`studies.oof`): the
   error rate of each split and the most accuracy the test set can register;
5. the model axis, when a ladder of models is named: the best configuration on each.

Stages 2-5 are planned from the measured time of the best trial (its fine-tune seconds times the
stage's share of training work); a stage the rest of the budget cannot hold is not started, and
the verdict says so with its estimate. Cells are cached by config hash, the study by its SQLite
file, so a second call with the same output resumes without redoing finished work.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from supremum.config import Seeds
from supremum.errors import UserError
from supremum.studies import stages
from supremum.studies.search import SearchSpace
from supremum.studies.stages import Plan, output_dir
from supremum.train.config import FinetuneConfig

DEFAULT_FRACTIONS = [1 / 8, 1 / 4, 1 / 2, 1.0]


class CeilingConfig(BaseModel):
    """Everything `supremum ceiling` measures; `base` is the user's own configuration ("now")."""

    model_config = ConfigDict(extra="forbid")
    base: FinetuneConfig = Field(description="model, data and the user's training configuration")
    budget_minutes: float = Field(gt=0, description="wall-clock budget of the whole call")
    search_share: float = Field(0.5, gt=0, le=1, description="share of the budget the search may use")
    methods: list[str] = Field(default_factory=lambda: ["full", "lora"], min_length=1,
                               description="fine-tuning methods the search may choose")
    space: SearchSpace = Field(default_factory=SearchSpace)
    n_trials: int | None = Field(None, ge=1, description="at most this many search trials")
    seeds: Seeds | None = Field(None, description="seeds of the best configuration's re-run and of every "
                                    "learning-curve point (default: the base seed and the next two, so the "
                                    "best trial itself is re-run)")
    fractions: list[float] = Field(default_factory=lambda: list(DEFAULT_FRACTIONS),
                                   description="training-set shares of the learning curve (1.0 is the re-run)")
    min_steps: int = Field(60, ge=1, description="learning curve: optimizer steps at least per subset")
    folds: int = Field(5, ge=0, description="cross-validation folds for label noise (0: not measured)")
    split: str = Field("test", description="split the best configuration, the ceiling and label noise are "
                       "measured on (dev is used by the search)")
    target: float | None = Field(None, gt=0, lt=1, description="accuracy to ask the needed labels for")
    models: list[str] = Field(default_factory=list, description="model ladder: the best configuration on each")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples")
    output: str | None = Field(None, description="directory of the study, suspects and plots "
                               "(default: $SUPREMUM_HOME/ceiling/<model>-<data>)")
    seed: int = Field(0, description="sampler seed of the search")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < x <= 1 for x in v):
            raise ValueError("fractions must lie in (0, 1]")
        if len({*v, 1.0}) < 3:
            raise ValueError("the learning curve needs 3 distinct fractions (1.0 is added), e.g. 1/4,1/2,1")
        return sorted({*v, 1.0})

    @field_validator("folds")
    @classmethod
    def _folds(cls, v: int) -> int:
        if v == 1:
            raise ValueError("one fold leaves nothing to train on: give 2 or more, or 0 to skip label noise")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) < 2:
            raise ValueError("the best configuration's spread needs at least 2 distinct seeds, e.g. 0,1,2")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        from supremum.train.methods import METHODS

        unknown = [m for m in v if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {', '.join(sorted(METHODS))}")
        return v

    @model_validator(mode="after")
    def _runs(self):
        if self.seeds is None:
            s = self.base.train.seed
            self.seeds = [s, s + 1, s + 2]
        return self


def run_ceiling(cfg: CeilingConfig, store=None, on_event=None) -> dict:
    """Run every stage the budget holds; returns the verdict record (see `limit.verdict`).

    Raises UserError before any training when the budget cannot hold one search trial, or when
    the data has no labelled split `cfg.split`."""
    from supremum.data import say_once
    from supremum.store import Store
    store = store or Store()
    say = on_event or (lambda m: None)
    t0 = time.monotonic()
    out = output_dir(cfg, store)
    lm = stages.is_lm(cfg)
    with say_once():  # every stage loads the same data: its notes are said once
        split = stages.check_split(cfg, lm)  # bad data: one line, before any file is written
        return _recorded(cfg, store, out, t0, say, lm, split)


def _recorded(cfg: CeilingConfig, store, out: Path, t0: float, say, lm: bool, split: str) -> dict:
    from supremum.artifact import new_id
    from supremum.machine import fingerprint

    with store.run(new_id(), "ceiling", f"ceiling {out.name}", cfg.model_dump(mode="json"),
                   fingerprint()) as row:
        rec = _stages(cfg, store, out, t0, say, lm, split)
        row.finish(rec)
    return rec


def _as_trained(best: FinetuneConfig, artifact: str | None) -> FinetuneConfig:
    """The best trial's configuration with `train.precision` auto pinned to what that trial ran in:
    auto decides per run by a probe of the initial model, which differs by seed, and the seeds'
    re-run and the curve must all train as the trial that was chosen did."""
    if best.train.request != "auto" or not artifact:
        return best
    from supremum.artifact import open_artifact

    ran = ((open_artifact(artifact).metrics.get("training") or {}).get("precision") or {}).get("resolved")
    if ran not in ("fp32", "bf16", "fp16"):
        return best
    d = best.model_dump(mode="json")
    return FinetuneConfig.model_validate({**d, "train": {**d["train"], "precision": ran}})


def _stages(cfg: CeilingConfig, store, out: Path, t0: float, say, lm: bool, split: str) -> dict:
    from supremum.limit.verdict import verdict
    left = lambda: cfg.budget_minutes * 60 - (time.monotonic() - t0)  # noqa: E731
    say(f"search: {cfg.search_share * cfg.budget_minutes:.3g} of {cfg.budget_minutes:g} min")
    search = stages.search(cfg, store, out, cfg.budget_minutes * cfg.search_share)
    rec = {"kind": "ceiling", "model": cfg.base.model.name, "data": cfg.base.data.path, "split": split,
           "metric": "perplexity" if lm else "accuracy", "output": str(out), "search": search["record"],
           "now": search["now"], "search_best": search["best"] and {k: search["best"][k] for k in
                                                                   ("trial", "dev", "params")},
           "plans": [], "not_measured": {}}
    if search["best"] is None:
        raise UserError("no search trial finished (every one failed or diverged)",
                        f"see the trials' errors in {out / 'search'}; widen the learning-rate range or fix "
                        "the data")
    from supremum.limit.plots import search_history

    rec["search"]["plot"] = str(search_history(rec["search"]["trials"], out / "search_history.png", lm=lm))
    best_cfg = _as_trained(FinetuneConfig.model_validate(search["best"]["config"]), search["best"]["artifact"])
    trial_s = search["best"]["seconds"]
    curve = stages.CurveCells(best_cfg, cfg, split, store, lm)
    rec["n_eval"] = curve.n_eval
    rec["majority"] = curve.majority
    _stage(rec, "seeds", stages.plan_seeds(cfg, trial_s, curve), left, say,
           lambda: rec.update(best=stages.seeds(curve, search["best"], say)))
    _stage(rec, "curve", stages.plan_curve(cfg, curve, trial_s), left, say,
           lambda: rec.update(curve=stages.curve(curve, cfg, store, out, say)))
    if lm:
        rec["not_measured"]["label_noise"] = "label noise does not apply to a language model's next tokens"
    elif cfg.folds and not _beats_majority(rec):
        rec["not_measured"]["label_noise"] = (
            f"the best model ({100 * rec['best']['test']:.1f}%) does not beat the majority class "
            f"({100 * rec['majority']:.1f}%) on {split}: confident learning needs a model better than chance, or "
            "every label looks wrong")
    elif cfg.folds:
        _stage(rec, "label_noise", stages.plan_folds(cfg, trial_s), left, say,
               lambda: rec.update(label_noise=stages.label_noise(best_cfg, search["best"]["artifact"], cfg,
                                                                 split, out, store, say)))
    else:
        rec["not_measured"]["label_noise"] = "folds=0"
    if cfg.models:
        _stage(rec, "models", stages.plan_models(cfg, trial_s), left, say,
               lambda: rec.update(models=stages.models(best_cfg, cfg, split, store, lm, say, rec.get("best"))))
    else:
        rec["not_measured"]["models"] = ("no model ladder named (give --models a,b,c to measure accuracy "
                                         "against parameters)")
    if rec.get("best") and not lm:
        from supremum.frontier.pick import cheapest

        rec["cheapest_within_1pt"] = cheapest(rec["best"]["test"] - 0.01, data=cfg.base.data.path, split=split,
                                              store=store)
    rec["elapsed_seconds"] = round(time.monotonic() - t0, 1)
    rec["budget_seconds"] = cfg.budget_minutes * 60
    return verdict(rec, cfg)


def _beats_majority(rec: dict) -> bool:
    best = rec.get("best")
    return best is None or rec.get("majority") is None or best["test"] > rec["majority"]


def _stage(rec: dict, name: str, plan: Plan, left, say, run) -> None:
    """Run `run` if the budget left holds the plan; else record why the stage was not started. A
    UserError the stage raises is recorded as why it was not measured, and the study goes on."""
    rec["plans"].append(plan.model_dump())
    if plan.seconds > left():
        rec["not_measured"][name] = (f"needs about {plan.seconds / 60:.1f} min ({plan.runs:.1f} fine-tunes of the "
                                     f"best configuration) and {max(left(), 0) / 60:.1f} min of the budget were "
                                     "left")
        say(f"{name}: skipped, {rec['not_measured'][name]}")
        return
    say(f"{name}: about {plan.seconds / 60:.1f} min")
    try:
        run()
    except UserError as e:  # one stage's data problem (e.g. a class too rare to fold) keeps the others' results
        rec["not_measured"][name] = str(e)
        say(f"{name}: not measured, {rec['not_measured'][name]}")
