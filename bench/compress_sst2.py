"""Benchmark: every compression of a minilm-l6 fine-tuned on SST-2, side by side.

1. The parent: `--parent DIR` (an artifact), or fine-tuned here with recipes/sst2-minilm-full.yaml.
2. Each variant is made with the library's `compress` (chains as listed in VARIANTS).
3. All variants are loaded into one process: dev accuracy on all 872 dev sentences, then
   latency at batch 1 and 32, model only (pre-tokenized) and with tokenization. Each variant is
   timed in a fresh process holding only it and the parent, in alternation with the parent
   (blocks of 3 calls, the last one timed), so both see the same machine state; speed-up =
   parent median / variant median from that pair. (Interleaving single calls of all variants
   in one process was tried first: ONNX Runtime's and OpenMP's spin-waiting thread pools, and
   16 loaded models, slowed whichever ran next, by up to 3x.)
   Batch-1 calls cycle through 32 dev sentences; batch 32 is those 32 sentences.

    SUPREMUM_DATA=../shared/data python bench/compress_sst2.py [--parent DIR] [--rounds 40]
    python bench/compress_sst2.py --quick [--out x.json]   # smoke: tiny-bert parent, 3 variants, 3 rounds

Writes bench/results/compress_sst2.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "compress_sst2.json"
KD = {"bf16": True, "epochs": 3}
# name: (parent variant, method, options)
VARIANTS = {
    "int8-dynamic": ("parent", "int8-dynamic", {}),
    "int8-weight": ("parent", "int8-weight", {}),
    "int4-weight": ("parent", "int4-weight", {}),
    "fp16": ("parent", "fp16", {}),
    "bf16": ("parent", "bf16", {}),
    "onnx": ("parent", "onnx", {}),
    "onnx-int8-dynamic": ("parent", "onnx-int8-dynamic", {}),
    "onnx-int8-static": ("parent", "onnx-int8-static", {}),
    "prune-magnitude-50": ("parent", "prune-magnitude", {"sparsity": 0.5}),
    "lowrank-e0.9": ("parent", "lowrank", {"energy": 0.9, "recover_epochs": 1, "bf16": True}),
    "L3": ("parent", "drop-layers", {"num_layers": 3}),
    "L3+distill": ("L3", "distill", KD),
    "L3+distill+int8-dynamic": ("L3+distill", "int8-dynamic", {}),
    "L3+distill+onnx-int8": ("L3+distill", "onnx-int8-dynamic", {}),
    "L3+distill-hidden": ("L3", "distill", {**KD, "hidden_weight": 1.0, "epochs": 5}),
    "L3+distill-hidden+onnx-int8": ("L3+distill-hidden", "onnx-int8-dynamic", {}),
    "L4": ("parent", "drop-layers", {"num_layers": 4}),
    "L4+distill-hidden": ("L4", "distill", {**KD, "hidden_weight": 1.0, "epochs": 5}),
    "L4+distill-hidden+onnx-int8": ("L4+distill-hidden", "onnx-int8-dynamic", {}),
    "ffn50": ("parent", "prune-ffn", {"amount": 0.5}),
    "ffn50+heads33": ("ffn50", "prune-heads", {"amount": 0.33}),
    "ffn50+heads33+distill": ("ffn50+heads33", "distill", KD),
    "ffn50+heads33+distill+onnx-int8": ("ffn50+heads33+distill", "onnx-int8-dynamic", {}),
    "ffn70": ("parent", "prune-ffn", {"amount": 0.7}),
    "ffn70+heads50": ("ffn70", "prune-heads", {"amount": 0.5}),
    "ffn70+heads50+distill": ("ffn70+heads50", "distill", KD),
    "ffn70+heads50+distill+onnx-int8": ("ffn70+heads50+distill", "onnx-int8-dynamic", {}),
}
INTERMEDIATE = {"L3", "L4", "ffn50", "ffn50+heads33", "ffn70", "ffn70+heads50", "L1"}  # made, not measured
# --quick: a tiny-bert parent, an ONNX Runtime variant and a PyTorch chain
QUICK_VARIANTS = {"onnx-int8-dynamic": VARIANTS["onnx-int8-dynamic"],
                  "L1": ("parent", "drop-layers", {"num_layers": 1}),
                  "L1+int8-dynamic": ("L1", "int8-dynamic", {})}


def data_dir() -> str:
    root = os.environ.get("SUPREMUM_DATA")
    if not root:
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    return str(Path(root) / "sst2")


def make_parent(out: Path, quick: bool = False):
    from supremum.recipe import build, load_yaml
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    raw, _ = load_yaml(Path(__file__).parents[1] / "recipes" / "sst2-minilm-full.yaml")
    raw["data"]["path"] = data_dir()
    raw["output"] = str(out)
    if quick:
        raw["model"] = {"name": "tiny-bert"}
        raw["train"] = {**raw.get("train", {}), "max_steps": 4, "eval_every": 4}
    return finetune(build(FinetuneConfig, raw), progress=False).artifact


def make_variants(parent, work: Path, only: list[str] | None) -> tuple[dict, dict]:
    """Each variant once; an artifact already in `work` from an earlier run is reused."""
    from supremum.artifact import open_artifact
    from supremum.compress import compress, compressors

    arts, seconds = {"parent": parent}, {}
    for name, (src, method, opts) in VARIANTS.items():
        if only and name not in only and not any(VARIANTS[o][0] == name for o in only):
            continue
        out = work / name.replace("+", "_")
        if (out / "manifest.json").exists():
            arts[name] = open_artifact(out)
            continue
        cfg = compressors()[method].config_cls(**opts)
        t0 = time.perf_counter()
        arts[name] = compress(arts[src], cfg, output=out)
        seconds[name] = time.perf_counter() - t0
        print(f"made {name} in {seconds[name]:.0f} s", file=sys.stderr, flush=True)
    return arts, seconds


def accuracy(model, tok, texts, labels) -> float:
    from supremum.infer import predict_logits

    ids = tok(texts, truncation=True, max_length=128)["input_ids"]
    return float((predict_logits(model, ids, tok.pad_token_id).argmax(-1) == np.asarray(labels)).mean())


def calls(model, tok, texts: list[str]) -> dict:
    import torch

    def enc(batch):
        e = tok(batch, truncation=True, max_length=128, padding=True, return_tensors="pt")
        return {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]}

    singles = [enc([t]) for t in texts]
    batch = enc(texts)
    state = {"i": 0}

    def b1(tokenize: bool):
        def run():
            i = state["i"] = (state["i"] + 1) % len(texts)
            with torch.inference_mode():
                model(**(enc([texts[i]]) if tokenize else singles[i]))
        return run

    def b32(tokenize: bool):
        def run():
            with torch.inference_mode():
                model(**(enc(texts) if tokenize else batch))
        return run

    return {"b1_model": b1(False), "b1_tok": b1(True), "b32_model": b32(False), "b32_tok": b32(True)}


def accuracies(arts: dict) -> dict:
    """Dev accuracy of every measured variant, loaded one at a time."""
    from supremum.backends import load as load_artifact_model
    from supremum.config import DataConfig
    from supremum.data import load_data

    data = load_data(DataConfig(path=data_dir()), label_names=arts["parent"].label_names)
    texts, labels = data.texts("dev"), data.labels("dev")
    out = {}
    for name, art in arts.items():
        if name in INTERMEDIATE:
            continue
        model, tok = load_artifact_model(art)
        out[name] = {"artifact": art.id, "path": str(art.path),
                     "dev_accuracy": accuracy(model, tok, texts, labels),
                     "chain": [c.method for c in art.manifest.compression],
                     "size_on_disk_mb": sum(f.stat().st_size for f in art.path.iterdir()) / 2**20}
        print(f"{name}: dev accuracy {out[name]['dev_accuracy']:.4f}", file=sys.stderr, flush=True)
    return out


def timing_pair(parent_path: str, variant_path: str, rounds: int, warmup: int) -> dict:
    """Run in a fresh process holding only the parent and one variant."""
    from supremum.artifact import open_artifact
    from supremum.backends import load as load_artifact_model
    from supremum.config import DataConfig
    from supremum.data import load_data

    texts = load_data(DataConfig(path=data_dir())).texts("dev")[:32]
    fns = [calls(*load_artifact_model(open_artifact(p)), texts) for p in (parent_path, variant_path)]
    out = {}
    for key in ("b1_model", "b1_tok", "b32_model", "b32_tok"):
        reps = rounds if key.startswith("b1") else max(5, rounds // 4)
        out[f"parent_{key}"], out[key] = pair(fns[0], fns[1], key, reps, warmup)
    return out


def _summary(s: list[float], warmup: int) -> dict:
    return {"median_ms": statistics.median(s), "p95_ms": float(np.percentile(s, 95)),
            "repeats": len(s), "warmup": warmup}


def pair(parent: dict, variant: dict, key: str, reps: int, warmup: int, block: int = 3) -> tuple[dict, dict]:
    """Parent and variant in alternating blocks of `block` calls, only the last call of each
    block timed: the first calls after a switch absorb the other runtime's threads still
    spinning (ONNX Runtime's and OpenMP's pools both spin-wait after a call)."""
    a, b = [], []
    for r in range(warmup + reps):
        for fn, acc in ((parent[key], a), (variant[key], b)):
            for _ in range(block - 1):
                fn()
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                acc.append((time.perf_counter() - t0) * 1000)
    return _summary(a, warmup), _summary(b, warmup)


def measure(arts: dict, rounds: int, warmup: int) -> dict:
    out = accuracies(arts)
    base = out["parent"]
    for name, m in out.items():
        m["accuracy_delta_pt"] = 100 * (m["dev_accuracy"] - base["dev_accuracy"])
        proc = subprocess.run([sys.executable, __file__, "--pair", base["path"], m["path"], "--rounds",
                               str(rounds), "--warmup", str(warmup)], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"timing {name} failed:\n{proc.stderr[-2000:]}")
        m.update(json.loads(proc.stdout))
        for key in ("b1_model", "b1_tok", "b32_model", "b32_tok"):
            m[f"speedup_{key}"] = m[f"parent_{key}"]["median_ms"] / m[key]["median_ms"]
        print(f"{name}: b1 {m['b1_model']['median_ms']:.2f} ms, {m['speedup_b1_model']:.2f}x",
              file=sys.stderr, flush=True)
    return out


def explain(arts: dict, results: dict) -> None:
    from supremum.backends.explain import runtime, why
    from supremum.machine import fingerprint

    isa = fingerprint()["isa"]
    for name, m in results.items():
        man = arts[name].manifest
        ops = man.compression[-1].report.get("operators") if name != "parent" and man.compression else None
        m["runtime"] = runtime(man, isa, ops)["kernels"]
        m["why_no_speedup_b1"] = why(man, isa, m["speedup_b1_model"], 1)


def table(res: dict) -> str:
    rows = ["| variant | dev acc. | Δ pt | b1 model ms | b1 speed-up | b1 with tok. speed-up | "
            "b32 speed-up | size MB |", "|---|---|---|---|---|---|---|---|"]
    for name, m in res["variants"].items():
        rows.append(f"| {name} | {100 * m['dev_accuracy']:.2f}% | {m['accuracy_delta_pt']:+.2f} | "
                    f"{m['b1_model']['median_ms']:.2f} | {m['speedup_b1_model']:.2f}x | "
                    f"{m['speedup_b1_tok']:.2f}x | {m['speedup_b32_model']:.2f}x | {m['size_on_disk_mb']:.1f} |")
    mach = res["machine"]
    rows.append(f"\nMachine: {mach['cpu']}, {mach['cores']} cores, {', '.join(mach['isa'])}; "
                f"{res['settings']['threads']} threads; {res['settings']['method']}")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parent", help="fine-tuned artifact to start from (default: train one)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="variants to make (their parents are made too)")
    ap.add_argument("--table", action="store_true", help="print the table of the saved results")
    ap.add_argument("--work", help="directory for the variants; existing ones are reused")
    ap.add_argument("--pair", nargs=2, help=argparse.SUPPRESS)  # internal: time parent vs one variant
    _quick.add_args(ap)
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text())))
        return
    if args.pair:
        print(json.dumps(timing_pair(*args.pair, args.rounds, args.warmup)))
        return
    import torch
    import transformers

    from supremum.artifact import open_artifact
    from supremum.machine import fingerprint

    out_path = _quick.prelude(args, RESULTS)
    if args.quick:
        VARIANTS.clear()
        VARIANTS.update(QUICK_VARIANTS)
        args.rounds, args.warmup = 3, 1
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="supremum-bench-compress-"))
    os.environ.setdefault("SUPREMUM_HOME", str(work / "home"))
    parent = open_artifact(args.parent) if args.parent else make_parent(work / "parent", args.quick)
    arts, seconds = make_variants(parent, work, args.only)
    results = measure(arts, args.rounds, args.warmup)
    explain(arts, results)
    for name, s in seconds.items():
        if name in results:
            results[name]["compress_seconds"] = s
    res = {"machine": fingerprint(), "variants": results,
           "settings": {"threads": torch.get_num_threads(), "rounds": args.rounds, "warmup": args.warmup,
                        "variants": {k: list(v) for k, v in VARIANTS.items()},
                        "method": "dev accuracy on all 872 SST-2 dev sentences; latency: perf_counter, "
                                  "each variant in its own process, alternated with the parent in blocks "
                                  "of 3 calls, the last of each block timed, median over rounds (b1 cycles "
                                  "through 32 "
                                  "dev sentences; b32 = those 32)"}}
    if args.only and out_path.exists():  # a partial run updates its rows of the full table
        old = json.loads(out_path.read_text())
        res["variants"] = {**old["variants"], **results}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2, default=str))
    print(table(res))


if __name__ == "__main__":
    main()
