"""Ensembles at run time: the members (each a complete artifact under `members/`, verified and
loaded by its own backend) run one after another; the prediction is the weighted mean of their
class probabilities. `supremum.ensemble` builds such artifacts."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from supremum.artifact import open_artifact
from supremum.backends import load as load_artifact
from supremum.backends import register


class EnsembleModel:
    training = False
    #: the ensemble's own temperature (members apply theirs): supremum.backends.apply_temperature
    temperature = 1.0

    def __init__(self, members: list, weights: list[float]):
        self.members, self.weights = members, weights
        self.config = getattr(members[0], "config", None)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_):
        probs = sum(w * torch.softmax(m(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)
                    for m, w in zip(self.members, self.weights, strict=True))
        # log-probabilities: argmax and softmax give back the averaged prediction
        return SimpleNamespace(logits=torch.log(probs.clamp_min(1e-12)) / self.temperature)

    def eval(self) -> EnsembleModel:
        for m in self.members:
            m.eval()
        return self

    def train(self, mode: bool = True) -> EnsembleModel:
        return self


@register("ensemble")
def load(art):
    import transformers as tf

    members = [load_artifact(open_artifact(art.path / m.dir))[0] for m in art.manifest.members]
    model = EnsembleModel(members, [m.weight for m in art.manifest.members])
    return model.eval(), tf.AutoTokenizer.from_pretrained(str(art.path))
