"""The model inside the active-learning loop: trained on the labelled rows, it scores every text
(the pool and the evaluation texts) with class probabilities and embeddings.

Two learners, one interface (`fit(rows, labels, seed) -> Scored`; rows index the texts, labels
are class ids into the label names):

- `ProbeLearner` (method linear-probe): the encoder is frozen, so every text is embedded once and
  each round only refits the logistic head, in this process (the same functions as the
  linear-probe method: `embeddings`, `fit_head`; its probabilities are the method's artifact's);
  the embeddings are cached in the work directory for the next call.
- `FinetuneLearner` (any other registered method: setfit, full, lora, ...): each round is an
  ordinary fine-tune of the labelled rows in a fresh process (`supremum.studies.active_worker`),
  cached under the hash of its config and rows, which writes the scores to a safetensors file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, BeforeValidator

from supremum.errors import UserError
from supremum.hashing import content_hash
from supremum.tasks import CLASSIFICATION


@dataclass
class Scored:
    """probs: (texts, k) float64 class probabilities; emb: (texts, d) float64 the input of the
    classifier's last linear layer (the frozen sentence embedding for a probe); artifact: the
    round's model directory, when one was written."""

    probs: np.ndarray
    emb: np.ndarray
    artifact: str | None = None


@dataclass
class LearnerSpec:
    """What trains each round: the model alias or path, the method config (a dict with `name`),
    `train.*` overrides, the label names (class ids index them) and the max length in tokens."""

    model: str
    method: dict
    train: dict
    label_names: list[str]
    max_length: int = 128


def checked_method(method: dict | str) -> dict:
    """The method config as a dict with `name`, validated now against the method registry, so a
    bad name or option is refused before an annotator labels the first batch (pydantic's
    ValidationError or a UserError naming the methods)."""
    from supremum.train.methods import METHODS

    method = {"name": method} if isinstance(method, str) else dict(method)
    if method.get("name") not in METHODS:
        raise UserError(f"unknown method '{method.get('name')}'", f"use one of: {', '.join(METHODS)}")
    METHODS[method["name"]].config_cls(**method)
    return method


def checked_train(train: dict) -> dict:
    """`train.*` overrides, validated now by the fine-tune schema (TrainConfig)."""
    from supremum.config import TrainConfig

    TrainConfig(**train)
    return train


#: a learner's method config, checked against the registry when the config holding it is built
CheckedMethod = Annotated[dict, BeforeValidator(checked_method)]
#: `train.*` overrides of every round, checked by the fine-tune schema when the config is built
CheckedTrain = Annotated[dict, AfterValidator(checked_train)]


def make_learner(spec: LearnerSpec, texts: list[str], work: Path, keep_artifacts: bool = True):
    """The learner for `spec.method` over `texts` (rows are indices into it). keep_artifacts
    False: a fine-tuned round's model directory is removed once its scores are written (a
    simulation trains hundreds; the human loop keeps each round's model)."""
    if spec.method.get("name") == "linear-probe":
        return ProbeLearner(spec, texts, work)
    return FinetuneLearner(spec, texts, work, keep_artifacts)


class ProbeLearner:
    def __init__(self, spec: LearnerSpec, texts: list[str], cache: Path | None = None) -> None:
        """Embeds `texts` with the frozen encoder, or reads them from `cache` (a directory) where
        an earlier call with the same model, pooling, max length and texts left them."""
        from supremum.data.batching import tokenize
        from supremum.models import load_model
        from supremum.train.finetune import seed_everything
        from supremum.train.methods.linear_probe import LinearProbeConfig, embeddings, sentence_classifier

        self.spec, self.cfg = spec, LinearProbeConfig(**spec.method)
        seed_everything(int(spec.train.get("seed", 0)))
        model, tok = load_model(spec.model, CLASSIFICATION, label_names=spec.label_names)
        model = sentence_classifier(model, self.cfg)
        batch = int(spec.train.get("batch_size", 32))
        key = content_hash({"weights": _weights_digest(model), "pooling": model.sentence_pooling,
                            "max_length": spec.max_length, "texts": content_hash(texts)})
        self.x = _cached(Path(cache) / f"embeddings-{key}.safetensors" if cache else None, lambda: embeddings(
            model, tokenize(tok, texts, spec.max_length), tok.pad_token_id, batch))

    def fit(self, rows: list[int], labels: list[int], seed: int = 0) -> Scored:
        from supremum.train.methods.linear_probe import fit_head

        present = sorted(set(labels))
        check_classes(present, self.spec.label_names)
        # fit on the classes labelled so far (ids 0..m-1); a class with no row gets probability 0
        y = [present.index(v) for v in labels]
        clf = fit_head(self.x[rows], y, len(present), self.cfg.c, self.cfg.max_iter, seed, self.cfg.name)
        probs = np.zeros((len(self.x), len(self.spec.label_names)))
        probs[:, present] = clf.predict_proba(self.x)
        return Scored(probs, self.x)


