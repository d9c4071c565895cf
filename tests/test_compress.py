"""Every compression method on a tiny model: compress, save, reload in a fresh process with
identical predictions, the expected shapes/dtypes/sparsity, and the lineage in the store."""

import numpy as np
import pytest
import torch
from conftest import TEXTS, logits, logits_fresh_process
from safetensors import safe_open

from supremum.artifact import load_artifact_model, open_artifact
from supremum.compress import compress, compressors
from supremum.errors import UserError
from supremum.store import Store
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune

OPTIONS = {
    "distill": {"max_steps": 4}, "lowrank": {"rank": 4, "recover_max_steps": 3},
    "prune-heads": {"amount": 0.5, "calibration_size": 16}, "prune-ffn": {"amount": 0.5, "calibration_size": 16},
    "drop-layers": {"num_layers": 1}, "onnx-int8-static": {"calibration_size": 16},
    "prune-iterative": {"target_params": 0.99, "max_rounds": 2, "recover_max_steps": 2, "step": 0.5,
                        "calibration_size": 16},
}


def config(method: str, **extra):
    cls = compressors()[method].config_cls
    return cls(**{**OPTIONS.get(method, {}), **extra})


@pytest.fixture
def parent(csv_data, tmp_path):
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)},
                         train={"max_steps": 20, "lr": 3e-3, "batch_size": 8}, output=str(tmp_path / "parent"))
    return finetune(cfg, progress=False).artifact


