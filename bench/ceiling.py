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

predict: prediction from a tenth of the data. For each dataset (SST-2, and MR with the
library's seeded stratified 80/10/10 split) the model is fully fine-tuned on nested subsets
(`limit.curve`'s compare cells: the first n of one seeded shuffle, each subset trained for
max(--epochs, --min-steps optimizer steps)) at --fit-fractions of each prefix share (default
share/4, share/2, share), and on the whole training set, each with every --seeds seed. For each
share the learning curve error(n) = E + B/n^beta is fitted (`limit.curve.analyze_curve`) on
that share's runs only and its prediction at n_train is read, with its 95% interval from the
profile-likelihood region of the fit (every (E, B, beta) within the F-quantile of the best
residual sum of squares); that interval is for the curve's expected accuracy, so it leaves out
the seed noise of the measured mean it is compared with (3 seeds: s.d./sqrt(3)). Compared with
the mean over the same seeds of the full-data runs on --split: absolute error in pt, whether the
interval contains the measured mean, and per share the mean absolute error over datasets against
the targets (0.9 pt from 10%, 0.5 pt from 25%). Cells are cached by config hash in the store
under --work, so the full-data runs serve every share and a re-run resumes.

    SUPREMUM_DATA=../shared/data python bench/ceiling.py predict --datasets sst2,mr --from 0.1,0.25 \\
        --out bench/results/ceiling_predict.json

search: the search against hand tuning, small form. The `supremum ceiling` search alone
(`studies.search.run_search`: Optuna TPE over method, lr, epochs, batch size, LoRA rank, warm-up,
weight decay, layer decay; successive-halving pruning on dev; the base configuration enqueued
first, as `supremum ceiling` does) with --budget-minutes, against a grid with the same budget: a
fixed list of (method, lr) points (--grid-lr-factors times each method's default lr, factor by
factor, full then LoRA) at the base settings, run in order while the time spent plus the median
point's time fits the budget (the search's own rule). One run each (seed --seed), SST-2 dev,
the same base. Reported: the best dev each reaches, and the time each needed to reach the
grid's best (the durations of its runs, in order, up to the first as good: a resumed run's gap
does not count; a resumed search gets what its finished trials left of the budget), against the
hand-tuned 88.65% (full) / 87.50% (LoRA) and the 90.0% target. One search and one grid: the
comparison has no seed spread of its own (a rerun with another --seed gives one). Both sides take
3 hours on 2 cores; `--sides search` or `--sides grid` runs one, and `--against other.json` puts the
other side's result (kept with its machine) beside it.

    SUPREMUM_DATA=../shared/data python bench/ceiling.py search --budget-minutes 90 \\
        --out bench/results/ceiling_search.json

