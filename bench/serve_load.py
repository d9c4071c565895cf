"""Load test of `supremum serve`: N concurrent clients on loopback for a fixed time, batching
on and off, reporting throughput, p50/p95/p99 latency and errors.

Each client sends one SST-2 dev sentence per request, back to back (closed loop), for
`--duration` seconds after a warm-up; the server runs in its own process. Clients and server
share this machine's cores (2 here), as a sidecar load generator would.

    python bench/serve_load.py --artifact models/minilm-int8                 # 32 clients, 60 s each mode
    python bench/serve_load.py --artifact models/minilm-int8 --duration 10   # quicker
    python bench/serve_load.py --quick [--out x.json]   # smoke: a tiny-bert artifact, 4 clients, 2 s per mode

Writes bench/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "serve_load.json"
MODES = {"batching": ["--max-batch", "32", "--max-wait-ms", "5"],
         "no-batching": ["--max-batch", "1", "--max-wait-ms", "0"]}


def texts() -> list[str]:
    root = os.environ.get("SUPREMUM_DATA")
    if not root:
        sys.exit("set SUPREMUM_DATA to the folder holding sst2/")
    lines = (Path(root) / "sst2" / "dev.tsv").read_text().splitlines()[1:]
    return [ln.split("\t")[0] for ln in lines if ln.strip()]


def start(artifact: str, extra: list[str], threads: int | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "supremum", "serve", artifact, "--port", str(port), "--max-queue", "4096",
            *extra]
    if threads:
        args += ["--threads", str(threads)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"server did not start: {proc.stderr.read()}")


async def drive(url: str, sentences: list[str], clients: int, duration: float, warmup: float) -> dict:
    import httpx

    lat, codes, t_start = [], {}, time.perf_counter()
    stop_at = t_start + warmup + duration

    async def client(i: int, http) -> None:
        k = i
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                r = await http.post(url + "/v1/classify", json={"texts": [sentences[k % len(sentences)]]})
                code = r.status_code
            except httpx.HTTPError as e:
                code = type(e).__name__
            t1 = time.perf_counter()
            k += clients
            if t0 >= t_start + warmup:  # count only requests started after the warm-up
                codes[code] = codes.get(code, 0) + 1
                if code == 200:
                    lat.append(t1 - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
    ok = codes.get(200, 0)
    return {"requests_ok": ok, "errors": sum(v for k, v in codes.items() if k != 200), "status_counts": codes,
            "throughput_rps": ok / duration, "p50_ms": 1000 * q[49], "p95_ms": 1000 * q[94],
            "p99_ms": 1000 * q[98]}


def tiny_artifact() -> str:
    """A tiny-bert classifier trained for 2 steps on the quick data (what --quick serves)."""
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    work = Path(tempfile.mkdtemp(prefix="supremum-bench-serve-"))
    os.environ["SUPREMUM_HOME"] = str(work / "home")
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": f"{os.environ['SUPREMUM_DATA']}/sst2"},
                         train={"max_steps": 2}, output=str(work / "tiny"))
    return str(finetune(cfg, progress=False).artifact.path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", help="artifact to serve (e.g. minilm-l6 int8-dynamic)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds per mode")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=None, help="server inference threads")
    _quick.add_args(ap)
    args = ap.parse_args()
    out_path = _quick.prelude(args, RESULTS)
    if args.quick:
        args.artifact = tiny_artifact()
        args.clients, args.duration, args.warmup = 4, 2.0, 0.5
    if not args.artifact:
        ap.error("--artifact is required (or --quick)")
    from supremum.machine import fingerprint

    sentences, out = texts(), {}
    for mode, extra in MODES.items():
        proc, url = start(args.artifact, extra, args.threads)
        try:
            out[mode] = asyncio.run(drive(url, sentences, args.clients, args.duration, args.warmup))
        finally:
            proc.terminate()
            proc.wait(60)
        print(mode, json.dumps(out[mode]), flush=True)
    out["batching_speedup"] = out["batching"]["throughput_rps"] / max(out["no-batching"]["throughput_rps"], 1e-9)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"artifact": args.artifact, "clients": args.clients,
                                    "duration_s": args.duration, "warmup_s": args.warmup, "machine": fingerprint(),
                                    **out}, indent=2))
    print(f"batching throughput {out['batching_speedup']:.2f}x of no batching")


if __name__ == "__main__":
    main()
