"""Artifacts: a directory that fully describes one model variant and reloads in a fresh process.

Layout: weights (safetensors), config.json, tokenizer files, manifest.json (task, labels, base
model, the resolved config, parents, file hashes, backend) and metrics.json (what was measured).
This module reads, writes and verifies that format, with the manifest typed (`Manifest`); turning
an artifact into a model is the job of the runtimes in `supremum.backends` (`backends.load`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from supremum import __version__
from supremum.errors import UserError
from supremum.fsutil import atomic_dir, dir_size, recover_dir, write_json

MANIFEST = "manifest.json"
METRICS = "metrics.json"
FORMAT = "supremum-artifact"
FORMAT_VERSION = 1


class _Record(BaseModel):
    # Keys this version does not know (written by a newer one, or a custom extra) survive a
    # read and are written back unchanged.
    model_config = ConfigDict(extra="allow")


class CompressionStep(_Record):
    """One compression applied to the parent: method name, its resolved config, its report."""

    method: str
    config: dict[str, Any] = {}
    report: dict[str, Any] = {}


class Member(_Record):
    """One member of an ensemble: its id and lineage, its weight (they sum to 1), its directory."""

    id: str
    lineage: str
    weight: float
    dir: str


class CalibrationScores(_Record):
    """Dev-split calibration of the class probabilities (supremum.evaluate.calibration): NLL in nats
    per example, ECE and adaptive ECE as fractions (0.05 = 5 points), Brier score (sum over classes)."""

    nll: float
    ece: float
    adaptive_ece: float | None = None
    brier: float


class TemperatureFit(_Record):
    """How `supremum calibrate` fitted the temperature (manifest `calibration`): T, the data and
    split it was fitted on, dev scores before (logits) and after (logits / T)."""

    temperature: float
    #: the fitting procedure, in words
    method: str | None = None
    #: the data source's path
    data: str
    split: str
    examples: int
    before: CalibrationScores
    after: CalibrationScores
    #: why T on the edge of its search range measures nothing; None when inside
    at_bound: str | None = None
    #: a refit: the T of the calibrated parent it replaces
    replaces_temperature: float | None = None


class Manifest(_Record):
    """manifest.json: what an artifact is and how it was made. Optional keys default to what an
    artifact written without them means (older artifacts omit backend and transforms)."""

    format: Literal["supremum-artifact"]
    format_version: int = FORMAT_VERSION
    id: str
    #: text-classification or text-generation
    task: str
    label_names: list[str] | None = None
    #: model name or path the weights started from (adapters and deltas load it)
    base_model: str
    model_type: str | None = None
    #: how the weights are stored: full, peft (adapter only), delta (trained tensors only), ensemble
    storage: str = "full"
    #: the runtime that loads it (a key of supremum.backends): pytorch, onnxruntime, llamacpp, ensemble
    backend: str = "pytorch"
    #: changes replayed on the plain architecture before loading the tensors (supremum.backends.transforms)
    transforms: list[dict[str, Any]] = []
    parents: list[str] = []
    #: the resolved configuration that made it (a FinetuneConfig dump, or the ensemble's members)
    config: dict[str, Any] = {}
    created: str | None = None
    tool_version: str | None = None
    run_id: str | None = None
    #: what the training data was (source, splits, digests, prompt format)
    data: dict[str, Any] | None = None
    #: the fine-tuning method (lineage root)
    method: str | None = None
    parent_path: str | None = None
    compression: list[CompressionStep] = []
    members: list[Member] = []
    adapter_artifact: str | None = None
    delta_tensors: int | None = None
    gguf: dict[str, Any] | None = None
    onnx: dict[str, Any] | None = None
    #: temperature scaling: every backend divides the logits by it at load (supremum calibrate)
    temperature: float | None = None
    #: how the temperature was fitted: data, split, dev NLL/ECE before and after
    calibration: dict[str, Any] | None = None
    #: file name -> sha256 of every file but the manifest and metrics
    files: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """The manifest as JSON values, with exactly the keys it was read or written with."""
        return self.model_dump(mode="json", exclude_unset=True)

    # Typed reads of the free-form records above: their keys are named here and nowhere else, so a
    # change of format is one edit. Each reads old manifests (keys missing) as "not recorded".

    @property
    def trained_data(self) -> dict[str, Any] | None:
        """The data configuration the run trained on (`config.data`, a DataConfig dump), as stored;
        None when none was recorded (imported models, ensembles of them)."""
        return self.config.get("data")

    @property
    def trained_data_path(self) -> str | None:
        """Where the training data was read from (`config.data.path`); None when not recorded."""
        return (self.trained_data or {}).get("path")

    @property
    def method_config(self) -> dict[str, Any]:
        """The fine-tuning method's resolved configuration (`config.method`: `name` and its options).
        KeyError when the artifact records none (it was not fine-tuned by supremum)."""
        return self.config["method"]

    @property
    def method_name(self) -> str:
        """The fine-tuning method's registry key (`config.method.name`, e.g. lora, bitfit).
        KeyError when the artifact records none (it was not fine-tuned by supremum)."""
        return self.method_config["name"]

    @property
    def temperature_fit(self) -> TemperatureFit | None:
        """The temperature-scaling fit (`calibration`), typed; None when not calibrated."""
        return None if self.calibration is None else TemperatureFit.model_validate(self.calibration)

    @property
    def data_sha256(self) -> str | None:
        """sha256 of a single-file training source (`data.sha256`): a renamed copy is the same data.
        None for directories, hub datasets and older artifacts."""
        return (self.data or {}).get("sha256")

    @property
    def instruction_tuned(self) -> bool:
        """Trained on instruction data (`data.kind` instruction, or a prompt format recorded): its
        generation endpoint wraps a prompt the way training did."""
        data = self.data or {}
        return bool(data.get("prompt")) or data.get("kind") == "instruction"

    @property
    def gguf_quant(self) -> str | None:
        """The llama.cpp weight type of a GGUF artifact (`gguf.quant`, e.g. q8_0); None otherwise."""
        return (self.gguf or {}).get("quant")

    @property
    def gguf_lora(self) -> bool:
        """A GGUF artifact that carries a LoRA adapter applied at run time (`gguf.lora`)."""
        return bool((self.gguf or {}).get("lora"))


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
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def label_names(self) -> list[str]:
        return self.manifest.label_names or []

    @property
    def metrics(self) -> dict[str, Any]:
        p = self.path / METRICS
        return json.loads(p.read_text()) if p.exists() else {}

    @property
    def lineage(self) -> str:
        """How this variant was made: fine-tuning method, then compression steps, e.g.
        `full>prune-heads+distill+onnx-int8-dynamic`, `lora>gguf:q4_k_m` (GGUF exports name their type)."""
        steps = "+".join(c.method + (f":{c.config['quant']}" if c.config.get("quant") else "")
                         for c in self.manifest.compression)
        return (self.manifest.method or "?") + (f">{steps}" if steps else "")

    @property
    def size_mb(self) -> float:
        """MiB on disk of what the artifact ships: every file but metrics.json, which each
        evaluation appends to (counted, the size of one artifact would creep with every eval)."""
        return dir_size(self.path, exclude=(METRICS,)) / 2**20

    def record_metrics(self, key: str, metrics: dict[str, Any]) -> None:
        allm = self.metrics
        allm[key] = metrics
        write_json(self.path / METRICS, allm)


def check_output(path: str | Path, marker: str = MANIFEST) -> None:
    """Refuse (UserError) to write an artifact over `path` unless it is absent, an empty
    directory or one we wrote (it holds `marker`: a re-run replaces its own output): writing
    replaces the whole directory, and a user's folder of other files must never be deleted in
    silence."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and ((path / marker).is_file() or not any(path.iterdir()))):
        return
    raise UserError(f"--output {path} exists and is not a supremum artifact (writing would delete what is there)",
                    "give a new or empty directory, or remove that one first")


