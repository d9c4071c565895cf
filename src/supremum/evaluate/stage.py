"""Evaluation stage: `evaluate(artifact, data, config) -> metrics`, recorded in artifact and store."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from supremum import backends, device
from supremum.artifact import Artifact, new_id, open_artifact
from supremum.backends.explain import runtime, why
from supremum.config import DataConfig, EvalConfig
from supremum.data import load_data
from supremum.errors import UserError
from supremum.evaluate import errors
from supremum.evaluate.calibration import calibration_metrics
from supremum.evaluate.quality import classification_metrics, softmax
from supremum.evaluate.result import EvalResult
from supremum.evaluate.speed import measure_cost
from supremum.infer import predict_logits
from supremum.machine import busy_caveat, fingerprint
from supremum.preprocessing import WHOLE, Preprocessing, eval_split, preprocessing_for, scored
from supremum.preprocessing import data_config_for as data_config_for  # the CLI's import path
from supremum.store import Store
from supremum.tasks import CAUSAL_LM, CLASSIFICATION, get_task
from supremum.tracking import Tracker, TrackingConfig


def resolve_artifact(ref: str, store: Store | None = None) -> Artifact:
    """A path, or an artifact/run id (prefix) from the store."""
    if Path(ref).exists():
        return open_artifact(ref)
    store = store or Store()
    row = store.get_artifact(ref)
    if row is None and (run := store.get_run(ref)) and run.get("artifact_path"):
        row = {"path": run["artifact_path"]}
    if row is None:
        raise UserError(f"'{ref}' is neither an artifact directory nor an artifact or run id",
                        "see `supremum runs` for ids")
    return open_artifact(row["path"])


def parent_of(art: Artifact, store: Store | None = None) -> Artifact:
    """The parent artifact: from the store, else from the path recorded at compression time
    (artifacts copied between workspaces keep their lineage)."""
    pid = art.manifest.parents[0]
    try:
        return resolve_artifact(pid, store)
    except UserError:
        path = art.manifest.parent_path
        if path and Path(path).is_dir():
            return open_artifact(path)
    raise UserError(f"the parent of {art.id} ({pid}) is neither in the store nor at its recorded path",
                    "pass the parent explicitly (e.g. teacher=<artifact path>)")


def evaluate(art: Artifact, data_cfg: DataConfig, cfg: EvalConfig, *, store: Store | None = None,
             command: str = "", tracking: TrackingConfig | None = None) -> dict:
    """Quality (and with cfg.speed, cost) of `art` on `data_cfg`, preprocessed as the artifact
    was trained (cfg.max_length overrides). The split defaults to dev of the training data or of
    a source with split files, and to the whole of any other file ("all")."""
    store = store or Store()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg = cfg.model_copy(update={"split": eval_split(art, data_cfg, cfg.split)})
    prep = preprocessing_for(art, {"max_length": cfg.max_length})
    run_id = new_id()
    with store.run(run_id, "eval", command, {"data": data_cfg.model_dump(), "eval": cfg.model_dump()},
                   fingerprint(), parents=[art.id]) as run:
        metrics = _evaluate(art, data_cfg, cfg, prep, outputs=generations_path(store, run_id),
                            predictions=predictions_path(store, run_id))
        art.record_metrics(f"{Path(data_cfg.path).name}:{cfg.split}", metrics)
        run.finish(metrics, art)
    with Tracker(tracking, store.root, f"eval-{art.id}-{cfg.split}", {"artifact": art.id,
                 "lineage": art.lineage, "data": data_cfg.path, "split": cfg.split}) as tr:
        tr.log({f"eval/{cfg.split}": {k: metrics[k] for k in ("accuracy", "macro_f1", "cost", "robustness",
                                                              "perplexity", "bits_per_byte") if k in metrics}})
    return metrics


def load_llamacpp(name: str):
    """The model's own GGUF file run by llama.cpp, with the transformers tokenizer."""
    import transformers as tf

    from supremum.backends.llamacpp import LlamaCppModel
    from supremum.models.loading import gguf_path, gguf_to_safetensors, resolve_source

    path = gguf_path(name)
    if path is None:
        raise UserError(f"'{name}' has no GGUF file for llama.cpp", "give a .gguf file or an alias such as "
                        "smollm2-135m, or export an artifact with `compress --method gguf`")
    converted = gguf_to_safetensors(resolve_source(name))  # tokenizer and config, cached
    tok = tf.AutoTokenizer.from_pretrained(str(converted))
    return LlamaCppModel(path, tf.AutoConfig.from_pretrained(str(converted))), tok


