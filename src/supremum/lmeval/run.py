"""`supremum lm-eval`: lm-eval tasks on a causal LM through `lm_eval.simple_evaluate`, each task
(or group) stored as one run of kind "lm-eval" so `frontier` and `pick` list it.

The run's metrics: lm-eval's own result block for the task (every metric and its stderr, per
filter), plus the frontier's names for the usual ones: `accuracy` = acc, `acc_norm`, and
`exact_match` (the first filter lm-eval lists, e.g. gsm8k's strict-match), all higher-is-better
fractions; `data` = "lm-eval:<task>" and a `protocol` (lm-eval version, task version, shots,
examples scored) that keeps runs measured differently (another --limit or --num-fewshot) apart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from supremum.errors import UserError


def _names(v: Any) -> Any:
    """`a,b` (the command line's form) to ["a", "b"]."""
    return [t.strip() for t in v.split(",") if t.strip()] if isinstance(v, str) else v


class LmEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="causal-LM artifact (directory or id; a GGUF export runs in llama.cpp), or a "
                       "base model: alias (tiny-llama, smollm2-135m), model directory, .gguf file")
    tasks: Annotated[list[str], BeforeValidator(_names)] = Field(
        min_length=1, description="lm-eval task or group names (comma-separated on the command line)")
    include_path: str | None = Field(None, description="folder of your own task YAML files (e.g. over local "
                                     "JSON: dataset_path: json, dataset_kwargs.data_files)")
    builtin_tasks: bool = Field(True, description="also index lm-eval's ~14,000 built-in task configs "
                                "(--no-builtin-tasks: only --include-path, a faster start)")
    limit: int | None = Field(None, ge=1, description="score only the first N examples of each task")
    num_fewshot: int | None = Field(None, ge=0, description="in-context examples (default: the task's own)")
    batch_size: int = Field(8, ge=1, description="sequences per forward pass when scoring")
    max_gen_toks: int = Field(256, ge=1, description="new tokens at most for generate_until tasks "
                              "(a task's own max_gen_toks wins)")
    backend: Literal["pytorch", "llamacpp"] = Field("pytorch", description="for a base model: pytorch, or "
                                                    "llamacpp to run its GGUF file (artifacts use their own)")


def check_tasks(cfg: LmEvalConfig):
    """lm-eval's TaskManager over cfg.include_path; UserError for a missing folder or an unknown task
    (before any model is loaded), or when lm-eval is not installed."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("supremum lm-eval needs lm-evaluation-harness", "pip install 'supremum[lmeval]'") from None

    if cfg.include_path is not None and not Path(cfg.include_path).is_dir():
        raise UserError(f"--include-path {cfg.include_path}: no such directory",
                        "give the folder that holds your task YAML files")
    manager = TaskManager(include_path=cfg.include_path, include_defaults=cfg.builtin_tasks)
    for name in cfg.tasks:
        if not manager.match_tasks([name]):
            where = f" in {cfg.include_path}" if cfg.include_path else ""
            raise UserError(f"unknown lm-eval task '{name}'{where}",
                            "see `lm_eval ls tasks`; for your own task pass --include-path DIR holding its YAML")
    return manager


def lm_eval(cfg: LmEvalConfig, *, store=None, command: str = "") -> dict:
    """Run each of cfg.tasks on cfg.model; one store run per task. Returns {"model", "tasks":
    {task: the run's metrics}}. Raises UserError: unknown task, missing include path, a model
    that is not a causal LM (classifier artifact, encoder)."""
    import lm_eval as harness

    from supremum.artifact import new_id
    from supremum.evaluate.causal import load_causal_lm
    from supremum.lmeval import gitinfo
    from supremum.lmeval.adapter import SupremumLM
    from supremum.machine import fingerprint
    from supremum.store import Store

    manager = check_tasks(cfg)
    gitinfo.install()
    store = store or Store()
    model, tok, art = load_causal_lm(cfg.model, cfg.backend)
    lm = SupremumLM(artifact=cfg.model, model=model, tokenizer=tok, loaded_artifact=art,
                    batch_size=cfg.batch_size, max_gen_toks=cfg.max_gen_toks)
    out = {"model": cfg.model, "tasks": {}}
    for task in cfg.tasks:
        one = cfg.model_copy(update={"tasks": [task]})
        with store.run(new_id(), "lm-eval", command, one.model_dump(mode="json"), fingerprint(),
                       parents=[art.id] if art else None) as run:
            t0 = time.perf_counter()
            res = harness.simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=cfg.limit,
                                          num_fewshot=cfg.num_fewshot, log_samples=False)
            metrics = run_metrics(cfg, task, res, model, art, harness.__version__)
            metrics["eval_seconds"] = time.perf_counter() - t0
            run.finish(metrics, art)
        out["tasks"][task] = metrics
    return out


def frontier_metrics(block: dict) -> dict:
    """lm-eval's "metric,filter" keys to the frontier's names (first filter listed wins)."""
    out = {}
    for key, value in block.items():
        name = key.split(",")[0]
        target = {"acc": "accuracy", "acc_norm": "acc_norm", "exact_match": "exact_match"}.get(name)
        if target and "," in key and target not in out and isinstance(value, int | float):
            out[target] = float(value)
    return out


def run_metrics(cfg: LmEvalConfig, task: str, res: dict, model, art, version: str) -> dict:
    """What the store row holds (read by `supremum.frontier.variants`)."""
    from supremum.evaluate.speed import param_counts, peak_rss_mb
    from supremum.machine import fingerprint

    block = res["results"].get(task) or res.get("groups", {}).get(task) or {}
    task_cfg = (res.get("configs") or {}).get(task) or {}
    split = task_cfg.get("test_split") or task_cfg.get("validation_split") or "group"
    samples = (res.get("n-samples") or {}).get(task) or {}
    shots = (res.get("n-shot") or {}).get(task)
    examples = samples.get("effective")
    jsonable = lambda x: json.loads(json.dumps(x, default=str))  # noqa: E731 - configs may hold callables
    who = ({"artifact": art.id, "lineage": art.lineage} if art is not None
           else {"model": cfg.model, "lineage": f"base ({cfg.backend})"})
    return {**who, "backend": art.manifest.backend if art is not None else cfg.backend,
            "task": "lm-eval", "data": f"lm-eval:{task}", "split": split, **frontier_metrics(block),
            "examples": examples,
            "protocol": f"lm-eval {version}, task v{(res.get('versions') or {}).get(task)}, {shots}-shot, "
                        f"{examples} examples",
            "lm_eval": jsonable({"task": task, "results": block, "n_shot": shots, "n_samples": samples,
                                 "higher_is_better": (res.get("higher_is_better") or {}).get(task),
                                 "limit": cfg.limit, "config": task_cfg}),
            "cost": {**param_counts(model), "peak_rss_mb": peak_rss_mb()},
            "size_on_disk_mb": art.size_mb if art is not None else None,
            "machine": fingerprint()}