Finished shares, cells, search trials and grid points are kept under --work (keyed by every
setting), so an interrupted run resumes.
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
RESULTS = Path(__file__).parent / "results"
PARTS = ("label-noise", "predict", "search")
DATASETS = {"sst2": "sst2", "mr": "mr/mr.jsonl"}  # under $SUPREMUM_DATA
MAE_TARGET_PT = {0.1: 0.9, 0.25: 0.5}  # issue 19: from 10% of the data, from 25%
HAND_TUNED = {"full": 0.8865, "lora": 0.8750}  # SST-2 dev, minilm-l6, by hand (issue 19)
SEARCH_TARGET = 0.90


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
    ap.add_argument("--datasets", default="sst2,mr", help=f"predict: of {', '.join(DATASETS)}")
    ap.add_argument("--from", dest="shares_from", default="0.1,0.25",
                    help="predict: prefix shares of the training set the curve is fitted on")
    ap.add_argument("--fit-fractions", default="0.25,0.5,1",
                    help="predict: the fitted sizes, as multiples of each share")
    ap.add_argument("--seeds", default="0,1,2", help="predict: seeds of every size and of the full-data runs")
    ap.add_argument("--min-steps", type=int, default=60, help="predict: optimizer steps at least per subset")
    ap.add_argument("--split", default="test", help="predict: split the accuracy is measured on")
    ap.add_argument("--jobs", type=int, default=1, help="predict: cells at once (1 keeps their times clean)")
    ap.add_argument("--budget-minutes", type=float, default=90.0, help="search: budget of the search, and "
                    "the same again of the grid")
    ap.add_argument("--grid-lr-factors", default="1,0.3,3,0.1,10,0.5,2,0.2,5,0.15,0.7,1.5,7",
                    help="search: the grid's lr as multiples of each method's default, in order (coarse to "
                    "fine over the search's range, a decade either side: enough to fill 90 min)")
    ap.add_argument("--trials", type=int, help="search: at most this many trials (and grid points)")
    ap.add_argument("--sides", default="search,grid", help="search: the sides to run, of search and grid "
                    "(one side alone fits a session; the other side's JSON is compared with `--against`)")
    ap.add_argument("--against", help="search: a JSON of this part run for the other side, to compare with")
    _quick.add_args(ap)
    args = ap.parse_args()
    if unknown := set(args.parts) - set(PARTS):
        ap.error(f"unknown part {sorted(unknown)[0]!r}; parts: {', '.join(PARTS)}")
    parts = args.parts or list(PARTS)
    name = f"ceiling_{parts[0].replace('-', '_')}.json" if len(parts) == 1 else "ceiling.json"
    out = _quick.results_path(args, RESULTS / name)
    if args.quick:
        _quick.quick_env()
        args.work = tempfile.mkdtemp(prefix="supremum-bench-ceiling-")
        args.model, args.shares, args.folds, args.max_length = "tiny-bert", "0,0.1", 3, 32
        # predict: one dataset (MR's one-file layout; search covers SST-2), 4 sizes x 1 seed + full data:
        # 5 cells, each a process of its own
        args.datasets, args.shares_from, args.seeds, args.min_steps = "mr", "0.5", "0", 60
        args.fit_fractions, args.jobs = "0.25,0.5,0.75,1", 2
        args.budget_minutes, args.trials, args.grid_lr_factors = 2.0, 3, "30,3"  # lr 3e-3 (lora 3e-2), 3e-4
    if not os.environ.get("SUPREMUM_DATA"):
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    os.environ["SUPREMUM_HOME"] = str(Path(args.work) / "home")
    from supremum.machine import fingerprint

    settings = {k: v for k, v in vars(args).items() if k not in ("out", "parts")}
    settings["train"] = _train_settings(args)
    res = {"machine": fingerprint(), "settings": settings}
    for part in parts:
        res[part] = {"label-noise": label_noise, "predict": predict, "search": search}[part](args)
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
    from supremum.hashing import content_hash
    from supremum.store import Store
    from supremum.studies.oof import label_noise_stage
    from supremum.train.config import FinetuneConfig
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


# ---- prediction from a share of the data -------------------------------------------------------

def predict(args) -> dict:
    shares = sorted({float(x) for x in args.shares_from.split(",")})
    mults = sorted({float(x) for x in args.fit_fractions.split(",")})
    if any(not 0 < x < 1 for x in shares) or any(not 0 < m <= 1 for m in mults) or len(mults) < 3:
        sys.exit("--from takes shares in (0, 1); --fit-fractions at least 3 multiples in (0, 1]")
    if len(mults) * len(args.seeds.split(",")) < 4:
        sys.exit("each share's fit needs at least 4 runs: give more --fit-fractions or --seeds")
    if unknown := set(args.datasets.split(",")) - set(DATASETS):
        sys.exit(f"unknown dataset {sorted(unknown)[0]!r}; datasets: {', '.join(DATASETS)}")
    rows = []
    per = {}
    for name in args.datasets.split(","):
        per[name] = _predict_dataset(args, name, shares, mults)
        rows += per[name]["rows"]
    summary = {}
    for share in shares:
        mine = [r for r in rows if r["share"] == share]
        mae = float(np.mean([abs(r["error_pt"]) for r in mine]))
        target = MAE_TARGET_PT.get(share)
        contains = sum(r["ci_contains_measured"] for r in mine)
        summary[f"{share:g}"] = {"mean_abs_error_pt": round(mae, 2), "target_pt": target,
                                 "hit": None if target is None else bool(mae <= target),
                                 "ci_contains_measured": f"{contains}/{len(mine)}"}
        print(f"from {share:.0%}: mean abs error {mae:.2f} pt" + (f" (target <= {target} pt: "
              f"{'hit' if mae <= target else 'miss'})" if target is not None else ""), flush=True)
    return {"rows": rows, "datasets": per, "summary": summary,
            "interval": "95% profile-likelihood region of the fit (the curve's expected accuracy at n_train; "
                        "the seed noise of the measured mean is not in it)"}


