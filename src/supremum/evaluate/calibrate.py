"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one scalar
T > 0 divides every logit, fitted to minimize the NLL of the labelled dev split. Dividing by a
positive constant keeps the order of the logits, so argmax predictions never change; only the
confidence does.

`calibrate(artifact, data)` writes a new artifact, a child in the lineage like a compression
step: the parent's files unchanged plus `temperature` (and the fit's record, `calibration`) in
the manifest. Every backend applies it at load (`supremum.backends.load`), so eval, serve and
ensembles see calibrated probabilities.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from supremum import backends
from supremum.artifact import Artifact, derive, new_id
from supremum.config import DataConfig
from supremum.errors import UserError
from supremum.evaluate.calibration import calibration_metrics, nll
from supremum.machine import fingerprint
from supremum.store import Store

#: the lineage step's name (`full>temperature`)
METHOD = "temperature"
#: search interval of T: wider than any fitted value reported for fine-tuned transformers (~0.5-3)
T_BOUNDS = (0.05, 20.0)


def fit_temperature(logits: np.ndarray, labels) -> float:
    """T minimizing mean NLL(softmax(logits / T), labels): bounded Brent search on log T over
    T_BOUNDS (NLL is convex in 1/T, hence unimodal in log T). Never worse than T = 1 on these
    data: if the search's optimum were, T = 1 is returned. logits (n, k), labels (n,)."""
    from scipy.optimize import minimize_scalar

    z, y = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    res = minimize_scalar(lambda u: nll(z / math.exp(u), y), method="bounded",
                          bounds=tuple(math.log(b) for b in T_BOUNDS), options={"xatol": 1e-7})
    t = float(math.exp(res.x))
    return t if nll(z / t, y) <= nll(z, y) else 1.0


def check_calibratable(art: Artifact) -> None:
    if art.task != "text-classification":
        raise UserError(f"artifact {art.id} is a {art.task} model; temperature scaling calibrates "
                        "class probabilities", "calibrate a classifier artifact")


def dev_split(art: Artifact, data_cfg: DataConfig):
    """(texts, labels) of the labelled dev split of `data_cfg`; UserError when it has none."""
    from supremum.data import load_data
    from supremum.preprocessing import eval_split, has_own_splits, is_training_source, preprocessing_for

    missing = UserError(f"{data_cfg.path} has no labelled dev split to fit the temperature on",
                        "pass the artifact's training data (its dev split), or a directory with a labelled "
                        "dev file")
    if not (has_own_splits(data_cfg.path) or is_training_source(art, data_cfg.path)):
        raise missing
    eval_split(art, data_cfg, "dev")  # refuses a training file changed since (its dev is not held out)
    data = load_data(data_cfg, label_names=preprocessing_for(art).label_names)
    if "dev" not in data.splits or not data.texts("dev"):
        raise missing
    return data.texts("dev"), data.labels("dev")


def dev_logits(art: Artifact, data_cfg: DataConfig, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated logits (n, k) and labels (n,) of the dev split, as the artifact preprocesses."""
    from supremum.infer import predict_logits
    from supremum.preprocessing import preprocessing_for

    texts, labels = dev_split(art, data_cfg)
    model, tok = backends.load(art, calibrated=False)
    ids = preprocessing_for(art).tokenize(tok, texts)
    return predict_logits(model, ids, tok.pad_token_id, batch_size), np.asarray(labels)


def calibrate(art: Artifact, data_cfg: DataConfig, *, output: str | Path | None = None,
              store: Store | None = None, command: str = "", batch_size: int = 64) -> Artifact:
    """A new artifact: `art` with a temperature fitted on the dev split of `data_cfg`, recorded
    with its parent (manifest `compression` step "temperature", `temperature`, `calibration`:
    T, dev NLL/ECE/Brier before and after) and in the store. A calibrated artifact is refitted
    from its uncalibrated logits (the new T replaces the old).
    Raises UserError: not a classifier; data without a labelled dev split."""
    check_calibratable(art)
    store = store or Store()
    run_id, art_id = new_id(), new_id()
    with store.run(run_id, "calibrate", command, {"data": data_cfg.model_dump(), "parent": art.id},
                   fingerprint(), parents=[art.id]) as run:
        logits, labels = dev_logits(art, data_cfg, batch_size)
        t = fit_temperature(logits, labels)
        record = _record(t, logits, labels, data_cfg)
        if art.manifest.temperature is not None:  # a refit: "before" is the raw model, not the parent
            record["replaces_temperature"] = art.manifest.temperature
        child = _write(art, art_id, run_id, record, Path(output) if output else store.root / "artifacts" / art_id)
        store.add_artifact(child.id, str(child.path), run_id, child.task, child.manifest.base_model, child.lineage)
        run.finish(record, child)
    return child


def _record(t: float, logits: np.ndarray, labels: np.ndarray, data_cfg: DataConfig) -> dict:
    before, after = calibration_metrics(logits, labels), calibration_metrics(logits / t, labels)
    keys = ("nll", "ece", "adaptive_ece", "brier")
    return {"temperature": t, "method": "temperature scaling (Guo et al. 2017): T minimizing dev NLL, "
            f"bounded Brent search on log T in [{T_BOUNDS[0]}, {T_BOUNDS[1]}]",
            "data": data_cfg.path, "split": "dev", "examples": int(len(labels)),
            "before": {k: before[k] for k in keys}, "after": {k: after[k] for k in keys},
            "at_bound": at_bound(t)}


def at_bound(t: float) -> str | None:
    """Why a fitted T on the edge of its search range is not a measurement of calibration (None
    when it lies inside): the NLL kept falling toward the bound."""
    lo, hi = T_BOUNDS
    if t >= hi * 0.999:
        return (f"T reached the upper search bound {hi:g}: the model is nearly uniform on dev, or dev is too "
                "small to fit T (more dev examples, or a better-trained model)")
    if t <= lo * 1.001:
        return (f"T reached the lower search bound {lo:g}: the model is under-confident on every dev example, or "
                "dev is too small to fit T")
    return None


def _write(parent: Artifact, art_id: str, run_id: str, record: dict, out: Path) -> Artifact:
    """The parent's files copied unchanged (weights, graph, ensemble members), and its manifest
    with the temperature and a lineage step added; written atomically."""
    # a refit replaces the old T, so its step leaves the lineage (`full>temperature`, once)
    kept = [c.model_dump(mode="json", exclude_unset=True)
            for c in parent.manifest.compression if c.method != METHOD]
    step = {"method": METHOD, "config": {"data": record["data"], "split": "dev"}, "report": record}
    return derive(parent, out, artifact_id=art_id, run_id=run_id, temperature=record["temperature"],
                  calibration=record, compression=[*kept, step], method=parent.manifest.method)
