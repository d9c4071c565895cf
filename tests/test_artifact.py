
import pytest
import torch
from conftest import logits, logits_fresh_process

from supremum.artifact import open_artifact
from supremum.errors import UserError
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune


def trained(data, tmp_path, method=None):
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)},
                         method=method or {"name": "full"}, train={"max_steps": 6, "lr": 3e-3},
                         output=str(tmp_path / "art"))
    return finetune(cfg, progress=False).artifact


@pytest.mark.parametrize("method", [{"name": "full"}, {"name": "lora", "merge": True},
                                    {"name": "lora", "merge": False}], ids=["full", "lora-merged", "lora-adapter"])
def test_reload_in_fresh_process_gives_identical_predictions(csv_data, tmp_path, method):
    art = trained(csv_data, tmp_path, method)
    here = torch.tensor(logits(art))
    there = torch.tensor(logits_fresh_process(art.path), dtype=here.dtype)
    assert torch.allclose(here, there, atol=1e-6)
    m = art.manifest
    assert m.label_names == ["neg", "pos"] and m.base_model == "tiny-bert"
    assert m.config["method"] == method | {k: v for k, v in m.config["method"].items() if k not in method}
    assert m.storage == ("peft" if method.get("merge") is False else "full")
    assert not list(art.path.glob("*.bin")) and not list(art.path.glob("*.pt"))  # no pickle


def test_adapter_artifact_is_small(csv_data, tmp_path):
    art = trained(csv_data, tmp_path, {"name": "lora", "merge": False, "target_modules": ["query", "value"]})
    assert (art.path / "adapter_model.safetensors").exists()
    assert not (art.path / "model.safetensors").exists()


def test_size_is_what_the_artifact_ships_and_evaluations_do_not_change_it(csv_data, tmp_path):
    from supremum.config import DataConfig, EvalConfig
    from supremum.evaluate.stage import evaluate

    art = trained(csv_data, tmp_path)
    shipped = sum(p.stat().st_size for p in art.path.rglob("*") if p.is_file() and p.name != "metrics.json")
    sizes = [evaluate(open_artifact(art.path), DataConfig(path=str(csv_data)), EvalConfig(split=split,
                                                                                           speed=False))
             ["size_on_disk_mb"] for split in ("dev", "test", "dev")]
    assert (art.path / "metrics.json").stat().st_size > 0  # each evaluation wrote to it
    assert sizes == [shipped / 2**20] * 3


def test_missing_corrupt_and_tampered(csv_data, tmp_path):
    art = trained(csv_data, tmp_path)
    (tmp_path / "foreign").mkdir()
    with pytest.raises(UserError, match="not a supremum artifact .no manifest.json"):
        open_artifact(tmp_path / "foreign")
    with pytest.raises(UserError, match="no such artifact directory"):
        open_artifact(tmp_path / "nothing")
    weights = art.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="do not match the manifest"):
        open_artifact(art.path)
    (art.path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt manifest"):
        open_artifact(art.path)
