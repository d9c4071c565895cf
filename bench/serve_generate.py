"""Generation throughput of `supremum serve`: 1, 4, 8 and 16 concurrent clients, each asking for
NEW_TOKENS greedy tokens through POST /v1/completions, against continuous batching
(`--max-batch 16`) and one-at-a-time generation (`--max-batch 1`), on smollm2-135m fp32
(PyTorch) and its q8_0 GGUF (llama.cpp, served one sequence at a time; when llama-cpp-python is
installed).

Each client sends REQUESTS requests back to back (closed loop), each with its own prompt (a line
of tiny Shakespeare); one untimed request warms the server first. Per setting: aggregate
tokens/s (completion tokens of every request / wall time from the first send to the last
answer), p50 and p95 request latency, and the speed-up of batching over one-at-a-time at the
same number of clients. The server runs in its own process on the same cores as the clients.

    SUPREMUM_DATA=../shared/data python bench/serve_generate.py [--work DIR]
    python bench/serve_generate.py --quick [--out x.json]   # smoke: tiny-llama, 1-2 clients, 8 tokens

Writes bench/results/serve_generate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402
from serve_load import start  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "serve_generate.json"
MODEL = "smollm2-135m"
CLIENTS = [1, 4, 8, 16]
NEW_TOKENS = 128
REQUESTS = 2  # per client
MAX_BATCH = 16
# one-at-a-time is measured where the target compares (8 clients) and at 1
SERIAL_CLIENTS = [1, 8]
QUANT = "q8_0"


def prompts() -> list[str]:
    root = os.environ.get("SUPREMUM_DATA")
    if not root:
        sys.exit("set SUPREMUM_DATA to the folder holding tinyshakespeare/")
    lines = (Path(root) / "tinyshakespeare" / "input.txt").read_text().splitlines()
    return [ln for ln in lines if len(ln.split()) >= 4][:64]


def artifacts(work: Path) -> dict[str, str]:
    """{variant: artifact path}: the model saved as a PyTorch artifact, and its GGUF export."""
    from supremum.artifact import save_artifact
    from supremum.models import load_model

    fp32 = work / "fp32"
    if not fp32.exists():
        model, tok = load_model(MODEL, "causal-lm")
        save_artifact(model, tok, fp32, task="text-generation", label_names=None, base_model=MODEL, config={})
    out = {"fp32": str(fp32)}
    if importlib.util.find_spec("llama_cpp"):
        gguf = work / f"gguf-{QUANT}"
        if not gguf.exists():
            subprocess.run([sys.executable, "-m", "supremum", "compress", str(fp32), "--method", "gguf",
                            f"quant={QUANT}", "--output", str(gguf)], check=True)
        out[f"gguf-{QUANT}"] = str(gguf)
    return out


async def drive(url: str, model: str, texts: list[str], clients: int) -> dict:
    import httpx

    lat, tokens, errors = [], 0, 0

    async def ask(http, prompt: str):
        r = await http.post(url + "/v1/completions", json={"model": model, "prompt": prompt,
                                                            "max_tokens": NEW_TOKENS, "temperature": 0})
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    async def client(i: int, http) -> None:
        nonlocal tokens, errors
        for k in range(REQUESTS):
            t0 = time.perf_counter()
            try:
                # awaited first: `tokens += await ...` reads `tokens` before the await and loses the
                # counts other clients add meanwhile
                got = await ask(http, texts[(i * REQUESTS + k) % len(texts)])
                tokens += got
                lat.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as http:
        await ask(http, texts[-1])  # warm-up, untimed
        t0 = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0] if lat else None] * 99
    return {"clients": clients, "requests": len(lat), "errors": errors, "completion_tokens": tokens,
            "wall_s": wall, "tokens_per_s": tokens / wall, "p50_latency_s": q[49], "p95_latency_s": q[94]}


def measure(path: str, mode: str, clients: list[int], texts: list[str], threads: int | None) -> dict:
    import httpx

    batch = MAX_BATCH if mode == "batched" else 1
    proc, url = start(path, ["--max-batch", str(batch), "--max-queue", "4096", "--timeout-s", "3600",
                             "--limit", f"max_new_tokens={NEW_TOKENS}"], threads)
    try:
        model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        out = {}
        for c in clients:
            out[str(c)] = asyncio.run(drive(url, model, texts, c))
            print(Path(path).name, mode, json.dumps(out[str(c)]), flush=True)
        return out
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", help="where the artifacts go (reused on a re-run)")
    ap.add_argument("--threads", type=int, default=None, help="server inference threads")
    _quick.add_args(ap)
    args = ap.parse_args()
    out_path = _quick.prelude(args, RESULTS, quick={"MODEL": "tiny-llama", "CLIENTS": [1, 2], "NEW_TOKENS": 8,
                                                    "REQUESTS": 1, "SERIAL_CLIENTS": [2], "MAX_BATCH": 4},
                              constants=globals())
    work = Path(args.work or tempfile.mkdtemp(prefix="supremum-bench-generate-"))
    work.mkdir(parents=True, exist_ok=True)
    from supremum.machine import fingerprint

    texts, results = prompts(), {}
    for name, path in artifacts(work).items():
        r = results[name] = {"batched": measure(path, "batched", CLIENTS, texts, args.threads)}
        if name == "fp32":  # llama.cpp artifacts are served one sequence at a time either way
            r["one-at-a-time"] = measure(path, "one-at-a-time", SERIAL_CLIENTS, texts, args.threads)
            r["speedup"] = {c: r["batched"][c]["tokens_per_s"] / r["one-at-a-time"][c]["tokens_per_s"]
                            for c in r["one-at-a-time"] if c in r["batched"]}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({
        "machine": fingerprint(),
        "settings": {"model": MODEL, "clients": CLIENTS, "new_tokens": NEW_TOKENS, "requests_per_client": REQUESTS,
                     "max_batch": MAX_BATCH, "decoding": "greedy (temperature 0), POST /v1/completions",
                     "threads": args.threads},
        "variants": results}, indent=2))
    for name, r in results.items():
        if "speedup" in r:
            print(name, "batching speed-up by clients:", {c: round(x, 2) for c, x in r["speedup"].items()})


if __name__ == "__main__":
    main()
