"""Benchmark: where the time of one training step goes (minilm-l6 on SST-2, batch 32).

Drives supremum's own step, `supremum.train.loop.optimizer_step`, on the model, data and
optimizer that a `supremum finetune` run builds (`finetune._prepare`, `optim.build_optimizer`,
dynamic padding and length-grouped batches from `batching.batch_order`), and marks the phases
of each step with `torch.profiler.record_function` ranges placed around supremum's real calls
(no copy of the step): the batch's collation and move to the device, the model's forward (hooks
on the model), the loss (from the forward's end to the start of backward), backward, gradient
clipping (`divergence.grad_norm`), the optimizer's step and zero_grad. The same boundaries are
timed with `time.perf_counter`; "rest" is the step's wall time minus the phases (Python between
them, `loss.item()`, the learning-rate update).

Method: per variant, W warm-up steps, then N timed steps without the profiler (the profiler adds
a few microseconds per op, which would inflate "rest"), reported as median and interquartile
range (q1, q3) per phase; then P more steps under `torch.profiler` for the top-10 ops by self
CPU time (per step). Each variant runs in its own subprocess, one after another.

    SUPREMUM_DATA=../shared/data python bench/profile_step.py            # all variants
    python bench/profile_step.py --variants lora-fp32,lora-nodropout-fp32 --steps 20
    python bench/profile_step.py --quick [--out x.json]   # smoke: tiny-bert, tiny data, 3 steps

Writes bench/results/profile_step.json (--quick: --out or a temp file). Exits 1 when a variant
failed (its error is kept in the results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402
from finetune_sst2 import LR, STEP  # noqa: E402  (the step the fine-tuning benchmark times)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "profile_step.json"
SIDE_BY_SIDE = RESULTS.with_name("profile_step_side_by_side.json")
PHASES = ("data", "forward", "loss", "backward", "clip", "optimizer", "zero_grad")
# method-precision[-option]: lora-nodropout is LoRA with lora dropout 0 (the default is 0.1)
VARIANTS = ["full-fp32", "lora-fp32", "lora-nodropout-fp32", "full-bf16", "lora-bf16", "lora-nodropout-bf16"]
QUICK_VARIANTS = ["full-fp32", "lora-bf16"]
METHODS = {"full": {"name": "full"}, "lora": {"name": "lora"}, "lora-nodropout": {"name": "lora", "dropout": 0.0}}


class Phases:
    """Per-step seconds of each phase; each phase is also a profiler range of the same name."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self._open: dict[str, tuple[float, object]] = {}

    def start(self, name: str) -> None:
        import torch

        rf = torch.profiler.record_function(name)
        rf.__enter__()
        self._open[name] = (time.perf_counter(), rf)

    def stop(self, name: str) -> None:
        if name not in self._open:  # e.g. the loss range when a forward ran outside the step
            return
        t0, rf = self._open.pop(name)
        rf.__exit__(None, None, None)
        step = self.steps[-1]
        step[name] = step.get(name, 0.0) + time.perf_counter() - t0

    @contextlib.contextmanager
    def span(self, name: str):
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def timed(self, name: str, fn):
        def wrapper(*args, **kwargs):
            with self.span(name):
                return fn(*args, **kwargs)

        return wrapper


@contextlib.contextmanager
def instrumented(model, opt, ph: Phases):
    """Ranges around supremum's calls inside `optimizer_step`, for as long as the context lasts."""
    import torch

    from supremum import device
    from supremum.train import loop

    real_iterate = loop.iterate

    def iterate(*args, **kwargs):
        it = real_iterate(*args, **kwargs)
        while True:
            with ph.span("data"):
                batch = next(it, None)
            if batch is None:
                return
            yield batch

    def forward_done(*_):
        ph.stop("forward")
        ph.start("loss")  # the loss ends where backward starts

    def backward(self, *args, **kwargs):
        ph.stop("loss")
        with ph.span("backward"):
            return real_backward(self, *args, **kwargs)

    real_backward = torch.Tensor.backward
    hooks = [model.register_forward_pre_hook(lambda *_: ph.start("forward")),
             model.register_forward_hook(forward_done)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(loop, "iterate", iterate))
        stack.enter_context(mock.patch.object(device, "to", ph.timed("data", device.to)))
        stack.enter_context(mock.patch.object(loop, "grad_norm", ph.timed("clip", loop.grad_norm)))
        stack.enter_context(mock.patch.object(torch.Tensor, "backward", backward))
        stack.enter_context(mock.patch.object(opt, "step", ph.timed("optimizer", opt.step)))
        stack.enter_context(mock.patch.object(opt, "zero_grad", ph.timed("zero_grad", opt.zero_grad)))
        try:
            yield
        finally:
            for h in hooks:
                h.remove()


