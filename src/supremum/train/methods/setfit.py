"""SetFit (Tunstall et al., 2022) through the `setfit` library: the encoder, wrapped as a
sentence-transformer, is fine-tuned contrastively on pairs of training texts (same label:
cosine similarity 1, different: 0), then a logistic-regression head is fit on its embeddings.

setfit 1.2.0 works as shipped with transformers 5 and sentence-transformers 6 (checked: its
Trainer and SetFitModel train and predict). Its own save format pickles the head with joblib;
supremum never writes that: the trained body's weights go back into the classifier and the
head is written as its linear layer (linear_probe.write_head), so the artifact is safetensors
plus JSON like every other and its softmax equals SetFit's `predict_proba`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.train.methods import FitContext, register
from supremum.train.methods.linear_probe import (
    FIT_OPTIONS,
    SentenceHeadOptions,
    check_labels,
    fitted,
    sentence_classifier,
    write_head,
)

if TYPE_CHECKING:
    from torch import nn


class SetFitConfig(SentenceHeadOptions):
    name: Literal["setfit"] = "setfit"
    words: ClassVar[str | None] = "SetFit"
    # setfit's default body learning rate; the body's is method.body_lr, not train.lr.
    default_lr: ClassVar[float] = 2e-5
    # train.dropout is the body's dropout during contrastive training (it is set on the model)
    train_options: ClassVar[frozenset[str]] = FIT_OPTIONS | {"dropout"}
    num_iterations: int = Field(20, ge=1, description="pair-sampling rounds: each makes one positive "
                                "and one negative pair per training text (setfit's num_iterations)")
    body_epochs: int = Field(1, ge=1, description="passes of contrastive training over the pairs")
    body_lr: float = Field(2e-5, gt=0, description="learning rate of the contrastive body training "
                           "(AdamW, linear decay after 10% warm-up); train.batch_size pairs per step")
    head_c: float = Field(1.0, gt=0, description="inverse L2 regularization strength of the "
                          "logistic-regression head (scikit-learn's C)")


def _sentence_transformer(model: nn.Module, tok, max_length: int, work: str):
    """The classifier's encoder as a SentenceTransformer (Transformer + Pooling [+ Normalize])
    loaded from a copy in `work`; its weights are copied back after training."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    model.base_model.save_pretrained(work)
    tok.save_pretrained(work)
    body = Transformer(work, max_seq_length=max_length)
    spec = model.sentence_pooling
    modules = [body, Pooling(model.config.hidden_size, pooling_mode=spec["pooling"])]
    if spec["normalize"]:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device="cpu")


@register(SetFitConfig)
class SetFit:
    @staticmethod
    def apply(model: nn.Module, cfg: SetFitConfig, total_steps: int) -> nn.Module:
        model = sentence_classifier(model, cfg)
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    @staticmethod
    def fit(model: nn.Module, cfg: SetFitConfig, ctx: FitContext):
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments
        from transformers.trainer_callback import PrinterCallback

        texts, labels = ctx.data.texts("train"), ctx.data.labels("train")
        check_labels(labels, model.config.num_labels, cfg.name)  # before the body trains, not after
        work = tempfile.mkdtemp(prefix="supremum-setfit-")
        try:
            with _quiet():
                t0 = time.perf_counter()
                st = _sentence_transformer(model, ctx.tokenizer, ctx.max_length, f"{work}/body")
                sf = SetFitModel(model_body=st, model_head=_head(cfg, ctx.train_cfg.seed))
                args = TrainingArguments(
                    output_dir=f"{work}/out", batch_size=ctx.train_cfg.batch_size, num_epochs=cfg.body_epochs,
                    num_iterations=cfg.num_iterations, body_learning_rate=cfg.body_lr,
                    max_length=ctx.max_length, seed=ctx.train_cfg.seed, report_to="none",
                    save_strategy="no", show_progress_bar=ctx.progress)
                trainer = Trainer(model=sf, args=args,
                                  train_dataset=Dataset.from_dict({"text": texts, "label": labels}))
                trainer.st_trainer.remove_callback(PrinterCallback)  # log dicts printed without a bar
                trainer.train()
                seconds = time.perf_counter() - t0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        model.base_model.load_state_dict(st[0].auto_model.state_dict())
        write_head(model, sf.model_head)
        state = trainer.st_trainer.state
        # the mean contrastive (cosine-similarity MSE) loss over the body's training
        loss = next((r["train_loss"] for r in state.log_history if "train_loss" in r), 0.0)
        pairs = 2 * cfg.num_iterations * len(texts) * cfg.body_epochs
        return fitted(model, ctx, seconds, state.global_step, float(loss), pairs)

    @staticmethod
    def finalize(model: nn.Module, cfg: SetFitConfig) -> tuple[nn.Module, str]:
        return model, "full"


@contextlib.contextmanager
def _quiet():
    """setfit, transformers and torch report through loggers, progress bars and warnings what
    supremum reports itself (steps, loss, time) or what does not apply (pinned memory on CPU)."""
    import datasets
    import setfit
    import transformers

    loggers = (transformers.logging, setfit.logging)
    levels = [lg.get_verbosity() for lg in loggers]
    bars = transformers.utils.logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    for lg in loggers:
        lg.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.set_verbosity(level)
        if bars[0]:
            transformers.utils.logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()


def _head(cfg: SetFitConfig, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=cfg.head_c, max_iter=cfg.max_iter, random_state=seed)
