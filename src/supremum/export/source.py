"""An artifact as plain weights: what every export starts from, and the manifest checks the
formats share.

A PEFT adapter is merged into its base with PEFT's `merge_and_unload` (through
`train.methods.peft_common.merge`, which keeps tied embeddings right); a delta (BitFit,
bottleneck adapters) is applied over its base by its backend; the temperature of a calibrated
artifact is NOT applied: exports hold the weights as trained, and the card states T."""

from __future__ import annotations

import json
from pathlib import Path

from supremum.artifact import Artifact

#: compression steps that leave the weights as they were (calibrate adds a temperature only)
WEIGHTLESS = frozenset({"temperature"})
#: transform kinds whose layers have no plain transformers form
NOT_PLAIN = {"int8-dynamic": "int8 dynamically quantized layers", "torchao": "torchao int8 weight-only tensors",
             "int4": "int4-packed layers", "lowrank": "low-rank factorized layers",
             "sentence-pooling": "sentence-transformers pooling head"}
BACKEND_WORDS = {"onnxruntime": "an ONNX graph", "llamacpp": "a GGUF file for llama.cpp",
                 "ensemble": "an ensemble of several models"}


def adapter_dir(art: Artifact) -> Path | None:
    """The PEFT adapter directory of `art`: itself when stored as an adapter, else the
    `<output>-adapter` artifact saved next to a merged fine-tune; None when it has neither, or
    when compression changed the weights after training (the adapter no longer describes them)."""
    if any(c.method not in WEIGHTLESS for c in art.manifest.compression):
        return None
    if art.manifest.storage == "peft":
        return art.path
    path = art.manifest.adapter_artifact
    return Path(path) if path and (Path(path) / "adapter_config.json").is_file() else None


def peft_type(art: Artifact) -> str | None:
    if art.manifest.storage != "peft":
        return None
    return json.loads((art.path / "adapter_config.json").read_text()).get("peft_type")


def unmergeable(art: Artifact) -> str | None:
    """Why `art`'s PEFT adapter cannot be merged into the weights (prompt learning adds virtual
    tokens, not weight updates), or None."""
    kind = peft_type(art)
    if kind is None:
        return None
    from peft import PeftConfig

    if PeftConfig.from_pretrained(str(art.path)).is_prompt_learning:
        return f"its {kind} adapter adds virtual tokens, which cannot be merged into the weights"
    return None


def pytorch_refusal(art: Artifact, plain: bool) -> str | None:
    """Why `art` is not a PyTorch model exportable as plain weights (`plain`: also refuse
    quantized and factorized layers), or None."""
    m = art.manifest
    if m.backend != "pytorch":
        return f"its weights are {BACKEND_WORDS.get(m.backend, m.backend)}"
    kinds = [NOT_PLAIN[t["kind"]] for t in m.transforms if t["kind"] in NOT_PLAIN]
    if plain and kinds:
        return f"its {kinds[0]} have no plain transformers form"
    return unmergeable(art)


def plain_model(art: Artifact):
    """(model, tokenizer) in eval mode, adapters merged, logits as trained (no temperature)."""
    from supremum import backends

    model, tok = backends.load(art, calibrated=False)
    if art.manifest.storage == "peft":
        from supremum.train.methods.peft_common import merge

        model = merge(model)
    return model.eval(), tok
