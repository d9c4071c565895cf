"""Non-finite numbers (NaN, +-Infinity) in weights: a model holding them came from a diverged run
or an overflowing cast, and its outputs are meaningless (a classifier's argmax over NaN logits still
"predicts" a class), so such weights are never saved, loaded or served."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from supremum.errors import UserError

_CHUNK = 1 << 24  # elements checked at a time: bounds the temporary mask at 16 MB


def is_finite_tensor(t: torch.Tensor) -> bool:
    """True when every element is finite; integer, quantized and non-plain tensors count as finite
    (they cannot hold NaN, or hold it in a packed form this check cannot see)."""
    if hasattr(t, "to_local"):  # a DTensor shard (FSDP): this process's part
        t = t.to_local()
    if type(t) not in (torch.Tensor, torch.nn.Parameter) or not t.is_floating_point() \
            or t.is_quantized or t.is_meta:
        return True
    flat = t.detach().reshape(-1)
    return all(bool(torch.isfinite(flat[i:i + _CHUNK]).all()) for i in range(0, flat.numel(), _CHUNK))


def nonfinite_tensors(named: Iterable[tuple[str, object]]) -> list[str]:
    """Names of the floating-point tensors among `named` (name, value) that hold NaN or Infinity;
    values that are not tensors (packed parameters, extra state) are skipped."""
    return [n for n, t in named if torch.is_tensor(t) and not is_finite_tensor(t)]


def model_tensors(model) -> list[tuple[str, object]]:
    """(name, tensor) of a PyTorch model's parameters and buffers; nothing for other backends."""
    if not isinstance(model, torch.nn.Module):
        return []
    return list(model.state_dict(keep_vars=True).items())


def refuse_nonfinite(model, what: str, hint: str) -> None:
    """Raise a one-line UserError when `model`'s weights hold NaN or Infinity."""
    bad = nonfinite_tensors(model_tensors(model))
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise UserError(f"{what}: the weights hold NaN or Infinity ({bad[0]}{more})", hint)