def _predict_dataset(args, name: str, shares: list[float], mults: list[float]) -> dict:
    """Every (size, seed) cell of one dataset (cached), then one fit per share."""
    from supremum.compare import cells, run_cells
    from supremum.config import DataConfig
    from supremum.data import load_data
    from supremum.limit.curve import CurveConfig, analyze_curve, compare_config
    from supremum.limit.resolution import seed_spread
    from supremum.store import Store

    data = DataConfig(path=str(Path(os.environ["SUPREMUM_DATA"]) / DATASETS[name]), max_length=args.max_length)
    splits = load_data(data).splits
    n_train, n_eval = len(splits["train"]), len(splits[args.split])
    fractions = sorted({s * m for s in shares for m in mults} | {1.0})
    cfg = CurveConfig(name=f"bench-ceiling-predict-{name}", model={"name": args.model}, data=data,
                      method={"name": "full"}, train=_curve_train(args), fractions=fractions,
                      seeds=[int(x) for x in args.seeds.split(",")], min_steps=args.min_steps, split=args.split)
    ccfg = compare_config(cfg, n_train)
    ccfg.jobs = args.jobs
    t0 = time.perf_counter()
    res = run_cells(ccfg, cells(ccfg), Store(Path(args.work) / "home"),
                    lambda m: print(f"[predict {name}] {m}", flush=True))
    runs = [{"n": r["config"]["data"].get("train_limit") or n_train, "seed": r["seed"],
             "accuracy": r["accuracy"][args.split], "train_seconds": r["train_seconds"], "cached": r["cached"]}
            for r in res]
    full = [r["accuracy"] for r in runs if r["n"] == n_train]
    measured = seed_spread(full) if len(full) > 1 else {"mean": full[0], "std": None, "seeds": 1, "ci": None}
    rows = []
    for share in shares:
        sizes = {max(2, int(round(share * m * n_train))) for m in mults}
        pts = [(r["n"], r["accuracy"], r["seed"]) for r in runs if r["n"] in sizes]
        fit = analyze_curve(pts, None, 0, eval_examples=n_eval, n_train=n_train, split=args.split,
                            predict_at=[n_train])
        p = fit["predictions"][0]
        rows.append({"dataset": name, "share": share, "sizes": sorted(sizes), "runs": len(pts),
                     "predicted": p["accuracy"], "ci": p["ci"], "measured_mean": measured["mean"],
                     "measured_std": measured["std"], "measured_ci": measured["ci"],
                     "error_pt": round(100 * (p["accuracy"] - measured["mean"]), 2),
                     "ci_contains_measured": p["ci"][0] <= measured["mean"] <= p["ci"][1],
                     "ceiling": fit["ceiling"]["accuracy"], "ceiling_ci": fit["ceiling"]["ci"],
                     "verdict": fit["ceiling"]["verdict"], "fit": fit["fit"]})
        r = rows[-1]
        print(f"{name} from {share:.0%}: predicted {r['predicted']:.2%} [{r['ci'][0]:.2%}, {r['ci'][1]:.2%}], "
              f"measured {r['measured_mean']:.2%} +- {r['measured_std'] or 0:.2%} ({r['error_pt']:+.2f} pt)",
              flush=True)
    return {"data": data.path, "n_train": n_train, "n_eval": n_eval, "split": args.split, "runs": runs,
            "measured": measured, "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
            "train": ccfg.train.model_dump(mode="json", exclude_unset=True)}