def save_artifact(model, tokenizer, out_dir: str | Path, *, task: str, label_names: list[str] | None,
                  base_model: str, config: dict, storage: str = "full", parents: list[str] | None = None,
                  extra: dict | None = None, artifact_id: str | None = None,
                  write_weights=None) -> Artifact:
    """Write weights, tokenizer and manifest into `out_dir` atomically.

    `write_weights(model, dir)` replaces `model.save_pretrained` for models transformers cannot
    save (quantized, resized or exported ones); it may return manifest entries to add.
    Weights holding NaN or Infinity are refused (UserError) before anything is written."""
    from supremum.finite import refuse_nonfinite  # torch: only writers pay for it, not readers

    refuse_nonfinite(model, f"not writing artifact {out_dir}",
                     "a diverged training or an overflowing cast made them; nothing was written")
    check_output(out_dir)
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
        typed = _write_manifest(tmp, manifest)
    return Artifact(Path(out_dir), typed)


def derive(parent: Artifact, out: str | Path, *, artifact_id: str, run_id: str, **updates: Any) -> Artifact:
    """A child of `parent` that shares its files: every file but manifest and metrics copied
    unchanged into `out` (atomically), and the parent's manifest with the lineage keys (id,
    parents, parent_path, run_id, created, tool_version) and then `updates` set, files rehashed.

    Keys keep the parent's order; keys the parent lacks follow in the order given, so the child's
    manifest.json is the parent's with values replaced and new keys appended. Values are JSON
    values (dump typed records first). Raises ValidationError when an update has the wrong type
    (a bug), before anything is written."""
    manifest = {**parent.manifest.as_dict(), "id": artifact_id, "parents": [parent.id],
                "parent_path": str(parent.path.resolve()), "run_id": run_id,
                "created": datetime.now(UTC).isoformat(timespec="seconds"), "tool_version": __version__,
                **updates}
    check_output(out)
    with atomic_dir(out) as tmp:
        shutil.copytree(parent.path, tmp, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*", MANIFEST, METRICS))
        _write_manifest(tmp, manifest)
    return open_artifact(out)


def _write_manifest(tmp: Path, manifest: dict[str, Any]) -> Manifest:
    """Hash every file in `tmp` into `manifest["files"]`, check the types, write manifest.json."""
    manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    typed = Manifest.model_validate(manifest)  # a wrong type is a bug: fail before the rename
    write_json(tmp / MANIFEST, manifest)  # the dict as built: key order as written before typing
    return typed


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
        manifest = Manifest.model_validate(json.loads(mpath.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError):  # or a key missing or mistyped
        raise UserError(f"{mpath}: corrupt manifest", "re-create the artifact") from None
    if verify:
        _verify_files(path, manifest.files)
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


def __getattr__(name: str):
    # `load_artifact_model` moved to `supremum.backends.load`; the old name keeps working. Looked up
    # by name because backends sit above this module (they load what it describes).
    if name == "load_artifact_model":
        return importlib.import_module("supremum.backends").load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
