"""What a compression method may need besides the model (`Context`): the parent artifact, its
tokenizer and preprocessing, and the data for calibration, importance scores or recovery
training. Shared by the compression stage and `supremum sensitivity`."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from supremum.artifact import Artifact
from supremum.config import DataConfig
from supremum.data import TaskData, load_data
from supremum.errors import UserError
from supremum.preprocessing import Preprocessing, preprocessing_for
from supremum.tasks import CAUSAL_LM, Task, get_task


@dataclass
class Context:
    """What a method may need besides the model: the parent, its tokenizer, and data for
    calibration, importance scores or recovery training (the parent's training data unless
    `data` overrides it)."""

    parent: Artifact
    tokenizer: object
    data_cfg: DataConfig | None
    threads: int | None = None
    #: read the data whole (split "all": a file that is not the training source), no splits cut
    whole: bool = False
    #: where recovery training checkpoints (None: it does not), how often, and whether to resume
    checkpoints: Path | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    #: data_cfg is the data the user gave (compress --data), not the parent's recorded training data
    data_given: bool = False
    _trainings: int = 0

    def training_checkpoint(self) -> dict:
        """Checkpoint arguments of the next recovery training in this run (iterative pruning
        trains once per round, so each training gets its own directory)."""
        self._trainings += 1
        if self.checkpoints is None or not self.checkpoint_every:
            return {}
        return {"ckpt_dir": self.checkpoints / f"training-{self._trainings}", "resume": self.resume}

    @functools.cached_property
    def prep(self) -> Preprocessing:
        """The parent's preprocessing: calibration, scoring and recovery data are tokenized as
        the parent was trained."""
        return preprocessing_for(self.parent)

    @functools.cached_property
    def data(self) -> TaskData:
        if self.data_cfg is None:
            raise UserError(f"artifact {self.parent.id} does not record its training data and this "
                            "method needs data", "pass --data")
        return load_data(self.data_cfg, label_names=self.parent.label_names, whole=self.whole)

    @property
    def task(self) -> Task:
        """The parent's task: its data, encoding, dev scorer and distillation objective."""
        return get_task(self.parent.task)

    @property
    def is_lm(self) -> bool:
        return self.task is CAUSAL_LM

    @functools.cached_property
    def lm_data(self):
        from supremum.lm.data import load_lm_data

        if self.data_cfg is None:
            raise UserError(f"artifact {self.parent.id} does not record its training data and this "
                            "method needs data", "pass --data")
        return load_lm_data(self.data_cfg, whole=self.whole)

    @property
    def task_data(self):
        """The data as the parent's task reads it (loaded once): `data` or `lm_data`."""
        return self.lm_data if self.is_lm else self.data

    def has_split(self, split: str) -> bool:
        return self.task.has_split(self.task_data, split)

    def encoded(self, split: str):
        """Token ids and labels of a split: class ids for classifiers, packed blocks or masked
        conversations (per-token labels) for language models."""
        return self.task.encode(self.tokenizer, self.task_data, split, self.prep)

    def data_record(self) -> dict | None:
        """The data the method read, for the manifest and the run record: {"path" (absolute where it
        is a local file or directory), "sha256" (a single file), "from" ("--data", or "the parent's
        training data"), "options" (the data settings that differ from their defaults, e.g.
        drop_empty, delimiter)}; None when the method read no data."""
        from supremum.preprocessing import source_digest

        if self.data_cfg is None or not {"data", "lm_data"} & self.__dict__.keys():
            return None
        cfg = self.data_cfg
        return {"path": cfg.path, **source_digest(cfg.path), "from": self.data_from,
                "options": cfg.model_dump(mode="json", exclude={"path"}, exclude_defaults=True)}

    @property
    def data_from(self) -> str:
        return "--data" if self.data_given else "the parent's training data"

    def describe_training_split(self) -> str:
        """'the training split of /d/calib.csv (--data)': where calibration texts come from."""
        return f"the training split of {self.data_cfg.path} ({self.data_from})" if self.data_cfg else "none"

    def calibration_texts(self, n: int) -> list[str]:
        """A seeded sample of training texts (never dev or test, which are for measuring)."""
        import random

        texts = self.data.texts("train")
        return random.Random(0).sample(texts, min(n, len(texts)))
