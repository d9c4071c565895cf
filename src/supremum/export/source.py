"""An artifact as plain weights: what every export starts from, and the manifest checks the
formats share.

A PEFT adapter is merged into its base with PEFT's `merge_and_unload` (through
`train.methods.peft_common.merge`, which keeps tied embeddings right); a delta (BitFit,
bottleneck adapters) is applied over its base by its backend; the temperature of a calibrated
artifact is NOT applied: exports hold the weights as trained, and the card states T."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from supremum.artifact import Artifact
from supremum.backends.transforms import LayerForm, layer_forms

#: compression steps that leave the weights as they were (calibrate adds a temperature only)
WEIGHTLESS = frozenset({"temperature"})


Needs = Literal["plain", "onnx"]
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


def task_refusal(task: str, other_task: str, native: str, needs: Needs):
    """The refusal check of a format for `task` artifacts (`other_task`: why the other task's are
    refused): an artifact already in the format's own backend `native` is copied; a PyTorch one needs
    layers of the form `needs` (see `pytorch_refusal`)."""
    def refuses(art: Artifact) -> str | None:
        if art.task != task:
            return other_task
        return None if art.manifest.backend == native else pytorch_refusal(art, needs)

    return refuses


def pytorch_refusal(art: Artifact, needs: Needs) -> str | None:
    """Why `art` is not a PyTorch model whose layers have the form `needs` (plain transformers
    layers; layers torch.onnx exports), or None."""
    m = art.manifest
    if m.backend != "pytorch":
        return f"its weights are {BACKEND_WORDS.get(m.backend, m.backend)}"
    for form in _forms(art):
        why = form.not_plain if needs == "plain" else form.not_onnx
        if why:
            return f"its {form.words} {why}"
    return unmergeable(art)


def _forms(art: Artifact) -> list[LayerForm]:
    """What `art`'s layers are in other formats, one per transform kind registered with a form
    (supremum.backends.transforms, the one source of what each export takes)."""
    return layer_forms(art.manifest.transforms)


def instead(art: Artifact) -> str:
    """What to do when no export format applies to `art`."""
    if is_prefix_tuning(art):
        return "it runs in supremum (predict, serve); prompt-tuning and LoRA adapters export"
    parent = f" ({art.manifest.parents[0]})" if art.manifest.parents else ""
    alt = next((f.instead for f in _forms(art) if f.instead), None)
    return f"export the artifact it was made from{parent}" + (f", or {alt}" if alt else "")


def is_prefix_tuning(art: Artifact) -> bool:
    return peft_type(art) == "PREFIX_TUNING"


def plain_model(art: Artifact):
    """(model, tokenizer) in eval mode, adapters merged, logits as trained (no temperature)."""
    from supremum import backends

    model, tok = backends.load(art, calibrated=False)
    if art.manifest.storage == "peft":
        from supremum.train.methods.peft_common import merge

        model = merge(model)
    return model.eval(), tok


def inputs(art: Artifact) -> dict:
    """How supremum cuts the artifact's inputs (preprocessing_for): max_length in tokens and the
    truncation side; what every export's card states and its tokenizer carries."""
    from supremum.preprocessing import preprocessing_for

    prep = preprocessing_for(art)
    return {"max_length": prep.max_length, "truncation_side": prep.truncation_side}


def save_tokenizer(art: Artifact, tok, out: Path) -> dict:
    """Save `tok` into `out`, set to cut a classifier's inputs where supremum cuts them: its
    `model_max_length` is the trained max length (transformers' own is often "unset", 1e30,
    so `truncation=True` would not cut and texts past the positions crash), on the trained side.
    A causal LM's tokenizer keeps its own: supremum does not cut a prompt, it scores long texts
    in windows of max_length. Returns the card's record of both."""
    import copy

    cut = inputs(art)
    if art.task == "text-classification":
        tok = copy.deepcopy(tok)  # the loaded one may be in use elsewhere in this process
        tok.model_max_length, tok.truncation_side = cut["max_length"], cut["truncation_side"]
    tok.save_pretrained(out)
    return cut
