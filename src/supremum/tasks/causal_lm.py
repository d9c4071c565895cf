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

    def refuse(self, train_cfg) -> None:
        if train_cfg.augment or train_cfg.label_smoothing:
            from supremum.errors import UserError

            raise UserError("train.augment and train.label_smoothing apply to classification only",
                            "remove them for a language-model fine-tune")

    def training_splits(self, tok, data, cfg):
        """Packed text blocks or masked conversations (train limited by data.train_limit, replay
        mixed in when asked); the prompt template of instruction data is recorded for serving."""
        from supremum.lm.data import limit_blocks, prompt_template, training_split

        if data.kind == "instruction":  # serve renders a plain prompt the same way
            data.info["prompt"] = {"records": data.info["format"], "template": prompt_template(tok)}
        train_split = limit_blocks(training_split(tok, data, "train", cfg.data.max_length), cfg.data, data.info)
        if cfg.train.replay:
            from supremum.lm.replay import mix_replay

            train_split, data.info["replay"] = mix_replay(train_split, tok, cfg.train, cfg.data.max_length)
        dev = training_split(tok, data, "dev", cfg.data.max_length) if data.records["dev"] else None
        data.info["blocks"] = {"train": len(train_split.ids), "dev": len(dev.ids) if dev else 0,
                               "tokens_per_block": cfg.data.max_length if data.kind == "text" else None}
        return train_split, dev

    def objective(self, *, bf16: bool = False) -> dict:
        from supremum.lm.metrics import dev_scorer, lm_loss

        return {"loss_fn": lm_loss, "scorer": dev_scorer(bf16=bf16)}

    def scorer(self, model, ctx, split="dev", limit=None):
        from supremum.tasks.scoring import LossScorer

        enc = ctx.encoded(split)
        enc.ids, enc.labels = enc.ids[:limit], enc.labels[:limit]
        return LossScorer(model, enc)

    def distill_loss(self, teacher, cfg, mapping, proj):
        from supremum.tasks.distillation import TokenDistillation

        return TokenDistillation(teacher, cfg)

    def dev_result(self, best_score: float | None) -> dict:
        return {"dev_accuracy": None} if best_score is None else {"dev_loss": -best_score}


register(CausalLM)
