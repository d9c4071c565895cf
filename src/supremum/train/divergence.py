"""Divergence: a non-finite loss, gradient norm, dev score or weight stops training at once.

A diverged run is the user's hyperparameters (step size, no clipping, bf16 overflow), so it is a
UserError: one line naming the step and learning rate and what to try, exit code 2. Every check
here uses values that are the same on every process (the all-reduced loss, the gradient norm of
DDP's averaged gradients, an all-reduced count of bad weights), so all ranks stop at the same step.
"""

from __future__ import annotations

import math

import torch

from supremum.errors import UserError
from supremum.finite import is_finite_tensor
from supremum.train import distributed


class Diverged(UserError):
    """Training produced NaN or Infinity; the run is failed and nothing is saved from it."""


def diverged(what: str, value: float | str, step: int, lr: float, max_grad_norm: float | None,
             precision: bool | str) -> Diverged:
    tries = ["a lower learning rate"]
    tries.append("gradient clipping (max_grad_norm, now off)" if max_grad_norm is None
                 else f"stronger gradient clipping (max_grad_norm below {max_grad_norm:g})")
    if precision in (True, "bf16", "fp16"):
        tries.append(f"fp32 instead of {'bf16' if precision is True else precision}")
    hint = "try " + ", ".join(tries[:-1]) + " or " + tries[-1]
    return Diverged(f"training diverged at step {step} (lr {lr:.3g}): the {what} is {value}", hint)


def grad_norm(params: list[torch.Tensor], max_norm: float | None) -> float:
    """Total L2 norm of the gradients (clipping them to `max_norm` when set); under FSDP the
    norm of the full gradient (a collective)."""
    if not params:
        return 0.0
    if max_norm:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if hasattr(norm, "full_tensor"):  # DTensor: the shards' partial norms combined
        norm = norm.full_tensor()
    return float(norm)


def bad_weights(model, dist: distributed.Dist) -> int:
    """Trainable tensors holding NaN or Infinity, summed over processes (FSDP shards each hold a part)."""
    local = sum(not is_finite_tensor(p) for p in model.parameters() if p.requires_grad)
    return round(distributed.all_reduce_sum(float(local), dist))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