def evaluate_model(name: str, data_cfg: DataConfig, cfg: EvalConfig, *, store: Store | None = None,
                   command: str = "", backend: str = "pytorch") -> dict:
    """A base causal LM (alias, directory, .gguf) measured as it is: a store run without an
    artifact, so a fine-tune or compression has its starting point. backend "llamacpp" runs the
    model's GGUF file as shipped (quantized) in llama.cpp."""
    from supremum.evaluate.lm import evaluate_lm
    from supremum.lm.data import is_lm_data
    from supremum.models import load_model
    from supremum.preprocessing import preprocessing_for_model

    if not is_lm_data(data_cfg):
        raise UserError(f"a base model is evaluated as a language model, and {data_cfg.path} is not "
                        "text or instruction data", "fine-tune a classifier first, then evaluate the artifact")
    store = store or Store()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg = cfg.model_copy(update={"split": eval_split(None, data_cfg, cfg.split)})
    run_id = new_id()
    with store.run(run_id, "eval", command, {"model": name, "backend": backend, "data": data_cfg.model_dump(),
                   "eval": cfg.model_dump()}, fingerprint()) as run:
        model, tok = load_llamacpp(name) if backend == "llamacpp" else load_model(name, CAUSAL_LM)
        prep = preprocessing_for_model(model, tok, name, cfg.max_length)
        metrics = {"model": name, "backend": backend, "lineage": f"base ({backend})",
                   **evaluate_lm(model.eval(), tok, data_cfg, cfg, prep, outputs=generations_path(store, run_id)),
                   "machine": fingerprint()}
        metrics["runtime"] = {"backend": backend, "kernels": (model.kernels() if backend == "llamacpp"
                                                              else ["PyTorch eager"])[0]}
        run.finish(metrics)
    return metrics


def evaluate_in_subprocess(art: Artifact, data_cfg: DataConfig, cfg: EvalConfig, store: Store,
                           tracking: TrackingConfig | None = None) -> None:
    """Evaluate in a fresh process, so peak memory and latency belong to this artifact alone and
    not to whatever the calling process trained or loaded before (a pipeline trains first)."""
    from supremum.jobs.worker import WorkerFailed, run_worker

    spec = {"artifact": str(art.path), "data": data_cfg.model_dump(), "eval": cfg.model_dump(),
            "store": str(store.root), "tracking": tracking.model_dump() if tracking else None}
    try:
        run_worker("supremum.evaluate.worker", spec)
    except WorkerFailed as e:
        raise RuntimeError(f"evaluation of {art.id} failed: {e}") from None


def _parent_measurement(art: Artifact, out: dict, key: str, needed: str):
    """(parent, its metrics for `key`) when the parent was measured on this data and machine;
    else a note (or None when there is no reachable parent)."""
    if not art.manifest.parents:
        return None
    try:
        parent = parent_of(art)
    except UserError:
        return None
    pm = parent.metrics.get(key)
    if not pm or needed not in pm or pm.get("machine", {}).get("cpu") != out["machine"]["cpu"]:
        return {"parent": parent.id, "note": "parent not measured on this data and machine; "
                "run `supremum eval` on it for a comparison"}
    return parent, pm


def _vs_parent(art: Artifact, out: dict, key: str) -> dict | None:
    """Speed-up and quality change against the parent's measurement of the same data on the
    same machine (separate runs, so less exact than the interleaved benchmark)."""
    if art.manifest.backend == "ensemble":
        return None  # an ensemble has several parents: its members, each with its own row
    found = _parent_measurement(art, out, key, "cost")
    if not isinstance(found, tuple):
        return found
    parent, pm = found
    res = {"parent": parent.id, "accuracy_delta_pt": 100 * (out["accuracy"] - pm["accuracy"])}
    was, now = EvalResult(pm).cost, EvalResult(out).cost
    caveat = busy_caveat(**{"this run": now.load, "parent": was.load})
    for b, batch in (("b1", 1), ("b32", 32)):
        ratio = getattr(was, b).model_median_ms / getattr(now, b).model_median_ms
        res[f"speedup_{b}"] = ratio
        # a ratio from a busy machine says nothing about the kernels, so no reason is given for it
        res[f"why_{b}"] = None if caveat else why(art.manifest, out["machine"]["isa"], ratio, batch)
    res["method"] = "ratio of model-only median latencies from separate eval runs"
    if caveat:
        res["busy"] = caveat
    return res


