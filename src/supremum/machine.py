"""Machine fingerprint stored with every measurement, so numbers from different hosts never mix."""

from __future__ import annotations

import functools
import os
import platform
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
