"""Benchmark: SmolLM2-135M-Instruct translating Multi30K captions English -> German: the base model,
a LoRA fine-tune and its GGUF variants, judged by the answers they generate (chrF, BLEU, ROUGE-L,
exact match) next to decode speed and what the fine-tune forgot (WikiText-2 perplexity change).

Data: multi30k/{train,dev,test}.tsv (en, de, fr columns) as instruction JSONL, prompt
"Translate to German: <en>", response "<de>": the first N_TRAIN training rows, the first N_DEV dev
rows (checkpoint choice), the first N_TEST test rows (scored). Every number comes from the CLI,
each step in a fresh process, and lands in the run store like any user's run:

1. `supremum eval smollm2-135m --generate` (PyTorch fp32) and `--backend llamacpp` (the shipped
   Q4_1 GGUF);
2. `supremum finetune --method lora` (STEPS steps, batch 8);
3. `supremum compress` of the fine-tune: GGUF q8_0 and q4_k_m (llama.cpp), and the shipped Q4_1
   base with the LoRA adapter applied at run time (gguf-lora);
4. `supremum eval --generate --reference-data wikitext2` of each: greedy answers of at most
   MAX_NEW tokens, the metrics, generation tokens/s over the whole answer pass, batch-1 decode
   ms/token (64 new tokens after a 64-token prompt, median of 3 timed runs), and reference
   perplexity against the parent.

    SUPREMUM_DATA=../shared/data python bench/generate_multi30k.py [--work DIR]
    python bench/generate_multi30k.py --quick [--out x.json]   # smoke: tiny-llama, tiny data

Finished steps are reused on a re-run (artifacts in --work, store in --work/home).
Writes bench/results/generate_multi30k.json.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402
from _quick import cli  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "generate_multi30k.json"
MODEL, N_TRAIN, N_DEV, N_TEST, STEPS, MAX_NEW, MAX_LENGTH = "smollm2-135m", 4000, 100, 200, 300, 48, 96
REFERENCE, REFERENCE_TOKENS = "wikitext2", 4096
BASES = {"base": None, "base-llamacpp-q4_1": "llamacpp"}
# name: (compress method, options), each of the LoRA fine-tune
VARIANTS = {"gguf-q8_0": ("gguf", ["quant=q8_0"]), "gguf-q4_k_m": ("gguf", ["quant=q4_k_m"]),
            "gguf-lora (shipped Q4_1 + adapter)": ("gguf-lora", ["base_quant=source"])}
EVAL_EXTRA: list[str] = []
# --quick: tiny-llama (no GGUF of its own: no llama.cpp base, no gguf-lora), tiny data, a few steps
QUICK = {"MODEL": "tiny-llama", "N_TRAIN": 40, "N_DEV": 8, "N_TEST": 6, "STEPS": 4, "MAX_NEW": 6,
         "MAX_LENGTH": 128, "REFERENCE": "tinyshakespeare", "REFERENCE_TOKENS": 256, "BASES": {"base": None},
         "EVAL_EXTRA": ["--new-tokens", "4"],
         "VARIANTS": {"gguf-q8_0": ("gguf", ["quant=q8_0"])} if importlib.util.find_spec("llama_cpp") else {}}


def instruction_data(src: Path, dst: Path) -> Path:
    """multi30k TSVs as prompt/response JSONL (the first N rows of each split)."""
    dst.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", N_TRAIN), ("dev", N_DEV), ("test", N_TEST)):
        with open(src / f"{split}.tsv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
        with open(dst / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"prompt": f"Translate to German: {r['en']}", "response": r["de"]},
                                   ensure_ascii=False) + "\n")
    return dst


def tiny_multi30k(root: Path) -> None:
    """--quick: a multi30k/ of word-for-word 'translations' beside the other tiny data."""
    en_de = {"a": "ein", "man": "mann", "dog": "hund", "runs": "läuft", "red": "rot", "on": "auf",
             "the": "die", "street": "straße", "woman": "frau", "sits": "sitzt"}
    rng = random.Random(0)
    (root / "multi30k").mkdir(exist_ok=True)
    for split, n in (("train", 60), ("dev", 10), ("test", 10)):
        lines = ["en\tde\tfr"]
        for _ in range(n):
            words = rng.choices(list(en_de), k=5)
            lines.append(f"{' '.join(words)}\t{' '.join(en_de[w] for w in words)}\t-")
        (root / "multi30k" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def evaluate(ref: str, data: Path, reference: str, backend: str | None = None, base: bool = False) -> dict:
    args = ["eval", ref, "--data", str(data), "--split", "test", "--generate", "--max-new-tokens", str(MAX_NEW),
            "--reference-data", reference, "--reference-tokens", str(REFERENCE_TOKENS), "--json", *EVAL_EXTRA]
    if base:
        args += ["--max-length", str(MAX_LENGTH)]
    if backend:
        args += ["--backend", backend]
    return json.loads(cli(*args))


def row(m: dict) -> dict:
    g, q, f = m["cost"]["generation"], m["generation_quality"], m.get("forgetting") or {}
    return {"chrf": m["chrf"], "bleu": m["bleu"], "rouge_l": m["rouge_l"], "exact_match": m["exact_match"],
            "answers": q["examples"], "answers_cut_at_max_new_tokens": q["truncated"],
            "generation_tokens_per_s": q["tokens_per_s"], "decode_tokens_per_s": g["decode_tokens_per_s"],
            "decode_ms_per_token": g["decode_ms_per_token"], "ttft_ms": g["ttft_ms"],
            "test_perplexity": m["perplexity"], "reference_perplexity": f.get("perplexity"),
            "forgetting_pct": m.get("forgetting_pct"), "forgetting_vs": f.get("parent"),
            "size_on_disk_mb": m.get("size_on_disk_mb"), "peak_rss_mb": m["cost"]["peak_rss_mb"],
            "runtime": m.get("runtime", {}).get("kernels"), "best": q["best"][:1], "worst": q["worst"][:1],
            "outputs": q["outputs"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/supremum-bench-multi30k")
    _quick.add_args(ap)
    args = ap.parse_args()
    results = _quick.prelude(args, RESULTS, QUICK, globals())
    if args.quick:
        args.work = tempfile.mkdtemp(prefix="supremum-bench-multi30k-")
        tiny_multi30k(Path(os.environ["SUPREMUM_DATA"]))
    data_root = os.environ.get("SUPREMUM_DATA")
    if not data_root:
        sys.exit("set SUPREMUM_DATA to the folder holding multi30k/ and wikitext2/")
    work = Path(args.work)
    os.environ["SUPREMUM_HOME"] = str(work / "home")
    data = instruction_data(Path(data_root) / "multi30k", work / "multi30k-en-de")
    reference = str(Path(data_root) / REFERENCE)
    out = json.loads(results.read_text()) if results.exists() else {}
    from supremum.machine import fingerprint

    out.update({"machine": fingerprint(), "model": MODEL,
                "rows": {"train": N_TRAIN, "dev": N_DEV, "test": N_TEST}, "max_new_tokens": MAX_NEW,
                "reference": f"{REFERENCE} ({REFERENCE_TOKENS} tokens)", "decoding": "greedy",
                "variants": out.get("variants", {})})
    res = out["variants"]

    def save() -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(out, indent=1, ensure_ascii=False))

    for name, backend in BASES.items():
        if name not in res:
            res[name] = row(evaluate(MODEL, data, reference, backend, base=True))
            save()
    lora = work / "lora"
    if not (lora / "manifest.json").exists():
        t0 = time.perf_counter()
        ft = json.loads(cli("finetune", "--model", MODEL, "--data", str(data), "--method", "lora", "--max-steps",
                            str(STEPS), "--batch-size", "8", "--lr", "2e-3", "--max-length", str(MAX_LENGTH),
                            "--eval-every", str(max(1, STEPS // 3)), "--output", str(lora), "--no-progress",
                            "--json"))
        out["finetune"] = {"wall_s": time.perf_counter() - t0, **{k: ft["metrics"][k] for k in (
            "steps", "train_seconds", "dev_loss", "dev_perplexity", "trainable_params")}}
        save()
    if "lora" not in res:
        res["lora"] = row(evaluate(str(lora), data, reference))
        save()
    for name, (method, options) in VARIANTS.items():
        path = work / name.split(" ")[0]
        if not (path / "manifest.json").exists():
            cli("compress", str(lora), "--method", method, *options, "--output", str(path))
        if name not in res:
            res[name] = row(evaluate(str(path), data, reference))
            save()
    save()
    print(json.dumps({k: {m: v[m] for m in ("chrf", "bleu", "decode_tokens_per_s", "forgetting_pct")}
                      for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
