from pathlib import Path

import pytest

from supremum import cli
from supremum.cli_config import finetune_config as build_finetune
from supremum.cli_config import flag_keys
from supremum.errors import UserError
from supremum.recipe import build, load_yaml
from supremum.train.config import FinetuneConfig

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


def finetune_config(values):
    return build_finetune(values, flag_keys(cli.finetune))


def flags(**kw):
    base = dict.fromkeys(["model", "data", "method", "recipe", "overrides"])
    return {**base, **kw}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path, monkeypatch):
    monkeypatch.setenv("SUPREMUM_DATA", "/data")
    cfg = finetune_config(flags(recipe=path))
    assert cfg.data.path.startswith("/data/")
    assert cfg.train.lr > 0


def test_recipes_exist():
    assert len(RECIPES) >= 3


def test_overrides_beat_flags_beat_recipe(monkeypatch):
    monkeypatch.setenv("SUPREMUM_DATA", "/data")
    recipe = RECIPES[[p.name for p in RECIPES].index("sst2-minilm-lora.yaml")]
    cfg = finetune_config(flags(recipe=recipe, lr=5e-4, overrides=["train.lr=3e-4", "method.r=16"]))
    assert cfg.train.lr == 3e-4 and cfg.method.r == 16 and cfg.method.name == "lora"
    cfg = finetune_config(flags(recipe=recipe, method="full"))
    assert cfg.method.name == "full"


def test_method_default_lr():
    assert FinetuneConfig(data={"path": "x"}, method={"name": "lora"}).train.lr == 1e-3
    assert FinetuneConfig(data={"path": "x"}).train.lr == 1e-4


def test_unknown_key_names_line_and_valid_keys(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("data:\n  path: x\ntrain:\n  epochs: 1\n  lrr: 0.1\n")
    raw, lines = load_yaml(p)
    with pytest.raises(UserError) as e:
        build(FinetuneConfig, raw, str(p), lines)
    msg = str(e.value)
    assert "line 5" in msg and "unknown key 'train.lrr'" in msg and "did you mean 'lr'" in msg
    assert "valid keys under train:" in msg and "batch_size" in msg


def test_unknown_method_key_lists_method_keys(tmp_path):
    with pytest.raises(UserError) as e:
        finetune_config(flags(data="x", method="lora", overrides=["method.rank=4"]))
    assert "unknown key 'method.rank'" in str(e.value) and "alpha" in str(e.value)


def test_wrong_type_is_one_line():
    with pytest.raises(UserError) as e:
        finetune_config(flags(data="x", overrides=["train.epochs=many"]))
    assert "'train.epochs'" in str(e.value) and "'many'" in str(e.value)


def test_bad_yaml_and_missing_recipe(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: [1,\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_yaml(p)
    with pytest.raises(UserError, match="no such recipe file"):
        load_yaml(tmp_path / "none.yaml")
