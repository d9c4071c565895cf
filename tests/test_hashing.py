"""One content hash (issue 18, item 5): every place that names a cached run by its configuration
(fine-tune checkpoints, compare and curve cells, scale-sweep runs, pipeline stages, resumable
compressions) hashes through `supremum.hashing.content_hash`, and the values are those computed
before it existed, so runs cached then are found again."""

from pathlib import Path
from types import SimpleNamespace

from supremum.compare import CompareConfig, cells
from supremum.compress import make_config
from supremum.compress.stage import _identity
from supremum.config import DataConfig, identity
from supremum.hashing import content_hash
from supremum.limit.curve import CurveConfig, compare_config
from supremum.limit.sweep import ScaleConfig, Shape
from supremum.limit.sweep import cells as scale_cells
from supremum.pipeline import PipelineConfig, stage_hashes
from supremum.train import distributed
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import _run_dir, config_hash


def test_content_hash_is_canonical_json_sha256():
    # sha256 of json.dumps({"a": 1, "b": null}, sort_keys=True) = '{"a": 1, "b": null}'
    assert content_hash({"b": None, "a": 1}) == "0c6b73e7b48e199a"
    assert content_hash({"a": 1, "b": None}) == content_hash({"b": None, "a": 1})
    assert content_hash({"a": 1}, length=12) == content_hash({"a": 1})[:12]
    assert content_hash({"p": Path("x")}) == content_hash({"p": "x"})  # str() of what JSON cannot hold


def test_finetune_hash_and_checkpoint_dir_unchanged():
    cfg = FinetuneConfig.model_validate({
        "model": {"name": "tiny-llama"}, "data": {"path": "x.txt", "train_limit": 50},
        "method": {"name": "lora", "r": 4, "dropout": 0.1}, "train": {"lr": 1e-3, "max_steps": 7,
                                                                      "checkpoint_every": 2, "bf16": False},
        "task": "causal-lm"})
    assert config_hash(cfg) == "ad3c5c34bca726bf"
    # LoRA's dropout default was 0.1 when this hash was pinned and is 0 now: unset is another run
    unset = cfg.model_copy(update={"method": cfg.method.model_copy(update={"dropout": 0.0})})
    assert config_hash(FinetuneConfig.model_validate(unset.model_dump())) != "ad3c5c34bca726bf"
    root = Path("/r/checkpoints")
    assert _run_dir(Path("/r"), cfg, distributed.Dist(rank=0, world=2)) == root / "ad3c5c34bca726bf-w2"
    assert _run_dir(Path("/r"), cfg, distributed.Dist()) == root / "ad3c5c34bca726bf"


def test_compare_and_curve_cell_hashes_unchanged():
    comp = CompareConfig.model_validate({
        "name": "c", "model": "tiny-bert", "data": {"path": "x.csv"},
        "methods": [{"label": "a", "method": {"name": "lora", "dropout": 0.1}}, "full"], "seeds": [0, 1],
        "grid": {"train.lr": [1e-4, 1e-3]}, "train": {"bf16": False}})
    assert [c["hash"] for c in cells(comp)] == [
        "b72b2221ca97", "a2321cffe6d1", "29db5e539ea8", "f0e02d0b8116",
        "6536744cce8d", "01aa8eeb399c", "1937c7a7e9a1", "3e7b5dc497c3"]
    curve = CurveConfig.model_validate({"model": "tiny-bert", "data": {"path": "x.csv"}, "method": "bitfit",
                                        "fractions": [0.25, 0.5, 1.0], "train": {"bf16": False}})
    # the full-data cells (last 3) train as configured (3 epochs), not min_steps' 19.2 on 100 examples,
    # and no subset trains more steps than they do (12, not 60): a change of what these train, so of
    # their hashes; on a training set where min_steps does not bind (60 steps x batch <= epochs x n:
    # above 640 examples at 3 epochs, batch 32) every hash is unchanged
    assert [c["hash"] for c in cells(compare_config(curve, 100))] == [
        "5535203b44bf", "31b694bc6889", "0396baca515f", "ba806ac0f987", "b9467e057d6a",
        "03f4f3e47155", "84afb70851d2", "782de768ded3", "b8a18d67c30d"]


def test_scale_run_hashes_unchanged():
    info = {"source": "markov:xyz", "skip": 3, "vocab": 64}
    one = scale_cells(ScaleConfig.model_validate({"source": "markov"}), info, [Shape(32, 2), Shape(64, 3)],
                      [1000, 4000])
    assert [c["hash"] for c in one] == ["9f097b49bfaf", "f1dc665cc52b", "6aaa77506d44", "1e6672a39525"]
    two = scale_cells(ScaleConfig.model_validate({"source": "markov", "nproc": 2}), info, [Shape(32, 2)], [1000])
    assert [c["hash"] for c in two] == ["aaaed3d986c0"]


