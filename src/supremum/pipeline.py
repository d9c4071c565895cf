"""Pipelines: one recipe declares fine-tune and compression stages; `supremum run` executes them
in dependency order, evaluates every artifact, and skips what is already done.

A stage's identity is a content hash of its own config and its parent's hash, so re-running after
a crash, or after adding one stage, only does the new work. A failed stage skips its dependents
and nothing else.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from supremum.artifact import Artifact, open_artifact
from supremum.config import DataConfig, ModelSpec, TrainConfig, identity, named
from supremum.errors import UserError
from supremum.hashing import content_hash, drop_unset
from supremum.store import Store
from supremum.tracking import TrackingConfig


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str = Field(description="stage name, unique in the recipe")
    from_: str | None = Field(None, alias="from", description="the stage whose artifact this one compresses")
    finetune: dict | None = Field(None, description="method: and train: overrides of a fine-tune")
    compress: dict | None = Field(None, description="method: and the method's options")

    @field_validator("finetune")
    @classmethod
    def _method_shorthand(cls, v: dict | None) -> dict | None:
        # `method: lora` is `method: {name: lora}`: one spelling, so one stage hash
        return {**v, "method": named(v["method"])} if v and "method" in v else v

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.finetune is None) == (self.compress is None):
            raise ValueError(f"stage '{self.id}' needs exactly one of finetune or compress")
        if self.compress is not None and not self.from_:
            raise ValueError(f"compress stage '{self.id}' needs from: <stage>")
        if self.finetune is not None and self.from_:
            raise ValueError(f"fine-tune stage '{self.id}' starts from the model, not from a stage")
        return self


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    splits: list[str] = Field(default_factory=lambda: ["dev"], description="splits evaluated")
    speed: bool = Field(True, description="measure latency and memory too")
    repeats: int = Field(30, ge=1, description="timed calls at batch 1")


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="pipeline name (its artifacts go under $SUPREMUM_HOME/pipelines/<name>)")
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    stages: list[StageSpec]
    evaluate: EvalSpec = Field(default_factory=EvalSpec)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig,
                                     description="mirror training and evaluation metrics to trackers")
    executor: Literal["local", "ray"] = Field("local", description="where stages run with jobs > 1 or ray: local "
                                              "processes or a Ray cluster ($RAY_ADDRESS)")
    jobs: int = Field(1, ge=1, description="stages at once: independent stages (e.g. compression variants of one "
                      "parent) run in parallel worker processes; 1 = one after another in this process")
    cpus_per_stage: int = Field(1, ge=1, description="CPUs (torch threads) per stage when jobs > 1 or on Ray")

    @model_validator(mode="after")
    def _graph(self):
        ids = [s.id for s in self.stages]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate stage ids {sorted(dup)}")
        for s in self.stages:
            if s.from_ and s.from_ not in ids:
                raise ValueError(f"stage '{s.id}' comes from unknown stage '{s.from_}'")
        return self


def order(cfg: PipelineConfig) -> list[StageSpec]:
    """Parents before children; a cycle is impossible since from: names must exist and
    fine-tunes have no parent, but a compress loop (a from b, b from a) is caught here."""
    by_id, done, out = {s.id: s for s in cfg.stages}, set(), []

    def visit(s: StageSpec, path: tuple) -> None:
        if s.id in done:
            return
        if s.id in path:
            raise UserError(f"stages form a cycle: {' -> '.join(path + (s.id,))}", "fix the from: fields")
        if s.from_:
            visit(by_id[s.from_], path + (s.id,))
        done.add(s.id)
        out.append(s)

    for s in cfg.stages:
        visit(s, ())
    return out


#: method options whose default changed after pipelines were cached, with (old, new) default. A
#: stage is hashed as its recipe writes it, so without this a stage leaving the option unset would
#: be served the artifact trained under the old default. In the identity an unset option is
#: written as its new default and one holding the old default is left out (the unset stage's
#: identity before the change).
CHANGED_DEFAULTS = {"lora": {"dropout": (0.1, 0.0)}}


def _stage_identity(s: StageSpec) -> dict[str, Any]:
    stage = s.model_dump(by_alias=True, exclude={"id"})
    method = (stage.get("finetune") or {}).get("method")
    changed = CHANGED_DEFAULTS.get(method.get("name"), {}) if isinstance(method, dict) else {}
    if changed:
        kept = {k: v for k, v in method.items() if not (k in changed and v == changed[k][0])}
        stage["finetune"] = {**stage["finetune"], "method": {
            **kept, **{k: new for k, (_, new) in changed.items() if k not in method}}}
    return {"stage": stage}


def stage_hashes(cfg: PipelineConfig) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for s in order(cfg):
        own: dict[str, Any] = _stage_identity(s)
        if s.finetune is not None:
            # drop_empty and delimiter were added later: unset leaves the hashes of older recipes
            data = drop_unset(identity(cfg.data), {"drop_empty": False, "delimiter": None})
            own.update(model=cfg.model.model_dump(), data=data, train=identity(cfg.train))
            # tracking mirrors metrics; it does not change the artifact, so it is not identity
        else:
            own["parent"] = hashes[s.from_]
        hashes[s.id] = content_hash(own, length=12)
    return hashes


def stage_dir(root: Path, cfg: PipelineConfig, stage: StageSpec, h: str) -> Path:
    return root / "pipelines" / cfg.name / f"{stage.id}-{h}"


def plan(cfg: PipelineConfig, store: Store | None = None) -> list[dict]:
    """One row per stage, parents first: kind, method, hash, output directory and whether it is
    done. Every stage's options are validated first (`check`), so neither a dry run nor a run
    starts on a recipe with a bad option in any stage."""
    check(cfg)
    store = store or Store()
    hashes = stage_hashes(cfg)
    rows = []
    for s in order(cfg):
        out = stage_dir(store.root, cfg, s, hashes[s.id])
        rows.append({"stage": s.id, "kind": "finetune" if s.finetune is not None else "compress",
                     "from": s.from_, "method": (s.finetune or s.compress or {}).get("method"),
                     "hash": hashes[s.id], "output": str(out),
                     "status": "done" if (out / "manifest.json").exists() else "to run"})
    return rows


def stage_config(cfg: PipelineConfig, s: StageSpec, out: Path | None = None):
    """The typed config of stage `s`: a FinetuneConfig (the recipe's model, data and train with the
    stage's overrides) or the compression method's config. UserError (one line naming the stage's
    number, kind and id, and the bad key) on any invalid option."""
    source = stage_name(cfg, s)
    if s.finetune is not None:
        from supremum.recipe import build
        from supremum.train.config import FinetuneConfig

        ft = dict(s.finetune)
        raw = {"model": cfg.model.model_dump(), "data": cfg.data.model_dump(),
               "train": {**cfg.train.model_dump(exclude_unset=True), **ft.pop("train", {})},
               "method": ft.pop("method", {"name": "full"}), "output": str(out) if out else None,
               "tracking": cfg.tracking.model_dump(), **ft}
        return build(FinetuneConfig, raw, source)
    from supremum.compress import compressors, make_config

    opts = dict(s.compress)
    method = opts.pop("method", None)
    if not method:
        raise UserError(f"{source}: compress needs method:", "e.g. compress: {method: int8-dynamic}")
    if method not in compressors():
        raise UserError(f"{source}: unknown compression method '{method}'",
                        f"use one of: {', '.join(compressors())}")
    return make_config(method, opts, source)


def stage_name(cfg: PipelineConfig, s: StageSpec) -> str:
    """'stage 7 (compress q4)': its place in the recipe (from 1), kind and id, for messages."""
    kind = "finetune" if s.finetune is not None else "compress"
    return f"stage {cfg.stages.index(s) + 1} ({kind} {s.id})"


def check(cfg: PipelineConfig) -> None:
    """Validate every stage's options through its typed config, in recipe order, before anything
    runs: a typo in the last stage is found before the first one trains (UserError, one line)."""
    for s in cfg.stages:
        stage_config(cfg, s)


def run_stage(cfg: PipelineConfig, s: StageSpec, parent: Artifact | None, out: Path, store: Store) -> Artifact:
    """Make stage `s`'s artifact in `out` (from `parent`'s for a compress stage), in this process."""
    stage_cfg = stage_config(cfg, s, out)
    if s.finetune is not None:
        from supremum.train.finetune import finetune

        # resume=True: a stage killed mid-training continues from its checkpoint (the checkpoint's
        # identity is the stage's full config, so nothing else can be resumed by mistake).
        return finetune(stage_cfg, store=store, progress=False, resume=True).artifact
    from supremum.compress import compress

    return compress(parent, stage_cfg, output=out, store=store, checkpoint_every=cfg.train.checkpoint_every,
                    resume=True)


def estimate_plan(cfg: PipelineConfig, rows: list[dict], store: Store, probe: bool = True) -> dict:
    """Run-time estimate of the stages still to run (see `supremum.estimate`); fills
    `estimate_s` in the rows."""
    from supremum.estimate import estimate

    todo = any(r["status"] == "to run" for r in rows)
    est = estimate(cfg, rows, store, probe=probe and todo)
    evals = est.get("per_evaluation", 0.0) * len(cfg.evaluate.splits)
    start = est["stages"].get("start-up", {}).get("seconds", 0.0)  # paid by the first stage run here
    for r in rows:
        if r["stage"] in est["stages"]:  # the stage and its evaluations
            r["estimate_s"] = round(est["stages"][r["stage"]]["seconds"] + evals + start, 1)
            start = 0.0
    return est


def run(cfg: PipelineConfig, store: Store | None = None, on_event=None) -> list[dict]:
    """Execute every stage not yet done, then evaluate; returns one summary row per stage.
    With jobs > 1 or the ray executor, the stages of each depth run at once, each in a worker
    process (local or on the cluster); otherwise one after another in this process."""
    from supremum.estimate import describe, duration

    store = store or Store()
    say = on_event or (lambda msg: None)
    rows, arts = plan(cfg, store), {}
    n_todo = sum(r["status"] == "to run" for r in rows)
    est = None
    if n_todo:
        est = estimate_plan(cfg, rows, store)
        say(f"{n_todo} stages to run: {describe(est)}")
    t0 = time.perf_counter()
    by_id = {s.id: s for s in cfg.stages}
    if cfg.jobs == 1 and cfg.executor == "local":
        for row in rows:
            _execute(cfg, row, by_id[row["stage"]], arts, store, say, _in_process)
    else:
        from supremum.jobs.executor import fan_out, runner

        worker = _in_worker(runner(cfg.executor))
        for wave in _waves(rows, by_id):
            fan_out(wave, lambda r: _execute(cfg, r, by_id[r["stage"]], arts, store, say, worker), cfg.jobs)
    if est is not None:  # the estimate held against the actual time, so a bad one is seen
        say(f"{describe(est)}, took {duration(time.perf_counter() - t0)}")
    return rows


def _waves(rows: list[dict], by_id: dict) -> list[list[dict]]:
    """Rows grouped by depth (a stage's parent is always in an earlier wave)."""
    depth: dict[str, int] = {}
    for r in rows:  # rows come parents first
        parent = by_id[r["stage"]].from_
        depth[r["stage"]] = depth[parent] + 1 if parent else 0
    return [[r for r in rows if depth[r["stage"]] == d] for d in sorted(set(depth.values()))]


def _execute(cfg: PipelineConfig, row: dict, s: StageSpec, arts: dict, store: Store, say, runner) -> None:
    out = Path(row["output"])
    if s.from_ and s.from_ not in arts:
        row.update(status="skipped", error=f"parent stage '{s.from_}' did not produce an artifact")
        return
    t0 = time.perf_counter()
    try:
        if row["status"] == "done":
            arts[s.id] = open_artifact(out)
            row["status"] = "cached"
            evaluated = None
        else:
            say(f"stage {s.id}: running {row['kind']} {row['method']}")
            arts[s.id], evaluated = runner(cfg, s, arts.get(s.from_), out, store, say)
            row["status"] = "finished"
    except (UserError, RuntimeError, ValueError) as e:
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
        say(f"stage {s.id}: failed: {e}")
    row["seconds"] = round(time.perf_counter() - t0, 2)
    if s.id in arts:
        row["artifact"] = arts[s.id].id
        try:
            row["evaluated"] = evaluated if evaluated is not None else evaluate_stage(cfg, arts[s.id], store, say)
        except RuntimeError as e:
            row.update(status="failed", error=str(e))
            say(f"stage {s.id}: {e}")


def _in_process(cfg: PipelineConfig, s: StageSpec, parent, out: Path, store: Store, say):
    return run_stage(cfg, s, parent, out, store), None


def _in_worker(run):
    """A stage and its evaluations in a worker process (`supremum.pipeline_worker`)."""
    from supremum.jobs.worker import WorkerFailed

    def stage(cfg: PipelineConfig, s: StageSpec, parent, out: Path, store: Store, say):
        spec = {"recipe": cfg.model_dump(mode="json", by_alias=True), "stage": s.id, "output": str(out),
                "parent": str(parent.path) if parent else None, "store": str(store.root),
                "threads": cfg.train.threads or cfg.cpus_per_stage}
        try:
            res = json.loads(run("supremum.pipeline_worker", spec, cfg.cpus_per_stage).strip().splitlines()[-1])
        except WorkerFailed as e:
            raise RuntimeError(str(e)) from None
        for split in res["evaluated"]:
            say(f"stage {s.id}: evaluated on {split}")
        return open_artifact(res["artifact"]), res["evaluated"]

    return stage


def evaluate_stage(cfg: PipelineConfig, art: Artifact, store: Store, say) -> list[str]:
    """Evaluate `art` on the recipe's splits not yet measured on this machine; the splits done now."""
    from supremum.config import EvalConfig
    from supremum.evaluate.stage import evaluate_in_subprocess
    from supremum.machine import fingerprint

    done = []
    for split in cfg.evaluate.splits:
        key = f"{Path(cfg.data.path).name}:{split}"
        m = art.metrics.get(key)
        here = m and m.get("machine", {}).get("cpu") == fingerprint()["cpu"]
        if here and ("cost" in m or not cfg.evaluate.speed):
            continue  # measured here already
        say(f"evaluating {art.id} on {split}")
        evaluate_in_subprocess(art, cfg.data, EvalConfig(split=split, speed=cfg.evaluate.speed,
                               repeats=cfg.evaluate.repeats), store, cfg.tracking)
        done.append(split)
    return done
