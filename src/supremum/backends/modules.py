"""Layers that compression puts into a model, and the module surgery that swaps them in.

Int4Linear is ours because torchao 0.18 dropped its CPU int4 layout; it wraps PyTorch's own
int4 CPU kernel (`_weight_int4pack_mm_for_cpu`), which packs two weights per byte.
"""

from __future__ import annotations

import torch
from torch import nn


def get_module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def head_name(model: nn.Module) -> set[str]:
    """Linear layers of the task head: kept in full precision by every quantizer (tiny, and
    the layer most sensitive to rounding)."""
    names = set()
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) and n.split(".")[0] in ("classifier", "score", "lm_head"):
            names.add(n)
    return names


def body_linears(model: nn.Module, skip: list[str] | tuple = ()) -> list[str]:
    """Names of the linear layers a compression method may touch: all but the head and `skip`."""
    head = head_name(model)
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and n not in head and n not in skip]


class LowRankLinear(nn.Module):
    """W (out x in) ~ U (out x r) @ V (r x in): two thin matmuls instead of one wide one."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class Int4Linear(nn.Module):
    """Weight-only int4, asymmetric per group of `group_size` input channels.

    Dequantized weight = q * scale + min, stored as PyTorch's tinygemm layout: (q - 8) * scale +
    zero with zero = min + 8 * scale. Activations go through the kernel in bfloat16: its fp32
    path is a slow reference loop (measured 5.2 ms vs 0.08 ms for a 384x1536 layer)."""

    def __init__(self, in_features: int, out_features: int, group_size: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.register_buffer("packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales_zeros", torch.zeros(in_features // group_size, out_features, 2,
                                                         dtype=torch.bfloat16))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_linear(cls, lin: nn.Linear, group_size: int) -> Int4Linear:
        w = lin.weight.detach().float()
        out_f, in_f = w.shape
        groups = w.reshape(-1, group_size)
        lo, hi = groups.amin(1, keepdim=True), groups.amax(1, keepdim=True)
        scale = (hi - lo).clamp(min=1e-6) / 15
        q = ((groups - lo) / scale).round().clamp(0, 15).to(torch.int32).reshape(out_f, in_f)
        zero = lo + 8 * scale
        sz = torch.cat([scale.reshape(out_f, -1, 1), zero.reshape(out_f, -1, 1)], 2)
        new = cls(in_f, out_f, group_size, lin.bias is not None)
        new.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        new.scales_zeros = sz.transpose(0, 1).contiguous().to(torch.bfloat16)
        if lin.bias is not None:
            new.bias = nn.Parameter(lin.bias.detach().clone())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous(), self.packed, self.group_size,
            self.scales_zeros).float()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)
