"""Benchmark: what a fine-tune of SmolLM2-135M-Instruct on tiny Shakespeare learns and what it
forgets, for full fine-tuning, LoRA, and LoRA with replay of general text.

Published finding to compare with: LoRA learns less and forgets less than full fine-tuning
(Biderman et al. 2024, "LoRA Learns Less and Forgets Less"); replay of earlier data lowers
forgetting (Scialom et al. 2022).

Data: tinyshakespeare/input.txt (the first 88% trains, the next 2% is dev, the last 10% is held
out: the task); wikitext2/ is the general text: `--reference-data` scores its test.txt,
`train.replay` mixes blocks of its valid.txt (never the scored file) into training. Every number
comes from the CLI, each step in a fresh process, and lands in the run store like any user's run:

1. `supremum eval smollm2-135m` on the held-out Shakespeare (the base model's task perplexity).
2. `supremum finetune` of each setting in FINETUNES: the same STEPS steps of 8 blocks of 128
   tokens, seed 42; learning rates are each method's usual ones (full 5e-5, LoRA 2e-3).
3. `supremum eval --reference-data wikitext2` of each fine-tune: task perplexity (first
   EVAL_TOKENS held-out tokens, window 256, stride 128) and reference perplexity (first
   REFERENCE_TOKENS tokens of WikiText-2 test) of the fine-tune and of its base model in the same
   run; forgetting = the reference perplexity's change in %. Decode speed is not measured here.

    SUPREMUM_DATA=../shared/data python bench/forgetting_shakespeare.py [--work DIR]
    python bench/forgetting_shakespeare.py --quick [--out x.json]   # smoke: tiny-llama, tiny text

Finished steps are reused on a re-run (artifacts in --work, store in --work/home).
Writes bench/results/forgetting_shakespeare.json.
"""

from __future__ import annotations

import argparse
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
RESULTS = Path(__file__).parent / "results" / "forgetting_shakespeare.json"
MODEL, STEPS, WINDOW, EVAL_TOKENS, REFERENCE_TOKENS = "smollm2-135m", 120, 256, 8192, 4096
DATA_KEYS = ["data.dev_fraction=0.02", "data.test_fraction=0.1", "data.max_length=128"]
# name: (method, lr, extra options); the replay share is of training rows (one in five)
FINETUNES = {"full": ("full", 5e-5, []), "lora": ("lora", 2e-3, []),
             "lora+replay": ("lora", 2e-3, ["--replay", "0.2", "--replay-data", "{reference}"])}
QUICK = {"MODEL": "tiny-llama", "STEPS": 4, "WINDOW": 32, "EVAL_TOKENS": 512, "REFERENCE_TOKENS": 256,
         "DATA_KEYS": ["data.dev_fraction=0.05", "data.test_fraction=0.1", "data.max_length=32"],
         "FINETUNES": {"full": ("full", 1e-3, []), "lora": ("lora", 3e-2, []),
                       "lora+replay": ("lora", 3e-2, ["--replay", "0.2", "--replay-data", "{reference}"])}}


def tiny_reference(root: Path) -> None:
    """--quick: a wikitext2/ of a few hundred plain sentences (valid.txt replayed, test.txt scored)."""
    (root / "wikitext2").mkdir(exist_ok=True)
    for name, seed in (("valid.txt", 1), ("test.txt", 2)):
        words = [f"word{(i * 7 + seed) % 23}" for i in range(3000)]
        lines = [" ".join(words[i:i + 12]) + " ." for i in range(0, len(words), 12)]
        (root / "wikitext2" / name).write_text("\n".join(lines) + "\n")


