"""Cost measurements: parameters, size, memory, latency and throughput.

Method: `warmup` untimed calls, then `repeats` timed calls with time.perf_counter, the two
variants interleaved call by call; we report
the median and p95 in milliseconds. "with tokenization" times text -> logits, "model only"
times token ids -> logits. Batches are real dev texts (the first N, in file order).

Every timing records the machine's load beside it (`supremum.machine.load_during`): the 1-minute load average
(os.getloadavg) read before and after the timed calls, and the core count. Where the load exceeded
the cores by more than half a thread (`machine.BUSY_MARGIN`: a timing's own threads read about the
core count), other work competed for them and the times are inflated by it (`busy`). A burst of
other work too short to move the 1-minute average shows in the spread instead: a p95 of the timed
calls above 3x their median (`machine.mark_spread`) marks the timing busy as well.
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np
import torch

from supremum import device
from supremum.backends.ensemble import EnsembleModel
from supremum.lm.generation import stepper
from supremum.machine import load_during, mark_spread


def param_counts(model) -> dict:
    if hasattr(model, "cost_info"):  # non-PyTorch backends count their own weights
        return model.cost_info()
    if isinstance(model, EnsembleModel):  # every member's weights
        counts = [param_counts(m) for m in model.members]
        return {"params": sum(c["params"] for c in counts), "weights_mb": sum(c["weights_mb"] for c in counts)}
    seen, tensors = set(), []
    for t in model.state_dict().values():  # includes quantized and packed weights
        ptr = t.data_ptr() if type(t) is torch.Tensor else id(t)
        if ptr not in seen:  # a tied output head is the embedding matrix: counted once
            seen.add(ptr)
            tensors.append(t)
    total = sum(_numel(t) for t in tensors)
    nbytes = sum(_nbytes(t) for t in tensors)
    return {"params": total, "weights_mb": nbytes / 2**20}


def _numel(t) -> int:
    if isinstance(t, torch.Tensor):
        return t.numel()
    if isinstance(t, tuple):  # torch.ao packed (weight, bias)
        return sum(_numel(x) for x in t if x is not None)
    w = getattr(t, "unpack", None)
    return _numel(w()) if w else 0


def _nbytes(t) -> int:
    if isinstance(t, torch.Tensor):
        if t.is_quantized:
            return t.numel() * t.element_size() + 8 * t.shape[0]  # int8 values + scales
        return t.numel() * t.element_size()
    if isinstance(t, tuple):
        return sum(_nbytes(x) for x in t if x is not None)
    w = getattr(t, "unpack", None)
    return _nbytes(w()) if w else 0


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB since it started (its own exec).

    Read from VmHWM in /proc/self/status, which belongs to this process's own address space.
    getrusage's ru_maxrss is not used on Linux: the kernel carries a parent's resident size at
    fork into the child's ru_maxrss across exec, so a worker started by a process holding 3 GB
    reported at least 3 GB. Elsewhere getrusage is the fallback (macOS reports bytes).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _summary(samples: list[float], warmup: int) -> dict:
    return {"median_ms": statistics.median(samples), "p95_ms": float(np.percentile(samples, 95)),
            "min_ms": min(samples), "repeats": len(samples), "warmup": warmup}


def time_interleaved(fns: dict, warmup: int, repeats: int) -> dict:
    """Time several callables in alternation, so drift in machine load hits them equally."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {k: _summary(v, warmup) for k, v in samples.items()}


