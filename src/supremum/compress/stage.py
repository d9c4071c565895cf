"""The compression stage: load the parent, run one registered method, save the child artifact
with its lineage (parent id, the chain of methods) in the manifest and the store."""

from __future__ import annotations

import shutil
from pathlib import Path

from supremum import backends
from supremum.artifact import Artifact, check_output, new_id, save_artifact
from supremum.backends.transforms import PHASES, kinds_in
from supremum.backends.weights import write_weights
from supremum.compress.context import Context
from supremum.compress.registry import COMPRESSORS, Compressed, method_phase
from supremum.config import DataConfig, identity
from supremum.errors import UserError
from supremum.hashing import content_hash
from supremum.machine import fingerprint
from supremum.models.sentence import TRANSFORM as POOLING
from supremum.models.sentence import transform_spec
from supremum.store import Store
from supremum.train import checkpoint as ckpt

ONNX_METHODS_OK_ON_ONNX = ("onnx-int8-dynamic", "onnx-int8-static")
ONNX_EXPORTS = ("onnx", *ONNX_METHODS_OK_ON_ONNX)


def compress(art: Artifact, cfg, *, output: str | Path | None = None, data: str | DataConfig | None = None,
             store: Store | None = None, command: str = "", checkpoint_every: int | None = None,
             resume: bool = False) -> Artifact:
    """Compress `art` with `cfg`. With `checkpoint_every`, recovery training (distill, lowrank,
    prune-iterative) writes resumable checkpoints; `resume` continues a killed run of the same
    parent, method options and data from its last one."""
    store = store or Store()
    method = COMPRESSORS[cfg.method]
    check_applicable(art, cfg.method)
    if output:
        check_output(output)  # before the work: a compressed artifact replaces only an artifact
    run_dir = store.root / "checkpoints" / f"compress-{_identity(art, cfg, data)}"
    run_id = ckpt.persistent_run_id(run_dir, resume, new_id) if checkpoint_every else new_id()
    with store.run(run_id, "compress", command, {"compress": cfg.model_dump(mode="json"), "parent": art.id},
                   fingerprint(), parents=[art.id], checkpoint=str(run_dir) if checkpoint_every else None) as run:
        model, tok = backends.load(art, calibrated=False)  # the weights as stored; the child keeps its T
        if hasattr(model, "merge_and_unload"):  # an adapter-only LoRA artifact: compress the merged model
            from supremum.train.methods.peft_common import merge

            model = merge(model)
        ctx = Context(art, tok, _data_cfg(art, data), checkpoints=run_dir, checkpoint_every=checkpoint_every,
                      resume=resume, data_given=data is not None)
        result = method.run(model, cfg, ctx)
        if used := ctx.data_record():  # in the manifest's step and the run record: what was read
            result.report["data"] = used
        elif ctx.data_given:  # said, not dropped in silence: the user may think the method calibrated on it
            result.report["data_unused"] = f"{ctx.data_cfg.path} (--data): {cfg.method} reads no data"
        child = _save(art, tok, cfg, result, output, store.root, run_id)
        store.add_artifact(child.id, str(child.path), run_id, child.task, child.manifest.base_model,
                           child.lineage)
        run.finish(result.report, child)
    shutil.rmtree(run_dir, ignore_errors=True)
    return child


def _identity(art: Artifact, cfg, data: str | DataConfig | None) -> str:
    """What a resumed compression must share with the killed one: parent, options, data."""
    if isinstance(data, DataConfig):
        data = identity(data)
    d = {"parent": art.id, "config": cfg.model_dump(mode="json"), "data": data}
    return content_hash(d)


