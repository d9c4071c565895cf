"""The `Task` interface and its registry: one vocabulary for what a model is trained to do.

A task has one canonical name (a fine-tune config's `task` value) and, as an alias, the Hugging
Face pipeline tag that artifact manifests store; `get_task` accepts either. What differs
between tasks (model head, data loading and encoding, options it refuses, training objective,
dev scorer, distillation objective, default metric, its direction and default cost) is a member
of its `Task`, so callers ask the task instead of branching on its name. The one exception is
evaluation, which needs the evaluation stage's helpers (a layer above): it is chosen by task
name in `supremum.evaluate.stage.EVALUATORS`.

A task's module imports only modules below the fine-tune and evaluation stages (data, lm, infer,
augment); the model loader, which those reach, imports only this module: no import cycle. Heavy
libraries (torch, transformers) are imported inside methods: the CLI's help imports this module.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supremum.errors import UserError


class Task:
    """What a model is trained to do. Subclasses set the class attributes and override the
    methods; one instance of each is registered (`register`)."""

    #: canonical name: the value of a fine-tune config's `task`
    name: ClassVar[str]
    #: the Hugging Face pipeline tag: the `task` an artifact manifest stores
    pipeline_tag: ClassVar[str]
    #: other names that parse to this task (the pipeline tag is always one)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the transformers Auto class of the model head, by name (transformers loads lazily)
    auto_model: ClassVar[str]
    #: default quality metric of a frontier, whether higher is better, and the default cost
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    cost: ClassVar[str]
    #: what one training example is called in messages ("examples", "blocks")
    unit: ClassVar[str] = "examples"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def names(self) -> tuple[str, ...]:
        return (self.name, self.pipeline_tag, *self.aliases)

    def model_class(self):
        """The transformers Auto class that loads this task's head."""
        import transformers

        return getattr(transformers, self.auto_model)

    def model_overrides(self, label_names: list[str] | None) -> dict[str, Any]:
        """Model config keys this task sets from the data (a classifier's label set)."""
        return {}

    def claims(self, data_cfg) -> bool:
        """Whether task "auto" resolves to this task for data `data_cfg` (the default task
        claims what no other does)."""
        return False

    def load_data(self, data_cfg, *, label_names: list[str] | None = None, whole: bool = False):
        raise NotImplementedError

    def has_split(self, data, split: str) -> bool:
        raise NotImplementedError

    def encode(self, tok, data, split: str, prep):
        """A split as token ids and labels (`supremum.data.batching.Split`), tokenized by `prep`."""
        raise NotImplementedError

    def refuse(self, train_cfg) -> None:
        """UserError for a training option (TrainConfig `train_cfg`) this task cannot train with."""

    def training_splits(self, tok, data, cfg):
        """The fine-tune's (train, dev) `Split`s of `data` (FinetuneConfig `cfg`); what was done to
        them (augmentation, block counts) is added to `data.info`. dev may be None."""
        raise NotImplementedError

    def objective(self, *, bf16: bool = False) -> dict:
        """The training loop's `loss_fn` and dev `scorer` (empty: the loop's classifier default)."""
        return {}

    def scorer(self, model, ctx, split: str = "dev", limit: int | None = None):
        """A dev scorer of `model` on the first `limit` examples of `ctx`'s split: a callable
        returning a float, higher is better, with `baseline_key`, `baseline_sign`, `unit`, `size`."""
        raise NotImplementedError

    def distill_loss(self, teacher, cfg, mapping: list[int], proj):
        """The distillation objective of a student against `teacher` (DistillConfig `cfg`)."""
        raise NotImplementedError

    def dev_result(self, best_score: float | None) -> dict:
        """The best dev score of a training run as recorded (its metric name and sign)."""
        return {"dev_accuracy": best_score}


_TASKS: dict[str, Task] = {}
_NAMES: dict[str, Task] = {}
_DEFAULT: list[Task] = []


def register(cls: type[Task], *, default: bool = False) -> type[Task]:
    """Register one instance of `cls` under its name, pipeline tag and aliases. `default`: the
    task "auto" resolves to when no other claims the data."""
    task = cls()
    for n in task.names():  # all checked before any is taken: a clash registers nothing
        if n in _NAMES:
            raise ValueError(f"task name {n!r} is taken by {_NAMES[n].name}")
    _NAMES.update(dict.fromkeys(task.names(), task))
    _TASKS[task.name] = task
    if default:
        _DEFAULT.append(task)
    return cls


def registered() -> tuple[Task, ...]:
    return tuple(_TASKS.values())


def get_task(name: str | Task) -> Task:
    """The task of a canonical name, pipeline tag or alias; UserError for any other."""
    if isinstance(name, Task):
        return name
    try:
        return _NAMES[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown task {name!r}", "use one of: " + ", ".join(
            f"{t.name} (or {', '.join(t.names()[1:])})" for t in _TASKS.values())) from None


def resolve_task(cfg) -> Task:
    """The task a fine-tune config trains: its `task`, or for "auto" (or none) the task that
    claims its data (causal-lm for text corpora and instruction data), else the default."""
    name = getattr(cfg, "task", "auto")
    if name != "auto":
        return get_task(name)
    others = [t for t in _TASKS.values() if t not in _DEFAULT]
    return next((t for t in others if t.claims(cfg.data)), _DEFAULT[0])
