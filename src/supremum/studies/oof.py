"""Out-of-fold probabilities and the label-noise stage of `supremum ceiling`.

Confident learning needs, for every example, class probabilities from a model that did not train
on it (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, sec. 4; cleanlab). On train they come from k-fold cross-validation: each fold's
model is an ordinary fine-tune of the base configuration with that fold held out (the data seam
`data.cv_folds` / `data.cv_fold`), scored on the held-out rows and then discarded. On dev and
test they come from the best model, which never trained on them.

Classifiers only: a causal language model has no labels to be wrong.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supremum.artifact import Artifact, open_artifact
from supremum.config import DataConfig
from supremum.errors import UserError
from supremum.fsutil import discard_dir
from supremum.store import Store
from supremum.tasks import CAUSAL_LM, get_task, resolve_task
from supremum.train.config import FinetuneConfig

NOT_FOR_LM = ("label noise does not apply to a causal language model (it has no labels)",
              "run the label-noise stage on a classifier")


@dataclass
class OOF:
    """Out-of-fold class probabilities of the training split.

    probs: (n_train, k) float64, each row from the fold model that did not train on it, rows in
    the order of `load_data(base.data).splits["train"]`; labels: (n_train,) given class ids;
    texts: the n_train texts; label_names: the k class names; seconds: wall-clock seconds per
    fold (fine-tune plus scoring)."""

    probs: np.ndarray
    labels: np.ndarray
    texts: list[str]
    label_names: list[str]
    seconds: list[float]


def out_of_fold_probs(base: FinetuneConfig, folds: int, store: Store, *,
                      on_event: Callable[[str], None] | None = None) -> OOF:
    """Fine-tune `base` once per fold with that fold held out (stratified, seeded by
    base.data.split_seed; after train_limit) and score the held-out rows with softmax
    probabilities. Each fold's artifact is written under a temporary directory of the store and
    removed after scoring (renamed first, so no half-deleted directory keeps its name); its run
    stays in the store. Raises UserError for a causal LM, folds < 2, or too few examples."""
    from supremum.data import CV_HELDOUT, TRAIN_ROW, load_data
    from supremum.train.finetune import finetune

    if resolve_task(base) is CAUSAL_LM:
        raise UserError(*NOT_FOR_LM)
    if folds < 2:
        raise UserError(f"out-of-fold probabilities need at least 2 folds; got {folds}", "use --folds 2 or more")
    data = load_data(base.data)
    train = data.splits["train"]
    probs = np.full((len(train), len(data.label_names)), np.nan)
    seconds: list[float] = []
    work = Path(tempfile.mkdtemp(prefix=".oof-", dir=_mkdir(store.root)))
    try:
        for fold in range(folds):
            t0 = time.perf_counter()
            cfg = _fold_config(base, folds, fold, work / f"fold{fold}")
            res = finetune(cfg, store=store, progress=False, command=f"ceiling: out-of-fold {fold + 1}/{folds}")
            p, held = _score(res.artifact, cfg.data, CV_HELDOUT)
            rows = held[TRAIN_ROW].to_numpy()
            if held["text"].tolist() != train["text"].iloc[rows].tolist():
                raise RuntimeError(f"fold {fold}: held-out rows do not line up with the training split")
            probs[rows] = p
            discard_dir(Path(cfg.output))
            seconds.append(round(time.perf_counter() - t0, 3))
            if on_event:
                on_event(f"label noise: fold {fold + 1}/{folds} trained and scored ({len(rows)} held out) "
                         f"in {seconds[-1]:.1f} s")
    finally:
        discard_dir(work)
    if np.isnan(probs).any():  # the folds partition the rows; a gap would be a wrong number
        raise RuntimeError("some training rows were in no held-out fold")
    return OOF(probs, train["label"].to_numpy(), train["text"].tolist(), data.label_names, seconds)


def split_probs(artifact: Artifact | str | Path, data_cfg: DataConfig,
                split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(probs (n, k) softmax of the artifact's logits, labels (n,) given class ids, texts) on
    `split` ("dev", "test") of `data_cfg`, preprocessed as the artifact was trained. Raises
    UserError for a causal-LM artifact, a missing split, or a changed training file."""
    from supremum.preprocessing import eval_split

    art = artifact if isinstance(artifact, Artifact) else open_artifact(artifact)
    if get_task(art.task) is CAUSAL_LM:
        raise UserError(*NOT_FOR_LM)
    p, frame = _score(art, data_cfg, eval_split(art, data_cfg, split))
    return p, frame["label"].to_numpy(), frame["text"].tolist()