def test_pipeline_stage_hashes_unchanged():
    pipe = {"name": "p", "model": "tiny-bert", "data": {"path": "x.csv"}, "train": {"bf16": False}, "stages": [
        {"id": "ft", "finetune": {"method": {"name": "lora", "dropout": 0.1}}},
        {"id": "q", "from": "ft", "compress": {"method": "int8"}},
        {"id": "p2", "from": "q", "compress": {"method": "prune", "sparsity": 0.5}}]}
    assert stage_hashes(PipelineConfig.model_validate(pipe)) == {
        "ft": "042a5aeb3f78", "q": "7517de582649", "p2": "73ae125cb7ad"}
    # train.precision unset is auto, not the fp32 these stages ran in: another identity
    auto = {k: v for k, v in pipe.items() if k != "train"}
    assert stage_hashes(PipelineConfig.model_validate(auto))["ft"] != "042a5aeb3f78"
    # LoRA's dropout default was 0.1 when these were pinned (the stage then left it unset); unset
    # is now 0, another run, and so are the stages compressing it
    unset = {**pipe, "stages": [{"id": "ft", "finetune": {"method": {"name": "lora"}}}, *pipe["stages"][1:]]}
    new = stage_hashes(PipelineConfig.model_validate(unset))
    assert new["ft"] != "042a5aeb3f78" and new["q"] != "7517de582649"
    zero = {**unset, "stages": [{"id": "ft", "finetune": {"method": {"name": "lora", "dropout": 0.0}}},
                                *pipe["stages"][1:]]}
    assert stage_hashes(PipelineConfig.model_validate(zero)) == new  # unset is 0 now: one identity


def test_resumable_compression_identity_unchanged():
    parent = SimpleNamespace(id="abc123")
    assert _identity(parent, make_config("int8-dynamic", {}), None) == "ee21299c9c17b26c"
    assert _identity(parent, make_config("prune-magnitude", {"sparsity": 0.3}), "d.csv") == "d97fba947b3a1b25"


def test_cv_fold_keys_unset_keep_every_hash():
    """data.cv_folds / data.cv_fold (added for out-of-fold probabilities) are left out of a config's
    dump while unset, so the fine-tune and pipeline hashes pinned above stay; set, they name the fold."""
    raw = {"model": {"name": "tiny-llama"}, "data": {"path": "x.txt", "train_limit": 50},
           "method": {"name": "lora", "r": 4, "dropout": 0.1},
           "train": {"lr": 1e-3, "max_steps": 7, "checkpoint_every": 2, "bf16": False},
           "task": "causal-lm"}
    unset = {**raw, "data": {**raw["data"], "cv_folds": None, "cv_fold": None}}
    assert config_hash(FinetuneConfig.model_validate(unset)) == "ad3c5c34bca726bf"
    fold = {**raw, "data": {**raw["data"], "cv_folds": 4, "cv_fold": 1}}
    assert config_hash(FinetuneConfig.model_validate(fold)) != "ad3c5c34bca726bf"
    pipe = {"name": "p", "model": "tiny-bert", "data": {"path": "x.csv", "cv_folds": None, "cv_fold": None},
            "train": {"bf16": False}, "stages": [{"id": "ft", "finetune": {"method": {"name": "lora",
                                                                                        "dropout": 0.1}}}]}
    assert stage_hashes(PipelineConfig.model_validate(pipe))["ft"] == "042a5aeb3f78"


def test_hashes_unchanged_when_relative_data_paths_exist_and_are_recorded_absolute(tmp_path, monkeypatch):
    """A relative data path found in the working directory is recorded absolute (so `eval` and
    `compress` find it from anywhere), while every hash pinned above keeps the path as typed."""
    monkeypatch.chdir(tmp_path)
    for name in ("x.txt", "x.csv", "d.csv", "r.txt"):
        (tmp_path / name).write_text("text,label\na,b\n")
    test_finetune_hash_and_checkpoint_dir_unchanged()
    test_compare_and_curve_cell_hashes_unchanged()
    test_pipeline_stage_hashes_unchanged()
    raw = {"data": {"path": "x.csv"}, "train": {"replay": 0.2, "replay_data": "r.txt"}}
    cfg = FinetuneConfig.model_validate(raw)
    assert cfg.data.path == str(tmp_path / "x.csv") and cfg.train.replay_data == str(tmp_path / "r.txt")
    assert cfg.model_dump()["data"]["path"] == str(tmp_path / "x.csv")  # what manifests and records hold
    out = FinetuneConfig.model_validate({**raw, "output": "../m1"})  # not there yet, recorded absolute anyway
    assert out.output == str(tmp_path.parent / "m1") and identity(out)["output"] == "../m1"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the same typed config where the files are not: not made absolute
    typed = FinetuneConfig.model_validate(raw)
    assert typed.data.path == "x.csv" and config_hash(typed) == config_hash(cfg)
    moved_out = FinetuneConfig.model_validate({**raw, "output": "../m1"})  # another directory, hashed as typed
    assert moved_out.output == str(tmp_path / "m1") and config_hash(moved_out) == config_hash(out)
    monkeypatch.chdir(tmp_path)
    parent = SimpleNamespace(id="abc123")
    assert (_identity(parent, make_config("int8-dynamic", {}), DataConfig(path="d.csv"))
            == _identity(parent, make_config("int8-dynamic", {}), typed_data("d.csv")))
    moved = cfg.data.model_copy(update={"path": "/other/y.csv"})  # a copy pointed elsewhere: no stale typed path
    assert content_hash(identity(moved)) == content_hash(moved.model_dump(mode="json"))


def typed_data(path: str) -> DataConfig:
    cfg = DataConfig(path="/nonexistent/" + path)
    cfg.__dict__["path"] = path  # as a config read where the file is not
    return cfg