def tensors(art) -> dict:
    with safe_open(str(art.path / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def child_of(parent, method, tmp_path, **extra):
    src = parent
    if method == "distill":  # the usual chain: drop layers, then recover by distillation
        src = compress(parent, config("drop-layers"), output=tmp_path / "dropped")
    return compress(src, config(method, **extra), output=tmp_path / method)


def check_structure(method: str, child, parent) -> None:
    m = child.manifest
    t = {x["kind"]: x for x in m.transforms}
    if method == "int8-dynamic":
        assert t["int8-dynamic"]["modules"] and all(v.dtype != torch.float32 for k, v in tensors(child).items()
                                                    if k.endswith("weight_int8"))
    elif method == "int8-weight":
        assert any(v.dtype == torch.int8 for v in tensors(child).values())
    elif method == "int4-weight":
        packed = [v for k, v in tensors(child).items() if k.endswith(".packed")]
        assert packed and all(v.dtype == torch.uint8 for v in packed)
    elif method in ("fp16", "bf16"):
        dtype = torch.float16 if method == "fp16" else torch.bfloat16
        assert all(v.dtype == dtype for v in tensors(child).values() if v.is_floating_point())
    elif method.startswith("onnx"):
        assert m.backend == "onnxruntime" and (child.path / "model.onnx").exists()
        ops = m.compression[-1].report["operators"]
        if method == "onnx-int8-dynamic":
            assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
        if method == "onnx-int8-static":
            assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    elif method == "prune-magnitude":
        model, _ = load_artifact_model(child)
        w = model.bert.encoder.layer[0].intermediate.dense.weight
        assert 0.45 <= float((w == 0).float().mean()) <= 0.55
        assert any(k.endswith("__mask") for k in tensors(child))
    elif method == "prune-heads":
        rep = m.compression[-1].report
        assert rep["heads_after"] < rep["heads_before"]
        assert t["resize"]["shapes"]["bert.encoder.layer.0.attention.self.query"][0] in (16, 32)
    elif method == "prune-ffn":
        assert t["resize"]["shapes"]["bert.encoder.layer.0.intermediate.dense"] == [32, 32]
    elif method in ("drop-layers", "distill"):
        model, _ = load_artifact_model(child)
        assert len(model.bert.encoder.layer) == 1 and model.config.num_hidden_layers == 1
    elif method == "prune-iterative":
        rep = m.compression[-1].report
        assert rep["rounds"] and rep["params_ratio"] < 1 and rep["stopped_by"] == "size target"
        assert t["resize"]["shapes"]["bert.encoder.layer.0.intermediate.dense"] == [32, 32]
    elif method == "lowrank":
        assert set(t["lowrank"]["ranks"].values()) == {4}


LM_ONLY = ("gguf", "gguf-lora")  # llama.cpp exports of causal LMs: tests/test_lm.py


@pytest.mark.parametrize("method", LM_ONLY)
def test_lm_only_methods_refuse_classifiers(parent, tmp_path, method):
    with pytest.raises(UserError, match="causal"):
        compress(parent, config(method), output=tmp_path / method)
    assert not (tmp_path / method).exists()


@pytest.mark.parametrize("method", sorted(m for m in compressors() if m not in LM_ONLY))
def test_compress_reload_identical_and_lineage(parent, tmp_path, method):
    child = child_of(parent, method, tmp_path)
    here = logits(open_artifact(child.path))
    there = logits_fresh_process(child.path)
    np.testing.assert_allclose(here, there, atol=1e-6)
    assert here.shape == (len(TEXTS), 2)
    check_structure(method, child, parent)
    row = Store().get_artifact(child.id)
    assert row is not None and row["method"].endswith(method) and row["method"].startswith("full>")
    assert child.manifest.parents and child.manifest.compression[-1].method == method
    assert not list(child.path.glob("*.bin")) and not list(child.path.glob("*.pt"))


def test_quantized_predictions_stay_close(parent, tmp_path):
    base = logits(parent)
    for method in ("int8-dynamic", "int8-weight", "bf16", "onnx", "onnx-int8-dynamic"):
        got = logits(compress(parent, config(method), output=tmp_path / method))
        tol = 1e-4 if method == "onnx" else 0.1
        assert np.abs(got - base).max() < tol, method


def test_chain_prune_distill_quantize_export(parent, tmp_path):
    a = compress(parent, config("prune-ffn"), output=tmp_path / "a")
    b = compress(a, config("prune-heads"), output=tmp_path / "b")
    c = compress(b, config("distill", max_steps=2), output=tmp_path / "c")
    d = compress(c, config("onnx-int8-dynamic"), output=tmp_path / "d")
    assert [s.method for s in d.manifest.compression] == ["prune-ffn", "prune-heads", "distill",
                                                                 "onnx-int8-dynamic"]
    assert c.manifest.compression[-1].report["teacher"] == parent.id
    np.testing.assert_allclose(logits(d), logits_fresh_process(d.path), atol=1e-6)
    e = compress(c, config("int8-dynamic"), output=tmp_path / "e")
    np.testing.assert_allclose(logits(e), logits_fresh_process(e.path), atol=1e-6)


def test_order_errors(parent, tmp_path):
    q = compress(parent, config("int8-dynamic"), output=tmp_path / "q")
    with pytest.raises(UserError, match="must come before"):
        compress(q, config("prune-heads"), output=tmp_path / "x")
    with pytest.raises(UserError) as e:  # torch.onnx has no symbolic for quantized::linear_dynamic
        compress(q, config("onnx"), output=tmp_path / "qo")
    assert e.value.message == (f"artifact {q.id} holds int8 dynamically quantized layers, which have no "
                               "ONNX form (torch.onnx cannot export PyTorch's quantized::linear_dynamic)")
    assert not (tmp_path / "qo").exists()
    o = compress(parent, config("onnx"), output=tmp_path / "o")
    with pytest.raises(UserError, match="ONNX model"):
        compress(o, config("int8-dynamic"), output=tmp_path / "y")
    with pytest.raises(UserError, match="keep="):
        compress(parent, config("drop-layers", keep=[0, 5]), output=tmp_path / "z")


def test_max_drop_keeps_sensitive_layers(parent, tmp_path):
    child = compress(parent, config("int8-dynamic", max_drop=0.0), output=tmp_path / "md")
    rep = child.manifest.compression[-1].report
    steps = rep["max_drop_search"]["steps"]
    assert steps[0]["kept_fp32"] == 0 and [s["kept_fp32"] for s in steps] == list(range(len(steps)))
    assert steps[-1]["drop_pt"] <= 0.0 or len(rep["kept_fp32"]) == 13
    assert all(s["drop_pt"] > 0.0 for s in steps[:-1])
    assert len(rep["kept_fp32"]) + rep["quantized_layers"] == 13  # 2 x (q,k,v,o,in,out) + pooler


def test_sensitivity_ranks_every_layer(parent):
    from supremum.compress.sensitivity import sensitivity
    from supremum.evaluate.stage import data_config_for

    res = sensitivity(parent, data_config_for(parent, None), "dev", ("int8", "prune50"))
    assert len(res["layers"]) == 13 and res["examples"] > 0
    worst = [min(r["int8"], r["prune50"]) for r in res["layers"]]
    assert worst == sorted(worst)


def test_distill_into_another_model_with_the_same_tokenizer(parent, tmp_path):
    child = compress(parent, config("distill", student="tiny-bert", max_steps=3, hidden_weight=1.0,
                                    attention_weight=1.0), output=tmp_path / "student")
    rep = child.manifest.compression[-1].report
    assert rep["teacher"] == parent.id and rep["steps"] == 3
    assert child.manifest.base_model == "tiny-bert"
    np.testing.assert_allclose(logits(child), logits_fresh_process(child.path), atol=1e-6)


def test_distill_without_an_uncompressed_ancestor_says_so(parent, tmp_path):
    with pytest.raises(UserError, match="no uncompressed ancestor"):
        compress(parent, config("distill", max_steps=1), output=tmp_path / "x")


def test_adapter_only_parent_is_merged_first(csv_data, tmp_path):
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)},
                         method={"name": "lora", "merge": False}, train={"max_steps": 3},
                         output=str(tmp_path / "adapter"))
    adapter = finetune(cfg, progress=False).artifact
    child = compress(adapter, config("int8-dynamic"), output=tmp_path / "q")
    np.testing.assert_allclose(logits(child), logits_fresh_process(child.path), atol=1e-6)
    assert np.abs(logits(child) - logits(adapter)).max() < 0.1
