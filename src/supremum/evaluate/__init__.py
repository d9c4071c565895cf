"""Evaluation: the stage (`stage.py`: `evaluate(artifact, data, config) -> metrics`, recorded in
artifact and store), causal LMs' perplexity, samples and generation cost (`lm.py`), quality
metrics, cost measurement, and zero-shot classification by log-likelihood.

The stage's names are re-exported lazily (PEP 562): importing a light module of this package
(`zeroshot`'s config for `supremum zeroshot --help`) must not import torch, which the stage does.
"""

from __future__ import annotations

import importlib

#: names of `supremum.evaluate.stage` importable from `supremum.evaluate`
STAGE = ("evaluate", "evaluate_model", "evaluate_in_subprocess", "resolve_artifact", "parent_of",
         "load_llamacpp", "data_config_for")


def __getattr__(name: str):
    if name in STAGE:
        return getattr(importlib.import_module("supremum.evaluate.stage"), name)
    raise AttributeError(f"module 'supremum.evaluate' has no attribute {name!r}")


# `supremum.evaluate(...)` is the public API function (see supremum.facade).
from supremum.facade import make_callable  # noqa: E402

make_callable(__name__)
