"""Machine fingerprint stored with every measurement, so numbers from different hosts never mix,
and the machine's load during a timing, so numbers from a busy machine are not shown as clean."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator
from importlib import metadata

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8",
             "amx_tile", "fma", "asimd", "sve", "neon")
PACKAGES = ("torch", "transformers", "peft", "onnxruntime", "torchao")


@functools.cache
def fingerprint() -> dict:
    cpu, flags = _cpuinfo()
    import torch

    from supremum.device import describe

    gpus = describe()  # only where CUDA is visible, so CPU-only records keep their keys
    return {
        **({"gpus": gpus} if gpus else {}),
        "cpu": cpu or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "torch_threads": torch.get_num_threads(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES if _version(p)},
    }


def short(fp: dict) -> str:
    gpu = "".join(f"{g['name']} ({g['memory_gib']} GiB), " for g in fp.get("gpus", []))
    return f"{gpu}{fp['cpu']}, {fp['cores']} cores, {'/'.join(fp['isa']) or 'no vector ISA flags'}"


def _cpuinfo() -> tuple[str | None, set[str]]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None, set()
    cpu, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and cpu is None:
            cpu = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return cpu, flags


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every platform
        return None


#: load above the cores (in runnable threads) that a timing's own threads and the 1-minute
#: average's lag can explain on an idle machine
BUSY_MARGIN = 0.5
#: p95 over median of a timing's calls above which some calls must have waited for a core
SPREAD_LIMIT = 3.0


@contextlib.contextmanager
def load_during() -> Iterator[dict]:
    """The machine's load while the block runs, filled in when it ends: {"load_1m": the larger of the
    1-minute load averages read before and after it (None where the OS has none), "cores":
    os.cpu_count(), "busy": load_1m > cores + BUSY_MARGIN}.

    The timing's own threads count in the load (a timing on every core of an idle machine reads
    about `cores` afterwards), so only load beyond the cores by more than the margin, at least one
    runnable thread of other work competing for a core, counts as busy."""
    rec: dict = {"cores": os.cpu_count()}
    before = _load_1m()
    yield rec
    seen = [v for v in (before, _load_1m()) if v is not None]
    rec["load_1m"] = round(max(seen), 2) if seen else None
    rec["busy"] = bool(seen and rec["cores"] and rec["load_1m"] > rec["cores"] + BUSY_MARGIN)


def mark_spread(load: dict, median: float, p95: float) -> None:
    """Add a timing's spread to its load record (`load_during`'s): "p95_over_median", the largest over
    the timings recorded into it, and busy when it exceeds SPREAD_LIMIT.

    The 1-minute average misses short bursts of other work (a parent timed at load 2.35 on 2 cores,
    not busy by the load rule, had p95 78x its median); on an idle machine repeated calls of one
    shape stay within a small factor of each other, so a p95 far above the median means some calls
    waited for a core."""
    if median <= 0:
        return
    ratio = round(max(p95 / median, load.get("p95_over_median") or 0.0), 2)
    load["p95_over_median"] = ratio
    load["busy"] = bool(load.get("busy")) or ratio > SPREAD_LIMIT


def busy(load: dict | None) -> str | None:
    """"load 5.20 on 2 cores" when a timing's recorded load (`load_during`) was above the cores by
    more than BUSY_MARGIN, "p95 78.0x the median" when its calls' spread was above SPREAD_LIMIT
    (`mark_spread`), both joined by "; " when both; None when neither (also for records from before
    load was recorded)."""
    if not load or not load.get("busy"):
        return None
    said = []
    if load.get("load_1m") is not None and load["load_1m"] > load["cores"] + BUSY_MARGIN:
        said.append(f"load {load['load_1m']:.2f} on {load['cores']} cores")
    if (load.get("p95_over_median") or 0) > SPREAD_LIMIT:
        said.append(f"p95 {load['p95_over_median']:.1f}x the median")
    return "; ".join(said) or f"load {load['load_1m']:.2f} on {load['cores']} cores"


def busy_caveat(**loads: dict | None) -> str | None:
    """The caveat a ratio of timings carries when the machine was busy during any of them, e.g.
    busy_caveat(this=..., parent=...) -> "machine busy while timing (parent: load 3.10 on 2 cores):
    not a clean ratio"; None when none was."""
    said = [f"{who}: {text}" for who, load in loads.items() if (text := busy(load))]
    return f"machine busy while timing ({'; '.join(said)}): not a clean ratio" if said else None
