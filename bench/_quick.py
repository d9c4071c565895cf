"""The `--quick` smoke mode every benchmark has: tiny models built in code (tiny-bert,
tiny-llama), tiny data written to a temporary directory in the layout of the real data
($SUPREMUM_DATA/sst2, $SUPREMUM_DATA/tinyshakespeare), a few steps, and the JSON written to
`--out` or a temporary file, never over bench/results/. tests/test_bench.py runs each one, so
a benchmark that stops working is seen in the test suite, not when someone reruns it."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POS = ["great", "good", "lovely", "superb", "fine", "brilliant"]
NEG = ["bad", "awful", "poor", "boring", "weak", "dull"]
WORDS = "the king shall speak of love and war to thee my lord".split()


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: tiny model and data, a few steps (seconds to a minute); writes to --out or a "
                    "temp file")
    ap.add_argument("--out", help="write the results JSON here (default: bench/results/, or a temp file "
                    "with --quick)")


def results_path(args, default: Path) -> Path:
    if args.out:
        return Path(args.out)
    if args.quick:
        return Path(tempfile.mkdtemp(prefix="supremum-bench-quick-")) / default.name
    return default


def prelude(args, default: Path, quick: dict | None = None, constants: dict | None = None) -> Path:
    """What every benchmark does after parsing its arguments: returns where its results go (see
    `results_path`); with --quick, also makes the tiny data its $SUPREMUM_DATA (`quick_env`) and
    sets its module `constants` (its `globals()`) to the small values in `quick`."""
    out = results_path(args, default)
    if args.quick:
        quick_env()
        if quick:
            constants.update(quick)
    return out


def tiny_data() -> Path:
    """A temporary $SUPREMUM_DATA: sst2/{train,dev,test}.tsv (sentence, label 0/1) that a
    2-layer character model learns in a few dozen steps, mr/mr.jsonl (300 rows of the same task,
    labels "positive"/"negative", no split), and tinyshakespeare/input.txt."""
    root = Path(tempfile.mkdtemp(prefix="supremum-bench-data-"))
    rng = random.Random(0)
    (root / "sst2").mkdir()
    for split, n in (("train", 200), ("dev", 48), ("test", 48)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            label = rng.randint(0, 1)
            rows.append(f"{' '.join(rng.choices(POS if label else NEG, k=3))} {i}\t{label}")
        (root / "sst2" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    (root / "mr").mkdir()  # MR's layout: one JSON-lines file, string labels, no split
    with open(root / "mr" / "mr.jsonl", "w", encoding="utf-8") as f:
        for i in range(300):
            label = rng.randint(0, 1)
            text = f"{' '.join(rng.choices(POS if label else NEG, k=3))} {i}"
            f.write(json.dumps({"text": text, "label": "positive" if label else "negative"}) + "\n")
    (root / "tinyshakespeare").mkdir()
    lines = [" ".join(rng.choice(WORDS) for _ in range(6)) + "." for _ in range(600)]
    (root / "tinyshakespeare" / "input.txt").write_text("\n".join(lines) + "\n")
    return root


def quick_env() -> Path:
    """tiny_data() as the $SUPREMUM_DATA of this process and its children, which also run on one
    thread each (a smoke run checks that the benchmark works, not how fast)."""
    root = tiny_data()
    os.environ["SUPREMUM_DATA"] = str(root)
    os.environ["OMP_NUM_THREADS"] = "1"
    return root


def cli(*args: str) -> str:
    """`python -m supremum ARGS` in a fresh process, timed and printed; its stdout. A failure
    ends the benchmark with the command and the tail of its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "supremum", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: supremum {' '.join(args)}\n{proc.stderr[-3000:]}")
    print(f"  {time.perf_counter() - t0:6.0f} s  supremum {' '.join(args[:4])} ...", flush=True)
    return proc.stdout