def _weights_digest(model) -> str:
    """SHA-256 of every tensor's bytes: a model directory rewritten in place gets new embeddings."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        if name.startswith("classifier."):  # a fresh head, seeded per run: not part of the embeddings
            continue
        h.update(name.encode())
        h.update(t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _cached(path: Path | None, compute) -> np.ndarray:
    """compute() once per path: a human loop's calls embed the same pool with the same encoder."""
    from safetensors.numpy import load_file, save

    from supremum.fsutil import write_bytes

    if path is not None and path.exists():
        return load_file(str(path))["x"]
    x = compute()
    if path is not None:
        write_bytes(path, save({"x": x}))
    return x


def check_classes(present: list[int], label_names: list[str]) -> None:
    """UserError when the labelled rows hold fewer than two classes: no classifier can train."""
    if len(present) < 2:
        only = label_names[present[0]] if present else "none"
        raise UserError(f"the labelled rows hold one class only ({only})",
                        "label more rows (a larger seed batch), so that two classes occur")


class FinetuneLearner:
    def __init__(self, spec: LearnerSpec, texts: list[str], work: Path, keep_artifacts: bool = True) -> None:
        self.spec, self.texts, self.work, self.keep = spec, texts, Path(work), keep_artifacts
        self.work.mkdir(parents=True, exist_ok=True)
        self.texts_file = self.work / f"texts-{content_hash(texts)}.json"
        if not self.texts_file.exists():
            from supremum.fsutil import write_json

            write_json(self.texts_file, texts)

    def fit(self, rows: list[int], labels: list[int], seed: int = 0) -> Scored:
        from supremum.jobs.executor import runner

        check_classes(sorted(set(labels)), self.spec.label_names)
        from supremum.jobs.worker import WorkerFailed

        key = content_hash({"spec": self.spec.__dict__, "seed": seed, "rows": rows, "labels": labels,
                            "texts": self.texts_file.name})
        d = self.work / f"round-{key}"
        if not (d / "scores.safetensors").exists():
            self._write_data(d / "data", rows, labels)
            # one evaluation, after the last step: dev holds the labelled rows (see _write_data)
            train = {"eval_every": 10**9, **self.spec.train, "seed": seed, "keep_best": False}
            cfg = {"model": {"name": self.spec.model}, "method": self.spec.method,
                   "data": {"path": str(d / "data"), "max_length": self.spec.max_length},
                   "train": train, "output": str(d / "artifact")}
            try:
                runner("local")("supremum.studies.active_worker",
                                {"config": cfg, "texts": str(self.texts_file), "out": str(d)}, 1)
            except WorkerFailed as e:
                raise UserError(f"training on {len(rows)} labelled rows failed: {e}",
                                f"run the fine-tune of {d / 'data'} alone to see why") from None
            if not self.keep:
                from supremum.fsutil import discard_dir

                discard_dir(d / "artifact")
        scored = _read_scores(d, self.spec.label_names)
        return scored if self.keep else Scored(scored.probs, scored.emb)

    def _write_data(self, d: Path, rows: list[int], labels: list[int]) -> None:
        """train.csv: the labelled rows. dev.csv and test.csv are the same rows: finetune needs
        the splits, and no label may be spent on them (keep_best is off, so they select nothing;
        the round's recorded dev accuracy is its training accuracy)."""
        d.mkdir(parents=True, exist_ok=True)
        names = self.spec.label_names
        for split in ("train", "dev", "test"):
            with open(d / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["text", "label"])
                w.writerows([self.texts[r], names[y]] for r, y in zip(rows, labels, strict=True))


def _read_scores(d: Path, label_names: list[str]) -> Scored:
    """The round's scores with the probability columns in the order of `label_names` (the
    artifact's order is its training data's); a class with no labelled row gets probability 0."""
    import json

    from safetensors import safe_open

    with safe_open(str(d / "scores.safetensors"), framework="numpy") as f:
        trained = json.loads(f.metadata()["label_names"])
        probs, emb = f.get_tensor("probs"), f.get_tensor("emb")
    out = np.zeros((len(probs), len(label_names)))
    out[:, [label_names.index(n) for n in trained]] = probs
    return Scored(out, emb, str(d / "artifact"))
