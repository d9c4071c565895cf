"""PyTorch artifacts, by how their weights are stored: full weights (transformers' own format),
a PEFT adapter over the base model, a delta of the trained tensors over the base model
(supremum.train.methods.delta), or a compressed model whose transforms are replayed
(supremum.backends.weights)."""

from __future__ import annotations

import importlib
import json

from supremum.backends import register
from supremum.backends.weights import load_transformed
from supremum.tasks import Task, get_task

#: weights stored the way a fine-tuning method writes them, which only that method can rebuild
#: (it re-creates the modules it added before the tensors load): storage -> the module whose
#: `load(art, task)` does it. Looked up by name, as `supremum.backends.MODULES` is: the methods
#: sit in the training layer, above the runtimes that load artifacts.
METHOD_STORAGES = {"delta": "supremum.train.methods.delta"}


def model_task(art) -> Task:
    """The task of the artifact (its manifest stores the pipeline tag), which names the head."""
    return get_task(art.task)


@register("pytorch")
def load(art):
    task = model_task(art)
    if art.manifest.transforms:
        return load_transformed(art, task)
    if art.manifest.storage in METHOD_STORAGES:
        return importlib.import_module(METHOD_STORAGES[art.manifest.storage]).load(art, task)
    if art.manifest.storage == "peft":
        return _load_adapter(art, task)
    import transformers as tf

    model = task.model_class().from_pretrained(str(art.path))
    return model.eval(), tf.AutoTokenizer.from_pretrained(str(art.path))


def _load_adapter(art, task: Task):
    from peft import PeftModel

    from supremum.models import load_model
    from supremum.models.compat import accept_past_key_values

    base, tok = load_model(art.manifest.base_model, task, label_names=art.label_names or None)
    if json.loads((art.path / "adapter_config.json").read_text()).get("peft_type") == "PREFIX_TUNING":
        base = accept_past_key_values(base)
    return PeftModel.from_pretrained(base, str(art.path)).eval(), tok
