"""QLoRA: a 4-bit NF4 base (bitsandbytes) with LoRA over it, trained a few steps on the CPU with
bitsandbytes' CPU kernels (finetune itself refuses QLoRA off CUDA), then merged into the
dequantized base: the merged weight equals dequantize(W4) + B A alpha/r, computed here by hand."""

import pytest
import torch
from conftest import run_cli, write_csv

bnb = pytest.importorskip("bitsandbytes")


def _trained(name: str, task: str, labels: list[str] | None = None):
    from supremum.models.loading import load_model
    from supremum.train.methods import METHODS
    from supremum.train.methods.qlora import QloraConfig

    torch.manual_seed(0)
    model, tok = load_model(name, task=task, label_names=labels)
    cfg = QloraConfig(dropout=0.0)
    m = METHODS["qlora"].apply(model, cfg, 3)
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    ids = tok(["to be or not to be, that is the question"] * 2, return_tensors="pt")["input_ids"]
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        out = m(input_ids=ids, labels=ids if task == "causal-lm" else torch.tensor([0, 1]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    return m, cfg, trainable


def test_the_base_is_4bit_and_only_adapters_and_heads_train():
    m, _, trainable = _trained("tiny-bert", "classification", ["neg", "pos"])
    quantized = [n for n, mod in m.named_modules() if type(mod).__name__ == "Linear4bit"]
    assert quantized and all("classifier" not in n for n in quantized)
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    assert any("classifier" in n for n in trainable)  # the head trains fully
    layer = m.get_submodule(quantized[0])
    assert layer.weight.quant_state.quant_type == "nf4" and layer.weight.quant_state.nested  # double quant


@pytest.mark.parametrize("name,task", [("tiny-llama", "causal-lm"), ("tiny-bert", "classification")])
def test_merge_into_the_dequantized_base_equals_a_hand_computation(name, task):
    import bitsandbytes.functional as bf

    from supremum.train.methods import METHODS

    m, cfg, _ = _trained(name, task, ["neg", "pos"] if task == "classification" else None)
    name = next(n for n, mod in m.named_modules() if hasattr(mod, "get_delta_weight")
                and type(getattr(mod, "base_layer", None)).__name__ == "Linear4bit")
    lora = m.get_submodule(name)
    a, b = lora.lora_A["default"].weight.detach().float(), lora.lora_B["default"].weight.detach().float()
    assert b.abs().max() > 0  # trained away from LoRA's zero init
    w4 = bf.dequantize_4bit(lora.base_layer.weight.data, lora.base_layer.weight.quant_state).float()
    expected = w4 + (b @ a) * (cfg.alpha / cfg.r)
    if task == "classification":
        head = m.get_submodule("base_model.model.classifier").modules_to_save["default"].weight.detach().clone()
    merged, storage = METHODS["qlora"].finalize(m, cfg)
    assert storage == "full"
    assert not any(type(mod).__name__ in ("Linear4bit", "LoraLayer") for mod in merged.modules())
    plain = name.replace("base_model.model.", "", 1)
    torch.testing.assert_close(merged.get_submodule(plain).weight, expected, rtol=0, atol=1e-6)
    check = merged.merge_check
    # bf16 compute over 4-bit weights against float32 over their dequantized values
    assert 0 <= check["max_abs_logit_diff"] < 0.05 and 0 <= check["argmax_agreement"] <= 1
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    if task == "classification":  # the trained head, unwrapped from PEFT's modules_to_save
        torch.testing.assert_close(merged.classifier.weight, head)


def test_finetune_refuses_qlora_off_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU refusal")
    data = write_csv(tmp_path / "d.csv", [("good", "pos"), ("bad", "neg")] * 10)
    r = run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--method", "qlora", "--max-steps", "1")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: method qlora trains on a CUDA GPU (bitsandbytes' 4-bit kernels), and this "
                                "run is on cpu (use --method lora here, or --device cuda on a machine with an "
                                "NVIDIA GPU)")
