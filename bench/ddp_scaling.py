"""Benchmark: data-parallel fine-tuning of minilm-l6 on SST-2, 1 vs 2 processes on this machine.

1. `supremum finetune --method full` for 60 optimizer steps at the same global batch (32):
   1 process x batch 32 (2 threads), `--nproc 2` x batch 16 (1 thread each) with DDP, and the
   same with `train.parallel=fsdp` (FSDP2: weights, gradients and Adam state sharded; each layer
   gathered for its forward and backward). Throughput is the fine-tune's own training
   samples/s (training steps only, evaluation excluded).
2. The communication: a gloo all-reduce of a float32 tensor the size of minilm-l6's parameters
   (what DDP reduces each step) between 2 processes on this machine, median of 10 after 2
   warm-up calls, as a fraction of the 2-process step time.

    SUPREMUM_DATA=../shared/data python bench/ddp_scaling.py
    python bench/ddp_scaling.py --quick [--out x.json]   # smoke: tiny-bert, tiny data, 3 steps

Writes bench/results/ddp_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "ddp_scaling.json"
STEPS = 60
MODEL = "minilm-l6"
PARAMS = 22_713_216  # minilm-l6 with a 2-class head, counted by the fine-tune
QUICK = {"STEPS": 3, "MODEL": "tiny-bert", "PARAMS": 39_234}  # tiny-bert's parameters


def finetune(nproc: int, batch: int, home: str, parallel: str = "ddp") -> dict:
    data = os.environ["SUPREMUM_DATA"]
    # --debug: a failed run shows every rank's traceback and torchrun's report, not one line
    cmd = [sys.executable, "-m", "supremum", "--debug", "finetune", "--model", MODEL, "--data", f"{data}/sst2",
           "--method", "full", "--max-steps", str(STEPS), "--batch-size", str(batch), "--no-progress", "--json",
           "--nproc", str(nproc), "--output", f"{home}/{parallel}-{nproc}", f"train.parallel={parallel}"]
    env = {**os.environ, "SUPREMUM_HOME": home, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        sys.exit(p.stderr[-6000:])
    m = json.loads(p.stdout[p.stdout.index("{"):])["metrics"]
    return {"processes": nproc, "parallel": parallel, "batch_per_process": batch, "global_batch": batch * nproc,
            "steps": m["steps"],
            "train_samples_per_s": m["train_samples_per_s"], "train_seconds": m["train_seconds"],
            "step_seconds": m["train_seconds"] / m["steps"], "dev_accuracy": m["dev_accuracy"],
            "wall_seconds": time.perf_counter() - t0}


def _allreduce(rank: int, world: int, init: str, out: str, params: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    t = torch.ones(params)
    times = []
    for i in range(12):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    if rank == 0:
        Path(out).write_text(json.dumps(times))
    dist.destroy_process_group()


def allreduce_seconds() -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = f"{d}/times.json"
        mp.spawn(_allreduce, args=(2, f"file://{d}/rdzv", out, PARAMS), nprocs=2, join=True)
        times = json.loads(Path(out).read_text())
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times),
            "floats": PARAMS}


def main() -> None:
    ap = argparse.ArgumentParser()
    _quick.add_args(ap)
    args = ap.parse_args()
    results = _quick.prelude(args, RESULTS, QUICK, globals())
    from supremum.machine import fingerprint

    home = tempfile.mkdtemp(prefix="supremum-ddp-")
    one = finetune(1, 32, home)
    two = finetune(2, 16, home)
    fsdp = finetune(2, 16, home, "fsdp")
    ar = allreduce_seconds()
    out = {"method": f"full fine-tune of {MODEL} on SST-2, {STEPS} steps at global batch 32; samples/s over "
                     "training steps only; all-reduce: gloo, 2 processes, median of 10 after 2 warm-up",
           "one_process": one, "two_processes": two, "two_processes_fsdp": fsdp,
           "speedup": two["train_samples_per_s"] / one["train_samples_per_s"],
           "speedup_fsdp": fsdp["train_samples_per_s"] / one["train_samples_per_s"],
           "allreduce_seconds": ar, "communication_fraction_of_step": ar["median"] / two["step_seconds"],
           "machine": fingerprint()}
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("speedup", "speedup_fsdp", "communication_fraction_of_step")}, indent=2))


if __name__ == "__main__":
    main()