def _curve_train(args) -> dict:
    """Training settings of the curve and search runs (seeds set per cell and trial)."""
    if args.quick:  # the tiny model learns the synthetic task in a few dozen steps at a high rate
        return {"epochs": 5, "batch_size": 8, "lr": 3e-3}
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "bf16": args.bf16,
            "warmup_ratio": 0.06}


# ---- the search against a grid of the same budget ----------------------------------------------

def search(args) -> dict:
    from supremum.hashing import content_hash
    from supremum.store import Store
    from supremum.train.config import FinetuneConfig

    sides = args.sides.split(",")
    if not sides or set(sides) - {"search", "grid"}:
        sys.exit(f"--sides takes search, grid or both; got {args.sides!r}")
    data = {"path": str(Path(os.environ["SUPREMUM_DATA"]) / "sst2"), "max_length": args.max_length}
    base = FinetuneConfig.model_validate({"model": args.model, "data": data, "method": "full",
                                          "train": {**_curve_train(args), "seed": args.seed}})
    key = content_hash({"base": base.model_dump(mode="json"), "budget": args.budget_minutes,
                        "trials": args.trials, "grid": args.grid_lr_factors}, length=12)
    work = Path(args.work) / f"search-{key}"
    store = Store(Path(args.work) / "home")
    out = {"base": base.model_dump(mode="json", exclude={"output", "tracking"}), "sides": sides,
           "hand_tuned": HAND_TUNED, "target": SEARCH_TARGET}
    if "search" in sides:
        out["search"] = _search_side(args, base, work, store)
    if "grid" in sides:
        from supremum.studies.search import SearchConfig, containing
        methods = containing(SearchConfig(base=base, budget_minutes=args.budget_minutes,
                                          output=str(work / "search")))[0].methods
        out["grid"] = _grid(args, base, methods, work / "grid", store)
    if args.against:  # the other side, run apart (another session on the same kind of machine)
        against = json.loads(Path(args.against).read_text())
        for side in {"search", "grid"} - set(sides):
            if side not in against["search"]:
                sys.exit(f"{args.against}: holds no {side} side (run it with --sides {side})")
            out[side] = against["search"][side]
            out[f"{side}_from"] = {"file": args.against, "machine": against.get("machine")}
    out["summary"] = _search_summary(out)
    sm = out["summary"]
    print(f"search best dev {_pct(sm['search_best_dev'])}, grid best {_pct(sm['grid_best_dev'])}; target "
          f"{SEARCH_TARGET:.0%}: " + ("not run" if sm["search_hit_target"] is None else
                                      "hit" if sm["search_hit_target"] else "miss"), flush=True)
    return out


def _pct(x: float | None) -> str:
    return "not run" if x is None else f"{x:.2%}"


def _search_side(args, base, work: Path, store) -> dict:
    from supremum.studies.search import SearchConfig, containing, open_study, run_search

    scfg = SearchConfig(base=base, budget_minutes=args.budget_minutes, n_trials=args.trials, seed=args.seed,
                        output=str(work / "search"), study_name="bench")
    scfg, now = containing(scfg)  # the base first, as `supremum ceiling` starts
    # a resumed search gets what its finished trials left of the budget (run_search's is per call)
    spent = sum(t.duration.total_seconds() for t in open_study(scfg).trials if t.duration)
    left = args.budget_minutes - spent / 60
    scfg = scfg.model_copy(update={"enqueue": [now], "budget_minutes": max(left, 1e-3)})
    print(f"search: {max(left, 0):.3g} of {args.budget_minutes:g} min", flush=True)
    res = run_search(scfg, store)
    trials = [t.model_dump() for t in res.trials]
    # time as the sum of trial durations in order (as the grid's): no gap of an interrupted run counts
    cum = 0.0
    for t in trials:
        cum += t["seconds"] or 0.0
        t["cumulative_s"] = round(cum, 2)
    best = res.best_value
    best_params = next((t["params"] for t in trials if t["state"] == "COMPLETE" and t["value"] == best), None)
    return {"best_dev": best, "best_params": best_params, "trials": trials, "pruned": res.pruned,
            "elapsed_seconds": res.elapsed_seconds, "stopped": res.stopped}


