"""supremum: how good can this model get, and how cheaply?

Library API (the CLI only calls these):
    finetune(FinetuneConfig) -> FinetuneResult
    evaluate(artifact_or_path, DataConfig | None, EvalConfig) -> dict of metrics
    open_artifact(path) -> Artifact;  load_artifact_model(artifact) -> (model, tokenizer)
    compress(artifact, CompressConfig) -> Artifact
"""

import logging

__version__ = "0.1.0"

# torchao warns at import about GPU-only kernels it cannot load on a CPU machine, and torch's
# pytree about an enum torchao registers: noise on every command, nothing a user can act on.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

_LAZY = {
    "finetune": "supremum.train.finetune",
    "compress": "supremum.compress",
    "evaluate": "supremum.evaluate",
    "open_artifact": "supremum.artifact",
    "load_artifact_model": "supremum.artifact",
    "FinetuneConfig": "supremum.config",
    "DataConfig": "supremum.config",
    "EvalConfig": "supremum.config",
    "Store": "supremum.store",
}


def __getattr__(name: str):
    # Lazy so that `import supremum` (and `supremum --help`) does not pay for torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