def _robustness(model, tok, texts, labels, prep: Preprocessing, cfg: EvalConfig, clean: float) -> dict:
    from supremum.augment import parse_perturb, perturb, perturb_key

    out = {"method": f"accuracy on the same split with every text perturbed (seed {cfg.perturb_seed}); "
           "typo: each letter deleted/doubled/swapped/replaced with the rate; drop/swap: each word "
           "dropped / swapped with its neighbour with the rate; case: words upper-cased with the rate"}
    for name, rate in parse_perturb(cfg.perturb):
        ids = prep.tokenize(tok, perturb(texts, name, rate, cfg.perturb_seed))
        acc = float((predict_logits(model, ids, tok.pad_token_id, cfg.batch_size).argmax(-1)
                     == np.asarray(labels)).mean())
        out[perturb_key(name, rate)] = {"accuracy": acc, "delta_pt": 100 * (acc - clean)}
    return out


def _lm_vs_parent(art: Artifact, out: dict, key: str) -> dict | None:
    """Perplexity change and decode speed-up against the parent's evaluation of the same data."""
    found = _parent_measurement(art, out, key, "perplexity")
    if not isinstance(found, tuple):
        return found
    parent, pm = found
    res = {"parent": parent.id, "perplexity_change": out["perplexity"] / pm["perplexity"] - 1,
           "method": "ratios from separate eval runs on the same data and machine"}
    if "cost" in out and "cost" in pm:
        res["decode_speedup"] = (EvalResult(out).cost.generation.decode_tokens_per_s
                                 / EvalResult(pm).cost.generation.decode_tokens_per_s)
        if caveat := busy_caveat(**{"this run": EvalResult(out).cost.load, "parent": EvalResult(pm).cost.load}):
            res["busy"] = caveat
    return res


def generations_path(store: Store, run_id: str) -> Path:
    """Where an evaluation run's generated answers go (JSONL): beside the store's run records."""
    return store.root / "generations" / f"{run_id}.jsonl"


def predictions_path(store: Store, run_id: str) -> Path:
    """Where a classifier evaluation's per-example predictions go (JSONL): beside the run records."""
    return store.root / "predictions" / f"{run_id}.jsonl"


def _lm_parent(art: Artifact):
    """A loader of the model `art` came from, (model, tokenizer, name): its parent artifact, else
    (a fine-tune) its base model; UserError when a recorded parent cannot be found."""
    if art.manifest.parents:
        parent = parent_of(art)
        return lambda: (*backends.load(parent), parent.id)

    def base():
        from supremum.models import load_model

        model, tok = load_model(art.manifest.base_model, CAUSAL_LM)
        return model.eval(), tok, f"{art.manifest.base_model} (base model)"

    return base


def _evaluate_lm(art: Artifact, data_cfg: DataConfig, cfg: EvalConfig, prep: Preprocessing,
                 outputs: Path | None = None, predictions: Path | None = None) -> dict:
    """A causal LM: perplexity, bits per byte and samples (`predictions` does not apply)."""
    from supremum.evaluate.lm import evaluate_lm

    device.cpu_only(cfg.device, "causal-LM evaluation runs on the CPU in this version")
    model, tok = backends.load(art)
    parent = _lm_parent(art) if cfg.reference_data else None
    out = {"artifact": art.id, "lineage": art.lineage,
           **evaluate_lm(model, tok, data_cfg, cfg, prep, outputs=outputs, parent=parent),
           "size_on_disk_mb": art.size_mb, "machine": fingerprint()}
    out["runtime"] = runtime(art.manifest, out["machine"]["isa"], getattr(model, "kernels", lambda: None)())
    out["vs_parent"] = _lm_vs_parent(art, out, f"{Path(data_cfg.path).name}:{cfg.split}")
    return out


def _evaluate(art: Artifact, data_cfg: DataConfig, cfg: EvalConfig, prep: Preprocessing,
              outputs: Path | None = None, predictions: Path | None = None) -> dict:
    """The evaluation of the artifact's task (`EVALUATORS`); UserError for a task it does not name."""
    return EVALUATORS[get_task(art.task).name](art, data_cfg, cfg, prep, outputs, predictions)