def check_applicable(art: Artifact, method: str) -> None:
    """UserError when `method` cannot run on `art`: its backend is final (llama.cpp) or takes
    only ONNX methods, or a transform it holds closes the method's phase (see _check_order)."""
    backend = art.manifest.backend
    if backend == "llamacpp":
        raise UserError(f"artifact {art.id} is a llama.cpp (GGUF) model; it is the last step",
                        "compress its PyTorch parent instead")
    if backend == "onnxruntime" and method not in ONNX_METHODS_OK_ON_ONNX:
        raise UserError(f"artifact {art.id} is an ONNX model; '{method}' needs a PyTorch one",
                        "compress the PyTorch parent, then export with --method onnx last")
    _check_order(art, method)
    # the layer forms torch.onnx cannot export, as the transform registry states them
    held = [k.form for k, _ in kinds_in(art.manifest.transforms) if k.form and k.form.not_onnx]
    if method in ONNX_EXPORTS and held:
        raise UserError(f"artifact {art.id} holds {held[0].words}, which {held[0].not_onnx}",
                        f"compress its parent with {method} instead (ONNX Runtime quantizes the graph itself: "
                        "onnx-int8-dynamic)")


def _check_order(art: Artifact, method: str) -> None:
    """Refuse a method whose phase comes too early for a transform the artifact already holds
    (the one closing the most phases names the fix)."""
    rank = PHASES.index(method_phase(method))
    closing = [k for k, _ in kinds_in(art.manifest.transforms) if PHASES.index(k.followed_by) > rank]
    if closing:
        kind = max(closing, key=lambda k: PHASES.index(k.followed_by))
        message, hint = kind.refusal
        raise UserError(message.format(id=art.id, method=method), hint)


def data_config(art: Artifact, data: str | None, **given) -> DataConfig | None:
    """How compression reads `data` [default: the parent's training data]: the training data's
    settings with `given` ones (delimiter, drop_empty: None = not given) over them. None: no data
    given and the artifact records none (a method needing data says so)."""
    cfg = _data_cfg(art, data)
    if cfg is None:
        return None
    return DataConfig.model_validate({**cfg.model_dump(), **{k: v for k, v in given.items() if v is not None}})


def _data_cfg(art: Artifact, data: str | DataConfig | None) -> DataConfig | None:
    if isinstance(data, DataConfig):
        return data
    trained = art.manifest.trained_data
    if data:
        return DataConfig(**{**(trained or {}), "path": data})
    return DataConfig(**trained) if trained else None


def _calibration(parent: Artifact) -> dict:
    """A calibrated parent's temperature, carried to the child: the compressed model keeps the
    parent's calibration map, and the child's eval measures what compression did to it."""
    m = parent.manifest
    return {"temperature": m.temperature, "calibration": m.calibration} if m.temperature is not None else {}


def _save(parent: Artifact, tok, cfg, res: Compressed, output, root: Path, run_id: str) -> Artifact:
    art_id = new_id()
    out = Path(output) if output else root / "artifacts" / art_id
    transforms = parent.manifest.transforms + res.transforms
    if any(t["kind"] == "resize" for t in res.transforms):
        # A resize lists every final shape, replacing earlier ones; earlier sparse storage
        # names tensors that may have moved, so the pruned weights are stored dense from here.
        transforms = res.transforms
    step = {"method": cfg.method, "config": cfg.model_dump(mode="json"), "report": res.report}
    extra = {"run_id": run_id, "data": parent.manifest.data,
             "parent_path": str(parent.path.resolve()),
             "method": parent.manifest.method,
             "compression": [c.model_dump(mode="json", exclude_unset=True) for c in parent.manifest.compression]
                           + [step],
             **_calibration(parent), **res.extra}
    # How the model pools is a property of the model saved, not of its lineage (a resize drops
    # the parent's list; a student distilled from a sentence-pooled teacher is a plain classifier).
    pooling = transform_spec(res.model)
    transforms = ([pooling] if pooling else []) + [t for t in transforms if t["kind"] != POOLING]
    writer = res.write_weights or write_weights(transforms)
    art = save_artifact(res.model, tok, out, task=parent.task, label_names=parent.label_names or None,
                        base_model=parent.manifest.base_model, config=parent.manifest.config,
                        parents=[parent.id], extra=extra, artifact_id=art_id, write_weights=writer)
    return art