def _search_summary(out: dict) -> dict:
    """Each side's best dev, the time the search needed to reach the grid's best, and the targets;
    None for a side that was not run."""
    s, g = out.get("search"), out.get("grid")
    best = s["best_dev"] if s else None
    grid_best = g["best"]["dev"] if g and g["best"] else None
    reach = [t["cumulative_s"] for t in (s["trials"] if s else []) if t["state"] == "COMPLETE"
             and grid_best is not None and t["value"] >= grid_best]
    if s:
        s["seconds_to_grid_best"] = min(reach) if reach else None
    both = best is not None and grid_best is not None
    return {"search_best_dev": best, "grid_best_dev": grid_best,
            "search_minus_grid_pt": round(100 * (best - grid_best), 2) if both else None,
            "search_seconds_to_grid_best": min(reach) if reach else None,
            "grid_seconds_to_its_best": g["seconds_to_best"] if g else None,
            "search_hit_target": None if best is None else bool(best >= SEARCH_TARGET),
            "search_minus_hand_tuned_pt": {k: None if best is None else round(100 * (best - v), 2)
                                           for k, v in HAND_TUNED.items()}}


def _grid(args, base, methods: list[str], work: Path, store) -> dict:
    """(method, lr) points in order at the base settings, each started only while the time spent
    plus the median point's time fits the budget; finished points are kept (resume), and only the
    best point's artifact."""
    import shutil
    import statistics

    from supremum.fsutil import write_json
    from supremum.train.divergence import Diverged
    from supremum.train.finetune import finetune
    from supremum.train.methods import METHODS

    budget = args.budget_minutes * 60
    plan = [(m, f * METHODS[m].config_cls.default_lr) for f in (float(x) for x in args.grid_lr_factors.split(","))
            for m in methods]
    if args.trials:
        plan = plan[:args.trials]
    points, spent, stopped = [], 0.0, "grid done"
    for i, (method, lr) in enumerate(plan):
        done = work / f"point-{i}.json"
        if not done.exists():
            if points and spent + statistics.median(p["seconds"] for p in points) > budget:
                stopped = "budget"
                break
            d = base.model_dump(mode="json")
            ft = base.model_validate({**d, "method": {"name": method}, "train": {**d["train"], "lr": lr},
                                      "output": str(work / f"point-{i}")})
            t0 = time.perf_counter()
            try:
                r = finetune(ft, store=store, progress=False, command=f"bench ceiling grid {i}")
                dev, error = r.metrics["dev_accuracy"], None
            except Diverged as e:  # a point of the grid that diverges is a result, as it is for the search
                dev, error = None, str(e)
            write_json(done, {"method": method, "lr": lr, "dev": dev, "error": error,
                              "seconds": round(time.perf_counter() - t0, 2)})
            prior = _best_point(points)
            if dev is None or prior is not None:  # keep the better of the two artifacts
                worse = i if dev is None or prior["dev"] >= dev else prior["index"]
                for d in (work / f"point-{worse}", work / f"point-{worse}-adapter"):
                    shutil.rmtree(d, ignore_errors=True)
        p = {"index": i, **json.loads(done.read_text())}
        spent += p["seconds"]
        p["ended_s"] = round(spent, 2)
        points.append(p)
        print(f"grid {i}: {method} lr {lr:.2g}: " + (f"dev {p['dev']:.2%}" if p["dev"] is not None else
              f"failed ({p['error']})") + f" ({p['seconds']:.0f} s)", flush=True)
    best = _best_point(points)
    first = next((p for p in points if best and p["dev"] is not None and p["dev"] >= best["dev"]), None)
    return {"points": points, "planned": len(plan), "stopped": stopped, "seconds": round(spent, 2),
            "best": best, "seconds_to_best": first["ended_s"] if first else None}


def _best_point(points: list[dict]) -> dict | None:
    return max((p for p in points if p["dev"] is not None), key=lambda p: p["dev"], default=None)


if __name__ == "__main__":
    main()
