"""Scale sweeps: a grid of model sizes N x token budgets D trained from scratch on one source, each
run in its own process (runs in parallel on the local cores), results cached by content hash so
an interrupted sweep resumes and a finished run is never repeated.

Files under $SUPREMUM_HOME/scale/<name>/: `data/` (the token streams as .npy), `runs/<hash>/
result.json` (one per finished run), `analysis.json` and `plots/` (after the fit). Every run and
the fit are rows in the run store (kinds `scale-run` and `scale`).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.config import Seeds
from supremum.errors import UserError
from supremum.fsutil import write_bytes, write_json
from supremum.hashing import content_hash
from supremum.jobs.cells import run_as_completed
from supremum.jobs.executor import runner, slots
from supremum.limit.sources import Source, describe, parse_source
from supremum.limit.train import LADDER, Shape
from supremum.store import Store

RULE_VERSION = 1  # bump when the training rule in train.py changes: cached runs then no longer match


class ScaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="markov:order=2,vocab=16,seed=0 | regime:regimes=4,switch=0.02 | "
                        "text:path=FILE,level=char | a .txt path")
    name: str | None = Field(None, description="sweep name (default: derived from the source)")
    sizes: list[str] | None = Field(None, description="model shapes like d64L3 (default: planned from the "
                                    f"ladder {' '.join(s.label() for s in LADDER)})")
    tokens: list[int] | None = Field(None, description="token budgets D (default: planned, doubling from "
                                     "64 steps' worth)")
    seeds: Seeds = Field(default_factory=lambda: [0], description="one run per seed per (N, D)")
    ctx: int = Field(64, ge=8, description="context length of training and evaluation windows")
    batch_tokens: int = Field(2048, ge=64, description="tokens per optimizer step")
    eval_tokens: int = Field(65536, ge=1024, description="held-out tokens the loss is measured on")
    jobs: int | None = Field(None, ge=1, description="runs in parallel (default: one per core, or per cluster "
                             "CPU with the ray executor)")
    threads: int | None = Field(None, ge=1, description="torch threads per run (default: cores / jobs locally, "
                                "1 on Ray)")
    nproc: int = Field(1, ge=1, description="data-parallel processes per run (torchrun; gloo on CPU, NCCL on "
                       "GPU): each step's windows split over them; threads are per process")
    executor: Literal["local", "ray"] = Field("local", description="where runs execute: local processes, or a Ray "
                                              "cluster ($RAY_ADDRESS; a local instance when unset)")
    budget_minutes: float | None = Field(None, gt=0, description="plan sizes and budgets to fit this time "
                                         "(used when sizes/tokens are not given)")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the confidence intervals")
    holdout: float = Field(0.2, ge=0, lt=0.5, description="share of the largest-compute runs held out to "
                           "check the fit's predictions")
    plateau: float = Field(0.05, ge=0, lt=1, description="runs whose loss is still within this share of the "
                           "unigram entropy (a model that learned only token frequencies) are left out of the "
                           "fit and listed: the power law does not describe the plateau before learning starts")
    budget_flops: float | None = Field(None, gt=0, description="compute budget to answer the compute-optimal "
                                       "N and D for (default: 10x the largest run)")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v):
        if v is not None:
            for s in v:
                parse_shape(s)
        return v


def parse_shape(label: str) -> Shape:
    import re

    m = re.fullmatch(r"d(\d+)L(\d+)", label)
    if not m or int(m[1]) % 8 or int(m[2]) < 1:
        raise UserError(f"model shape '{label}' is not valid", "write dWIDTHLDEPTH with width a multiple of 8, "
                        "e.g. d64L3")
    return Shape(int(m[1]), int(m[2]))


def sweep_dir(cfg: ScaleConfig, store: Store) -> Path:
    name = cfg.name or "".join(c if c.isalnum() or c in "-_=." else "-" for c in cfg.source)[:80]
    return store.root / "scale" / name


# --- data -----------------------------------------------------------------------------------

def prepare_data(src: Source, cfg: ScaleConfig, max_tokens: int, root: Path) -> dict:
    """The training stream (`max_tokens` + 1 tokens for synthetic sources; every run draws its
    windows from all of it) and the held-out stream, saved as .npy; the unigram entropy of the
    training stream and, where the source knows it, the Bayes-optimal loss on the held-out windows."""
    d = root / "data"
    desc = describe(src)
    if desc["kind"] == "text":
        train, held = src.split()
        held = held[: cfg.eval_tokens + 1]
    else:
        # Separate seeds: the held-out stream is independent of training.
        train = src.sample(max_tokens + 1, seed=src.seed * 1000 + 1)
        held = src.sample(cfg.eval_tokens + 1, seed=src.seed * 1000 + 2)
    _save_npy(d / "train.npy", train)
    _save_npy(d / "heldout.npy", held)
    counts = np.bincount(train, minlength=src.vocab_size)
    p = counts[counts > 0] / counts.sum()
    info = {**_cell_info(src), "kind": desc["kind"], "train_tokens": int(len(train)),
            "heldout_tokens": int(len(held)), "unigram_entropy": float(-(p * np.log(p)).sum())}
    h = src.entropy_rate()
    if h is not None:
        info["entropy_rate"] = h
        info["bayes_heldout"] = _bayes_heldout(src, held, cfg.ctx)
    return info


def _cell_info(src: Source) -> dict:
    """What every run's identity needs from the source."""
    return {"source": describe(src), "vocab": src.vocab_size, "skip": src.context_needed}


