"""Benchmark (issue 20): test accuracy against the number of labels on SST-2 with minilm-l6, for
the methods that need few labels (linear-probe, setfit).

Each cell draws `per_class` training examples of each class (seeded, without replacement) from
SST-2's train split, fine-tunes, and scores the full test split (1,821 texts; the same for every
cell). The dev split is SST-2's own (872 texts), reported but used for nothing: these methods
take no model-selection decisions. SetFit runs with setfit's defaults, which are the settings of
the published reference (a public setfit model card: all-MiniLM-L6-v2, 32 per class, 75.1%):
batch 16, 20 pair iterations, 1 body epoch, body lr 2e-5. Writes bench/results/labels_sst2.json.

    SUPREMUM_DATA=../shared/data python bench/labels_sst2.py                      # 64 labels, seeds 0-2
    SUPREMUM_DATA=../shared/data python bench/labels_sst2.py --per-class 8,32,128 --seeds 0
    python bench/labels_sst2.py --quick [--out x.json]   # smoke: tiny-bert, tiny data, 8 per class, 1 seed
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "labels_sst2.json"
MODEL = "minilm-l6"
PER_CLASS = [32]
SEEDS = [0, 1, 2]
BATCH = 16
METHODS = {"linear-probe": {"name": "linear-probe"}, "setfit": {"name": "setfit"}}
PUBLISHED = {"setfit": {"labels": 64, "test_accuracy": 0.751,
                        "source": "setfit model card, all-MiniLM-L6-v2 on SST-2, 32 examples per class"}}
QUICK = {"MODEL": "tiny-bert", "PER_CLASS": [8], "SEEDS": [0],
         "METHODS": {"linear-probe": {"name": "linear-probe"},
                     "setfit": {"name": "setfit", "num_iterations": 2, "body_lr": 1e-3}}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", help="comma-separated labels per class (default: 32)")
    ap.add_argument("--seeds", help="comma-separated seeds (default: 0,1,2)")
    ap.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)}")
    _quick.add_args(ap)
    args = ap.parse_args()
    out = _quick.prelude(args, RESULTS, QUICK, globals())
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    per_class = [int(x) for x in args.per_class.split(",")] if args.per_class else PER_CLASS
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else SEEDS
    methods = args.methods.split(",") if args.methods else list(METHODS)
    os.environ.setdefault("SUPREMUM_HOME", tempfile.mkdtemp(prefix="supremum-bench-labels-"))
    from supremum.config import DataConfig
    from supremum.data import load_data
    from supremum.fsutil import write_json
    from supremum.machine import fingerprint

    full = load_data(DataConfig(path=str(Path(os.environ["SUPREMUM_DATA"]) / "sst2")))
    work = Path(tempfile.mkdtemp(prefix="supremum-bench-labels-"))
    cells = [run_cell(full, m, k, s, work) for k in per_class for s in seeds for m in methods]
    test = full.labels("test")
    majority = max(test.count(c) for c in set(test)) / len(test)
    write_json(out, {"model": MODEL, "test_size": len(test), "majority_class_accuracy": majority,
                     "published": PUBLISHED, "cells": cells, "summary": summarize(cells),
                     "machine": fingerprint()})
    for row in summarize(cells):
        print(f"{row['method']:>13} {row['labels']:>5} labels: test {100 * row['mean']:.1f} "
              f"± {100 * row['std']:.1f}% over {row['seeds']} seed(s)")
    print(f"majority class: {100 * majority:.1f}%; results: {out}")


def run_cell(full, method: str, per_class: int, seed: int, work: Path) -> dict:
    """Fine-tune on `per_class` labels of each class drawn with `seed`; score the test split."""
    from supremum.artifact import load_artifact_model
    from supremum.config import FinetuneConfig
    from supremum.infer import predict_logits
    from supremum.train.finetune import finetune

    d = work / f"{method}-{per_class}-{seed}"
    write_splits(full, per_class, seed, d)
    cfg = FinetuneConfig(model={"name": MODEL}, data={"path": str(d)}, method=METHODS[method],
                         train={"seed": seed, "batch_size": BATCH}, output=str(d / "artifact"))
    res = finetune(cfg, progress=False)
    model, tok = load_artifact_model(res.artifact)
    texts, labels = full.texts("test"), full.labels("test")
    ids = tok(texts, truncation=True, max_length=cfg.data.max_length)["input_ids"]
    pred = predict_logits(model, ids, tok.pad_token_id).argmax(-1)
    acc = sum(int(p == y) for p, y in zip(pred, labels, strict=True)) / len(labels)
    print(f"{method} {2 * per_class} labels seed {seed}: test {acc:.4f}", flush=True)
    return {"method": method, "labels": per_class * len(full.label_names), "seed": seed,
            "test_accuracy": acc, "dev_accuracy": res.metrics["dev_accuracy"],
            "train_seconds": res.metrics["train_seconds"], "steps": res.metrics["steps"]}


def write_splits(full, per_class: int, seed: int, d: Path) -> None:
    """train.csv: `per_class` rows of each label drawn from train; dev.csv, test.csv: whole."""
    d.mkdir(parents=True)
    names = full.label_names
    train = full.split("train").groupby("label").sample(n=per_class, random_state=seed)
    for split, frame in (("train", train), ("dev", full.split("dev")), ("test", full.split("test"))):
        frame.assign(label=[names[i] for i in frame["label"]])[["text", "label"]].to_csv(
            d / f"{split}.csv", index=False)


def summarize(cells: list[dict]) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for c in cells:
        groups.setdefault((c["method"], c["labels"]), []).append(c["test_accuracy"])
    return [{"method": m, "labels": n, "seeds": len(v), "mean": statistics.mean(v),
             "std": statistics.stdev(v) if len(v) > 1 else 0.0} for (m, n), v in groups.items()]


if __name__ == "__main__":
    main()
