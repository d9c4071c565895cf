"""The public Python API gives what the CLI gives: the CLI calls the same functions."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

import supremum
from supremum.errors import UserError


def weights(path):
    return load_file(str(path / "model.safetensors"))


def test_api_matches_cli(csv_data, tmp_path):
    cfg = {"model": {"name": "tiny-bert"}, "data": {"path": str(csv_data)},
           "train": {"max_steps": 12, "lr": 3e-3, "batch_size": 8, "seed": 7, "threads": 1},
           "output": str(tmp_path / "api")}
    res = supremum.finetune(cfg)
    cli = json.loads(run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "12",
                             "--lr", "3e-3", "--batch-size", "8", "--seed", "7", "train.threads=1",
                             "--output", str(tmp_path / "cli"), "--json", check=True).stdout)
    assert res.metrics["dev_accuracy"] == cli["metrics"]["dev_accuracy"]
    assert res.metrics["steps"] == cli["metrics"]["steps"] == 12
    a, b = weights(res.artifact.path), weights(tmp_path / "cli")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # load: by path and by id, the saved weights
    for ref in (res.artifact.path, res.artifact.id[:8]):
        model, tok = supremum.load(ref)
        state = model.state_dict()
        assert all(torch.equal(state[k], a[k]) for k in a) and tok("great")["input_ids"]

    # evaluate: the same metrics as `supremum eval --json`
    m = supremum.evaluate(res.artifact, None, {"split": "test", "speed": False})
    m_cli = json.loads(run_cli("eval", res.artifact.id, "--split", "test", "--no-speed", "--json",
                               check=True).stdout)
    for key in ("accuracy", "macro_f1", "mcc", "examples", "confusion_matrix", "per_class"):
        assert m[key] == m_cli[key], key

    # compress: the same report and weights as `supremum compress`
    child = supremum.compress(res.artifact, {"method": "prune-magnitude", "sparsity": 0.5},
                              output=tmp_path / "api-pruned")
    run_cli("compress", str(res.artifact.path), "--method", "prune-magnitude", "sparsity=0.5",
            "--output", str(tmp_path / "cli-pruned"), check=True)
    c_cli = supremum.open_artifact(tmp_path / "cli-pruned")
    assert child.manifest.compression[-1].report == c_cli.manifest.compression[-1].report
    a, b = weights(child.path), weights(c_cli.path)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # frontier: the same answer as `supremum frontier --json`
    front = json.loads(json.dumps(supremum.frontier(metric="accuracy", cost="params"), default=str))
    assert front == json.loads(run_cli("frontier", "--metric", "accuracy", "--cost", "params", "--json",
                                       check=True).stdout)


def test_api_rejects_bad_values_with_the_cli_message(tmp_path):
    with pytest.raises(UserError) as e:
        supremum.evaluate("tiny-llama", str(tmp_path / "x.txt"), {"repeats": 2})
    assert str(e.value) == ("config: 'repeats': Input should be greater than or equal to 3 "
                            "(got 2; see `supremum eval --help`)")
    with pytest.raises(UserError, match="unknown compression method 'magic'"):
        supremum.compress(tmp_path, "magic")
    with pytest.raises(UserError, match="unknown key 'train.lrr'"):
        supremum.finetune({"data": {"path": "x.csv"}, "train": {"lrr": 1}})


CALLABLE = """
import supremum
import supremum.compress.stage, supremum.evaluate.quality, supremum.frontier.pick  # the subpackages
assert all(callable(getattr(supremum, n)) for n in ("load", "finetune", "compress", "evaluate", "frontier"))
try:
    supremum.frontier()
except Exception as e:
    print(type(e).__name__, e)
"""


def test_subpackages_named_like_api_functions_stay_callable(tmp_path):
    """`supremum.compress` is also a subpackage: once imported it must still call the API."""
    proc = subprocess.run([sys.executable, "-c", CALLABLE], capture_output=True, text=True, check=True,
                          env={**os.environ, "SUPREMUM_HOME": str(tmp_path)})
    assert proc.stdout.startswith("UserError"), proc.stdout + proc.stderr


def test_import_supremum_is_light():
    proc = subprocess.run([sys.executable, "-c", "import sys, supremum; print('torch' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_output_never_deletes_a_folder_that_is_not_an_artifact(csv_data, tmp_path):
    """--output over a user's folder: refused before training, every file left; an artifact
    (a re-run) or an empty folder is replaced as before."""
    from supremum.artifact import check_output

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("hi")
    cfg = {"model": {"name": "tiny-bert"}, "data": {"path": str(csv_data)},
           "train": {"max_steps": 2, "batch_size": 8, "threads": 1}, "output": str(mine)}
    with pytest.raises(UserError, match="is not a supremum artifact"):
        supremum.finetune(cfg)
    assert (mine / "notes.txt").read_text() == "hi" and len(list(mine.iterdir())) == 1
    assert not list(supremum.Store().runs())  # refused before a run was recorded

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError):
        check_output(tmp_path / "a-file")
    (tmp_path / "empty").mkdir()
    for ok in (tmp_path / "absent", tmp_path / "empty"):
        check_output(ok)
    first = supremum.finetune({**cfg, "output": str(tmp_path / "empty")})
    again = supremum.finetune({**cfg, "output": str(tmp_path / "empty")})  # replaces its own artifact
    assert again.artifact.id != first.artifact.id and again.artifact.path == first.artifact.path


def test_texts_that_fill_max_length_are_counted_and_said(csv_data, tmp_path):
    from supremum.data import load_data
    from supremum.models import load_model
    from supremum.tasks import CLASSIFICATION

    cfg = {"model": {"name": "tiny-bert"}, "data": {"path": str(csv_data), "max_length": 8},
           "train": {"max_steps": 1, "batch_size": 8, "threads": 1}, "output": str(tmp_path / "a")}
    res = supremum.finetune(cfg)
    data = load_data(supremum.DataConfig(path=str(csv_data)))
    _, tok = load_model("tiny-bert", CLASSIFICATION, label_names=data.label_names)
    by_hand = {s: sum(len(tok(t)["input_ids"]) >= 8 for t in data.texts(s)) for s in ("train", "dev")}
    assert res.data_info["filled_max_length"] == {"max_length": 8, **by_hand} and by_hand["train"] > 0
    roomy = supremum.finetune({**cfg, "data": {"path": str(csv_data), "max_length": 64},
                               "output": str(tmp_path / "b")})
    assert "filled_max_length" not in roomy.data_info
