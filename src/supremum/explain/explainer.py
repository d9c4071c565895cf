"""One classifier artifact loaded for explaining: its model, tokenizer and preprocessing, with
the encoding, prediction and attribution every consumer shares (`supremum explain`, explanation
drift, `POST /v1/explain`), so each explains a text the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supremum.artifact import Artifact
from supremum.errors import UserError
from supremum.explain import attribution as attr
from supremum.explain.words import Encoded, encode
from supremum.tasks import CLASSIFICATION

ORDER = ("integrated-gradients", "input-x-gradient", "occlusion", "attention-rollout")


def check_task(art: Artifact) -> None:
    if art.task != CLASSIFICATION.pipeline_tag:
        raise UserError(f"artifact {art.id} is a {art.task} model; explain supports classifiers only for now",
                        "give a text-classification artifact")


def pad_id(tok) -> int:
    return next(i for i in (tok.pad_token_id, tok.unk_token_id, tok.eos_token_id, 0) if i is not None)


def replace_id(tok) -> int:
    """Occlusion's stand-in for a word: the mask token where the tokenizer has one."""
    return next(i for i in (tok.mask_token_id, tok.unk_token_id, tok.pad_token_id, 0) if i is not None)


def method_problems(model, probe: list[int]) -> dict[str, str | None]:
    """{method: why it cannot run on `model`, or None}, probed on the token ids `probe`."""
    grad = attr.gradient_problem(model, probe)
    return {"integrated-gradients": grad, "input-x-gradient": grad, "occlusion": None,
            "attention-rollout": attr.attention_problem(model, probe)}


@dataclass
class Explainer:
    """`model`/`tok` as `backends.load` gives them (a calibrated artifact's temperature applied);
    `max_length` and the tokenizer's truncation side as the artifact was trained."""

    art: Artifact
    model: Any
    tok: Any
    max_length: int
    batch_size: int = 32
    _problems: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, art: Artifact, batch_size: int = 32, model=None, tok=None) -> Explainer:
        """Load `art` (or wrap its already loaded `model`, `tok`). UserError for a causal LM."""
        from supremum import backends
        from supremum.preprocessing import preprocessing_for

        check_task(art)
        prep = preprocessing_for(art)
        if model is None:
            model, tok = backends.load(art)
        tok.truncation_side = prep.truncation_side
        return cls(art, model, tok, prep.max_length, batch_size)

    @property
    def label_names(self) -> list[str]:
        return self.art.label_names

    def encode(self, text: str) -> Encoded:
        return encode(self.tok, text, self.max_length)

    def predict(self, ids: list[list[int]]) -> np.ndarray:
        """Class probabilities (float64, rows x classes) of token-id rows, batched and padded."""
        from supremum.evaluate.quality import softmax
        from supremum.infer import predict_logits

        return softmax(predict_logits(self.model, ids, pad_id(self.tok), self.batch_size).astype(np.float64))

    def problems(self, probe: list[int]) -> dict[str, str | None]:
        """`method_problems` of this model, probed once."""
        if not self._problems:
            self._problems.update(method_problems(self.model, probe))
        return self._problems

    def attribute(self, method: str, enc: Encoded, target: int, steps: int) -> attr.Attribution:
        """Word scores of `method` for class `target` (positive: supports it)."""
        if method == "integrated-gradients":
            return attr.integrated_gradients(self.model, enc, target, pad_id(self.tok), steps)
        if method == "input-x-gradient":
            return attr.input_x_gradient(self.model, enc, target)
        if method == "occlusion":
            return attr.occlusion(self.predict, enc, target, replace_id(self.tok), self.batch_size)
        if method == "attention-rollout":
            tok = self.tok
            return attr.attention_rollout(self.model, enc, read_first=tok.cls_token_id is not None
                                          and enc.ids[0] == tok.cls_token_id)
        raise ValueError(f"unknown method {method!r}")