def _save_npy(path: Path, arr: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.int64), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def _bayes_heldout(src: Source, held: np.ndarray, ctx: int) -> dict:
    """Mean and standard error of the source's optimal loss on exactly the targets the model is
    scored on (windows of ctx + 1 tokens, targets with at least `context_needed` tokens of context)."""
    n = (len(held) - 1) // ctx
    losses = np.concatenate([src.token_losses(held[i * ctx:(i + 1) * ctx + 1]) for i in range(n)])
    return {"mean": float(losses.mean()), "se": float(losses.std(ddof=1) / math.sqrt(len(losses))),
            "targets": int(len(losses))}


# --- planning -------------------------------------------------------------------------------

def probe_speed(shapes: list[Shape], vocab: int, ctx: int, batch_tokens: int, threads: int) -> dict[str, float]:
    """Seconds per training token of each shape: 3 timed steps after one warm-up step."""
    import torch

    from supremum.limit.train import build_model, optimizer, peak_lr, train_step

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    out = {}
    try:
        for s in shapes:
            m = build_model(s, vocab, ctx, 0)
            opt = optimizer(m, peak_lr(s))
            w = torch.randint(0, vocab, (max(1, batch_tokens // ctx), ctx + 1))
            train_step(m, opt, w)  # warm-up
            t0 = time.perf_counter()
            for _ in range(3):
                train_step(m, opt, w)
            out[s.label()] = (time.perf_counter() - t0) / 3 / w[:, 1:].numel()
    finally:
        torch.set_num_threads(old)
    return out


START_SECONDS = 6.0  # per run: process start and imports, plus held-out evaluations (measured ~4-6 s)
# Parallel runs share memory bandwidth: on the Markov benchmark (2 jobs, 2 cores) d48L3 and d64L3
# ran 1.00-1.04x slower than the probe's single-run rate; 1.15 leaves a margin.
CONTENTION = 1.15


def plan(cfg: ScaleConfig, vocab: int, jobs: int, threads: int) -> tuple[list[Shape], list[int], float | None]:
    """Sizes and budgets: as given, or the broadest grid (most runs, then largest compute) that the
    probe says fits in budget_minutes."""
    d_min = 64 * cfg.batch_tokens
    if cfg.sizes and cfg.tokens:
        return [parse_shape(s) for s in cfg.sizes], sorted(cfg.tokens), None
    if cfg.budget_minutes is None:
        raise UserError("a sweep needs sizes and tokens, or --budget-minutes to plan them",
                        "e.g. --budget-minutes 10")
    shapes = [parse_shape(s) for s in cfg.sizes] if cfg.sizes else LADDER
    speed = probe_speed(shapes, vocab, cfg.ctx, cfg.batch_tokens, threads)
    best = None
    for k in [len(shapes)] if cfg.sizes else range(2, len(shapes) + 1):
        for m in range(3, 11):
            levels = sorted(cfg.tokens) if cfg.tokens else [d_min * 2 ** i for i in range(m)]
            runs = k * len(levels) * len(cfg.seeds)
            est = (sum(speed[s.label()] for s in shapes[:k]) * sum(levels) * CONTENTION * len(cfg.seeds)
                   + START_SECONDS * runs) / jobs
            if est <= cfg.budget_minutes * 60:
                key = (runs, shapes[k - 1].d * levels[-1])
                if best is None or key > best[0]:
                    best = (key, shapes[:k], levels, est)
            if cfg.tokens:
                break
    if best is None:
        raise UserError(f"no grid of at least 2 sizes x 3 budgets fits in {cfg.budget_minutes} minutes here",
                        "raise --budget-minutes or lower --batch-tokens")
    return best[1], best[2], best[3]


# --- running --------------------------------------------------------------------------------

def cells(cfg: ScaleConfig, info: dict, shapes: list[Shape], levels: list[int]) -> list[dict]:
    out = []
    for s in shapes:
        for d in levels:
            for seed in cfg.seeds:
                spec = {"rule": RULE_VERSION, "source": info["source"], "d": s.d, "layers": s.layers, "tokens": d,
                        "ctx": cfg.ctx, "batch_tokens": cfg.batch_tokens, "seed": seed,
                        "eval_tokens": cfg.eval_tokens, "skip": info["skip"], "vocab": info["vocab"]}
                if cfg.nproc > 1:  # rounding differs across process counts: their own runs (default: old hashes)
                    spec["nproc"] = cfg.nproc
                out.append({**spec, "hash": content_hash(spec, length=12)})
    return out


def dry_run(cfg: ScaleConfig, store: Store | None = None) -> dict:
    """The plan and which runs are done, without training (the probe still times a few steps)."""
    store = store or Store()
    src, jobs, threads, shapes, levels, est = _planned(cfg)
    info = _cell_info(src)
    root = sweep_dir(cfg, store)
    rows = [{"shape": f"d{c['d']}L{c['layers']}", "tokens": c["tokens"], "seed": c["seed"], "hash": c["hash"],
             "status": "done" if (root / "runs" / c["hash"] / "result.json").exists() else "to run"}
            for c in cells(cfg, info, shapes, levels)]
    return {"source": info["source"], "entropy_rate": src.entropy_rate(), "jobs": jobs, "estimated_seconds": est,
            "runs": rows, "dir": str(root)}


def run_sweep(cfg: ScaleConfig, store: Store | None = None, on_event=None) -> dict:
    store = store or Store()
    say = on_event or (lambda m: None)
    src, jobs, threads, shapes, levels, est = _planned(cfg)
    root = sweep_dir(cfg, store)
    say(f"plan: {len(shapes)} sizes ({', '.join(s.label() for s in shapes)}) x {len(levels)} budgets "
        f"({', '.join(f'{x:,}' for x in levels)} tokens) x {len(cfg.seeds)} seed(s)"
        + (f", estimated {est / 60:.1f} min on {jobs} processes" if est else ""))
    info = prepare_data(src, cfg, max(levels), root)
    todo = cells(cfg, info, shapes, levels)
    results = _execute(todo, root, jobs, threads, store, say, runner(cfg.executor))
    from supremum.limit.analysis import analyze

    analysis = analyze(results, info, cfg)
    analysis["plan"] = {"sizes": [s.label() for s in shapes], "tokens": levels, "seeds": cfg.seeds,
                        "jobs": jobs, "threads_per_run": threads, "estimated_seconds": est}
    from supremum.limit.plots import sweep_plots

    analysis["plots"] = [str(p) for p in sweep_plots(analysis, root / "plots")]
    write_json(root / "analysis.json", analysis)
    _record(store, cfg, analysis)
    return analysis


def _planned(cfg: ScaleConfig):
    """(source, runs at once, threads per run, shapes, token budgets, estimated seconds or None)."""
    src = parse_source(cfg.source)
    jobs, threads = _parallelism(cfg)
    return (src, jobs, threads, *plan(cfg, src.vocab_size, jobs, threads))


def _parallelism(cfg: ScaleConfig) -> tuple[int, int]:
    """(runs at once, torch threads per process of a run)."""
    if (cfg.batch_tokens // cfg.ctx) % cfg.nproc:
        raise UserError(f"nproc={cfg.nproc} must divide the {cfg.batch_tokens // cfg.ctx} windows of a step "
                        "(batch_tokens / ctx)", "change --batch-tokens or nproc")
    if cfg.executor == "ray":
        threads = cfg.threads or 1
        return cfg.jobs or slots("ray", threads * cfg.nproc), threads
    cores = os.cpu_count() or 1
    jobs = cfg.jobs or max(1, cores // cfg.nproc)
    return jobs, cfg.threads or max(1, cores // (jobs * cfg.nproc))


def _execute(todo: list[dict], root: Path, jobs: int, threads: int, store: Store, say, run) -> list[dict]:
    # Largest first: the long runs start early, so the pool finishes together.
    cached, finished = run_as_completed(todo, lambda c: root / "runs" / c["hash"] / "result.json",
                                        lambda c: _run_one(c, root, threads, store, run), jobs,
                                        first=lambda c: -(c["d"] ** 2 * c["layers"] * c["tokens"]))
    done = [{**c, **r, "cached": True} for c, r in cached]
    n_pending = len(todo) - len(done)
    if done:
        say(f"{len(done)} of {len(todo)} runs already done; running {n_pending}")
    failures = []
    for i, (c, fut) in enumerate(finished, 1):
        try:
            r = fut.result()
            done.append({**c, **r, "cached": False})
            say(f"[{i}/{n_pending}] d{c['d']}L{c['layers']} D={c['tokens']:,}: loss {r['loss']:.4f} "
                f"({r['seconds']:.0f} s)")
        except Exception as e:  # one failed run must not lose the others
            failures.append(f"d{c['d']}L{c['layers']} D={c['tokens']}: {e}")
            say(f"[{i}/{n_pending}] d{c['d']}L{c['layers']} D={c['tokens']:,} failed: {e}")
    if failures:
        raise UserError(f"{len(failures)} sweep run(s) failed, first: {failures[0]}",
                        "the others are saved; re-run the same command to retry only these")
    return done


def _run_one(c: dict, root: Path, threads: int, store: Store, run) -> dict:
    from supremum.artifact import new_id
    from supremum.machine import fingerprint

    spec = {**c, "threads": threads, "nproc": c.get("nproc", 1), "train": str(root / "data" / "train.npy"),
            "heldout": str(root / "data" / "heldout.npy")}
    run_id = new_id()
    # describe=str: the worker's last line already says what failed (a diverged run's step and lr)
    with store.run(run_id, "scale-run", f"scale {root.name} d{c['d']}L{c['layers']} D={c['tokens']}", c,
                   fingerprint(), describe=str) as row:
        res = json.loads(run("supremum.limit.worker", spec, threads * spec["nproc"]).strip().splitlines()[-1])
        write_json(root / "runs" / c["hash"] / "result.json", res)
        row.finish({k: v for k, v in res.items() if k != "curve"})
    return res


def _record(store: Store, cfg: ScaleConfig, analysis: dict) -> None:
    from supremum.artifact import new_id
    from supremum.machine import fingerprint

    run_id = new_id()
    with store.run(run_id, "scale", f"scale {cfg.source}", cfg.model_dump(mode="json"), fingerprint()) as run:
        run.finish(analysis)
    analysis["run_id"] = run_id
