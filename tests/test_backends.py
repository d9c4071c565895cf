"""The artifact format below the runtimes: a typed manifest that still reads old artifacts, one
loader per backend, and transform kinds registered once (rebuild, phase, order rule, kernels,
why no speed-up)."""

import json
from pathlib import Path

import pytest
import torch
from conftest import TEXTS

from supremum import backends
from supremum.artifact import Artifact, Manifest, open_artifact, save_artifact
from supremum.backends.explain import runtime, why
from supremum.backends.transforms import PHASES, TRANSFORMS
from supremum.compress.stage import check_applicable
from supremum.errors import UserError
from supremum.infer import predict_logits
from supremum.models import load_model

#: the keys save_artifact wrote before the manifest was typed (no nulls added for the rest)
WRITTEN = ["format", "format_version", "id", "task", "label_names", "base_model", "model_type", "storage",
           "backend", "transforms", "parents", "config", "created", "tool_version", "run_id", "files"]


def _logits(model, tok):
    return predict_logits(model, tok(TEXTS)["input_ids"], tok.pad_token_id)


@pytest.fixture
def saved(tmp_path):
    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    art = save_artifact(model.eval(), tok, tmp_path / "art", task="text-classification",
                        label_names=["neg", "pos"], base_model="tiny-bert", config={"seed": 1},
                        extra={"run_id": "r1"})
    return art, _logits(model, tok)


def _rewrite(art: Artifact, **changes) -> dict:
    path = art.path / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    m = {k: v for k, v in m.items() if v is not None}
    path.write_text(json.dumps(m, indent=2))
    return m


def test_written_manifest_keeps_the_old_keys(saved):
    art, _ = saved
    on_disk = json.loads((art.path / "manifest.json").read_text())
    assert list(on_disk) == WRITTEN
    assert on_disk["backend"] == "pytorch" and on_disk["transforms"] == [] and on_disk["parents"] == []
    assert open_artifact(art.path).manifest.as_dict() == on_disk == art.manifest.as_dict()


def test_old_shape_loads_and_unknown_keys_survive(saved):
    art, expected = saved
    # an older artifact: no backend, transforms, model type or dates; a key from a newer version
    old = _rewrite(art, backend=None, transforms=None, model_type=None, created=None, tool_version=None,
                   future={"kept": [1, 2]})
    again = open_artifact(art.path)
    m = again.manifest
    assert (m.backend, m.transforms, m.storage, m.compression, m.members) == ("pytorch", [], "full", [], [])
    assert m.future == {"kept": [1, 2]} and m.as_dict() == old  # nothing added, nothing lost
    model, tok = backends.load(again)
    assert torch.equal(torch.tensor(_logits(model, tok)), torch.tensor(expected))
    from supremum.artifact import load_artifact_model  # the old name still works

    assert load_artifact_model is backends.load


@pytest.mark.parametrize("change", [{"parents": "abc"}, {"task": None}, {"files": None}, {"format": "other"}],
                         ids=["wrong-type", "no-task", "no-files", "foreign-format"])
def test_mistyped_manifest_is_corrupt(saved, change):
    art, _ = saved
    _rewrite(art, **change)
    with pytest.raises(UserError, match=r"manifest.json: corrupt manifest \(re-create the artifact\)$"):
        open_artifact(art.path)


def test_unknown_backend_and_transform_name_the_fix(saved):
    art, _ = saved
    _rewrite(art, backend="tensorrt")
    with pytest.raises(UserError) as e:
        backends.load(open_artifact(art.path))
    assert str(e.value) == (f"{art.path}: unknown backend 'tensorrt' in the manifest (this artifact was "
                            "written by a newer supremum; upgrade)")
    _rewrite(art, backend="pytorch", transforms=[{"kind": "fancy"}])
    with pytest.raises(UserError, match=r"unknown transform 'fancy' in the manifest \(this artifact was "):
        backends.load(open_artifact(art.path))


def _art(*kinds: dict, backend: str = "pytorch") -> Artifact:
    return Artifact(Path("/nowhere"), Manifest(format="supremum-artifact", id="a1", task="text-classification",
                                               base_model="b", files={}, backend=backend, transforms=list(kinds)))


SPARSE, LOWRANK, RESIZE = {"kind": "sparse", "tensors": []}, {"kind": "lowrank", "ranks": {}}, {"kind": "resize"}
INT8 = {"kind": "int8-dynamic", "engine": "x86", "modules": [], "per_channel": True}
FP16, BF16 = {"kind": "cast", "dtype": "float16"}, {"kind": "cast", "dtype": "bfloat16"}
QUANTIZED = ("artifact a1 is already quantized or cast; '{}' must come before that "
             "(run it on the unquantized parent, then quantize)")