def prepare(variant: str, args):
    """The model (method applied), its optimizer, the training split, pad id and config of the
    variant, built as `supremum finetune` builds them."""
    import torch

    from supremum import device
    from supremum.train import distributed
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import _prepare
    from supremum.train.optim import build_optimizer

    method, precision = variant.rsplit("-", 1)
    cfg = FinetuneConfig(
        model={"name": args.model}, data={"path": str(Path(os.environ["SUPREMUM_DATA"]) / "sst2")},
        method=METHODS[method],
        train={**STEP, "lr": LR[method.split("-")[0]], "seed": args.seed, "bf16": precision == "bf16",
               "threads": args.threads})
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    _, model, tok, _, train_split, _, _ = _prepare(cfg, distributed.current())
    model.to(device.resolve(cfg.train.device)).train()  # as loop.train does
    return model, build_optimizer(model, cfg.train), train_split, tok.pad_token_id, cfg


def batches(train_split, cfg, count: int) -> list[list[int]]:
    """The first `count` batches of the run's order (length-grouped, shuffled), across epochs."""
    from supremum.data.batching import batch_order

    lengths, out, epoch = [len(x) for x in train_split.ids], [], 0
    while len(out) < count:
        out += batch_order(lengths, cfg.train.batch_size, cfg.train.seed, epoch, cfg.train.group_by_length)
        epoch += 1
    return out[:count]


class Run:
    """One variant's model, optimizer and batch order; `step(i)` is one timed training step."""

    def __init__(self, variant: str, args, count: int) -> None:
        from supremum.train.loop import plan_steps
        from supremum.train.optim import warmup_steps

        self.model, self.opt, self.split, self.pad_id, self.cfg = prepare(variant, args)
        self.order = batches(self.split, self.cfg, count)
        self.total = plan_steps(len(self.split.ids), self.cfg.train)[1]
        self.warm = warmup_steps(self.cfg.train, self.total)
        self.ph = Phases()

    def step(self, i: int) -> None:
        from supremum.train.loop import optimizer_step
        from supremum.train.optim import lr_factor, set_lr

        train = self.cfg.train
        self.ph.steps.append({})
        cpu0 = time.process_time()  # CPU time of this process: less disturbed by other processes
        with self.ph.span("step"):
            set_lr(self.opt, train.lr, lr_factor(i, self.warm, self.total, train.scheduler))
            optimizer_step(self.model, self.opt, self.split, [self.order[i]], self.pad_id, train)
        self.ph.steps[-1]["cpu"] = time.process_time() - cpu0

    def record(self, first: int, last: int) -> dict:
        """Statistics over steps [first, last)."""
        import torch

        timed = self.ph.steps[first:last]
        for s in timed:
            s["rest"] = s["step"] - sum(s.get(p, 0.0) for p in PHASES)
        ids, bs = self.split.ids, self.cfg.train.batch_size
        widths = [max(len(ids[j]) for j in self.order[i]) * len(self.order[i]) for i in range(first, last)]
        real = [sum(len(ids[j]) for j in self.order[i]) for i in range(first, last)]
        wall = summary([s["step"] for s in timed])
        return {
            "wall_ms": wall, "cpu_ms": summary([s["cpu"] for s in timed]),
            "phases_ms": {p: summary([s.get(p, 0.0) for s in timed]) for p in (*PHASES, "rest")},
            "samples_per_s": round(bs / (wall["median"] / 1000), 1),
            "padding_share": round(1 - sum(real) / sum(widths), 4),
            "trainable_params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in self.model.parameters()),
            "torch_threads": torch.get_num_threads(),
        }


