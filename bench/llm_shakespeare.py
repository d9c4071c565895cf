"""Benchmark: SmolLM2-135M-Instruct on tinyshakespeare: LoRA fine-tune, then every compression,
perplexity next to decode speed.

Data: tinyshakespeare/input.txt; the first 88% trains, the next 2% is dev (early checkpoint
choice), the last 10% is held out (test). Every number comes from the CLI, each step in a fresh
process (so peak memory is the step's own), and lands in the run store like any user's run:

1. `supremum eval smollm2-135m` (PyTorch fp32) and `--backend llamacpp` (the shipped Q4_1 GGUF).
2. `supremum finetune --method lora` for a fixed number of steps that fits 15 minutes here
   (batch 8 blocks of 128 tokens), in two settings (FINETUNES).
3. `supremum compress` of the fine-tuned model: PyTorch int8 dynamic, torchao int8 weight-only,
   int4 weight-only; GGUF export run by llama.cpp (q8_0, q4_k_m, q4_0, q4_1, q5_0); the shipped
   Q4_1 base with the LoRA adapter applied by llama.cpp at run time (gguf-lora); the layer-dropped
   student (LAYERS of 30 kept) distilled from the fine-tuned teacher, also exported to q8_0.
4. `supremum eval` of each on the held-out split: perplexity over the first EVAL_TOKENS tokens
   (window 256, stride 128), batch-1 greedy decode of 64 tokens after a 64-token prompt
   (1 warm-up + 3 timed generations, median per token), samples.

    SUPREMUM_DATA=../shared/data python bench/llm_shakespeare.py [--work DIR]
    python bench/llm_shakespeare.py --quick [--out x.json]   # smoke: tiny-llama, tiny text, a few steps

Finished steps are reused on a re-run (artifacts in --work, store in --work/home).
Writes bench/results/llm_shakespeare.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402
from _quick import cli  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "llm_shakespeare.json"
EVAL_TOKENS = 8192
LAYERS = 20
DATA_KEYS = ["data.dev_fraction=0.02", "data.test_fraction=0.1", "data.max_length=128"]
# LoRA fine-tunes, each under 15 minutes here: name: (steps, lr, extra options). "lora" is the
# parent of every compression; "lora-r16" is a second setting (higher rank and learning rate).
FINETUNES = {"lora": (120, 2e-3, []), "lora-r16": (165, 4e-3, ["method.r=16", "method.alpha=32"])}
# name: (parent, method, options)
VARIANTS = {
    "int8-dynamic": ("lora", "int8-dynamic", []),
    "int8-weight": ("lora", "int8-weight", []),
    "int4-weight": ("lora", "int4-weight", ["group_size=32"]),
    "gguf-q8_0": ("lora", "gguf", ["quant=q8_0"]),
    "gguf-q4_k_m": ("lora", "gguf", ["quant=q4_k_m"]),
    "gguf-q4_0": ("lora", "gguf", ["quant=q4_0"]),
    "gguf-q4_1": ("lora", "gguf", ["quant=q4_1"]),
    "gguf-q5_0": ("lora", "gguf", ["quant=q5_0"]),
    "gguf-lora (shipped Q4_1 + adapter)": ("lora", "gguf-lora", ["base_quant=source"]),
    f"L{LAYERS}": ("lora", "drop-layers", [f"num_layers={LAYERS}"]),
    f"L{LAYERS}+distill": (f"L{LAYERS}", "distill", ["max_steps=60", "batch_size=8", "lr=3e-4", "alpha=0.9",
                                                      "eval_every=30"]),
    f"L{LAYERS}+distill+gguf-q8_0": (f"L{LAYERS}+distill", "gguf", ["quant=q8_0"]),
}


MODEL, WINDOW, BASES = "smollm2-135m", 256, {"base": None, "base-llamacpp-q4_1": "llamacpp"}
# --quick: tiny-llama (no GGUF of its own, so no llama.cpp base), short windows, a few steps
QUICK = {"MODEL": "tiny-llama", "WINDOW": 32, "EVAL_TOKENS": 512, "BASES": {"base": None},
         "DATA_KEYS": ["data.dev_fraction=0.05", "data.test_fraction=0.1", "data.max_length=32"],
         "FINETUNES": {"lora": (4, 3e-2, [])}, "EVAL_EXTRA": ["--new-tokens", "8"],
         "VARIANTS": {"int8-dynamic": ("lora", "int8-dynamic", []),
                      **({"gguf-q8_0": ("lora", "gguf", ["quant=q8_0"])}
                         if importlib.util.find_spec("llama_cpp") else {})}}
EVAL_EXTRA: list[str] = []


def evaluate(ref: str, data: str | None = None, backend: str | None = None) -> dict:
    args = ["eval", ref, "--split", "test", "--max-tokens", str(EVAL_TOKENS), "--window", str(WINDOW),
            "--stride", str(WINDOW // 2), "--json", *EVAL_EXTRA]
    if data:
        args += ["--data", data, "--max-length", str(WINDOW // 2)]
    if backend:
        args += ["--backend", backend]
    return json.loads(cli(*args))


def row(m: dict) -> dict:
    g = m["cost"]["generation"]
    return {"perplexity": m["perplexity"], "bits_per_byte": m["bits_per_byte"],
            "decode_tokens_per_s": g["decode_tokens_per_s"], "decode_ms_p95": g["decode_ms_p95"],
            "prefill_tokens_per_s": g["prefill_tokens_per_s"], "ttft_ms": g["ttft_ms"],
            "peak_rss_mb": m["cost"]["peak_rss_mb"], "weights_mb": m["cost"]["weights_mb"],
            "size_on_disk_mb": m.get("size_on_disk_mb"), "runtime": m.get("runtime", {}).get("kernels"),
            "samples": m["samples"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/supremum-bench-llm")
    _quick.add_args(ap)
    args = ap.parse_args()
    results = _quick.prelude(args, RESULTS, QUICK, globals())
    if args.quick:
        args.work = tempfile.mkdtemp(prefix="supremum-bench-llm-")
    data_root = os.environ.get("SUPREMUM_DATA")
    if not data_root:
        sys.exit("set SUPREMUM_DATA to the folder holding tinyshakespeare/")
    data = str(Path(data_root) / "tinyshakespeare" / "input.txt")
    work = Path(args.work)
    os.environ["SUPREMUM_HOME"] = str(work / "home")
    out = json.loads(results.read_text()) if results.exists() else {}
    out.update({"machine": f"{os.cpu_count()} cores", "eval_tokens": EVAL_TOKENS,
                "variants": out.get("variants", {})})
    res = out["variants"]

    def save() -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(out, indent=1))

    for name, backend in BASES.items():
        if name not in res:
            res[name] = row(evaluate(MODEL, data, backend))
            save()
    for name, (steps, lr, extra) in FINETUNES.items():
        path = work / name
        if not (path / "manifest.json").exists():
            t0 = time.perf_counter()
            ft = json.loads(cli("finetune", "--model", MODEL, "--data", data, "--method", "lora",
                                "--max-steps", str(steps), "--batch-size", "8", "--lr", str(lr),
                                "--eval-every", str(steps // 3), "--output", str(path), "--no-progress", "--json",
                                *DATA_KEYS, *extra))
            out.setdefault("finetunes", {})[name] = {
                "wall_s": time.perf_counter() - t0, "lr": lr, "options": extra,
                **{k: ft["metrics"][k] for k in ("steps", "train_seconds", "dev_loss", "dev_perplexity",
                                                 "trainable_params", "evals")}}
            save()
        if name not in res:
            res[name] = row(evaluate(str(path)))
            save()
    for name, (parent, method, options) in VARIANTS.items():
        path = work / name
        if not (path / "manifest.json").exists():
            cli("compress", str(work / parent), "--method", method, "--output", str(path), *options)
        if name not in res:
            res[name] = row(evaluate(str(path)))
            save()
    fp32, base = res["lora"], res["base"]
    speed = {k: v["decode_tokens_per_s"] / fp32["decode_tokens_per_s"] for k, v in res.items()}
    ppl = {k: v["perplexity"] / fp32["perplexity"] - 1 for k, v in res.items()}
    ours = [k for k in VARIANTS if k in res]
    eight = [k for k in ours if "8" in k and not k.startswith("L")]
    within5 = [k for k in ours if ppl[k] <= 0.05]
    fastest = max(within5, key=lambda k: speed[k]) if within5 else None
    out["summary"] = {
        "perplexity_change_vs_base": {k: res[k]["perplexity"] / base["perplexity"] - 1
                                      for k in FINETUNES if k in res},
        "speedup_vs_fp32": speed, "perplexity_change_vs_fp32": ppl,
        "target_8bit": {k: {"speedup": speed[k], "ppl_change": ppl[k], "met": speed[k] >= 1.5 and ppl[k] <= 0.02}
                        for k in eight},
        "fastest_within_5pct": fastest and "base-llamacpp-q4_1" in res and {
            "variant": fastest, "decode_tokens_per_s": res[fastest]["decode_tokens_per_s"],
            "shipped_q4_1_tokens_per_s": res["base-llamacpp-q4_1"]["decode_tokens_per_s"],
            "met": res[fastest]["decode_tokens_per_s"] >= res["base-llamacpp-q4_1"]["decode_tokens_per_s"]},
    }
    save()
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
