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

    def prepare(self, cfg, dist, base=None):
        from supremum.train.finetune import prepare_classifier  # the fine-tune's helpers live there

        return prepare_classifier(cfg, dist, base)

    def scorer(self, model, ctx, split="dev", limit=None):
        from supremum.tasks.scoring import AccuracyScorer

        texts, labels = ctx.data.texts(split)[:limit], ctx.data.labels(split)[:limit]
        return AccuracyScorer(model, ctx.tokenizer, texts, labels, ctx.prep)

    def evaluate(self, art, data_cfg, cfg, prep, *, outputs=None, predictions=None) -> dict:
        from supremum.evaluate.stage import evaluate_classifier

        return evaluate_classifier(art, data_cfg, cfg, prep, outputs, predictions)

    def distill_loss(self, teacher, cfg, mapping, proj):
        from supremum.tasks.distillation import LogitDistillation

        return LogitDistillation(teacher, cfg, mapping, proj)


register(Classification, default=True)
