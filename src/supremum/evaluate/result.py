"""An evaluation's stored record read through typed views. `EvalResult(record).cost` is the one
flat view of what a variant costs: the CLI's printers and the frontier take their numbers from
it, and the report reads the frontier's rows (`Cost.comparable()`), so no other module walks the
nested record (`cost.latency_b1.with_tokenization.median_ms` ...). The record stays the JSON that
`eval`, `zeroshot` and `lm-eval` store (metrics.json, the run store); a key an older record lacks,
or a measurement not made (`--no-speed`), reads as None. Torch-free: `supremum runs` and the
report read records without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

#: the costs a frontier compares, by the name `--cost` takes, with what each measures
COSTS = {
    "latency_b1": "batch-1 latency with tokenization, median (ms)",
    "latency_b1_model": "batch-1 latency of the model alone, median (ms)",
    "latency_b32": "batch-32 latency with tokenization, median (ms)",
    "size": "size on disk (MB)",
    "memory": "peak resident memory of the evaluating process (MB)",
    "params": "parameters",
    "decode_ms": "batch-1 greedy decode, median ms per token (causal LMs)",
    "ttft": "time to first token at batch 1 (ms, causal LMs)",
}


@dataclass(frozen=True)
class Latency:
    """Calls at one batch size (supremum.evaluate.speed.latency), in ms: median and p95 with
    tokenization and of the model alone; texts per second with tokenization."""

    batch_size: int
    median_ms: float | None
    p95_ms: float | None
    model_median_ms: float | None
    model_p95_ms: float | None
    throughput_per_s: float | None

    @classmethod
    def of(cls, rec: dict | None, batch_size: int) -> Latency | None:
        if not rec:
            return None
        tok, model = rec.get("with_tokenization") or {}, rec.get("model_only") or {}
        return cls(rec.get("batch_size", batch_size), tok.get("median_ms"), tok.get("p95_ms"),
                   model.get("median_ms"), model.get("p95_ms"), rec.get("throughput_per_s"))


@dataclass(frozen=True)
class Generation:
    """Batch-1 greedy generation of a causal LM (supremum.evaluate.lm): decode and prefill rates
    (tokens/s), decode ms per token (median, p95), time to first token (ms), the threads it ran
    on and how it was measured."""

    decode_tokens_per_s: float | None
    decode_ms_per_token: float | None
    decode_ms_p95: float | None
    prefill_tokens_per_s: float | None
    ttft_ms: float | None
    threads: int | None
    method: str | None

    @classmethod
    def of(cls, rec: dict | None) -> Generation | None:
        if not rec:
            return None
        return cls(*(rec.get(k) for k in ("decode_tokens_per_s", "decode_ms_per_token", "decode_ms_p95",
                                          "prefill_tokens_per_s", "ttft_ms", "threads", "method")))


@dataclass(frozen=True)
class Cost:
    """What one variant costs, flat. The first fields are the frontier's costs (`COSTS`, same
    names and units); the rest are the details `eval` prints (`b1`, `b32`: classifier latency;
    `generation`: causal LM decoding; `examples_per_s`: zero-shot classification rate)."""

    latency_b1: float | None = None
    latency_b1_model: float | None = None
    latency_b32: float | None = None
    size: float | None = None
    memory: float | None = None
    params: int | None = None
    decode_ms: float | None = None
    ttft: float | None = None
    trainable_params: int | None = None
    weights_mb: float | None = None
    threads: int | None = None
    device: str | None = None
    method: str | None = None
    examples_per_s: float | None = None
    b1: Latency | None = None
    b32: Latency | None = None
    generation: Generation | None = None
    #: the machine's load while the costs were timed (supremum.machine.load_during); None in older records
    load: dict | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Cost:
        """From a stored evaluation record (its `cost` block and `size_on_disk_mb`)."""
        c = record.get("cost") or {}
        b1, b32 = Latency.of(c.get("latency_b1"), 1), Latency.of(c.get("latency_b32"), 32)
        gen = Generation.of(c.get("generation"))
        return cls(latency_b1=b1 and b1.median_ms, latency_b1_model=b1 and b1.model_median_ms,
                   latency_b32=b32 and b32.median_ms, size=record.get("size_on_disk_mb"),
                   memory=c.get("peak_rss_mb"), params=c.get("params"),
                   decode_ms=gen and gen.decode_ms_per_token, ttft=gen and gen.ttft_ms,
                   trainable_params=c.get("trainable_params"), weights_mb=c.get("weights_mb"),
                   threads=c.get("threads"), device=c.get("device"), method=c.get("method"),
                   examples_per_s=c.get("examples_per_s"), b1=b1, b32=b32, generation=gen,
                   load=c.get("load") or (c.get("generation") or {}).get("load"))

    def comparable(self) -> dict[str, float | None]:
        """The frontier's costs by name (`COSTS`): what a frontier row stores under `costs`."""
        return {name: getattr(self, name) for name in COSTS}


class EvalResult:
    """One stored evaluation record (a metrics.json entry, a run's metrics) with typed views."""

    def __init__(self, record: dict[str, Any]):
        self.record = record

    @cached_property
    def cost(self) -> Cost:
        return Cost.of(self.record)

    @property
    def measured_cost(self) -> bool:
        """Whether costs were measured (`eval` without `--no-speed`)."""
        return bool(self.record.get("cost"))

    @property
    def device(self) -> str:
        """Where it ran: "cpu", "cuda:0" ... (older records name it only in the cost block, or not)."""
        return self.record.get("device") or self.cost.device or "cpu"

    @property
    def machine(self) -> dict | None:
        """The machine fingerprint it was measured on (older records keep it in the cost block)."""
        return self.record.get("machine") or (self.record.get("cost") or {}).get("machine")
