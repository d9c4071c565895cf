"""The arithmetic a training run uses: `train.precision` (auto, fp32, bf16, fp16) resolved for this
machine and device, and kept honest by a probe.

`auto` picks bf16 autocast where the hardware computes bfloat16 natively (a CPU with avx512_bf16
or AMX, a CUDA GPU of compute capability 8.0 or later), fp32 elsewhere: emulated bf16 is slower
than fp32. Before training, the probe scores up to `PROBE_EXAMPLES` dev examples with the initial
model in fp32 and under bf16 autocast; when they disagree beyond the thresholds below, the run
falls back to fp32 and says so. Explicit requests are taken as given (fp16 only on CUDA, where a
GradScaler scales the loss; CPU fp16 autocast has no native kernels on x86 and is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from supremum.errors import UserError

#: ISA flags of CPUs that compute bfloat16 natively (avx512_bf16: Cooper Lake, Zen 4; AMX: Sapphire Rapids)
BF16_ISA = ("amx_bf16", "avx512_bf16")
#: dev examples (or LM blocks) the probe scores twice
PROBE_EXAMPLES = 256
#: least share of dev examples whose predicted class is the same in bf16 as in fp32
MIN_AGREEMENT = 0.99
#: largest relative change of a scorer's dev score (language models: the dev loss) in bf16
MAX_RELATIVE_CHANGE = 0.01


@dataclass(frozen=True)
class Precision:
    """What was asked (`requested`), what runs (`resolved`: fp32, bf16 or fp16) and why."""

    requested: str
    resolved: str
    reason: str

    def record(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"precision: {self.resolved} ({self.reason})"


def check(requested: str, device_type: str) -> None:
    """UserError for a request this device cannot train in: fp16 off CUDA."""
    if requested == "fp16" and device_type != "cuda":
        raise UserError(f"train.precision fp16 trains on CUDA GPUs only, and this run is on {device_type} "
                        "(no native fp16 kernels for training there)",
                        "use --precision bf16 (fast with avx512_bf16/AMX) or --precision fp32")


def native_bf16(fingerprint: dict, device_type: str, index: int | None = None) -> str | None:
    """Why `device_type` computes bf16 natively, from a machine fingerprint (`machine.fingerprint()`):
    a sentence, or None where it does not (bf16 would be emulated). Pure: tests pass a fingerprint."""
    if device_type == "cpu":
        have = [f for f in BF16_ISA if f in fingerprint.get("isa", [])]
        return f"CPU has {'/'.join(have)}" if have else None
    if device_type == "cuda":
        gpus = fingerprint.get("gpus", [])
        gpu = next((g for g in gpus if g.get("index") == (index or 0)), gpus[0] if gpus else None)
        if gpu and tuple(int(x) for x in gpu["capability"].split(".")) >= (8, 0):
            return f"{gpu['name']} has native bf16 (compute capability {gpu['capability']})"
    return None


def choose(requested: str, fingerprint: dict, device_type: str, index: int | None = None) -> Precision:
    """The precision before the probe: an explicit request as it is (after `check`), auto as the
    hardware allows."""
    check(requested, device_type)
    if requested != "auto":
        return Precision(requested, requested, "as configured")
    why = native_bf16(fingerprint, device_type, index)
    if why is None:
        return Precision("auto", "fp32", f"auto: {device_type} has no native bf16 (it would be emulated)")
    return Precision("auto", "bf16", f"auto: {why}")


def probe(chosen: Precision, model, dev, pad_id: int, where, scorer: Callable | None = None) -> Precision:
    """`chosen` confirmed or turned to fp32 by comparing the initial model on up to PROBE_EXAMPLES
    dev examples in fp32 and under bf16 autocast: classifiers by argmax agreement (at least
    MIN_AGREEMENT), others by the relative change of `scorer`'s score (at most
    MAX_RELATIVE_CHANGE). Only an auto choice of bf16 is probed; without dev data it stands."""
    if chosen.requested != "auto" or chosen.resolved != "bf16":
        return chosen
    if dev is None or not dev.ids:
        return Precision("auto", "bf16", chosen.reason + "; no dev data to probe")
    n = min(len(dev.ids), PROBE_EXAMPLES)
    sub = type(dev)(dev.ids[:n], dev.labels[:n])
    if scorer is None:
        ok, how = _agreement(model, sub, pad_id)
    else:
        ok, how = _score_change(model, sub, scorer, where)
    how = f"bf16 probe on {n} dev examples: {how}"
    if ok:
        return Precision("auto", "bf16", f"{chosen.reason}; {how}")
    return Precision("auto", "fp32", f"{chosen.reason}, but {how}: fell back to fp32")


def _agreement(model, dev, pad_id: int) -> tuple[bool, str]:
    from supremum.infer import predict_logits

    fp32 = predict_logits(model, dev.ids, pad_id, bf16=False).argmax(-1)
    bf16 = predict_logits(model, dev.ids, pad_id, bf16=True).argmax(-1)
    agree = float(np.mean(fp32 == bf16))
    return agree >= MIN_AGREEMENT, (f"{100 * agree:.1f}% argmax agreement with fp32 "
                                    f"(least {100 * MIN_AGREEMENT:g}%)")


def _score_change(model, dev, scorer: Callable, where) -> tuple[bool, str]:
    from supremum import device

    fp32 = scorer(model, dev)[0]
    with device.autocast(where, True):
        bf16 = scorer(model, dev)[0]
    change = abs(bf16 - fp32) / max(abs(fp32), 1e-12)
    return change <= MAX_RELATIVE_CHANGE, (f"dev score {bf16:.4g} vs {fp32:.4g} in fp32, {100 * change:.2f}% "
                                           f"change (at most {100 * MAX_RELATIVE_CHANGE:g}%)")
