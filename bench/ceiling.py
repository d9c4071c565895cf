"""Benchmark: the truth checks of `supremum ceiling` (issue 19), one part at a time.

label-noise: known label noise. A seeded share of the labels (default 0%, 5%, 10%, 20%) is
flipped in SST-2's train (optionally a `--train-limit` subset) and in its test split; for each
share the library's label-noise stage (`supremum.studies.oof.label_noise_stage`) fine-tunes the
model on the noisy train (the "best" model, which scores dev and test) and once per fold with
the fold held out (out-of-fold probabilities on train), then estimates each split's label-error
rate by confident learning. Reported per share and split: the estimate and its 95% interval
against the truth, and precision/recall of the flagged rows against the flipped ones.

The truth is the planted share s plus the native noise nu the data already had, which is taken
to be the estimate at 0% flips: a label flipped to a random other of k classes is wrong unless
it was natively wrong and the flip hit the true class, so truth = s + nu (1 - s k / (k - 1))
(binary: s + nu (1 - 2 s)), with s the share actually flipped (round(share * n) rows). nu is
itself an estimate; its interval is reported with it. A weak model inflates it (a model at
chance estimates about 50% noise, and the truth becomes about 50% whatever was planted), so the
summary gives each share's best dev accuracy next to the hit counts. Flags are also scored
against the flipped rows plus the rows already flagged at 0% ("flipped or native suspect"),
since a natively wrong label that is flagged is no false alarm.

    SUPREMUM_DATA=../shared/data python bench/ceiling.py label-noise --train-limit 2000 --folds 4 \\
        --out bench/results/ceiling_label_noise.json
    python bench/ceiling.py --quick [--out x.json]   # smoke: tiny-bert, tiny synthetic SST-2, seconds

Finished shares are kept under --work (keyed by every setting), so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "ceiling_label_noise.json"
PARTS = ("label-noise",)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts", nargs="*", help=f"parts to run, of {', '.join(PARTS)} (default: all)")
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-limit", type=int, help="train on this many SST-2 training rows (seeded subset)")
    ap.add_argument("--folds", type=int, default=4, help="cross-validation folds for out-of-fold probabilities")
    ap.add_argument("--shares", default="0,0.05,0.1,0.2", help="shares of labels flipped (0 must be first: "
                    "it measures the native noise)")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with AMX)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the subset and of the flips")
    ap.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of each rate's interval")
    ap.add_argument("--work", default="/tmp/supremum-bench-ceiling", help="store and finished shares (reused)")
    _quick.add_args(ap)
    args = ap.parse_args()
    if unknown := set(args.parts) - set(PARTS):
        ap.error(f"unknown part {sorted(unknown)[0]!r}; parts: {', '.join(PARTS)}")
    out = _quick.results_path(args, RESULTS)
    if args.quick:
        _quick.quick_env()
        args.work = tempfile.mkdtemp(prefix="supremum-bench-ceiling-")
        args.model, args.shares, args.folds, args.max_length = "tiny-bert", "0,0.1", 3, 32
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    os.environ["SUPREMUM_HOME"] = str(Path(args.work) / "home")
    from supremum.machine import fingerprint

    settings = {k: v for k, v in vars(args).items() if k not in ("out", "parts")}
    settings["train"] = _train_settings(args)
    res = {"machine": fingerprint(), "settings": settings}
    for part in args.parts or PARTS:
        res[part] = {"label-noise": label_noise}[part](args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


# ---- label noise -------------------------------------------------------------------------------

def label_noise(args) -> dict:
    from supremum.config import DataConfig
    from supremum.data import load_data

    shares = [float(s) for s in args.shares.split(",")]
    if shares[0] != 0:
        sys.exit("--shares must start with 0 (the native noise is measured there)")
    src = Path(os.environ["SUPREMUM_DATA"]) / "sst2"
    data = load_data(DataConfig(path=str(src), train_limit=args.train_limit, train_limit_seed=args.seed))
    runs = {}
    for share in shares:
        runs[share] = _share(args, data, share)
        _say_share(share, runs[share])
    native = {s: runs[0.0]["splits"][s] for s in ("train", "test")}
    rows = []
    for share, r in runs.items():
        for split in ("train", "test"):
            rows.append(_check(share, split, r, native[split], len(data.label_names)))
    hits = [r for r in rows if r["planted"] > 0]
    lists = ("flipped", "flagged")  # row indices: kept in the --work cache, not in the results
    return {"data": str(src), "sizes": {k: len(v) for k, v in data.splits.items()},
            "label_names": data.label_names,
            "truth": "planted + native (1 - planted k / (k - 1)), k classes; native = the estimate at 0% flips",
            "rows": rows,
            "runs": {f"{k:g}": {n: v for n, v in r.items() if n not in lists} for k, r in runs.items()},
            # a weak model inflates the native estimate, and the truth with it: read these first
            "summary": {"best_dev_accuracy": {f"{k:g}": r["best"]["dev_accuracy"] for k, r in runs.items()},
                        "within_3pt": f"{sum(r['within_3pt'] for r in hits)}/{len(hits)}",
                        "ci_contains_truth": f"{sum(r['ci_contains_truth'] for r in hits)}/{len(hits)}",
                        "mean_abs_error_pt": round(float(np.mean([abs(r['error_pt']) for r in hits])), 2)
                        if hits else None}}


def _share(args, data, share: float) -> dict:
    """The label-noise stage on SST-2 with `share` of the train and test labels flipped (cached)."""
    from supremum.config import FinetuneConfig
    from supremum.hashing import content_hash
    from supremum.store import Store
    from supremum.studies.oof import label_noise_stage
    from supremum.train.finetune import finetune

    key = content_hash({k: v for k, v in vars(args).items() if k not in ("out", "parts", "work", "shares")}
                       | {"share": share}, length=12)
    work = Path(args.work) / f"share-{share:g}-{key}"
    done = work / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    flipped = _write_noisy(data, share, args.seed, work / "data")
    base = FinetuneConfig.model_validate({
        "model": args.model, "data": {"path": str(work / "data"), "max_length": args.max_length},
        "method": "full", "train": _train_settings(args)})
    store = Store(Path(args.work) / "home")
    t0 = time.perf_counter()
    best = finetune(base, store=store, progress=False, command=f"bench ceiling label-noise {share:g}")
    stage = label_noise_stage(base, best.artifact, args.folds, work / "suspects", store,
                              resamples=args.resamples, on_event=lambda m: print(f"[{share:g}] {m}", flush=True))
    flagged = {s: _flagged(stage["splits"][s]["suspects_path"]) for s in ("train", "test")}
    result = {"share": share, "flipped": {s: v.tolist() for s, v in flipped.items()}, "flagged": flagged,
              "best": {"dev_accuracy": best.metrics["dev_accuracy"], "steps": best.metrics["steps"]},
              "seconds": round(time.perf_counter() - t0, 1), **stage}
    from supremum.fsutil import write_json

    write_json(done, result)
    return result


def _train_settings(args) -> dict:
    if args.quick:  # the tiny model learns the synthetic task in ~100 steps at a high rate
        return {"max_steps": 120, "batch_size": 8, "lr": 3e-3, "eval_every": 120}
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "bf16": args.bf16,
            "warmup_ratio": 0.06, "seed": args.seed}


def _write_noisy(data, share: float, seed: int, out: Path) -> dict[str, np.ndarray]:
    """train/dev/test.jsonl with round(share * n) labels of train and of test flipped to a random
    other class (seeded per split); dev as it is. Returns the flipped row indices per split."""
    rng = np.random.default_rng([seed, round(share * 1e6)])
    k = len(data.label_names)
    out.mkdir(parents=True, exist_ok=True)
    flipped = {}
    for split in ("train", "dev", "test"):
        df = data.splits[split]
        labels = df["label"].to_numpy().copy()
        rows = np.sort(rng.choice(len(df), round(share * len(df)), replace=False)) if split != "dev" else []
        labels[rows] = (labels[rows] + rng.integers(1, k, len(rows))) % k
        if split != "dev":
            flipped[split] = np.asarray(rows, dtype=int)
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for text, lab in zip(df["text"], labels, strict=True):
                f.write(json.dumps({"text": text, "label": data.label_names[lab]}) + "\n")
    return flipped


def _flagged(path: str) -> list[int]:
    with open(path, newline="", encoding="utf-8") as f:
        return [int(r["row"]) for r in csv.DictReader(f)]


def _check(share: float, split: str, run: dict, native: dict, k: int) -> dict:
    est = run["splits"][split]
    n, nu = est["examples"], native["rate"]
    flipped, flagged = run["flipped"][split], run["flagged"][split]
    planted = len(flipped) / n  # round(share * n) rows: the share actually flipped
    truth = planted + nu * (1 - planted * k / (k - 1))
    row = {"share": share, "planted": planted, "split": split, "examples": n,
           "estimate": est["rate"], "ci": est["ci"],
           "native": nu, "native_ci": native["ci"], "truth": truth,
           "error_pt": round(100 * (est["rate"] - truth), 2), "within_3pt": abs(est["rate"] - truth) <= 0.03,
           "ci_contains_truth": est["ci"][0] <= truth <= est["ci"][1],
           "flags_vs_flipped": _quality(flagged, flipped, n)}
    if share > 0:  # a row flagged before any flip is native noise, not a false alarm
        known = sorted(set(flipped) | set(_flagged(native["suspects_path"])))
        row["flags_vs_flipped_or_native_suspect"] = _quality(flagged, known, n)
    return row


def _quality(flagged, wrong, n: int) -> dict:
    from supremum.limit.label_noise import flag_quality

    q = flag_quality(flagged, wrong, n)
    return {k: None if isinstance(v, float) and np.isnan(v) else (float(v) if isinstance(v, float) else v)
            for k, v in q.items()}


def _say_share(share: float, r: dict) -> None:
    line = ", ".join(f"{s} {v['rate']:.1%} [{v['ci'][0]:.1%}, {v['ci'][1]:.1%}]" for s, v in r["splits"].items())
    print(f"flipped {share:.0%}: {line} ({r['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