FACTORIZED = "artifact a1 is factorized; '{}' must come before lowrank (prune first, then factorize)"
# torch.onnx has no symbolic for these layer forms (found by exporting each)
NOT_ONNX = ("artifact a1 holds {what}, which {why} (compress its parent with {method} "
            "instead (ONNX Runtime quantizes the graph itself: onnx-int8-dynamic))")


@pytest.mark.parametrize("kinds,method,refusal", [
    ([INT8], "prune-heads", QUANTIZED), ([FP16], "gguf", QUANTIZED), ([FP16], "distill", QUANTIZED),
    ([FP16], "onnx", NOT_ONNX.format(what="float16/bfloat16 weights", method="onnx",
                                     why="have no ONNX form here (the exporter writes fp32 graphs: float16 "
                                         "mixes types ONNX Runtime refuses, bfloat16 does not export)")),
    ([INT8], "onnx-int8-dynamic", NOT_ONNX.format(what="int8 dynamically quantized layers",
                                                  method="onnx-int8-dynamic",
                                                  why="have no ONNX form (torch.onnx cannot export PyTorch's "
                                                      "quantized::linear_dynamic)")),
    ([LOWRANK], "prune-ffn", FACTORIZED), ([LOWRANK], "lowrank", FACTORIZED), ([LOWRANK], "int8-dynamic", None),
    ([LOWRANK], "distill", None), ([LOWRANK, INT8], "drop-layers", QUANTIZED),
    ([SPARSE], "prune-heads", None), ([RESIZE], "prune-iterative", None), ([SPARSE, RESIZE], "fp16", None),
])
def test_order_rules_come_from_the_transform_registry(kinds, method, refusal):
    if refusal is None:
        check_applicable(_art(*kinds), method)
        return
    with pytest.raises(UserError) as e:
        check_applicable(_art(*kinds), method)
    assert str(e.value) == (refusal.format(method) if "{}" in refusal else refusal)


def test_compress_and_export_refuse_onnx_from_the_same_fact():
    """Which layer forms ONNX export cannot take is stated once, per transform kind: `compress
    --method onnx` and `export --format onnx` refuse exactly those kinds, with the same words."""
    from supremum.export.source import pytorch_refusal

    int4 = {"kind": "int4", "modules": [], "group_size": 32}
    refused = {name for name, k in TRANSFORMS.items() if k.form and k.form.not_onnx}
    assert refused == {"int8-dynamic", "int4", "cast"}
    for spec in (INT8, int4, FP16, BF16):
        form = TRANSFORMS[spec["kind"]].form
        with pytest.raises(UserError) as e:
            check_applicable(_art(spec), "onnx")
        assert e.value.message == f"artifact a1 holds {form.words}, which {form.not_onnx}"
        assert pytorch_refusal(_art(spec), "onnx") == f"its {form.words} {form.not_onnx}"
    for spec in (SPARSE, LOWRANK, RESIZE, {"kind": "torchao", "scheme": "int8-weight", "modules": []}):
        check_applicable(_art(spec), "onnx")
        assert pytorch_refusal(_art(spec), "onnx") is None


def test_explanations_come_from_the_transform_registry():
    assert all(k.phase in PHASES and k.followed_by in PHASES and callable(k.rebuild) for k in TRANSFORMS.values())
    assert set(TRANSFORMS) == {"sparse", "torchao", "int4", "int8-dynamic", "cast", "lowrank", "resize",
                               "sentence-pooling"}
    assert runtime(_art(SPARSE, FP16).manifest, ["avx2"])["kernels"] == (
        "PyTorch eager; float16 weights and activations (oneDNN); "
        "dense fp32 GEMM over weights containing zeros (no sparse kernel)")
    assert runtime(_art(RESIZE).manifest, [])["kernels"] == "PyTorch eager; fp32 GEMM (oneDNN/MKL)"
    assert why(_art(SPARSE, FP16).manifest, [], 0.9).startswith("unstructured sparsity without sparse kernels")
    assert why(_art(INT8).manifest, ["avx2"], 0.9) == ("no VNNI/AMX on this CPU, so int8 dot products are "
                                                      "emulated with AVX2 and barely beat fp32")
    assert why(_art(INT8).manifest, ["avx512_vnni"], 0.9).startswith("per-batch activation quantization")
    assert why(_art(BF16).manifest, ["amx_bf16"], 0.9) == (
        "per-call overhead (tokenization, Python, small matrices) dominates at this size")  # bf16 has AMX
    lowrank_int4 = _art({"kind": "int4", "modules": [], "group_size": 32}, LOWRANK).manifest
    assert why(lowrank_int4, [], 0.9, batch=1) == ("the ranks kept are too high for two thin GEMMs to beat "
                                                   "one wide one")  # int4 falls through at batch 1
    assert why(lowrank_int4, [], 0.9, batch=32).startswith("the int4 kernel is tuned for small batches")
    assert why(_art(INT8).manifest, [], 1.2) is None
    assert why(_art(backend="onnxruntime").manifest, [], 0.9).startswith("ONNX Runtime's fp32 kernels")