def _evaluate_classifier(art: Artifact, data_cfg: DataConfig, cfg: EvalConfig, prep: Preprocessing,
                         outputs: Path | None = None, predictions: Path | None = None) -> dict:
    """A classifier: quality, calibration, error analysis and (cfg.speed) cost."""
    if cfg.generate or cfg.reference_data:
        raise UserError(f"--generate and --reference-data apply to causal LMs, and {art.id} is a classifier",
                        "leave them out")
    keep = (cfg.slice_column,) if cfg.slice_column else ()
    data = load_data(data_cfg, label_names=prep.label_names, whole=cfg.split == WHOLE, keep=keep)
    model, tok = backends.load(art)
    model = device.place(model, cfg.device)
    texts, labels = data.texts(cfg.split), data.labels(cfg.split)
    t0 = time.perf_counter()
    logits = predict_logits(model, prep.tokenize(tok, texts), tok.pad_token_id, cfg.batch_size)
    quality = classification_metrics(labels, logits.argmax(-1), prep.label_names)
    if cfg.perturb:
        quality["robustness"] = _robustness(model, tok, texts, labels, prep, cfg, quality["accuracy"])
    out = {"artifact": art.id, "lineage": art.lineage, "data": data_cfg.path, "split": cfg.split, **quality,
           "scored": scored(len(texts), "rows", data_cfg.path, cfg.split), "preprocessing": _shown(prep),
           "eval_seconds": time.perf_counter() - t0, "size_on_disk_mb": art.size_mb,
           "machine": fingerprint(), "device": str(device.of(model))}
    out["runtime"] = runtime(art.manifest, out["machine"]["isa"], getattr(model, "kernels", lambda: None)())
    if cfg.speed:
        out["cost"] = measure_cost(model, tok, texts[:64], prep.max_length, cfg.warmup, cfg.repeats)
        out["cost"]["trainable_params"] = art.metrics.get("training", {}).get("trainable_params")
        out["vs_parent"] = _vs_parent(art, out, f"{Path(data_cfg.path).name}:{cfg.split}")
    out["mean_confidence"] = float(np.max(softmax(logits), -1).mean())
    out["error_analysis"] = _error_analysis(data, cfg, tok, softmax(logits), prep.label_names, predictions)
    out["calibration"] = calibration_metrics(logits, labels)
    out["calibration"]["temperature"] = art.manifest.temperature
    out["calibration"]["vs_parent"] = _calibration_vs_parent(art, out, f"{Path(data_cfg.path).name}:{cfg.split}")
    return out


#: the evaluation of each task, by its canonical name (a new task adds its function here)
EVALUATORS = {CLASSIFICATION.name: _evaluate_classifier, CAUSAL_LM.name: _evaluate_lm}


def _error_analysis(data, cfg: EvalConfig, tok, probs: np.ndarray, names: list[str],
                    predictions: Path | None) -> dict:
    """`errors.analysis` of the split, and every example's prediction written to `predictions`."""
    texts, labels = data.texts(cfg.split), data.labels(cfg.split)
    column = None
    if cfg.slice_column:  # named by its header, also when given as a position
        header = data.info.get("kept_columns", {}).get(cfg.slice_column, cfg.slice_column)
        column = (header, data.column(cfg.split, cfg.slice_column))
    res = errors.analysis(texts, labels, probs, names, tok, column, cfg.confident_errors)
    if predictions is not None:
        res["predictions"] = str(errors.write_predictions(predictions, texts, labels, probs, names, column))
    return res


def _calibration_vs_parent(art: Artifact, out: dict, key: str) -> dict | None:
    """ECE, adaptive ECE (points) and NLL change against the parent's evaluation of the same
    data and split: what this compression (or calibration) step did to the confidence. Any
    machine: calibration does not depend on it beyond rounding."""
    if art.manifest.backend == "ensemble" or not art.manifest.parents:
        return None
    try:
        parent = parent_of(art)
    except UserError:
        return None
    pm = parent.metrics.get(key) or {}
    pc = pm.get("calibration")
    if not pc:
        return {"parent": parent.id, "note": "parent not evaluated on this data; run `supremum eval` on it "
                "for a comparison"}
    c = out["calibration"]
    return {"parent": parent.id, "ece_delta_pt": 100 * (c["ece"] - pc["ece"]),
            "adaptive_ece_delta_pt": 100 * (c["adaptive_ece"] - pc["adaptive_ece"]),
            "nll_delta": c["nll"] - pc["nll"], "accuracy_delta_pt": 100 * (out["accuracy"] - pm["accuracy"])}


def _shown(prep: Preprocessing) -> dict:
    """The preprocessing in the metrics: what was used and which values the user overrode."""
    return {"max_length": prep.max_length, "truncation_side": prep.truncation_side,
            "text_column": prep.text_column, "label_column": prep.label_column, "overridden": prep.overridden}
