"""Benchmark: does the scaling-law fit find a limit we know? A scale sweep on a 2nd-order Markov
source over 16 tokens (Dirichlet 0.5 rows, seed 0), whose entropy rate H is exact, then the
Chinchilla fit with 1,000 bootstrap resamples. Target (issue 7): the 95% CI of E contains H and
|E - H| / H <= 3%, in at most 30 minutes on this 2-core machine.

    python bench/limit_markov.py [--home DIR]
    python bench/limit_markov.py --quick [--out x.json]   # smoke: 6 tiny runs, results not kept

The sweep is the library's `run_sweep` (runs cached under --home, so a re-run only refits).
Writes bench/results/limit_markov.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _limit_common import run_bench  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "limit_markov.json"
CONFIG = {"source": "markov:order=2,vocab=16,seed=0", "name": "bench-markov-o2v16",
          "sizes": ["d16L2", "d24L2", "d32L2", "d48L3", "d64L3", "d96L4", "d128L4"],
          "tokens": [262144, 524288, 1048576, 2097152, 4194304], "ctx": 64, "batch_tokens": 2048,
          "eval_tokens": 65536, "bootstrap": 1000, "holdout": 0.2}


def targets(res: dict) -> dict:
    t = res["truth"]
    return {"H_in_ci": t["H_in_ci"], "abs_rel_error": abs(t["rel_error"]),
            "abs_rel_error_le_3pct": abs(t["rel_error"]) <= 0.03}


if __name__ == "__main__":
    run_bench(lambda: CONFIG, targets, RESULTS)
