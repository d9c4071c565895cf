"""FSDP (`train.parallel: fsdp`): parameters, gradients and optimizer state sharded over the
`--nproc` processes with PyTorch's FSDP2 (`fully_shard`), one unit per transformer layer plus the
root, so a model whose weights, gradients and Adam moments do not fit one device's memory can
still be trained.

What it costs and what it cannot do (also in the README):
- Every checkpoint and the final save gather the full trainable weights and optimizer state to
  rank 0 (a collective all ranks take part in), so rank 0 must hold one full copy in CPU memory
  at those moments; training itself holds only 1/N of everything per process, plus one layer
  gathered at a time.
- FGM/PGD adversarial training and AdaLoRA's rank reallocation reach into parameters directly;
  both are refused with FSDP (use DDP).
- Evaluation runs on every rank (each forward gathers the layers), as with DDP.

Without `fsdp` these functions are the plain local operations, so the loop has one code path.
"""

from __future__ import annotations

import torch
from torch import nn

from supremum.errors import UserError


def check(cfg, method_name: str) -> None:
    if cfg.adversarial:
        raise UserError("train.adversarial does not work with train.parallel=fsdp",
                        "use the default train.parallel=ddp for adversarial training")
    if method_name == "adalora":
        raise UserError("AdaLoRA's rank reallocation does not work with train.parallel=fsdp",
                        "use train.parallel=ddp, or method lora")


def _layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, found by name so PEFT-wrapped models work too."""
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and name.endswith(("encoder.layer", "model.layers")):
            return list(m)
    raise UserError(f"FSDP does not know where the layers of {type(model).__name__} are",
                    "use train.parallel=ddp")


def shard(model: nn.Module) -> None:
    """Shard in place over all processes (gloo on CPU, NCCL on GPU)."""
    import torch.distributed as tdist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (tdist.get_world_size(),))
    for layer in _layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _full() -> object:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Full tensors on rank 0 (in CPU memory); the other ranks take part and get nothing.
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def trainable_state(model: nn.Module, sharded: bool) -> dict[str, torch.Tensor]:
    """The trainable weights as full tensors; collective when sharded (every rank must call)."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    if not sharded:
        return {n: p.detach().clone() for n, p in model.named_parameters() if n in names}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return {n: t for n, t in get_model_state_dict(model, options=_full()).items() if n in names}


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight and buffer as full tensors on rank 0 (collective)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full())


def optimizer_state(model: nn.Module, opt, sharded: bool) -> dict:
    """The optimizer's state dict; when sharded, gathered to rank 0 and keyed by parameter name."""
    if not sharded:
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, opt, options=_full())


def load_trainable(model: nn.Module, state: dict[str, torch.Tensor], sharded: bool) -> None:
    """Copy full tensors into the (possibly sharded) trainable weights; when sharded, rank 0's
    tensors are broadcast (the others' are ignored: they may hold none)."""
    if not sharded:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False,
                                                                broadcast_from_rank0=True))


def load_optimizer(model: nn.Module, opt, state: dict, sharded: bool) -> None:
    if not sharded:
        opt.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True,
                                                                         broadcast_from_rank0=True))
