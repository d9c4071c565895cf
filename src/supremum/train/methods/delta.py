"""Delta storage: only the trained tensors (plus modules a method adds), saved as safetensors
and applied over the base model at load time. Used where PEFT has no adapter format for the
method (BitFit, bottleneck adapters)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from supremum.errors import UserError

if TYPE_CHECKING:
    from torch import nn

DELTA_FILE = "delta.safetensors"
HEADS = ("classifier", "score")


def train_only(model: nn.Module, keep) -> nn.Module:
    """Freeze everything but the parameters `keep(name)` selects and the task head."""
    for name, p in model.named_parameters():
        p.requires_grad_(keep(name) or name.split(".")[0] in HEADS)
    return model


def writer(model: nn.Module, dir_: Path) -> dict:
    """`save_artifact` weights hook: the trainable tensors only."""
    from safetensors.torch import save_file

    tensors = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(dir_ / DELTA_FILE))
    return {"delta_tensors": len(tensors)}


def load(art, task):
    """(model, tokenizer): the base model, the method's added modules, then the delta."""
    import transformers as tf
    from safetensors.torch import load_file

    from supremum.models import load_model
    from supremum.train.methods import METHODS

    method = METHODS[art.manifest.method_name]
    base, _ = load_model(art.manifest.base_model, task, label_names=art.label_names or None)
    model = method.rebuild(base, method.config_cls(**art.manifest.method_config))
    missing_in_model = set(load_file(str(art.path / DELTA_FILE))) - set(model.state_dict())
    if missing_in_model:
        raise UserError(f"{art.path}: delta tensors {sorted(missing_in_model)[:3]} do not fit the base model "
                        f"{art.manifest.base_model}", "re-create the artifact against this base model")
    model.load_state_dict(load_file(str(art.path / DELTA_FILE)), strict=False)
    return model.eval(), tf.AutoTokenizer.from_pretrained(str(art.path))