@torch.inference_mode()
def latency(model, tokenizer, texts: list[str], batch_size: int, max_length: int, warmup: int,
            repeats: int) -> dict:
    batch = (texts * (batch_size // max(1, len(texts)) + 1))[:batch_size]
    model.eval()
    where = device.of(model)

    def encode() -> dict:
        enc = tokenizer(batch, truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        return device.to({k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}, where)

    def call(enc: dict):
        out = model(**enc)
        device.synchronize(where)  # CUDA returns before its kernels finish
        return out

    enc = encode()
    t = time_interleaved({
        "model_only": lambda: call(enc),
        "with_tokenization": lambda: call(encode()),
    }, warmup, repeats)
    return {"batch_size": batch_size, **t,
            "throughput_per_s": batch_size / (t["with_tokenization"]["median_ms"] / 1000)}


def measure_cost(model, tokenizer, texts: list[str], max_length: int, warmup: int,
                 repeats: int) -> dict:
    out = param_counts(model)
    out["threads"] = torch.get_num_threads()
    with load_during() as out["load"]:
        out["latency_b1"] = latency(model, tokenizer, texts, 1, max_length, warmup, repeats)
        out["latency_b32"] = latency(model, tokenizer, texts, 32, max_length, max(1, warmup // 2),
                                     max(3, repeats // 3))
    for b in ("latency_b1", "latency_b32"):
        mark_spread(out["load"], out[b]["model_only"]["median_ms"], out[b]["model_only"]["p95_ms"])
    out["peak_rss_mb"] = peak_rss_mb()
    where = device.of(model)
    out["device"] = str(where)
    if where.type == "cuda":
        out["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(where) / 2**20
    out["method"] = (f"perf_counter, model-only and with-tokenization calls interleaved; b1: {warmup} "
                     f"warm-up + {repeats} timed calls each; b32: "
                     f"{max(1, warmup // 2)} warm-up + {max(3, repeats // 3)} timed; median and p95; "
                     "peak_rss_mb is the evaluating process's own peak resident memory (VmHWM: loading and "
                     "libraries included, nothing of the process that started it); on CUDA each timed call ends "
                     "with torch.cuda.synchronize, and cuda_max_memory_allocated_mb is torch's peak; load: "
                     "the 1-minute load average (the larger of before and after the timed calls) and the "
                     "cores, busy when it exceeded them by more than 0.5")
    return out


def _one_run(model, ids: list[int], new_tokens: int) -> tuple[float, list[float]]:
    s = stepper(model)
    t0 = time.perf_counter()
    tok = s.prefill(ids)
    prefill = time.perf_counter() - t0
    steps = []
    for _ in range(new_tokens - 1):
        t0 = time.perf_counter()
        tok = s.step(tok)  # no stop at end-of-sequence: every run times the same number of steps
        steps.append(time.perf_counter() - t0)
    return prefill, steps


def generation_cost(model, ids: list[int], new_tokens: int, warmup: int, repeats: int) -> dict:
    """Batch-1 greedy generation of `new_tokens` after a prompt of len(ids) tokens."""
    with load_during() as load:
        for _ in range(warmup):
            _one_run(model, ids, new_tokens)
        prefills, steps = [], []
        for _ in range(repeats):
            p, s = _one_run(model, ids, new_tokens)
            prefills.append(p)
            steps += s
    decode_ms = statistics.median(steps) * 1000
    mark_spread(load, decode_ms, float(np.percentile(steps, 95)) * 1000)
    return {
        "prompt_tokens": len(ids), "new_tokens": new_tokens,
        "ttft_ms": statistics.median(prefills) * 1000,
        "prefill_tokens_per_s": len(ids) / statistics.median(prefills),
        "decode_ms_per_token": decode_ms, "decode_ms_p95": float(np.percentile(steps, 95)) * 1000,
        "decode_tokens_per_s": 1000 / decode_ms,
        "threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb(), "load": load,
        "method": (f"batch 1, greedy, prompt of {len(ids)} held-out tokens, {new_tokens} new tokens; "
                   f"{warmup} untimed + {repeats} timed generations; prefill = the prompt's forward pass "
                   "(time to first token); decode = median (and p95) over every later single-token "
                   "step; perf_counter; peak_rss_mb is the process's own peak (VmHWM, includes loading); "
                   "load: the 1-minute load average (the larger of before and after) and the cores, busy when it "
                   "exceeded them by more than 0.5 or when the decode p95 exceeded 3x its median"),
    }
