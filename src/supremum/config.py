"""Typed configuration. Field descriptions are the documentation: `--help` and the README use them."""

from __future__ import annotations

import importlib
import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from supremum.augment import AugmentConfig


def csv_ints(v: Any) -> Any:
    """A flag's "0,1,2" (or one int) as a list of ints, for a BeforeValidator; other values pass
    through to the field's own validation. ValueError naming the text otherwise."""
    if isinstance(v, str):
        try:
            return [int(x) for x in v.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"'{v}' is not a comma-separated list of integers") from None
    return [v] if isinstance(v, int) else v


def distinct(v: list[int]) -> list[int]:
    """Seeds given once each, for an AfterValidator: a repeated seed trains the same cell twice
    and would count as one more seed in every spread and interval. ValueError otherwise."""
    if twice := sorted({s for s in v if v.count(s) > 1}):
        raise ValueError(f"seed {', '.join(map(str, twice))} is given more than once: give each seed once")
    return v


#: the seeds of a study (one run per seed): each once
Seeds = Annotated[list[int], AfterValidator(distinct)]

#: separators a flag or key may give by name; a shell passes a tab typed as \t as those two characters
SEPARATOR_NAMES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def separator(v: Any) -> Any:
    """A CSV/TSV field separator as its one character, for a BeforeValidator: the names in
    SEPARATOR_NAMES (any case) stand for theirs. ValueError naming what is accepted when it is
    not one character, or is a quote or a line break (which the csv reader cannot split on)."""
    if not isinstance(v, str):
        return v
    v = SEPARATOR_NAMES.get(v.lower(), v)
    if len(v) != 1 or v in "\"\r\n":
        raise ValueError("a field separator is one character (not a quote or a line break) or one of "
                         f"the names {', '.join(SEPARATOR_NAMES)}")
    return v


#: the field separator of CSV/TSV files: every config's delimiter key has this type
Delimiter = Annotated[str, BeforeValidator(separator)]


def local_path(v: str | None) -> str | None:
    """A relative path to a file or directory that exists here, made absolute (symlinks kept); any
    other value as it is (absolute already, a hub dataset name, or a missing file, reported where it
    is read)."""
    if v is None or os.path.isabs(v) or not os.path.exists(v):
        return v
    return os.path.abspath(v)


#: a path field of a config that is never hashed (e.g. a labelling loop's pool): kept absolute
LocalPath = Annotated[str, AfterValidator(local_path)]

#: the serialization context key of `identity`: every LOCAL_PATHS value as the user typed it
AS_TYPED = "paths_as_typed"


