"""Benchmark (issue 20): test accuracy against the number of labels on SST-2 (or MR, `--dataset mr`),
every approach on one curve, through `supremum labels` (supremum.studies.labels).

Approaches: zero- and few-shot prompting of smollm2-135m (k <= 8 in-context examples), and
minilm-l6 with a linear probe, SetFit, full fine-tuning and LoRA; active learning (margin+kcenter,
a linear-probe learner, a random seed set of 50 then batches of 50, up to 2,048 labels, one
simulated loop per seed) and self-training (full fine-tuning, one round of pseudo-labels of the rest
of the train split at >= 0.9 confidence, the round trained for 3 epochs over its labelled +
pseudo-labelled rows: the study's `self_training.round_steps` "epochs"). Each budget is a seeded
class-stratified subset of SST-2's train split, nested across budgets; every point is scored on the
full test split (1,821 texts, the same for every cell); gradient fine-tunes keep their last weights
(dev chooses nothing). SetFit runs with setfit's defaults, the settings of the published reference
(a public setfit model card: all-MiniLM-L6-v2, 32 per class, 75.1%): batch 16, 20 pair
iterations, 1 body epoch, body lr 2e-5, up to 512 labels. Cells are cached under $SUPREMUM_HOME,
so a killed run resumes. Writes bench/results/labels_sst2.json (labels_mr.json with `--dataset mr`).

MR (Pang & Lee, 2005) ships as one file with no split: supremum makes test and dev (10% each of
the file, stratified, seed 0), so its test set is the same for every cell of a run; its labels are
the strings "negative"/"positive", which are also its verbalizers.

    SUPREMUM_DATA=../shared/data python bench/labels_sst2.py                 # the whole curve, seeds 0-2
    SUPREMUM_DATA=../shared/data python bench/labels_sst2.py --budgets 32,64 --approaches linear-probe,setfit
    SUPREMUM_DATA=../shared/data python bench/labels_sst2.py --dataset mr --budgets 0,64,512 --max-labels setfit=64
    python bench/labels_sst2.py --quick [--out x.json]   # smoke: tiny models, tiny data, 1 seed
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
RESULTS = Path(__file__).parent / "results" / "labels_sst2.json"
MODEL, LM = "minilm-l6", "smollm2-135m"
BUDGETS = "0,8,32,64,128,512,2048,all"
SEEDS = "0,1,2"
APPROACHES = "zeroshot,linear-probe,setfit,full,lora,active,self-training"
TRAIN = {"batch_size": 16}
METHODS: dict = {}
ACTIVE = {"strategy": "margin+kcenter", "batch_size": 50, "method": "linear-probe"}
MAX_LABELS = {"setfit": 512, "active": 2048}
MIN_STEPS = 60
INCONTEXT = {"verbalizers": {"0": "negative", "1": "positive"}}
DATASETS = {"sst2": "sst2", "mr": "mr/mr.jsonl"}
PUBLISHED = {"setfit": {"labels": 64, "test_accuracy": 0.751,
                        "source": "setfit model card, all-MiniLM-L6-v2 on SST-2, 32 examples per class"}}
QUICK = {"MODEL": "tiny-bert", "LM": "tiny-llama", "BUDGETS": "0,16", "SEEDS": "0",
         "APPROACHES": "zeroshot,linear-probe,setfit,active,self-training",
         "ACTIVE": {"strategy": "margin+kcenter", "batch_size": 8, "method": "linear-probe"}, "MIN_STEPS": 10,
         "METHODS": {"setfit": {"num_iterations": 2, "body_lr": 1e-3}},
         "INCONTEXT": {"verbalizers": {"0": "negative", "1": "positive"}, "max_shots": 4}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", help=f"comma-separated label budgets, 'all' the whole train split [{BUDGETS}]")
    ap.add_argument("--seeds", help=f"comma-separated seeds [{SEEDS}]")
    ap.add_argument("--approaches", help=f"comma-separated approaches [{APPROACHES}]")
    ap.add_argument("--max-labels", help="approach=N,...: the largest budget each approach runs at "
                    f"(others skipped) {MAX_LABELS}")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="sst2",
                    help="the shared dataset [sst2]; results go to labels_<dataset>.json")
    _quick.add_args(ap)
    args = ap.parse_args()
    out = _quick.prelude(args, RESULTS.with_name(f"labels_{args.dataset}.json"), QUICK, globals())
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/ and mr/")
    # MR's labels are already the words: its verbalizers default to the label names.
    incontext = {k: v for k, v in INCONTEXT.items() if not (args.dataset == "mr" and k == "verbalizers")}
    os.environ.setdefault("SUPREMUM_HOME", tempfile.mkdtemp(prefix="supremum-bench-labels-"))
    from supremum.fsutil import write_json
    from supremum.limit.summary import labels_table as table
    from supremum.machine import fingerprint
    from supremum.studies.labels import LabelsConfig, run_labels

    budgets = [b if b == "all" else int(b) for b in (args.budgets or BUDGETS).split(",")]
    data = {"path": f"{os.environ['SUPREMUM_DATA']}/{DATASETS[args.dataset]}"}
    cfg = LabelsConfig(model={"name": MODEL}, data=data, train=TRAIN,
                       approaches=(args.approaches or APPROACHES).split(","), methods=METHODS,
                       active=ACTIVE, max_labels=_max_labels(args.max_labels, ap), min_steps=MIN_STEPS,
                       incontext={"model": LM, **incontext}, budgets=budgets,
                       seeds=[int(s) for s in (args.seeds or SEEDS).split(",")])
    rec = run_labels(cfg, on_event=lambda m: print(m, flush=True))
    curve = {k: v for k, v in rec["curve"].items() if k not in ("band", "band_n")}
    published = PUBLISHED if args.dataset == "sst2" else {}
    write_json(out, {"dataset": args.dataset, "config": cfg.model_dump(mode="json"), "published": published,
                     "machine": fingerprint(),
                     **rec, "curve": curve})
    head, rows = table(rec)
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    print(f"majority class: {100 * rec['majority']['accuracy']:.1f}%")
    print("\n".join(rec["sentences"]))
    print(json.dumps(rec["skipped"], indent=1) if rec["skipped"] else "nothing skipped")
    print(f"results: {out}")


def _max_labels(arg: str | None, ap: argparse.ArgumentParser) -> dict:
    """MAX_LABELS, with `--max-labels setfit=64,active=1024` over it."""
    out = dict(MAX_LABELS)
    for pair in arg.split(",") if arg else []:
        name, _, n = pair.partition("=")
        if name not in APPROACHES.split(",") or not n.isdigit():
            ap.error(f"--max-labels {pair}: give APPROACH=N with an approach of {APPROACHES}")
        out[name] = int(n)
    return out


if __name__ == "__main__":
    main()
