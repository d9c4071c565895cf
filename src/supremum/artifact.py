"""Artifacts: a directory that fully describes one model variant and reloads in a fresh process.

Layout: weights (safetensors), config.json, tokenizer files, manifest.json (task, labels, base
model, the resolved config, parents, file hashes, backend) and metrics.json (what was measured).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from supremum import __version__
from supremum.errors import UserError
from supremum.finite import refuse_nonfinite
from supremum.fsutil import atomic_dir, recover_dir, write_json

MANIFEST = "manifest.json"
METRICS = "metrics.json"
FORMAT = "supremum-artifact"
FORMAT_VERSION = 1


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def label_names(self) -> list[str]:
        return self.manifest.get("label_names") or []

    @property
    def metrics(self) -> dict[str, Any]:
        p = self.path / METRICS
        return json.loads(p.read_text()) if p.exists() else {}

    @property
    def lineage(self) -> str:
        """How this variant was made: fine-tuning method, then compression steps, e.g.
        `full>prune-heads+distill+onnx-int8-dynamic`, `lora>gguf:q4_k_m` (GGUF exports name their type)."""
        steps = "+".join(c["method"] + (f":{c['config']['quant']}" if c.get("config", {}).get("quant") else "")
                         for c in self.manifest.get("compression", []))
        return (self.manifest.get("method") or "?") + (f">{steps}" if steps else "")

    def record_metrics(self, key: str, metrics: dict[str, Any]) -> None:
        allm = self.metrics
        allm[key] = metrics
        write_json(self.path / METRICS, allm)


def save_artifact(model, tokenizer, out_dir: str | Path, *, task: str, label_names: list[str] | None,
                  base_model: str, config: dict, storage: str = "full", parents: list[str] | None = None,
                  extra: dict | None = None, artifact_id: str | None = None,
                  write_weights=None) -> Artifact:
    """Write weights, tokenizer and manifest into `out_dir` atomically.

    `write_weights(model, dir)` replaces `model.save_pretrained` for models transformers cannot
    save (quantized, resized or exported ones); it may return manifest entries to add.
    Weights holding NaN or Infinity are refused (UserError) before anything is written."""
    refuse_nonfinite(model, f"not writing artifact {out_dir}",
                     "a diverged training or an overflowing cast made them; nothing was written")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "id": artifact_id or new_id(),
        "task": task, "label_names": label_names, "base_model": base_model,
        "model_type": getattr(model.config, "model_type", None), "storage": storage,
        "backend": "pytorch", "transforms": [], "parents": parents or [], "config": config,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "tool_version": __version__,
        **(extra or {}),
    }
    with atomic_dir(out_dir) as tmp:
        if write_weights is None:
            model.save_pretrained(tmp)
        else:
            manifest.update(write_weights(model, tmp) or {})
        tokenizer.save_pretrained(tmp)
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_json(tmp / MANIFEST, manifest)
    return Artifact(Path(out_dir), manifest)


def open_artifact(path: str | Path, verify: bool = True) -> Artifact:
    """Read and check a manifest; `verify` also checks every file's hash."""
    path = recover_dir(Path(path))
    if not path.is_dir():
        raise UserError(f"{path}: no such artifact directory", "give the path printed by finetune, "
                        "or an id from `supremum runs`")
    mpath = path / MANIFEST
    if not mpath.exists():
        raise UserError(f"{path}: not a supremum artifact (no {MANIFEST})",
                        "give a directory written by `supremum finetune`")
    try:
        manifest = json.loads(mpath.read_text())
        assert manifest.get("format") == FORMAT and "id" in manifest and "files" in manifest
    except (json.JSONDecodeError, UnicodeDecodeError, AssertionError):
        raise UserError(f"{mpath}: corrupt manifest", "re-create the artifact") from None
    if verify:
        _verify_files(path, manifest["files"])
    return Artifact(path, manifest)


def _verify_files(path: Path, files: dict[str, str]) -> None:
    for name, digest in files.items():
        f = path / name
        if not f.exists():
            raise UserError(f"{path}: file {name} listed in the manifest is missing",
                            "re-create the artifact")
        if sha256_file(f) != digest:
            raise UserError(f"{f}: contents do not match the manifest (corrupt or modified)",
                            "re-create the artifact")


def load_artifact_model(art: Artifact):
    """(model, tokenizer) in eval mode, rebuilt from the artifact alone (plus the base for adapters).
    An artifact whose PyTorch weights hold NaN or Infinity is refused (UserError): every answer
    from it would be meaningless."""
    model, tok = _load_model(art)
    refuse_nonfinite(model, f"artifact {art.id} ({art.path})",
                     "it was written from a diverged run or an overflowing cast: re-create it, e.g. "
                     "re-train with a lower learning rate")
    return model, tok


def _load_model(art: Artifact):
    import transformers as tf

    task = "classification" if art.task == "text-classification" else "causal-lm"
    if art.manifest.get("backend") == "ensemble":
        from supremum.ensemble import load_ensemble

        return load_ensemble(art)
    if art.manifest.get("backend", "pytorch") != "pytorch" or art.manifest.get("transforms"):
        from supremum.compress.io import load_compressed

        return load_compressed(art, task)
    if art.manifest["storage"] == "delta":
        from supremum.train.methods import delta

        return delta.load(art, task)
    if art.manifest["storage"] == "peft":
        from peft import PeftModel

        from supremum.models import load_model
        from supremum.train.methods.peft_common import accept_past_key_values

        base, tok = load_model(art.manifest["base_model"], task, label_names=art.label_names or None)
        if json.loads((art.path / "adapter_config.json").read_text()).get("peft_type") == "PREFIX_TUNING":
            base = accept_past_key_values(base)
        model = PeftModel.from_pretrained(base, str(art.path))
    else:
        cls = tf.AutoModelForSequenceClassification if task == "classification" else tf.AutoModelForCausalLM
        model = cls.from_pretrained(str(art.path))
        tok = tf.AutoTokenizer.from_pretrained(str(art.path))
    return model.eval(), tok
