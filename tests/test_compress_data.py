"""compress records the data it actually read (path, sha256, where it came from, its options)."""

import hashlib
import json

import pytest
from conftest import run_cli, sentiment_rows, write_csv


@pytest.fixture
def parent(csv_data, tmp_path):
    out = tmp_path / "parent"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "2", "--output", str(out),
            check=True)
    return out


def _step(art) -> dict:
    return json.loads((art / "manifest.json").read_text())["compression"][-1]


def test_compress_data_given_is_recorded_with_its_options(parent, csv_data, tmp_path):
    calib = tmp_path / "calib.csv"
    write_csv(calib, [*sentiment_rows(40, 5), ("", "pos")], sep=";")  # one empty text, dropped
    child = tmp_path / "child"
    run_cli("compress", str(parent), "--method", "onnx-int8-static", "calibration_size=8", "--data", str(calib),
            "--delimiter", ";", "--drop-empty", "--output", str(child), check=True)
    report = _step(child)["report"]
    assert report["data"] == {"path": str(calib), "sha256": hashlib.sha256(calib.read_bytes()).hexdigest(),
                              "from": "--data", "options": {"delimiter": ";", "drop_empty": True}}
    assert report["calibration"]["source"] == f"a seeded sample of the training split of {calib} (--data)"
    rows = json.loads(run_cli("runs", "--json", "--kind", "compress", check=True).stdout)
    assert [r["metrics"]["data"] for r in rows] == [report["data"]]  # the store row says the same


def test_compress_without_data_records_the_parents_training_data_and_no_data_when_unread(parent, csv_data,
                                                                                       tmp_path):
    child = tmp_path / "child"
    run_cli("compress", str(parent), "--method", "prune-ffn", "amount=0.5", "calibration_size=8", "--output",
            str(child), check=True)
    assert _step(child)["report"]["data"] == {
        "path": str(csv_data), "sha256": hashlib.sha256(csv_data.read_bytes()).hexdigest(),
        "from": "the parent's training data", "options": {}}
    plain = tmp_path / "plain"
    run_cli("compress", str(parent), "--method", "int8-dynamic", "--output", str(plain), check=True)
    assert "data" not in _step(plain)["report"]  # int8-dynamic reads no data


def test_compress_data_a_method_does_not_read_is_said_not_dropped(parent, csv_data, tmp_path):
    child = tmp_path / "child"
    p = run_cli("compress", str(parent), "--method", "int8-dynamic", "--data", str(csv_data), "--output",
                str(child), check=True)
    said = f"{csv_data} (--data): int8-dynamic reads no data"
    assert f"note: --data was not used: {said}" in p.stderr.splitlines()
    report = _step(child)["report"]
    assert report["data_unused"] == said and "data" not in report


def test_compress_data_that_does_not_exist_is_a_one_line_error(parent, tmp_path):
    """Even for a method that reads no data: a typo in --data must not pass unnoticed."""
    p = run_cli("compress", str(parent), "--method", "int8-dynamic", "--data", str(tmp_path / "nope.csv"),
                "--output", str(tmp_path / "c"))
    assert p.returncode == 2 and p.stderr.strip() == (
        f"error: --data {tmp_path / 'nope.csv'}: no such file or directory (pass the data for calibration, "
        "importance scores or recovery training, or leave --data out for the parent's training data)")
    assert not (tmp_path / "c").exists()
