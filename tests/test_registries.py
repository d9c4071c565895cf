"""The method and compressor registries find their modules: a new fine-tuning method or a new
compressor is one file in its package, named nowhere else, and works end to end (train, compress,
reload, the report's words), while importing every method stays torch-free."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import sentiment_rows, write_csv

from supremum.frontier.answer import lineage_words, step_words

SRC = Path(__file__).parent.parent / "src" / "supremum"

# The report's words for every lineage step, as the one table in frontier/answer.py held them
# before each method named itself.
OLD_WORDS = {"full": "full fine-tune", "lora": "LoRA fine-tune", "qlora": "QLoRA fine-tune",
             "adalora": "AdaLoRA fine-tune",
             "ia3": "IA3 fine-tune", "bitfit": "BitFit fine-tune", "adapter": "adapter fine-tune",
             "linear-probe": "linear probe", "setfit": "SetFit", "delta": "delta fine-tune",
             "prompt-tuning": "prompt tuning", "onnx": "ONNX Runtime fp32",
             "onnx-int8-dynamic": "ONNX Runtime int8 (dynamic)", "onnx-int8-static": "ONNX Runtime int8 (static)",
             "int8-dynamic": "PyTorch int8 (dynamic)", "int8-weight": "int8 weights",
             "int4-weight": "int4 weights",
             "fp16": "fp16", "bf16": "bf16", "distill": "distillation", "lowrank": "low-rank factorization",
             "prune-magnitude": "magnitude pruning", "prune-heads": "head pruning", "prune-ffn": "FFN pruning",
             "prune-iterative": "iterative pruning", "drop-layers": "layer dropping", "gguf": "GGUF",
             "gguf-lora": "GGUF LoRA", "temperature": "temperature scaling"}


def test_every_step_keeps_its_words():
    assert {s: step_words(s) for s in OLD_WORDS} == OLD_WORDS
    assert step_words("prefix") == "prefix" and step_words("someday") == "someday"  # no words: the name
    assert lineage_words("lora>prune-heads+gguf:q4_k_m") == "LoRA fine-tune → head pruning → GGUF q4_k_m"


def test_registries_hold_every_module_in_order():
    from supremum.compress import COMPRESSORS, STRUCTURAL
    from supremum.train.methods import METHODS

    assert list(METHODS) == ["adalora", "adapter", "bitfit", "full", "ia3", "linear-probe", "lora", "prefix",
                             "prompt", "ptuning", "qlora", "setfit"]
    assert list(COMPRESSORS)[-3:] == ["fp16", "bf16", "prune-iterative"]  # configs.py's, then methods/
    assert COMPRESSORS["prune-iterative"].module == "supremum.compress.methods.prune_iterative"
    assert "prune-iterative" in STRUCTURAL


HEAD_ONLY = '''"""Head-only fine-tuning: the body stays frozen, only the task head trains."""

from __future__ import annotations

from typing import ClassVar, Literal

from supremum.train.methods import MethodConfig, register


class HeadOnlyConfig(MethodConfig):
    name: Literal["head-only"] = "head-only"
    words: ClassVar[str | None] = "head-only fine-tune"
    default_lr: ClassVar[float] = 1e-2


@register(HeadOnlyConfig)
class HeadOnly:
    @staticmethod
    def apply(model, cfg, total_steps):
        for name, p in model.named_parameters():
            p.requires_grad_(name.split(".")[0] in ("classifier", "score"))
        return model

    @staticmethod
    def finalize(model, cfg):
        return model, "full"
'''

HALVE = '''"""Half precision through the existing cast transform kind."""

from __future__ import annotations

from typing import Literal

from supremum.compress.registry import CompressConfig, Compressed, compressor, register


@compressor("numeric", "cast all weights to float16 (a one-file method)", words="half precision")
class HalveConfig(CompressConfig):
    method: Literal["halve"] = "halve"


@register(HalveConfig)
def halve(model, cfg, ctx) -> Compressed:
    import torch

    return Compressed(model.to(torch.float16), [{"kind": "cast", "dtype": "float16"}], {"dtype": "float16"})
'''

CHECK = """
import sys
from pathlib import Path

import torch

from supremum import api, backends
from supremum.frontier.answer import lineage_words

data, out = sys.argv[1], Path(sys.argv[2])
parent = api.finetune({"model": {"name": "tiny-bert"}, "data": {"path": data}, "method": {"name": "head-only"},
                       "train": {"max_steps": 2, "batch_size": 8}, "output": str(out / "a")}).artifact
child = api.compress(parent, "halve", output=out / "b")
model, _ = backends.load(child)
base, _ = backends.load(parent)
assert all(p.dtype == torch.float16 for p in model.parameters())
for (n, p), q in zip(model.named_parameters(), base.parameters(), strict=True):
    assert torch.equal(p, q.to(torch.float16)), n
print(child.lineage, "|", lineage_words(child.lineage), "|", parent.manifest.method_config)
"""

HELP = """
import runpy, sys
sys.argv = ["supremum", "finetune", "--help"]
try:
    runpy.run_module("supremum", run_name="__main__")
except SystemExit:
    pass
print("torch" in sys.modules, file=sys.stderr)
"""


def test_a_new_method_and_compressor_are_one_file_each(tmp_path):
    """A copy of the package plus exactly two new files: method head-only trains, method halve
    compresses it to an artifact that reloads, the report words both, and `supremum finetune
    --help` lists head-only without importing torch."""
    src = tmp_path / "src"
    shutil.copytree(SRC, src / "supremum", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "supremum" / "train" / "methods" / "head_only.py").write_text(HEAD_ONLY)
    (src / "supremum" / "compress" / "methods" / "halve.py").write_text(HALVE)
    env = {**os.environ, "PYTHONPATH": str(src)}
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(64))

    def run(*args):
        proc = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    out = run(CHECK, str(data), str(tmp_path)).stdout.strip().splitlines()[-1]
    assert out == "head-only>halve | head-only fine-tune → half precision | {'name': 'head-only'}"
    helped = run(HELP)
    assert "head-only" in helped.stdout and helped.stderr.strip().splitlines()[-1] == "False"
