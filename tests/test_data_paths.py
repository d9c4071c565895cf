"""A relative data path is recorded absolute, so commands run later from another directory find it."""

import json
import os
import subprocess
import sys

from conftest import sentiment_rows, write_csv

from supremum.studies.active import LabelConfig


def _cli(cwd, *args):
    p = subprocess.run([sys.executable, "-m", "supremum", *args], capture_output=True, text=True, cwd=cwd,
                       env={**os.environ, "SUPREMUM_HOME": str(cwd.parent / "home")})
    assert p.returncode == 0, p.stderr
    return p


def test_finetune_with_relative_data_then_eval_and_compress_from_elsewhere(tmp_path):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    write_csv(here / "semi.csv", sentiment_rows(120))
    res = json.loads(_cli(here, "finetune", "--model", "tiny-bert", "--data", "semi.csv", "--max-steps", "2",
                          "--json").stdout)
    manifest = json.loads((here.parent / "home" / "artifacts" / res["artifact_id"] / "manifest.json").read_text())
    assert manifest["config"]["data"]["path"] == str(here / "semi.csv")
    ev = json.loads(_cli(elsewhere, "eval", res["artifact_id"], "--no-speed", "--json").stdout)
    assert ev["data"] == str(here / "semi.csv") and ev["examples"] == 12
    child = json.loads(_cli(elsewhere, "compress", res["artifact_id"], "--method", "prune-ffn", "amount=0.5",
                            "calibration_size=8", "--json").stdout)
    assert child["parents"] == [res["artifact_id"]]


def test_label_pool_and_eval_data_are_kept_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pool.csv").write_text("text\na\n")
    cfg = LabelConfig(pool="pool.csv", labels=["a", "b"], eval_data="missing.csv")
    assert cfg.pool == str(tmp_path / "pool.csv") and cfg.eval_data == "missing.csv"  # a missing file: as typed
