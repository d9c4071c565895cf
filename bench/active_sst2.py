"""Benchmark (issue 20, part 3): does active learning reach plain fine-tuning's accuracy at 1,000
random labels with at most 60% of the labels (mean of 3 seeds)?

`supremum label --simulate` on SST-2 with minilm-l6: the 6,920 training sentences are the pool
(labels hidden until queried), every round fine-tunes from the base model on the labels so far
(full fine-tuning, the same settings for every strategy and round) and scores the full test split
(1,821 sentences, the same for every round). Each strategy starts from the same 100 random labels
per seed as random sampling and adds batches of 100 up to 1,000. The reference is random
sampling's mean test accuracy at 1,000 labels; a strategy meets the target when its mean accuracy
reaches it at 600 labels or fewer. Writes bench/results/active_sst2.json and active_sst2.png.

Cost: 10 rounds x 4 strategies x 3 seeds, less the shared seed rounds: ~110 fine-tunes of 100 to
1,000 sentences (EPOCHS each) plus scoring 8,741 sentences per round; hours on 2 cores.

    SUPREMUM_DATA=../shared/data python bench/active_sst2.py
    SUPREMUM_DATA=../shared/data python bench/active_sst2.py --method linear-probe   # minutes
    python bench/active_sst2.py --quick [--out x.json]   # smoke: tiny-bert, tiny data, 2 rounds

One process per seed (each writes its own JSON, so a long run that is stopped keeps its finished
seeds), then one file of them all:

    for s in 0 1 2; do python bench/active_sst2.py --strategies margin --seeds $s --out s$s.json; done
    python bench/active_sst2.py --merge s0.json,s1.json,s2.json --out bench/results/active_sst2_full.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "active_sst2.json"
MODEL = "minilm-l6"
METHOD = "full"
# Full fine-tuning with few labels needs more passes than with all 6,920: 5 epochs at batch 16
# gives 32 steps at 100 labels, 313 at 1,000 (the methods benchmark's 2 epochs at batch 32 would
# give 7 steps at 100 labels).
TRAIN = {"epochs": 5, "batch_size": 16}
STRATEGIES = ["margin", "margin+kcenter", "badge"]
SEEDS = [0, 1, 2]
BATCH, BUDGET = 100, 1000
TARGET_SHARE = 0.6
QUICK = {"MODEL": "tiny-bert", "TRAIN": {"max_steps": 4, "batch_size": 8, "lr": 3e-3},
         "STRATEGIES": ["margin+kcenter"], "SEEDS": [0], "BATCH": 10, "BUDGET": 20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default=METHOD, help=f"method trained each round (default: {METHOD})")
    ap.add_argument("--strategies", help=f"comma-separated (default: {','.join(STRATEGIES)})")
    ap.add_argument("--seeds", help="comma-separated seeds (default: 0,1,2)")
    ap.add_argument("--merge", help="comma-separated result files of this benchmark (same settings, other "
                    "seeds) to combine into --out instead of running")
    _quick.add_args(ap)
    args = ap.parse_args()
    out = _quick.prelude(args, RESULTS, QUICK, globals())
    if args.merge:
        return report(merge([Path(f) for f in args.merge.split(",")], out), out)
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    os.environ.setdefault("SUPREMUM_HOME", tempfile.mkdtemp(prefix="supremum-bench-active-"))
    from supremum.fsutil import write_json
    from supremum.machine import fingerprint
    from supremum.studies.simulate import SimulateConfig, simulate

    cfg = SimulateConfig(data={"path": str(Path(os.environ["SUPREMUM_DATA"]) / "sst2")}, model=MODEL,
                         method={"name": args.method}, train=TRAIN if args.method != "linear-probe" else {},
                         strategies=args.strategies.split(",") if args.strategies else STRATEGIES,
                         batch_size=BATCH, budget=BUDGET,
                         seeds=[int(s) for s in args.seeds.split(",")] if args.seeds else SEEDS)
    work = Path(tempfile.mkdtemp(prefix="supremum-bench-active-"))
    try:
        res = simulate(cfg, work, on_event=lambda m: print(m, flush=True))
        plot = out.with_suffix(".png")
        plot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "simulation.png", plot)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["target"] = target(res["match"])
    write_json(out, {"machine": fingerprint(), "settings": {"model": MODEL, "method": args.method, "train": TRAIN,
                                                             "batch": BATCH, "budget": BUDGET},
                     "plot": str(plot), **res})
    report(res, out)


def report(res: dict, out: Path) -> None:
    ref = res["match"]["reference"]
    print(f"random at {ref['n_labels']} labels: {100 * ref['mean']:.2f}% (mean of {len(res['config']['seeds'])} "
          "seeds)")
    for s, t in res["target"]["strategies"].items():
        got = f"{t['n_labels']} labels to match" if t["n_labels"] else "did not match"
        print(f"{s}: {got} ({t['verdict']})")
    print(f"results: {out}")


def _refuse(message: str) -> None:
    """Bad input: one line, exit code 2 (as the CLI's errors)."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def merge(files: list[Path], out: Path) -> dict:
    """One result of several runs of this benchmark that differ only in their seeds: their runs
    together, the summary, match and target recomputed over all seeds, the plot redrawn next to
    `out`, and each file's machine and seconds kept under "parts". Refuses files whose settings
    differ (other than seeds; the data by its folder's name and sizes, since a --quick run's data
    lies in a temporary folder) or whose seeds overlap."""
    import json

    from supremum.fsutil import write_json
    from supremum.studies.simulate import labels_to_match, plot, summarize

    if missing := [str(f) for f in files if not f.is_file()]:
        _refuse(f"--merge: no such result file: {', '.join(missing)}")
    parts = [json.loads(f.read_text()) for f in files]
    same = [{**p["config"], "seeds": None, "sizes": (p["pool"], p["eval_examples"]),
             "data": {**p["config"]["data"], "path": Path(p["config"]["data"]["path"]).name}} for p in parts]
    if any(s != same[0] for s in same) or any(p["settings"] != parts[0]["settings"] for p in parts):
        _refuse("--merge: the files were run with different settings (other than seeds)")
    seeds = [s for p in parts for s in p["config"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        _refuse(f"--merge: a seed appears in more than one file ({seeds})")
    runs = [r for p in parts for r in p["runs"]]
    summary = summarize(runs)
    res = {**{k: parts[0][k] for k in ("settings", "pool", "eval_examples", "notes")},
           "config": {**parts[0]["config"], "seeds": seeds}, "runs": runs, "summary": summary,
           "match": labels_to_match(summary),
           "parts": [{"file": str(f), "seeds": p["config"]["seeds"], "machine": p["machine"],
                      "seconds": sum(r["seconds"] for r in p["runs"])} for f, p in zip(files, parts, strict=True)]}
    res["target"] = target(res["match"])
    res["machine"] = parts[0]["machine"]
    res["plot"] = str(plot(res, out.with_suffix(".png")))
    write_json(out, res)
    return res


def target(match: dict) -> dict:
    """Per strategy: the labels it needed to reach random's accuracy at the budget, and whether
    that is at most TARGET_SHARE of the budget ("met"), more ("missed by N labels"), or never
    within the budget ("not reached")."""
    ref = match["reference"]["n_labels"]
    out = {}
    for s, m in match["strategies"].items():
        n = m["n_labels"]
        verdict = ("not reached within the budget" if n is None else "met" if n <= TARGET_SHARE * ref
                   else f"missed by {n - TARGET_SHARE * ref:.0f} labels")
        out[s] = {"n_labels": n, "share": m["share"], "verdict": verdict}
    return {"share": TARGET_SHARE, "reference_labels": ref, "strategies": out,
            "met": [s for s, v in out.items() if v["verdict"] == "met"]}


if __name__ == "__main__":
    main()