def evaluate(ref: str, data: str | None, reference: str | None) -> dict:
    """The held-out split: the base model is given the text and the fine-tunes' split (a fine-tune
    evaluates on the split recorded in its artifact)."""
    args = ["eval", ref, "--split", "test", "--max-tokens", str(EVAL_TOKENS), "--window", str(WINDOW),
            "--stride", str(WINDOW // 2), "--no-speed", "--json"]
    if data:
        args += ["--data", data, "--max-length", str(WINDOW // 2)]
    if reference:
        args += ["--reference-data", reference, "--reference-tokens", str(REFERENCE_TOKENS)]
    return json.loads(cli(*args))


def row(m: dict) -> dict:
    f = m.get("forgetting") or {}
    return {"task_perplexity": m["perplexity"], "reference_perplexity": f.get("perplexity"),
            "base_reference_perplexity": f.get("parent_perplexity"), "forgetting_pct": m.get("forgetting_pct")}


def summary(res: dict) -> dict:
    """Task gain (held-out perplexity drop vs the base model, %) against forgetting (reference
    perplexity rise, %), and whether the published ordering holds here."""
    base = res["base"]["task_perplexity"]
    gain = {k: 100 * (1 - v["task_perplexity"] / base) for k, v in res.items() if k != "base"}
    forget = {k: v["forgetting_pct"] for k, v in res.items() if k != "base"}
    out = {"task_gain_pct": gain, "forgetting_pct": forget}
    if {"full", "lora"} <= gain.keys():
        out["lora_learns_less"] = gain["lora"] < gain["full"]
        out["lora_forgets_less"] = forget["lora"] < forget["full"]
    if {"lora", "lora+replay"} <= forget.keys():
        out["replay_forgets_less"] = forget["lora+replay"] < forget["lora"]
        out["replay_task_cost_pct"] = gain["lora"] - gain["lora+replay"]
    return out


def finetune(name: str, data: str, reference: str, path: Path) -> dict:
    method, lr, extra = FINETUNES[name]
    t0 = time.perf_counter()
    ft = json.loads(cli("finetune", "--model", MODEL, "--data", data, "--method", method,
                        "--max-steps", str(STEPS), "--batch-size", "8", "--lr", str(lr),
                        "--eval-every", str(max(1, STEPS // 3)), "--output", str(path), "--no-progress", "--json",
                        # fp32 for every variant: the full run was measured first, in fp32, before
                        # precision auto existed, and the three must differ only in method
                        "--precision", "fp32",
                        *DATA_KEYS, *[e.format(reference=reference) for e in extra]))
    m = ft["metrics"]
    return {"wall_s": time.perf_counter() - t0, "method": method, "lr": lr, "options": extra,
            "replay": ft["data"].get("replay"), "precision": m.get("precision"),
            **{k: m.get(k) for k in ("steps", "train_seconds", "dev_loss", "dev_perplexity", "trainable_params")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/supremum-bench-forgetting")
    _quick.add_args(ap)
    args = ap.parse_args()
    from supremum.machine import fingerprint

    results = _quick.prelude(args, RESULTS, QUICK, globals())
    if args.quick:
        args.work = tempfile.mkdtemp(prefix="supremum-bench-forgetting-")
        tiny_reference(Path(os.environ["SUPREMUM_DATA"]))
    data_root = os.environ.get("SUPREMUM_DATA")
    if not data_root:
        sys.exit("set SUPREMUM_DATA to the folder holding tinyshakespeare/ and wikitext2/")
    data = str(Path(data_root) / "tinyshakespeare" / "input.txt")
    reference = str(Path(data_root) / "wikitext2")
    work = Path(args.work)
    os.environ["SUPREMUM_HOME"] = str(work / "home")
    out = json.loads(results.read_text()) if results.exists() else {}
    out.update({"benchmark": "forgetting_shakespeare", "machine": fingerprint(), "model": MODEL,
                "settings": {"steps": STEPS, "batch_size": 8, "block_tokens": 128, "seed": 42,
                             "task_tokens": EVAL_TOKENS, "window": WINDOW, "stride": WINDOW // 2,
                             "reference": f"wikitext2 test.txt, first {REFERENCE_TOKENS} tokens",
                             "replay": "wikitext2 valid.txt"},
                "finetunes": out.get("finetunes", {}), "variants": out.get("variants", {})})
    res = out["variants"]

    def save() -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(out, indent=1))

    if "base" not in res:
        res["base"] = row(evaluate(MODEL, data, None))
        save()
    for name in FINETUNES:
        path = work / name.replace("+", "-")
        if not (path / "manifest.json").exists():
            out["finetunes"][name] = finetune(name, data, reference, path)
            save()
        if name not in res:
            res[name] = row(evaluate(str(path), None, reference))
            save()
    out["summary"] = summary(res)
    save()
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
