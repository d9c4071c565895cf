import json

import pytest
from conftest import run_cli


@pytest.fixture
def art(csv_data, tmp_path):
    out = tmp_path / "parent"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "20", "--lr", "3e-3",
            "--batch-size", "8", "--output", str(out), "--json", check=True)
    return out


def test_compress_eval_sensitivity_end_to_end(art, tmp_path):
    q = tmp_path / "q"
    res = json.loads(run_cli("compress", str(art), "--method", "int8-dynamic", "--output", str(q), "--json",
                             check=True).stdout)
    assert res["artifact"] == str(q) and res["report"]["quantized_layers"] == 13
    human = run_cli("compress", str(art), "--method", "prune-ffn", "amount=0.5", "calibration_size=8",
                    check=True).stdout
    assert "full -> prune-ffn" in human and "neurons_after" in human

    run_cli("eval", str(art), "--repeats", "3", check=True)  # the parent measured: a comparison exists
    ev = json.loads(run_cli("eval", str(q), "--repeats", "3", "--json", check=True).stdout)
    assert "int8 GEMM" in ev["runtime"]["kernels"] and ev["runtime"]["isa"] is not None
    vs = ev["vs_parent"]
    assert vs["speedup_b1"] > 0 and "accuracy_delta_pt" in vs and "why_b1" in vs
    from supremum.artifact import open_artifact

    pm = next(m for m in open_artifact(art).metrics.values() if "cost" in m)  # the parent's eval
    lat = lambda m, b: m["cost"][f"latency_{b}"]["model_only"]["median_ms"]  # noqa: E731
    for b in ("b1", "b32"):  # ratios of the model-only medians, parent over child
        assert vs[f"speedup_{b}"] == pytest.approx(lat(pm, b) / lat(ev, b), rel=1e-12)
    text = run_cli("eval", str(q), "--repeats", "3", check=True).stdout
    assert "runs with:" in text and "vs parent" in text

    sens = run_cli("sensitivity", str(art), "--schemes", "int8,prune50", "--top", "3", check=True).stdout
    assert "baseline accuracy" in sens and "10 more" in sens
    shown = json.loads(run_cli("show", res["artifact_id"], check=True).stdout)
    assert shown["artifact"]["parents"]

    runs = json.loads(run_cli("runs", "--json", "--kind", "compress", check=True).stdout)
    assert len(runs) == 2 and all(r["status"] == "finished" for r in runs)


def test_every_method_config_names_the_module_that_runs_it():
    """Configs are registered torch-free (compress/configs.py) with the module implementing them;
    each module registers exactly the methods that name it, and the phases are as before."""
    import importlib

    from supremum.compress import STRUCTURAL, compressors
    from supremum.compress.registry import RUNS

    for name, c in compressors().items():
        importlib.import_module(c.module)
        assert RUNS[name].__module__ == c.module, name
    assert set(RUNS) == set(compressors())
    assert set(STRUCTURAL) == {"prune-heads", "prune-ffn", "drop-layers", "lowrank", "prune-iterative"}
    assert {n for n, c in compressors().items() if c.phase == "export"} == {"onnx", "onnx-int8-dynamic",
                                                                          "onnx-int8-static"}


def test_compress_help_lists_every_method():
    from supremum.compress import compressors

    out = run_cli("compress", "--help", check=True).stdout
    for name in compressors():
        assert name in out


@pytest.mark.parametrize("args, message", [
    (["--method", "int9"], "unknown compression method 'int9'"),
    (["--method", "int4-weight", "group=64"], "unknown key 'group'"),
    (["--method", "int4-weight", "group_size=48"], "'group_size'"),
    (["--method", "lowrank"], "set exactly one of rank or energy"),
    (["--method", "drop-layers", "num_layers=9"], "num_layers=9 but the model has 2"),
])
def test_compress_bad_input_is_one_line_exit_2(art, args, message):
    proc = run_cli("compress", str(art), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_compress_missing_artifact(tmp_path):
    proc = run_cli("compress", str(tmp_path / "nope"), "--method", "fp16")
    assert proc.returncode == 2 and "neither an artifact directory" in proc.stderr


@pytest.mark.slow  # a fine-tune and three compressions: ~40 s of CPU
def test_compress_data_takes_delimiter_and_drop_empty(art, tmp_path):
    """compress --data read other files only with the training data's settings: a comma file
    named .tsv, or one with an empty text, could not be used for calibration."""
    from conftest import sentiment_rows

    rows = sentiment_rows(40, 5)
    calib = tmp_path / "calib.tsv"  # comma-separated; line 4 has an empty text
    calib.write_text("text,label\n" + "".join(f'"{t},",{y}\n' if i != 2 else f",{y}\n"
                                                for i, (t, y) in enumerate(rows)), encoding="utf-8")
    args = ("compress", str(art), "--method", "prune-ffn", "amount=0.5", "calibration_size=8",
            "--data", str(calib))
    r = run_cli(*args, "--output", str(tmp_path / "a"))
    assert (r.returncode, r.stderr.splitlines()) == (2, [
        f"error: {calib}: the separator tab reads the header as one column ('text,label'), while ',' splits it "
        "and every row into 2 columns (text, label) (pass --delimiter ',')"])
    r = run_cli(*args, "--delimiter", ",", "--output", str(tmp_path / "b"))
    assert r.returncode == 2 and r.stderr.startswith(f"error: {calib}: line 4 has an empty text"), r.stderr
    r = run_cli(*args, "--delimiter", ",", "--drop-empty", "--output", str(tmp_path / "c"), "--json", check=True)
    assert f"data: dropped 1 row with an empty text from {calib} (line 4)" in r.stderr
    assert json.loads(r.stdout)["artifact"] == str(tmp_path / "c")