class Strict(BaseModel):
    """A config: unknown keys refused, assignments validated. Fields named in LOCAL_PATHS hold a
    file or directory path; one given relative and found here is kept absolute (`local_path`), as
    is an OUTPUT_PATHS one given relative (a directory to be written, so not found yet), so
    a record of the config (a manifest, the run store, a loop's state) finds the file from any
    working directory. The form typed is kept beside it for hashes (`identity`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    LOCAL_PATHS: ClassVar[tuple[str, ...]] = ()
    #: fields naming a path to be written (an output directory): kept absolute even before it exists
    OUTPUT_PATHS: ClassVar[tuple[str, ...]] = ()
    _typed: dict[str, tuple[str, str]] = PrivateAttr(default_factory=dict)  # field: (as typed, absolute)

    @model_validator(mode="after")
    def _absolute_paths(self) -> Any:
        for name in (*self.LOCAL_PATHS, *self.OUTPUT_PATHS):
            given = getattr(self, name)
            found = local_path(given) if name in self.LOCAL_PATHS or given is None else os.path.abspath(given)
            if found != given:
                self._typed[name] = (given, found)
                self.__dict__[name] = found  # not setattr: validate_assignment would run this again
            elif name in self._typed and given != self._typed[name][1]:
                del self._typed[name]  # assigned another path since (a re-validation keeps the typed one)
        return self


def identity(model: BaseModel, **kwargs) -> dict:
    """`model.model_dump(mode="json")` for a content hash: each LOCAL_PATHS value of the model and
    the configs inside it as the user typed it (a relative path stays relative), so runs cached
    before paths were recorded absolute keep their hashes."""
    return model.model_dump(mode="json", context={AS_TYPED: True}, **kwargs)


def omit_later(model: BaseModel, handler: SerializerFunctionWrapHandler,
               info: SerializationInfo | None = None) -> dict:
    """A dump without each key of the model's ADDED_LATER that holds the value given there: the
    hashes of configs leaving those keys unset stay the ones they had before the keys existed.
    Under `identity` (context AS_TYPED), local paths as typed."""
    later = type(model).ADDED_LATER
    d = {k: v for k, v in handler(model).items() if not (k in later and v == later[k])}
    if info is not None and (info.context or {}).get(AS_TYPED):
        for name, (typed, found) in getattr(model, "_typed", {}).items():
            if d.get(name) == found:  # still the path it was typed as (a copy may have changed it)
                d[name] = typed
    return d


def named(value: Any) -> Any:
    """The recipe shorthand `lora` for `{name: lora}` (a model or a method given by name alone)."""
    return {"name": value} if isinstance(value, str) else value


#: a method config as a plain mapping (compare variants, curves), the shorthand accepted
MethodDict = Annotated[dict, BeforeValidator(named)]


class ModelSpec(Strict):
    name: str = Field(
        "minilm-l6",
        description="alias (minilm-l6, smollm2-135m, tiny-bert, tiny-llama), local directory, .gguf file "
                    "or hub id",
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside a hub repo or directory")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return named(value)


class DataConfig(Strict):
    path: str = Field(..., description="CSV/TSV/JSONL file, a directory of train/dev/test files, "
                      "a datasets save_to_disk directory, or a hub dataset name")
    text_column: str | None = Field(None, description="column holding the text (auto-detected)")
    label_column: str | None = Field(None, description="column holding the label (auto-detected)")
    encoding: str = Field("utf-8", description="text encoding of the data files")
    delimiter: Delimiter | None = Field(None, description="field separator of CSV/TSV files, one character "
                                        "or tab, \\t, comma, semicolon, pipe (default: a .csv's is detected "
                                        "from its header line among , ; tab |; a .tsv's is a tab)")
    dev_fraction: float = Field(0.1, gt=0, lt=0.5, description="dev share when the source has no dev split")
    test_fraction: float = Field(0.1, gt=0, lt=0.5, description="test share when the source has no test split")
    split_seed: int = Field(0, description="seed of the stratified split made when splits are missing")
    max_length: int = Field(128, ge=8, description="truncate texts to this many tokens")
    dedup: bool = Field(False, description="drop duplicate rows within each split and train rows "
                        "that also occur in dev/test (after case/whitespace normalization)")
    drop_empty: bool = Field(False, description="drop rows whose text or label is empty, missing or "
                             "whitespace and "
                             "report how many and on which lines (default: refuse such a file)")
    train_limit: int | None = Field(None, ge=2, description="train on only this many training examples: "
                                    "the first N of a seeded shuffle, so smaller subsets nest in larger ones "
                                    "(learning curves)")
    train_limit_seed: int = Field(0, description="seed of the shuffle behind train_limit")
    train_limit_stratify: bool = Field(False, description="train_limit keeps each class's share of the "
                                       "training set (one example of every class first, then in "
                                       "proportion), still nested across sizes")
    cv_folds: int | None = Field(None, ge=2, description="k-fold cross-validation (with cv_fold): the "
                                 "training rows (after train_limit) are cut into this many stratified, "
                                 "seeded (split_seed) folds")
    cv_fold: int | None = Field(None, ge=0, description="train on every fold but this one (0..cv_folds-1); "
                                "its rows become the split 'cv_heldout', with their train row in "
                                "column 'train_row'")
    unlabeled: str | None = Field(None, description="unlabelled texts for self_training and domain_pretrain: "
                                  ".txt (one text per line, blank lines skipped) or CSV/TSV/JSONL (the "
                                  "text column as for the data; same encoding and delimiter)")

    #: keys added after runs were cached under hashes of these configs: a dump leaves each out while
    #: it holds the value given here, so every hash of a config that leaves them unset (fine-tune
    #: checkpoints, compare and curve cells, pipeline stages) is the one it had before they existed.
    ADDED_LATER: ClassVar[dict[str, Any]] = {"cv_folds": None, "cv_fold": None, "unlabeled": None,
                                             "train_limit_stratify": False}
    LOCAL_PATHS: ClassVar[tuple[str, ...]] = ("path", "unlabeled")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """The recipe shorthand `data: reviews.csv` for `{path: reviews.csv}`."""
        return {"path": value} if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _omit_unset_later_keys(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict:
        return omit_later(self, handler, info)

    @model_validator(mode="after")
    def _cv_pair(self) -> DataConfig:
        if (self.cv_folds is None) != (self.cv_fold is None):
            raise ValueError("data.cv_folds and data.cv_fold go together: set both (train without fold "
                             "cv_fold of cv_folds) or neither")
        if self.cv_folds is not None and self.cv_fold >= self.cv_folds:
            raise ValueError(f"data.cv_fold={self.cv_fold} is not a fold of cv_folds={self.cv_folds} "
                             f"(folds are 0..{self.cv_folds - 1})")
        return self

    @field_validator("path")
    @classmethod
    def _expand(cls, v: str) -> str:
        return os.path.expanduser(os.path.expandvars(v))


# FGM/PGD perturbations of the input embeddings: supremum.train.adversarial trains with them
class AdversarialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["fgm", "pgd"] = Field("fgm", description="one step (fgm) or projected steps (pgd)")
    epsilon: float = Field(0.02, gt=0, description="L2 radius of the perturbation as a fraction of the "
                           "example's embedding norm")
    steps: int = Field(3, ge=1, description="PGD ascent steps")
    alpha: float = Field(0.01, gt=0, description="PGD step size, same unit as epsilon")
    weight: float = Field(1.0, gt=0, description="weight of the adversarial loss")


class TrainConfig(Strict):
    epochs: float = Field(3.0, gt=0, description="passes over the training set")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(32, ge=1, description="examples per optimizer step (before accumulation)")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: per method, "
                             "full 1e-4, lora 1e-3)")
    optimizer: Literal["adamw", "adam", "sgd", "rmsprop", "adafactor"] = Field(
        "adamw", description="adamw; adam (weight decay as an L2 term in the gradient); sgd with "
        "momentum; rmsprop; adafactor (factored second moments: less optimizer memory)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD and RMSprop momentum")
    weight_decay: float = Field(0.01, ge=0, description="weight decay (not on biases/norms): decoupled "
                                "for adamw/adafactor, L2 for adam/sgd/rmsprop")
    layer_decay: float | None = Field(None, gt=0, le=1, description="layer-wise learning-rate decay for "
                                      "full fine-tuning: layer i of L gets lr * decay^(L+1-i), "
                                      "embeddings the lowest, the head the full lr")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="decay after warm-up")
    warmup_steps: int | None = Field(None, ge=0, description="linear warm-up steps (overrides ratio)")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="warm-up as a share of all steps")
    dropout: float | None = Field(None, ge=0, lt=1, description="override every dropout rate of the model")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the loss")
    augment: AugmentConfig | None = Field(None, description="edited copies of the training texts "
                                          "(word delete/swap/mask), training set only")
    adversarial: AdversarialConfig | None = Field(None, description="FGM/PGD perturbations of the "
                                                  "input embeddings during training")
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm (null: off)")
    eval_every: int | None = Field(None, ge=1, description="evaluate on dev every N steps "
                                   "(default: once per epoch)")
    early_stopping: int | None = Field(None, ge=1, description="stop after N evaluations without "
                                       "improvement of dev accuracy")
    keep_best: bool = Field(True, description="save the weights of the best dev evaluation")
    seed: int = Field(42, description="seed of initialization, shuffling and dropout")
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = Field(
        None, description="arithmetic of training and dev scoring: auto (bf16 autocast where the CPU "
        "has avx512_bf16/AMX or the GPU native bf16, after a dev probe agrees with fp32; else fp32), "
        "fp32, bf16 autocast, or fp16 autocast with loss scaling (CUDA only) (default: auto, or what "
        "train.bf16 says)")
    bf16: bool | None = Field(None, description="older spelling: true = precision bf16, false = "
                              "precision fp32 (default: unset, train.precision decides)")
    compile: bool = Field(False, description="torch.compile the model for training (inductor, "
                          "dynamic shapes); not with checkpoint_every")
    group_by_length: bool = Field(True, description="batch texts of similar length together")
    checkpoint_every: int | None = Field(None, ge=1, description="write a resumable checkpoint "
                                         "every N steps")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's choice)")
    device: str = Field("auto", description="where training runs: auto (CUDA when visible, else MPS, else "
                        "the CPU), cpu, cuda, cuda:N or mps")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass "
                                         "instead of storing them: less memory, about a third more compute")
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="with --nproc: ddp keeps a full model per process; fsdp shards weights, "
        "gradients and optimizer state over the processes (FSDP2, one unit per layer)")
    replay: float = Field(0.0, ge=0, lt=1, description="causal LMs: share of training rows that are "
                          "blocks of general text from replay_data, mixed into the training set against "
                          "forgetting (0.2: one row in five)")
    replay_data: str | None = Field(None, description="causal LMs: general text replayed with train.replay "
                                    "(.txt, or a directory whose train/dev/test or single text file is read)")

    #: keys added after runs were cached (see DataConfig.ADDED_LATER)
    #: bf16 was a bool defaulting to False, so every dump before train.precision holds it: unset
    #: (None) is the new default, auto; a dump's true/false keeps its hash and its meaning.
    LOCAL_PATHS: ClassVar[tuple[str, ...]] = ("replay_data",)
    ADDED_LATER: ClassVar[dict[str, Any]] = {"replay": 0.0, "replay_data": None, "device": "auto",
                                             "gradient_checkpointing": False, "precision": None,
                                             "bf16": None, "compile": False}

    @property
    def request(self) -> str:
        """The precision asked for: train.precision when set, else bf16 true -> bf16, false ->
        fp32, unset -> auto."""
        if self.precision is not None:
            return self.precision
        return {True: "bf16", False: "fp32", None: "auto"}[self.bf16]

    @model_serializer(mode="wrap")
    def _omit_unset_later_keys(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict:
        return omit_later(self, handler, info)

    @model_validator(mode="after")
    def _replay_pair(self) -> TrainConfig:
        if (self.replay > 0) != (self.replay_data is not None):
            raise ValueError("train.replay and train.replay_data go together: a share above 0 and the "
                             "general text to replay (--replay 0.2 --replay-data FILE), or neither")
        return self

    @model_validator(mode="after")
    def _precision_pair(self) -> TrainConfig:
        if self.bf16 is not None and self.precision not in (None, "bf16" if self.bf16 else "fp32"):
            raise ValueError(f"train.bf16={str(self.bf16).lower()} contradicts train.precision={self.precision}: "
                             "set only train.precision (--precision)")
        if self.compile and self.checkpoint_every:
            raise ValueError("train.compile does not go with train.checkpoint_every: a resumed run recompiles, "
                             "and its kernels are not guaranteed to give the bits of the run before the stop; "
                             "drop --compile for resumable runs")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from supremum.device import check_spec

        return check_spec(v)

    @field_validator("replay_data")
    @classmethod
    def _expand_replay(cls, v: str | None) -> str | None:
        return None if v is None else os.path.expanduser(os.path.expandvars(v))


class SelfTrainingConfig(Strict):
    """Self-training with pseudo-labels (Scudder 1965; Lee 2013): train on the labelled data, label
    the unlabelled texts with the model, add those predicted with at least `threshold` confidence
    to the training set, and train again from the base model; `rounds` times."""

    rounds: int = Field(1, ge=1, description="retrainings on labelled + pseudo-labelled data after the "
                        "first training on the labelled data alone")
    threshold: float = Field(0.9, gt=0, le=1, description="least softmax probability of the predicted "
                             "class for an unlabelled text to be added with that label (>=)")
    max_per_round: int | None = Field(None, ge=1, description="add at most this many pseudo-labelled "
                                      "texts per round, the most confident first (null: all above "
                                      "the threshold)")
    balance: bool = Field(True, description="add the same number of texts per class: the count of the "
                          "class with the fewest above the threshold, each class's most confident")
    keep: Literal["best", "last"] = Field("best", description="the round whose model is saved: best "
                                          "dev accuracy (the earlier round on a tie) or the last")
    round_steps: Literal["same", "epochs"] = Field(
        "same", description="optimizer steps of a pseudo-label round when train.max_steps is set: `same` "
        "(every round trains max_steps) or `epochs` (a round trains max(max_steps, train.epochs passes over "
        "its labelled + pseudo-labelled rows), so a large pseudo-labelled set is seen at least as often as "
        "the labelled one; without max_steps every round trains its epochs either way)")

    #: keys added after runs were cached (see DataConfig.ADDED_LATER)
    ADDED_LATER: ClassVar[dict[str, Any]] = {"round_steps": "same"}

    @model_serializer(mode="wrap")
    def _omit_unset_later_keys(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict:
        return omit_later(self, handler, info)


class DomainPretrainConfig(Strict):
    """Domain-adaptive pretraining (Gururangan et al. 2020): continued masked-LM (causal-LM for
    decoder models) training of the base model on the unlabelled texts before fine-tuning."""

    steps: int = Field(..., ge=1, description="optimizer steps of continued pretraining")
    lr: float = Field(5e-5, gt=0, description="peak learning rate (AdamW, linear decay after 6% warm-up)")
    batch_size: int = Field(32, ge=1, description="unlabelled texts per step")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of tokens masked (masked LM; "
                                   "80% [MASK], 10% random, 10% kept, as in BERT)")


class EvalConfig(Strict):
    split: str | None = Field(None, description="split to evaluate: train, dev, test or all (default: dev of "
                              "the training data or of a directory with split files; any other file is "
                              "scored whole)")
    max_length: int | None = Field(None, ge=8, description="tokens per text (causal LMs: the default "
                                   "perplexity window); default: the artifact's training max length")
    batch_size: int = Field(64, ge=1, description="batch size of the quality pass")
    speed: bool = Field(True, description="measure latency, throughput and memory")
    warmup: int = Field(5, ge=0, description="untimed calls before timing (batch 1)")
    repeats: int = Field(30, ge=3, description="timed calls at batch 1 (batch 32: a third)")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's choice)")
    device: str = Field("auto", description="where the model runs for quality and speed: auto (CUDA when "
                        "visible, else MPS, else the CPU), cpu, cuda, cuda:N or mps (PyTorch artifacts; ONNX "
                        "Runtime and llama.cpp artifacts run on the CPU)")
    perturb: str | None = Field(None, description="also measure accuracy under seeded perturbations, "
                                "e.g. typo:0.05,drop:0.1,swap:0.1,case")
    perturb_seed: int = Field(0, description="seed of the perturbations")
    # causal language models
    window: int | None = Field(None, ge=2, description="LM perplexity: tokens per window "
                               "(default: the max length)")
    stride: int | None = Field(None, ge=1, description="LM perplexity: tokens between window starts "
                               "(default: half the window)")
    max_tokens: int | None = Field(None, ge=2, description="LM perplexity: score only the first N "
                                   "tokens of the split")
    prompt_tokens: int = Field(64, ge=1, description="LM generation cost: prompt length (held-out tokens)")
    new_tokens: int = Field(64, ge=2, description="LM generation cost and samples: tokens generated")
    gen_warmup: int = Field(1, ge=0, description="LM generation cost: untimed generations")
    gen_repeats: int = Field(3, ge=1, description="LM generation cost: timed generations")
    generate: bool = Field(False, description="LM instruction data: generate an answer to every prompt of "
                           "the split and score it against the reference answer (exact match, chrF, BLEU, "
                           "ROUGE-L); every prompt, reference and output is stored as JSONL")
    max_new_tokens: int = Field(128, ge=1, description="LM --generate: most tokens generated per answer "
                                "(stops earlier at end-of-sequence)")
    temperature: float = Field(0.0, ge=0, description="LM --generate: 0 = greedy; above 0, seeded sampling "
                               "at this temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="LM --generate with temperature: nucleus sampling "
                         "(smallest set of tokens with this much probability)")
    seed: int = Field(0, description="LM --generate with temperature: sampling seed")
    generate_limit: int | None = Field(None, ge=1, description="LM --generate: only the first N prompts")
    reference_data: str | None = Field(None, description="LM: general text (e.g. $SUPREMUM_DATA/wikitext2) "
                                       "scored for perplexity by this model and its parent (or base model): "
                                       "the change in % is the forgetting")
    reference_tokens: int = Field(8192, ge=2, description="LM --reference-data: score the first N tokens")
    # classifiers: error analysis
    slice_column: str | None = Field(None, description="classifiers: also report accuracy by the values of "
                                     "this column of the data (a name, or a position from 1), beside the "
                                     "length, negation and out-of-vocabulary slices")
    confident_errors: int = Field(5, ge=0, description="classifiers: how many of the most confident wrong "
                                  "predictions the error analysis lists (the report explains them)")

    #: keys added after eval runs were recorded: a dump leaves each out while it holds this value
    ADDED_LATER: ClassVar[dict[str, Any]] = {"slice_column": None, "confident_errors": 5, "device": "auto"}
    LOCAL_PATHS: ClassVar[tuple[str, ...]] = ("reference_data",)

    @model_serializer(mode="wrap")
    def _omit_unset_later_keys(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict:
        return omit_later(self, handler, info)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from supremum.device import check_spec

        return check_spec(v)

    @field_validator("reference_data")
    @classmethod
    def _expand_reference(cls, v: str | None) -> str | None:
        return None if v is None else os.path.expanduser(os.path.expandvars(v))


def __getattr__(name: str):
    # FinetuneConfig moved to `supremum.train.config` (it holds the fine-tuning methods' configs,
    # which sit in the training layer above this module); the old name keeps working for outside
    # code. Looked up by name so this module stays below the training layer.
    if name == "FinetuneConfig":
        return importlib.import_module("supremum.train.config").FinetuneConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
