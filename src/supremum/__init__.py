"""supremum: how good can this model get, and how cheaply?

Public API (see supremum.api for shapes and errors; the CLI calls these same functions):
    load(path_or_id) -> (model, tokenizer)
    finetune(config) -> FinetuneResult(run_id, artifact, metrics, data_info)
    compress(artifact, config) -> Artifact
    calibrate(artifact, data=None) -> Artifact (temperature scaling fitted on dev)
    evaluate(artifact, data=None, config=None) -> dict of metrics
    frontier(metric=None, cost=None, data=None, split=None) -> dict
Also: open_artifact(path) -> Artifact; the configs FinetuneConfig, DataConfig, EvalConfig; Store.
"""

import logging

__version__ = "0.1.0"

# torchao warns at import about GPU-only kernels it cannot load on a CPU machine, and torch's
# pytree about an enum torchao registers: noise on every command, nothing a user can act on.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
# bitsandbytes (imported by PEFT whenever installed) warns at import on an AVX512-BF16 CPU that its
# optional hub kernel for 4-bit matmuls needs the `kernels` package: it falls back to its own, and
# supremum trains 4-bit (QLoRA) on CUDA only. Only that message is dropped; its other warnings stay.
_BNB_KERNEL_HINT = "Failed to load CPU gemm_4bit_forward from kernels-community"
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: not record.getMessage().startswith(_BNB_KERNEL_HINT))

_LAZY = {
    "load": "supremum.api",
    "finetune": "supremum.api",
    "calibrate": "supremum.api",
    "open_artifact": "supremum.artifact",
    "load_artifact_model": "supremum.artifact",
    "FinetuneConfig": "supremum.train.config",
    "DataConfig": "supremum.config",
    "EvalConfig": "supremum.config",
    "Store": "supremum.store",
}
# Subpackages callable as the API function of their name (supremum.facade).
_CALLABLE = ("compress", "evaluate", "frontier")


def __getattr__(name: str):
    # Lazy so that `import supremum` (and `supremum --help`) does not pay for torch.
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _CALLABLE:
        return importlib.import_module(f"supremum.{name}")
    raise AttributeError(name)
