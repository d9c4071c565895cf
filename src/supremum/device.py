"""Where tensors live: `--device auto|cpu|cuda|cuda:N|mps` resolved to a `torch.device`, the
autocast that device supports, and moving a batch there.

`auto` is CUDA when a CUDA device is visible, else Apple's MPS when available, else the CPU.
Asking for a device that is not there is a UserError (one line), never a silent fall-back to the
CPU: a user who typed `cuda` and got a CPU run would read its timings as a GPU's.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import TYPE_CHECKING

from supremum.errors import UserError

if TYPE_CHECKING:
    import torch

#: the values `--device` accepts
PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_spec(spec: str) -> str:
    """`spec` when it is one of auto, cpu, mps, cuda, cuda:N; ValueError otherwise (for pydantic)."""
    if not PATTERN.fullmatch(spec):
        raise ValueError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return spec


def resolve(spec: str = "auto") -> torch.device:
    """The torch.device `spec` names. UserError: a CUDA/MPS device that this torch build or machine
    does not have (the message names what torch sees)."""
    import torch

    check_spec(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps() else torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        _check_cuda(dev)
    elif dev.type == "mps" and not _mps():
        raise UserError("--device mps: no Apple MPS device here", "use --device cpu (or auto)")
    return dev


def _check_cuda(dev: torch.device) -> None:
    import torch

    if not torch.cuda.is_available():
        build = ("this torch is a CPU-only build" if torch.version.cuda is None
                 else f"torch built for CUDA {torch.version.cuda} sees no GPU")
        raise UserError(f"--device {dev}: no CUDA device visible ({build})",
                        "use --device cpu (or auto), or run on a machine with an NVIDIA GPU and a CUDA build "
                        "of torch")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise UserError(f"--device {dev}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})",
                        "pick one of those, or set CUDA_VISIBLE_DEVICES")


def _mps() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def of(model) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters, and for
    the ONNX Runtime and llama.cpp runtimes, which are not torch modules)."""
    import torch

    params = getattr(model, "parameters", None)
    p = next(iter(params()), None) if callable(params) else None
    return p.device if p is not None else torch.device("cpu")


def place(model, spec: str):
    """`model` on the device `spec` names, when it is a torch module; ONNX Runtime and llama.cpp
    runtimes stay where they are (the CPU), and asking for another device for them is a UserError."""
    import torch

    where = resolve(spec)
    if isinstance(model, torch.nn.Module):
        return model.to(where)
    cpu_only(spec, f"this artifact runs in {type(model).__name__}, on the CPU",
             "leave --device out (or cpu) for ONNX Runtime and llama.cpp artifacts")
    return model


def cpu_only(spec: str, why: str, hint: str = "leave --device out (or cpu)") -> None:
    """UserError `--device SPEC: why` when `spec` names a device other than the CPU explicitly
    (`auto` means: wherever this part runs, here the CPU)."""
    if spec not in ("auto", "cpu") and resolve(spec).type != "cpu":
        raise UserError(f"--device {spec}: {why}", hint)


def to(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on `device` (a no-op on the device they are on)."""
    import torch

    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def autocast(device: torch.device, precision: bool | str):
    """Autocast on `device` for `precision`: True or "bf16" bfloat16, "fp16" float16 (CUDA), False,
    "fp32" or "auto" (not resolved: the caller's own autocast, if any) a null context, so a scorer
    called inside the training loop's autocast computes in the loop's precision. CPUs and CUDA GPUs
    run bf16 (GPUs without native bf16, before Ampere, emulate it slowly; torch says so there)."""
    import torch

    dtype = {True: torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type if device.type in ("cuda", "cpu", "mps") else "cpu", dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a wall-clock reading after it covers the work (CUDA runs
    asynchronously; the CPU needs nothing)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def distributed_backend(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU tensors (NCCL cannot reduce CPU tensors)."""
    return "nccl" if device.type == "cuda" else "gloo"


@functools.cache  # devices do not change within a process; the fingerprint asks on every run
def describe() -> list[dict]:
    """The visible CUDA devices: name, memory (GiB), compute capability, and the CUDA version of
    this torch build and the driver's; [] without CUDA. For the machine fingerprint."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                    "capability": f"{p.major}.{p.minor}", "cuda": torch.version.cuda,
                    "driver": _driver_version()})
    return out


def _driver_version() -> str | None:
    with contextlib.suppress(Exception):
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return out.splitlines()[0].strip() or None
    return None
