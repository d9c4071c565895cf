"""`peft`: the adapter directory (adapter_config.json + adapter_model.safetensors, tokenizer)
that `PeftModel.from_pretrained(base, dir)` loads over the base model. The trained task head
travels inside the adapter (PEFT's `modules_to_save`), so any copy of the base loads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from supremum.artifact import Artifact, open_artifact
from supremum.export import ExportConfig, register
from supremum.export.source import WEIGHTLESS, adapter_dir, is_prefix_tuning, save_tokenizer
from supremum.fsutil import write_json

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _refuses(art: Artifact) -> str | None:
    if adapter_dir(art) is None:
        if any(c.method not in WEIGHTLESS for c in art.manifest.compression):
            return "it was compressed after training, so no adapter describes its weights"
        return f"it holds no PEFT adapter (method {art.manifest.method}; fine-tune with lora, ia3, adalora, ...)"
    if is_prefix_tuning(_adapter(art)):
        return PREFIX
    return None


#: PEFT 0.21's forward checks the model's forward for `past_key_values`, which transformers 5
#: renamed; supremum runs prefix tuning through its own shim (supremum.models.compat.accept_past_key_values)
PREFIX = ("its prefix-tuning adapter needs a model whose forward takes past_key_values, which "
          "transformers 5 models no longer name: PEFT loads it but refuses to run it")


def _adapter(art: Artifact) -> Artifact:
    src = adapter_dir(art)
    return art if src == art.path else open_artifact(src)


@register("peft", "PEFT adapter directory over the base model", "peft", _refuses)
def write(art: Artifact, out: Path, cfg: ExportConfig) -> dict:
    from transformers import AutoTokenizer

    from supremum.export.card import base_model_id

    src = adapter_dir(art)
    for name in ADAPTER_FILES:
        shutil.copyfile(src / name, out / name)
    acfg = json.loads((out / "adapter_config.json").read_text())
    # Where the base comes from for someone without supremum: the hub id of an alias.
    acfg["base_model_name_or_path"] = base_model_id(art.manifest.base_model)
    write_json(out / "adapter_config.json", acfg)
    cut = save_tokenizer(art, AutoTokenizer.from_pretrained(str(art.path)), out)
    # the adapter artifact by id: a local path means nothing where the export is read
    return {"peft_type": acfg.get("peft_type"), "adapter_artifact": _adapter(art).id, **cut}