def one(variant: str, args) -> dict:
    """W warm-up steps, N timed steps, then P steps under the profiler for the op table."""
    import torch

    run = Run(variant, args, args.warmup + args.steps + args.profile_steps)
    first, last = args.warmup, args.warmup + args.steps
    with instrumented(run.model, run.opt, run.ph):
        for i in range(last):
            run.step(i)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for i in range(last, len(run.order)):
                run.step(i)
    return {**run.record(first, last), "top_ops": top_ops(prof, args.profile_steps)}


def side_by_side(variants: list[str], args) -> dict:
    """All variants in this one process, their steps interleaved (the order rotating each step),
    so a load that comes and goes on a shared machine falls on each alike; no op table."""
    runs = {v: Run(v, args, args.warmup + args.steps) for v in variants}
    for i in range(args.warmup + args.steps):
        for v in variants[i % len(variants):] + variants[: i % len(variants)]:
            with instrumented(runs[v].model, runs[v].opt, runs[v].ph):
                runs[v].step(i)
    res = {v: r.record(args.warmup, args.warmup + args.steps) for v, r in runs.items()}
    base = variants[0]
    ratios = {f"{v} / {base}": {k: round(res[v][k]["median"] / res[base][k]["median"], 3)
                                for k in ("wall_ms", "cpu_ms")} for v in variants[1:]}
    return {"results": res, "step_time_ratios": ratios}


def summary(values: list[float]) -> dict:
    """Median and quartiles, in milliseconds."""
    import numpy as np

    q1, med, q3 = np.percentile(np.asarray(values) * 1000, [25, 50, 75])
    return {"median": round(float(med), 3), "q1": round(float(q1), 3), "q3": round(float(q3), 3)}


