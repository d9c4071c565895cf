"""The public Python API: five functions, stable while the modules behind them move.

    import supremum
    res = supremum.finetune({"model": {"name": "tiny-bert"}, "data": {"path": "reviews.csv"}})
    model, tok = supremum.load(res.artifact.id)
    child = supremum.compress(res.artifact, {"method": "int8-dynamic"})
    metrics = supremum.evaluate(child, None, {"split": "test"})
    front = supremum.frontier()

The CLI calls these same functions. Configs may be given typed (the pydantic models of
`supremum.config` and the compressors) or as plain dicts (and recipe files for `finetune`); either
way they are validated, and a bad value raises `supremum.errors.UserError` with the one-line
message the CLI prints. Every function records its run in the store ($SUPREMUM_HOME) like the
matching command.

`compress`, `evaluate` and `frontier` share their names with subpackages (`supremum.compress` ...);
those subpackages are callable (`supremum.facade`), so `supremum.compress(...)` calls the function
here whether or not the subpackage has been imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from supremum.artifact import Artifact
    from supremum.config import DataConfig, EvalConfig
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import FinetuneResult


def load(ref: str | Path | Artifact):
    """(model, tokenizer) of an artifact, ready for inference (eval mode, weights as stored).

    ref: an artifact directory, an artifact or run id (a prefix is enough), or an `Artifact`.
    The model is a `torch.nn.Module` (transformers' AutoModelFor... class; an adapter artifact
    loads its base model and applies the adapter) or, for ONNX / GGUF / ensemble artifacts, that
    runtime's wrapper with the same call; the tokenizer is a transformers tokenizer.
    Raises UserError: no such directory or id, not an artifact, a file whose hash does not match.
    """
    from supremum import backends

    return backends.load(_artifact(ref))


def finetune(config: FinetuneConfig | dict | str | Path, *, resume: bool = False, progress: bool = False,
             command: str = "", on_data: Callable[[dict], None] | None = None) -> FinetuneResult | None:
    """Fine-tune and save an artifact; returns FinetuneResult(run_id, artifact, metrics, data_info)
    (None on a torchrun rank other than 0).

    config: a FinetuneConfig, a dict of recipe keys ({"model": {"name": ...}, "data": {"path":
    ...}, "method": {"name": "lora"}, "train": {...}}), or the path of a YAML recipe.
    metrics: steps, dev_accuracy (classifiers) or dev_loss/dev_perplexity (causal LMs), best_step,
    trainable_params, total_params, train_samples_per_s. `resume` continues the same run from
    its last checkpoint. `on_data(data_info)` runs once the data is read, before training.
    Raises UserError on bad config values or data (one line).
    """
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune as run

    cfg = _config(FinetuneConfig, config, "supremum finetune --help")
    return run(cfg, resume=resume, progress=progress, command=command, on_data=on_data)


def compress(artifact: str | Path | Artifact, config: Any, *, output: str | Path | None = None,
             data: str | DataConfig | None = None, checkpoint_every: int | None = None, resume: bool = False,
             command: str = "") -> Artifact:
    """A new artifact: `artifact` compressed by one method, recorded with its parent.

    config: a compressor's config, a dict {"method": name, **options}, or a method name (its
    defaults). data: calibration / recovery data [default: the parent's training data]; a path is
    read with the training data's settings, a DataConfig as given (see compress.stage.data_config).
    Raises UserError: unknown method or option, a method that does not apply to the artifact.
    """
    from supremum.compress import compressors
    from supremum.compress.stage import compress as run

    if isinstance(config, str):
        config = {"method": config}
    if isinstance(config, dict):
        from supremum.errors import UserError
        from supremum.recipe import build

        known = compressors()
        method = config.get("method")
        if method not in known:
            raise UserError(f"unknown compression method '{method}'", f"use one of: {', '.join(known)}")
        config = build(known[method].config_cls, config, "config", help_cmd="supremum compress --help")
    return run(_artifact(artifact), config, output=output, data=data, command=command,
               checkpoint_every=checkpoint_every, resume=resume)


def evaluate(artifact: str | Path | Artifact, data: str | DataConfig | None = None,
             config: EvalConfig | dict | None = None, *, backend: str = "pytorch", tracking: Any = None,
             command: str = "") -> dict:
    """Quality and cost of an artifact, recorded in the store and the artifact's metrics.

    artifact: an artifact (directory, id or `Artifact`), or a base causal LM (alias, .gguf file,
    model directory) measured as it is (then `data` is required; backend "llamacpp" runs its
    GGUF file). data: None = the artifact's training data and split settings; a path = that data
    (the training settings reused when it is the training source); a DataConfig = as given.
    config: an EvalConfig or a dict of its keys (split, speed, repeats, ...).
    Returns a dict: classifiers accuracy, macro_f1, mcc, per_class, confusion_matrix, examples;
    causal LMs perplexity, loss (nats/token), bits_per_byte; with speed, cost (params, weights_mb,
    peak_rss_mb, latency_b1/latency_b32 in ms, or generation decode/prefill rates).
    Raises UserError: bad values, data the artifact cannot read, a base model without data.
    """
    from supremum.config import DataConfig, EvalConfig
    from supremum.errors import UserError

    ecfg = _config(EvalConfig, config or {}, "supremum eval --help")
    if isinstance(artifact, str | Path) and is_base_model(str(artifact)):
        from supremum.evaluate.stage import evaluate_model

        if data is None:
            raise UserError(f"'{artifact}' is a model, not an artifact: it records no data", "pass --data")
        if backend not in ("pytorch", "llamacpp"):
            raise UserError(f"unknown backend '{backend}'", "use pytorch or llamacpp")
        dcfg = data if isinstance(data, DataConfig) else _config(DataConfig, {"path": str(data)}, "")
        return evaluate_model(str(artifact), dcfg, ecfg, command=command, backend=backend)
    from supremum.evaluate.stage import data_config_for
    from supremum.evaluate.stage import evaluate as run

    art = _artifact(artifact)
    dcfg = data if isinstance(data, DataConfig) else data_config_for(art, None if data is None else str(data))
    return run(art, dcfg, ecfg, command=command, tracking=tracking)


def calibrate(artifact: str | Path | Artifact, data: str | DataConfig | None = None, *,
              output: str | Path | None = None, command: str = "") -> Artifact:
    """A new artifact: `artifact` with temperature scaling fitted on the labelled dev split of
    `data` [default: the training data], recorded with its parent. Every backend divides the
    logits by the temperature at load, so argmax predictions are those of the parent.
    The fit (T, dev NLL/ECE/Brier before and after) is in `child.manifest.calibration` (typed:
    `child.manifest.temperature_fit`).
    Raises UserError: not a classifier; data without a labelled dev split.
    """
    from supremum.config import DataConfig
    from supremum.evaluate.calibrate import calibrate as run
    from supremum.evaluate.calibrate import check_calibratable
    from supremum.evaluate.stage import data_config_for

    art = _artifact(artifact)
    check_calibratable(art)
    dcfg = data if isinstance(data, DataConfig) else data_config_for(art, None if data is None else str(data))
    return run(art, dcfg, output=output, command=command)


def frontier(metric: str | None = None, cost: str | None = None, *, data: str | None = None,
             split: str | None = None) -> dict:
    """The Pareto set (best quality for each cost) of the evaluated variants in the store.

    metric: accuracy, macro_f1, mcc, ece, perplexity, bits_per_byte [default: accuracy, or perplexity
    for causal LMs]; cost: latency_b1, latency_b1_model, latency_b32, size, memory, params,
    decode_ms, ttft [default: latency_b1, or decode_ms]. data/split: the evaluation group
    [default: that of the latest evaluation]. Returns {"metric", "cost", "cost_meaning", "task",
    "group", "frontier": [variant dicts], "dominated": [...], "not_comparable": [... with
    "reason"]}; variants measured on another machine or evaluation set are never mixed in.
    Raises UserError: unknown metric or cost, nothing evaluated yet.
    """
    from supremum.frontier import frontier as run

    return run(metric, cost, data, split)


def is_base_model(ref: str) -> bool:
    """A model alias, a .gguf file or a transformers directory without a manifest (not an artifact)."""
    from supremum.models.loading import ALIASES

    p = Path(ref)
    if ref in ALIASES or (p.is_file() and p.suffix == ".gguf"):
        return True
    return p.is_dir() and (p / "config.json").exists() and not (p / "manifest.json").exists()


def _artifact(ref):
    from supremum.artifact import Artifact

    if isinstance(ref, Artifact):
        return ref
    from supremum.evaluate.stage import resolve_artifact

    return resolve_artifact(str(ref))


def _config(schema, value, help_cmd: str):
    """`value` as a `schema` instance: as given, from a dict, or from a YAML recipe file."""
    from supremum.recipe import build, load_yaml

    if isinstance(value, schema):
        return value
    if isinstance(value, str | Path):
        raw, lines = load_yaml(value)
        return build(schema, raw, str(value), lines, help_cmd=help_cmd)
    return build(schema, dict(value), "config", help_cmd=help_cmd or None)
