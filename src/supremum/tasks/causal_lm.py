"""Causal language modelling: next-token prediction on text corpora and instruction data."""

from __future__ import annotations

from supremum.tasks.base import Task, register


class CausalLM(Task):
    name = "causal-lm"
    pipeline_tag = "text-generation"
    auto_model = "AutoModelForCausalLM"
    metric, higher_is_better, cost = "perplexity", False, "decode_ms"
    unit = "blocks"

    def claims(self, data_cfg) -> bool:
        from supremum.lm.data import is_lm_data

        return is_lm_data(data_cfg)

    def load_data(self, data_cfg, *, label_names=None, whole=False):
        from supremum.lm.data import load_lm_data

        return load_lm_data(data_cfg, whole=whole)

    def has_split(self, data, split: str) -> bool:
        return bool(data.records[split])

    def encode(self, tok, data, split: str, prep):
        from supremum.lm.data import training_split

        return training_split(tok, data, split, prep.max_length)

    def prepare(self, cfg, dist, base=None):
        from supremum.train.finetune import prepare_lm  # the fine-tune's helpers live there

        return prepare_lm(cfg, dist)

    def objective(self, *, bf16: bool = False) -> dict:
        from supremum.lm.metrics import dev_scorer, lm_loss

        return {"loss_fn": lm_loss, "scorer": dev_scorer(bf16=bf16)}

    def scorer(self, model, ctx, split="dev", limit=None):
        from supremum.tasks.scoring import LossScorer

        enc = ctx.encoded(split)
        enc.ids, enc.labels = enc.ids[:limit], enc.labels[:limit]
        return LossScorer(model, enc)

    def evaluate(self, art, data_cfg, cfg, prep, *, outputs=None, predictions=None) -> dict:
        from supremum.evaluate.stage import evaluate_causal_lm

        return evaluate_causal_lm(art, data_cfg, cfg, prep, outputs, predictions)

    def distill_loss(self, teacher, cfg, mapping, proj):
        from supremum.tasks.distillation import TokenDistillation

        return TokenDistillation(teacher, cfg)

    def dev_result(self, best_score: float | None) -> dict:
        return {"dev_accuracy": None} if best_score is None else {"dev_loss": -best_score}


register(CausalLM)