def top_ops(prof, steps: int, k: int = 10) -> list[dict]:
    """The k ops with the most self CPU time, per step; our phase ranges are left out."""
    ours = {*PHASES, "step"}
    ops = [e for e in prof.key_averages() if e.key not in ours]
    total = sum(e.self_cpu_time_total for e in ops) or 1.0
    ops.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "self_cpu_ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 3),
             "calls_per_step": e.count / steps, "share": round(e.self_cpu_time_total / total, 4)}
            for e in ops[:k]]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--model", default="minilm-l6", help=argparse.SUPPRESS)
    p.add_argument("--variants", default=None, help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (W)")
    p.add_argument("--steps", type=int, default=100, help="timed steps (N)")
    p.add_argument("--profile-steps", type=int, default=5, help="steps under the profiler for the op table (P)")
    p.add_argument("--threads", type=int, default=None, help="train.threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--side-by-side", action="store_true",
                   help="all variants in one process, steps interleaved (ratios on a shared machine); "
                        "writes bench/results/profile_step_side_by_side.json")
    p.add_argument("--table", action="store_true", help="print the saved results as markdown")
    _quick.add_args(p)
    args = p.parse_args()
    if args.table:
        print(markdown(json.loads((SIDE_BY_SIDE if args.side_by_side else RESULTS).read_text())))
        return
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args)), flush=True)
        return
    out = _quick.prelude(args, SIDE_BY_SIDE if args.side_by_side else RESULTS)
    if args.quick:
        args.model, args.warmup, args.steps, args.profile_steps = "tiny-bert", 1, 3, 1
    elif not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    variants = (args.variants or ",".join(QUICK_VARIANTS if args.quick else VARIANTS)).split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.side_by_side:
        res = side_by_side(variants, args)
        print(json.dumps(res["step_time_ratios"]), flush=True)
        write(res["results"], args, out, res["step_time_ratios"])
        return
    results = {}
    for name in variants:
        cmd = [sys.executable, __file__, "--one", name, "--model", args.model, "--seed", str(args.seed),
               "--warmup", str(args.warmup), "--steps", str(args.steps),
               "--profile-steps", str(args.profile_steps),
               *(["--threads", str(args.threads)] if args.threads else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        results[name] = json.loads(line[-1][7:]) if line else {"error": proc.stderr[-2000:]}
        r = results[name]
        print(name, "error" if "error" in r else f"{r['wall_ms']['median']:.1f} ms/step", flush=True)
        write(results, args, out)
    failed = [n for n in variants if "error" in results[n]]
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (errors in {out})")


def write(results: dict, args, path: Path, ratios: dict | None = None) -> None:
    from supremum.fsutil import write_json
    from supremum.machine import fingerprint

    write_json(path, {
        "benchmark": "profile_step", "machine": fingerprint(),
        "settings": {"model": args.model, "quick": args.quick, "batch_size": 32, "lr": LR, "max_grad_norm": 1.0,
                     "weight_decay": 0.01, "optimizer": "adamw (fused)", "threads": args.threads,
                     "data": "tiny test data" if args.quick else "SST-2 train (6,920), max length 128",
                     "padding": "dynamic, length-grouped batches (supremum's batch_order)"},
        "method": {"warmup_steps": args.warmup, "timed_steps": args.steps, "profiled_steps": args.profile_steps,
                   "statistic": "median and interquartile range (q1, q3) over the timed steps, ms",
                   "phases": "record_function ranges around supremum's calls in loop.optimizer_step, timed "
                             "with perf_counter; rest = step wall time - phases (Python between them, "
                             "loss.item(), set_lr)",
                   "cpu_ms": "CPU time of the process per step (time.process_time; all threads)",
                   "top_ops": "self CPU time per step under torch.profiler, over the profiled steps",
                   "note": "all variants in one process, steps interleaved; no op table" if ratios is not None
                   else "each variant in its own process, sequentially"},
        "results": results, **({"step_time_ratios": ratios} if ratios is not None else {}),
    })


def markdown(res: dict) -> str:
    ok = {n: r for n, r in res["results"].items() if "error" not in r}
    res_ratios = res.get("step_time_ratios", {})
    rows = ["| phase (ms, median [q1-q3]) | " + " | ".join(ok) + " |", "|---" * (len(ok) + 1) + "|"]
    for phase in (*PHASES, "rest"):
        cells = [f"{r['phases_ms'][phase]['median']:.1f} [{r['phases_ms'][phase]['q1']:.1f}-"
                 f"{r['phases_ms'][phase]['q3']:.1f}]" for r in ok.values()]
        rows.append(f"| {phase} | " + " | ".join(cells) + " |")
    rows += ["| " + label + " | " + " | ".join(cell(r) for r in ok.values()) + " |" for label, cell in (
        ("**step (wall)**", lambda r: f"**{r['wall_ms']['median']:.1f}**"),
        ("samples/s", lambda r: f"{r['samples_per_s']:.0f}"),
        ("CPU time/step", lambda r: f"{r['cpu_ms']['median']:.1f}"))]
    if res_ratios:
        rows += ["", "| step time ratio | wall | CPU |", "|---|---|---|"]
        rows += [f"| {k} | {v['wall_ms']:.2f} | {v['cpu_ms']:.2f} |" for k, v in res_ratios.items()]
    for name, r in ok.items():
        if "top_ops" not in r:
            continue
        rows += ["", f"Top ops by self CPU time, {name}:", "", "| op | ms/step | calls/step | share |",
                 "|---|---|---|---|"]
        rows += [f"| `{o['op']}` | {o['self_cpu_ms_per_step']:.2f} | {o['calls_per_step']:.0f} | "
                 f"{100 * o['share']:.1f}% |" for o in r["top_ops"]]
    m = res["machine"]
    rows += ["", f"Machine: {m['cpu']}, {m['cores']} cores, {', '.join(m['isa'])}; torch "
             f"{m['versions'].get('torch')}, transformers {m['versions'].get('transformers')}, "
             f"peft {m['versions'].get('peft')}."]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
