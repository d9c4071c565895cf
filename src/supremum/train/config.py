"""The fine-tune's configuration: model, data, method, training and what surrounds them (self-
training, domain pretraining, tracking). Here, in the training layer, because its `method` is the
union of every registered fine-tuning method's config (supremum.train.methods); the configs it is
made of live below, in supremum.config."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from supremum.config import (
    DataConfig,
    DomainPretrainConfig,
    ModelSpec,
    SelfTrainingConfig,
    Strict,
    TrainConfig,
    named,
    omit_later,
)
from supremum.tracking import TrackingConfig
from supremum.train.methods import AnyMethodConfig, FullConfigDefault


class FinetuneConfig(Strict):
    task: Literal["auto", "classification", "causal-lm"] = Field(
        "auto", description="auto: causal-lm for text corpora (.txt, JSONL text without labels) and "
        "instruction data (prompt/response or messages), else classification")
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataConfig
    method: Annotated[AnyMethodConfig, BeforeValidator(named)] = Field(
        default_factory=FullConfigDefault, description="fine-tuning method")
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: str | None = Field(None, description="artifact directory (default: under $SUPREMUM_HOME)")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig,
                                     description="mirror metrics to TensorBoard / MLflow / W&B")
    self_training: SelfTrainingConfig | None = Field(None, description="pseudo-label data.unlabeled "
                                                     "and retrain (classifiers)")
    domain_pretrain: DomainPretrainConfig | None = Field(None, description="continued pretraining of the "
                                                         "base model on data.unlabeled before fine-tuning "
                                                         "(classifiers)")

    #: keys added after runs were cached (see DataConfig.ADDED_LATER)
    ADDED_LATER: ClassVar[dict[str, Any]] = {"self_training": None, "domain_pretrain": None}
    OUTPUT_PATHS: ClassVar[tuple[str, ...]] = ("output",)

    @model_serializer(mode="wrap")
    def _omit_unset_later_keys(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict:
        return omit_later(self, handler, info)

    @model_validator(mode="after")
    def _unlabeled_pair(self) -> FinetuneConfig:
        uses = [k for k in ("self_training", "domain_pretrain") if getattr(self, k) is not None]
        if uses and self.data.unlabeled is None:
            raise ValueError(f"{' and '.join(uses)} read unlabelled texts: set data.unlabeled "
                             "(--unlabeled FILE)")
        if not uses and self.data.unlabeled is not None:
            raise ValueError("data.unlabeled is read only by self_training or domain_pretrain: set one "
                             "(--self-training-rounds N or --domain-pretrain-steps N) or drop it")
        if uses and self.task == "causal-lm":
            raise ValueError(f"{' and '.join(uses)} apply to classifiers (task classification), "
                             "not to task causal-lm")
        return self

    @model_validator(mode="after")
    def _resolve_lr(self) -> FinetuneConfig:
        if self.train.layer_decay is not None and self.method.name != "full":
            raise ValueError("train.layer_decay applies to full fine-tuning only (the other methods "
                             "train few or no pretrained weights)")
        _check_train_options(self.method, self.train)
        if self.train.lr is None:
            self.train.lr = type(self.method).default_lr
        return self


def _check_train_options(method, train: TrainConfig) -> None:
    """A method with its own fit (linear-probe, setfit) ignores most of the training loop's
    options: one set away from its default is an error, not silently unused. A method that cannot
    train with gradient checkpointing refuses it here rather than fail inside the first step."""
    why = type(method).no_gradient_checkpointing
    if train.gradient_checkpointing and why:
        raise ValueError(f"train.gradient_checkpointing does not work with method {method.name}: {why}; "
                         "drop --gradient-checkpointing or use method prompt, ptuning or lora")
    honoured = type(method).train_options
    if honoured is None:
        return
    if train.request not in ("auto", "fp32"):
        raise ValueError(f"train.precision {train.request} does not apply to method {method.name}, which "
                         "trains without the gradient loop")
    # A resolved config (a manifest's) holds train.lr = the method's default_lr.
    default = TrainConfig(lr=type(method).default_lr if train.lr is not None else None)
    for key in TrainConfig.model_fields:
        if key in ("bf16", "precision"):  # checked above: fp32 (older dumps' bf16 false) is no change
            continue
        if key not in honoured and getattr(train, key) != getattr(default, key):
            raise ValueError(f"train.{key} does not apply to method {method.name}, which trains "
                             f"without the gradient loop (it honours: {', '.join(sorted(honoured))})")
