"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

torch.save/torch.load would pickle the optimizer state; we flatten it instead so that a
checkpoint can never execute code when it is read back.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from supremum.fsutil import atomic_dir, recover_dir, write_bytes
from supremum.train import sharding
from supremum.train.state import TrainState


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in [*tensors.items(), *meta["scalars"].items()]:
        # ids are ints, or parameter names (with dots) for FSDP's gathered state; keys have no dot
        pid, k = key.rsplit(".", 1)
        state.setdefault(int(pid) if pid.isdigit() else pid, {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, trainable: dict[str, torch.Tensor], optimizer: dict, state: TrainState,
                    best: dict[str, torch.Tensor] | None) -> None:
    """`trainable` and `optimizer`: full (gathered) state, from `sharding`."""
    with atomic_dir(path) as tmp:
        save_file({k: v.contiguous() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        tensors, meta = _flatten_optimizer(optimizer)
        save_file(tensors, tmp / "optimizer.safetensors")
        (tmp / "optimizer.json").write_text(json.dumps(meta))
        if best is not None:
            save_file({k: v.contiguous() for k, v in best.items()}, tmp / "best.safetensors")
        save_file({"torch": torch.get_rng_state()}, tmp / "rng.safetensors")
        rng = {"python": _jsonable(random.getstate()), "numpy": _jsonable(np.random.get_state())}
        (tmp / "state.json").write_text(json.dumps({**state.to_json(), "rng": rng}))


def load_checkpoint(path: Path, model, opt,
                    sharded: bool = False) -> tuple[TrainState, dict[str, torch.Tensor] | None]:
    """Restore weights, optimizer, RNGs and the loop state (collective when sharded)."""
    path = recover_dir(path)
    sharding.load_trainable(model, load_file(path / "trainable.safetensors"), sharded)
    meta = json.loads((path / "optimizer.json").read_text())
    sharding.load_optimizer(model, opt, _unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta),
                            sharded)
    torch.set_rng_state(load_file(path / "rng.safetensors")["torch"])
    state = json.loads((path / "state.json").read_text())
    rng = state["rng"]
    random.setstate(_tuplify(rng["python"]))
    np.random.set_state(tuple(np.array(x, dtype=np.uint32) if i == 1 else x
                              for i, x in enumerate(rng["numpy"])))
    best_file = path / "best.safetensors"
    return TrainState.from_json(state), (load_file(best_file) if best_file.exists() else None)


def exists(path: Path) -> bool:
    return (recover_dir(path) / "state.json").exists()


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple | list):
        return [_jsonable(v) for v in x]
    return x


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x


def persistent_run_id(run_dir: Path, resume: bool, new_id) -> str:
    """The run id survives a crash next to the checkpoint, so a resumed run continues its row."""
    meta = run_dir / "run_id"
    if resume and meta.exists():
        return meta.read_text().strip()
    run_id = new_id()
    write_bytes(meta, run_id.encode())
    return run_id