def label_noise_stage(base: FinetuneConfig, best_artifact: Artifact | str | Path, folds: int,
                      out_dir: str | Path, store: Store, *, splits: Sequence[str] = ("dev", "test"),
                      predictions: Sequence[int] | None = None, resamples: int = 200,
                      on_event: Callable[[str], None] | None = None) -> dict:
    """The label-error rate of train (out-of-fold, `folds` fine-tunes of `base`) and of each of
    `splits` (the best artifact's probabilities), by confident learning with a 95% bootstrap
    interval; the suspects of each split in `out_dir/suspects-<split>.csv`; and for test the most
    accuracy it can register (1 - rate, with its interval) and, as a separate labelled number,
    the accuracy without the suspects of `predictions` (test class ids; default: the best
    artifact's argmax). Rates and accuracies are fractions in [0, 1].

    Returns JSON-able values: {"method", "folds", "fold_seconds", "splits": {split: {"rate",
    "ci", "level", "examples", "suspects", "suspects_path", "probabilities"}}, and when test is
    scored "rate", "ci", "suspects_path" (test's), "max_accuracy", "max_accuracy_ci",
    "accuracy", "accuracy_without_suspects", "rows_kept"}. Raises UserError for a causal LM."""
    from supremum.limit.label_noise import METHOD, accuracy_without_suspects, estimate_label_noise, write_suspects

    art = best_artifact if isinstance(best_artifact, Artifact) else open_artifact(best_artifact)
    if get_task(art.task) is CAUSAL_LM:
        raise UserError(*NOT_FOR_LM)
    # the best model's splits first: a missing split or bad predictions fail before k fine-tunes
    scored = {split: (*split_probs(art, base.data, split), f"artifact {art.id}") for split in splits}
    if "test" in scored and predictions is not None and len(predictions) != len(scored["test"][1]):
        raise UserError(f"{len(predictions)} test predictions for {len(scored['test'][1])} test rows",
                        "pass one predicted class id per test row")
    oof = out_of_fold_probs(base, folds, store, on_event=on_event)
    if oof.label_names != art.label_names:  # the class ids of the two sources would mean different classes
        raise UserError(f"artifact {art.id} has labels {art.label_names}, the base config's data "
                        f"{oof.label_names}", "pass the best artifact trained on the base config's data")
    scored = {"train": (oof.probs, oof.labels, oof.texts, f"out-of-fold, {folds} folds of the base config"),
              **scored}
    out_dir = _mkdir(Path(out_dir))
    out: dict = {"method": METHOD, "folds": folds, "fold_seconds": oof.seconds, "splits": {}}
    for split, (probs, labels, texts, source) in scored.items():
        r = estimate_label_noise(labels, probs, resamples=resamples)
        path = write_suspects(out_dir / f"suspects-{split}.csv", r, texts, labels, oof.label_names)
        out["splits"][split] = {"rate": r["rate"], "ci": r["ci"], "level": r["level"], "examples": r["examples"],
                                "suspects": len(r["suspects"]), "suspects_path": str(path),
                                "probabilities": source}
        if on_event:
            on_event(f"label noise: {split} {r['rate']:.1%} [{r['ci'][0]:.1%}, {r['ci'][1]:.1%}], "
                     f"{len(r['suspects'])} suspects")
        if split == "test":
            pred = probs.argmax(axis=1) if predictions is None else np.asarray(predictions)
            out.update(rate=r["rate"], ci=r["ci"], suspects_path=str(path), max_accuracy=r["max_accuracy"],
                       max_accuracy_ci=r["max_accuracy_ci"],
                       **accuracy_without_suspects(pred, labels, r["suspects"]))
    return out


def _fold_config(base: FinetuneConfig, folds: int, fold: int, output: Path) -> FinetuneConfig:
    d = base.model_dump()
    d["data"].update(cv_folds=folds, cv_fold=fold)
    return FinetuneConfig.model_validate({**d, "output": str(output)})


def _score(art: Artifact, data_cfg: DataConfig, split: str):
    """Softmax probabilities (n, k) of `art` on `split`, and the split's frame."""
    from supremum import backends
    from supremum.data import load_data
    from supremum.evaluate.quality import softmax
    from supremum.infer import predict_logits
    from supremum.preprocessing import preprocessing_for

    prep = preprocessing_for(art)
    frame = load_data(data_cfg, label_names=prep.label_names).split(split)
    model, tok = backends.load(art)
    logits = predict_logits(model, prep.tokenize(tok, frame["text"].tolist()), tok.pad_token_id)
    return softmax(logits.astype(np.float64)), frame


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
