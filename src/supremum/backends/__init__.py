"""Runtimes that turn an artifact into `(model, tokenizer)`, one module per `manifest.backend`.

Each module registers its loader with `@register(name)`. `load(art)` imports the module of the
artifact's backend on first use, so importing this package costs nothing, and the artifact
format (supremum.artifact) stays below every runtime: adding a backend is one module here plus
its name in `MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from supremum.artifact import Artifact
from supremum.errors import UserError

Loader = Callable[[Artifact], tuple]

#: backend name (as in manifest.json) -> the module that registers its loader
MODULES = {"pytorch": "supremum.backends.pytorch", "onnxruntime": "supremum.backends.onnx",
           "llamacpp": "supremum.backends.llamacpp", "ensemble": "supremum.backends.ensemble"}
LOADERS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: `fn(art) -> (model, tokenizer)` loads artifacts whose manifest names `name`."""
    def deco(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return deco


def loader(art: Artifact) -> Loader:
    """The registered loader of `art`'s backend; UserError for a backend this version lacks."""
    name = art.manifest.backend
    if name not in LOADERS and name in MODULES:
        importlib.import_module(MODULES[name])  # registers on import
    if name not in LOADERS:
        raise UserError(f"{art.path}: unknown backend '{name}' in the manifest",
                        "this artifact was written by a newer supremum; upgrade")
    return LOADERS[name]


def load(art: Artifact, *, calibrated: bool = True):
    """(model, tokenizer) in eval mode, rebuilt from the artifact alone (plus the base model for
    adapters and deltas). An artifact whose PyTorch weights hold NaN or Infinity is refused
    (UserError): every answer from it would be meaningless. With a `temperature` in the manifest
    the model's logits come divided by it (`calibrated=False`: as the weights give them, for
    compression and for refitting the temperature)."""
    from supremum.finite import refuse_nonfinite

    model, tok = loader(art)(art)
    refuse_nonfinite(model, f"artifact {art.id} ({art.path})",
                     "it was written from a diverged run or an overflowing cast: re-create it, e.g. "
                     "re-train with a lower learning rate")
    if calibrated and art.manifest.temperature is not None:
        apply_temperature(model, art.manifest.temperature)
    return model, tok


def apply_temperature(model, t: float) -> None:
    """Make every call of `model` return logits / t. A PyTorch module gets a forward hook (the
    module stays itself: its type, parameters and save_pretrained are untouched); the other
    runtimes' wrappers (ONNX Runtime, ensembles) divide by their `temperature` attribute."""
    import torch

    if not isinstance(model, torch.nn.Module):
        model.temperature = t
        return

    def divide(_module, _args, out):
        if isinstance(out, tuple):
            return (out[0] / t, *out[1:])
        out.logits = out.logits / t
        return out

    model.register_forward_hook(divide)
