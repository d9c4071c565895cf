"""Single-label text classification: a sequence-classification head over labelled rows."""

from __future__ import annotations

from typing import Any

from supremum.tasks.base import Task, register


class Classification(Task):
    name = "classification"
    pipeline_tag = "text-classification"
    auto_model = "AutoModelForSequenceClassification"
    metric, higher_is_better, cost = "accuracy", True, "latency_b1"

    def model_overrides(self, label_names: list[str] | None) -> dict[str, Any]:
        if label_names is None:
            return {}
        return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                "label2id": {n: i for i, n in enumerate(label_names)},
                "problem_type": "single_label_classification"}

    def load_data(self, data_cfg, *, label_names=None, whole=False):
        from supremum.data import load_data

        return load_data(data_cfg, label_names=label_names, whole=whole)

    def has_split(self, data, split: str) -> bool:
        return split in data.splits

    def encode(self, tok, data, split: str, prep):
        from supremum.data.batching import Split

        return Split(prep.tokenize(tok, data.texts(split)), data.labels(split))

    def refuse(self, train_cfg) -> None:
        if train_cfg.replay:
            from supremum.errors import UserError

            raise UserError("train.replay mixes general text into language-model training, and this is a "
                            "classifier", "leave out --replay / train.replay")

    def training_splits(self, tok, data, cfg):
        """Tokenized train and dev; augmentation edits the training texts only."""
        from supremum.data.batching import Split, tokenize

        texts, labels = data.texts("train"), data.labels("train")
        if cfg.train.augment:
            from supremum.augment import augment

            mask = tok.mask_token or tok.unk_token or "_"
            texts, labels = augment(texts, labels, cfg.train.augment, mask)
            data.info["augmented"] = {"added": len(texts) - len(data.texts("train")), "mask_token": mask}
        dev = Split(tokenize(tok, data.texts("dev"), cfg.data.max_length), data.labels("dev"))
        train = Split(tokenize(tok, texts, cfg.data.max_length), labels)
        full = {name: sum(len(ids) >= cfg.data.max_length for ids in s.ids) for name, s in (("train", train),
                                                                                           ("dev", dev))}
        if any(full.values()):  # said: text past max_length is cut without a word otherwise
            data.info["filled_max_length"] = {"max_length": cfg.data.max_length, **full}
        return train, dev

    def scorer(self, model, ctx, split="dev", limit=None):
        from supremum.tasks.scoring import AccuracyScorer

        texts, labels = ctx.data.texts(split)[:limit], ctx.data.labels(split)[:limit]
        return AccuracyScorer(model, ctx.tokenizer, texts, labels, ctx.prep)

    def distill_loss(self, teacher, cfg, mapping, proj):
        from supremum.tasks.distillation import LogitDistillation

        return LogitDistillation(teacher, cfg, mapping, proj)


register(Classification, default=True)
