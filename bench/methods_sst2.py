"""Benchmark: every fine-tuning method on SST-2 with minilm-l6 (recipes/compare/sst2-methods.yaml).

Runs `supremum compare` on the recipe: each method x seed trains and evaluates in its own
process, one after another, on an otherwise idle machine; finished cells are reused, so an
interrupted run continues where it stopped. Writes bench/results/methods_sst2.json with the
summary and the machine.

    SUPREMUM_DATA=../shared/data python bench/methods_sst2.py                 # the full recipe
    SUPREMUM_DATA=../shared/data python bench/methods_sst2.py --seeds 0 --max-steps 20   # smoke
    python bench/methods_sst2.py --table                                       # README table
    python bench/methods_sst2.py --quick [--out x.json]   # smoke: tiny-bert, tiny data, 2 methods, 3 steps
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "bench" / "results" / "methods_sst2.json"
RECIPE = ROOT / "recipes" / "compare" / "sst2-methods.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/supremum-bench-methods", help="store for the cells (reused)")
    ap.add_argument("--seeds", help="comma-separated seeds instead of the recipe's")
    ap.add_argument("--max-steps", type=int, help="cap every cell (smoke runs; not written to results)")
    ap.add_argument("--table", action="store_true", help="print the README table from the results")
    _quick.add_args(ap)
    args = ap.parse_args()
    if args.table:
        return print_table(json.loads(RESULTS.read_text()))
    out = _quick.prelude(args, RESULTS)
    if args.quick:
        args.work = tempfile.mkdtemp(prefix="supremum-bench-methods-")
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    os.environ["SUPREMUM_HOME"] = args.work
    from supremum.compare import CompareConfig, run
    from supremum.machine import fingerprint
    from supremum.recipe import build, load_yaml

    raw, lines = load_yaml(RECIPE)
    if args.seeds:
        raw["seeds"] = [int(s) for s in args.seeds.split(",")]
    if args.quick:  # the recipe's path through compare, on a tiny model: every part but the size
        raw.update(model={"name": "tiny-bert"}, seeds=[0], methods=raw["methods"][:2])
        args.max_steps = 3
    if args.max_steps:
        raw["train"]["max_steps"] = args.max_steps
    summary = run(build(CompareConfig, raw, str(RECIPE), lines), on_event=lambda m: print(m, flush=True))
    if args.max_steps and not args.quick:
        return print_table({"summary": summary})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"recipe": raw, "machine": fingerprint(), "summary": summary}, indent=2))
    print_table({"summary": summary})


def print_table(res: dict) -> None:
    from supremum.compare import table

    head, rows = table(res["summary"])
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
