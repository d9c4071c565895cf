"""What the limit benchmarks keep from a sweep's analysis (the per-run table, the fit, the checks)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def summarize(res: dict, config: dict, seconds: float) -> dict:
    from supremum.machine import fingerprint

    keep = ("fit", "ci", "best_run", "allocation", "predictions", "what_if", "envelope", "holdout",
            "compute_optimal_exponents_agree", "truth", "plan", "method", "source", "plateau", "warnings")
    runs = [{k: v for k, v in r.items() if k != "curve"} for r in res["runs"]]
    fresh = [r for r in res["runs"] if not r.get("cached")]
    return {"config": config, "wall_seconds": seconds, "runs_trained_now": len(fresh),
            "run_seconds_total": sum(r["seconds"] for r in res["runs"]), "machine": fingerprint(), "runs": runs,
            **{k: res[k] for k in keep if k in res}}


def write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    print(f"wrote {path}")


# --quick: a sweep of 6 tiny runs (seconds each) with the benchmark's own analysis
QUICK = {"sizes": ["d8L1", "d16L1"], "tokens": [4096, 8192, 16384], "ctx": 16, "batch_tokens": 128,
         "eval_tokens": 2048, "bootstrap": 10, "jobs": 2, "plateau": 0}


def run_bench(config, targets, results: Path) -> None:
    """Run (or reuse) the sweep under --home, summarize it, add `targets(analysis)`, write JSON.
    `config()` gives the sweep's config (called after --quick has set up its data)."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    import _quick

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default=os.environ.get("SUPREMUM_HOME", "/tmp/supremum-bench-limit"))
    _quick.add_args(ap)
    args = ap.parse_args()
    out_path = _quick.prelude(args, results)
    if args.quick:
        args.home = tempfile.mkdtemp(prefix="supremum-bench-limit-")
    os.environ["SUPREMUM_HOME"] = args.home
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from supremum.limit.sweep import ScaleConfig, run_sweep

    cfg = {**config(), **(QUICK if args.quick else {})}
    t0 = time.perf_counter()
    res = run_sweep(ScaleConfig(**cfg), on_event=lambda m: print(m, flush=True))
    out = summarize(res, cfg, time.perf_counter() - t0)
    out["targets"] = targets(res)
    write(out_path, out)
