"""Every fine-tuning method on a tiny model: trains a few steps, reports its trainable share,
saves (adapter-only, and merged where the method merges), and reloads in a fresh process with
identical predictions."""

import numpy as np
import pytest
from conftest import logits, logits_fresh_process
from safetensors.torch import load_file

from supremum.artifact import open_artifact
from supremum.errors import UserError
from supremum.store import Store
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune
from supremum.train.methods import METHODS

MERGEABLE = {"lora", "adalora", "ia3", "bitfit"}
# Methods with their own fit (linear-probe, setfit) take no gradient steps: tests/test_setfit.py.
# qlora trains on CUDA only (tests/test_qlora.py checks its arithmetic on bitsandbytes' CPU kernels)
CASES = [(m, {}) for m, h in METHODS.items() if h.fit is None and m != "qlora"] + [("lora", {"dora": True}),
                                                                    ("lora", {"rslora": True, "r": 4})]


def tune(data, out, method: dict, model="tiny-bert", **train):
    cfg = FinetuneConfig(model={"name": model}, data={"path": str(data)}, method=method,
                         train={"max_steps": 6, "batch_size": 8, **train}, output=str(out))
    return finetune(cfg, progress=False)


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{m}-{'-'.join(o) or 'default'}" for m, o in CASES])
def test_method_trains_saves_and_reloads_identically(name, options, csv_data, tmp_path):
    res = tune(csv_data, tmp_path / "a", {"name": name, **options})
    m, art = res.metrics, res.artifact
    assert 0 < m["trainable_params"] <= m["total_params"]
    assert m["trainable_fraction"] == pytest.approx(m["trainable_params"] / m["total_params"])
    if name != "full":
        assert m["trainable_fraction"] < 0.5
    here = logits(art)
    np.testing.assert_allclose(here, logits_fresh_process(art.path), atol=1e-6)

    adapter = art.manifest.adapter_artifact
    assert bool(adapter) == (name in MERGEABLE)
    if adapter:
        small = open_artifact(adapter)
        assert small.manifest.storage in ("peft", "delta")
        np.testing.assert_allclose(logits(small), here, atol=1e-4)  # merged == unmerged
        np.testing.assert_allclose(logits_fresh_process(small.path), logits(small), atol=1e-6)
        kinds = {a["method"] for a in Store().artifacts()}
        assert kinds == {name, f"{name} (adapter)"}


def test_bitfit_changes_only_biases_and_head(csv_data, tmp_path):
    from supremum.models import load_model

    res = tune(csv_data, tmp_path / "b", {"name": "bitfit"}, lr=1e-2)
    base, _ = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    before = base.state_dict()
    after = load_file(str(res.artifact.path / "model.safetensors"))
    changed = {k for k, v in after.items() if k in before and not np.allclose(v.numpy(), before[k].numpy())}
    assert changed and all(k.endswith(".bias") or k.startswith("classifier.") for k in changed)
    delta = load_file(str(tmp_path / "b-adapter" / "delta.safetensors"))
    assert set(delta) >= changed and len(delta) < len(after) / 2


def test_adapter_starts_from_the_pretrained_function(csv_data, tmp_path):
    """Zero-initialized up-projections: before training, adapters change nothing."""
    import torch

    from supremum.models import load_model
    from supremum.train.methods import METHODS

    base, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    ids = tok(["some words here"], return_tensors="pt")
    with torch.no_grad():
        ref = base.eval()(**ids).logits
        cfg = METHODS["adapter"].config_cls()
        wrapped = METHODS["adapter"].apply(base, cfg, 10).eval()
        assert torch.equal(wrapped(**ids).logits, ref)
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert any(".down." in n for n in names) and any("LayerNorm" in n for n in names)


def test_bitfit_on_a_model_without_biases_is_a_clear_error(csv_data, tmp_path):
    with pytest.raises(UserError, match="no bias terms"):
        tune(csv_data, tmp_path / "c", {"name": "bitfit"}, model="tiny-llama")


def test_lora_target_modules_matching_nothing_is_a_clear_error(csv_data, tmp_path):
    """PEFT's own error was a 70-line traceback with exit code 1."""
    with pytest.raises(UserError) as e:
        tune(csv_data, tmp_path / "t", {"name": "lora", "target_modules": ["nosuchmodule"]})
    assert str(e.value).startswith("method.target_modules ['nosuchmodule']: no layer of "
                                   "BertForSequenceClassification matches (use some of its Linear layers: ")
    assert "query" in str(e.value) and "value" in str(e.value)


@pytest.mark.parametrize("name", ["prefix", "adapter", "adalora"])
def test_causal_architecture_methods(name, csv_data, tmp_path):
    res = tune(csv_data, tmp_path / "l", {"name": name}, model="tiny-llama")
    np.testing.assert_allclose(logits(res.artifact), logits_fresh_process(res.artifact.path), atol=1e-6)


def test_lora_backward_stops_at_the_first_adapted_layer():
    """Speed, not only correctness: the embeddings are frozen and their output does not require
    grad, so backward computes no input gradient below layer 0 (where only the adapters' weight
    gradients are needed). enable_input_require_grads (gradient checkpointing's) would undo it."""
    from supremum.models import load_model

    base, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    model = METHODS["lora"].apply(base, METHODS["lora"].config_cls(), 10)
    seen = {}

    def record(module, args, out) -> None:
        seen["requires_grad"] = out.requires_grad

    model.get_base_model().bert.embeddings.register_forward_hook(record)
    model.train()
    batch = tok(["a good film", "bad"], return_tensors="pt", padding=True)
    model(**batch).logits.sum().backward()
    assert seen == {"requires_grad": False}
    adapted = {n for n, p in model.named_parameters() if p.grad is not None}
    assert adapted == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".layer.0." in n and "lora_A" in n for n in adapted)
