"""The manifest's typed side: `derive` writes a child exactly as the writers it replaced did, and the
accessors read old-format manifests (hand-written here, as older versions stored them)."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from supremum import __version__
from supremum.artifact import MANIFEST, METRICS, derive, open_artifact, sha256_file
from supremum.evaluate.calibrate import METHOD, _write
from supremum.fsutil import atomic_dir, write_json

DATA_CFG = {"path": "/data/sst2", "text_column": None, "label_column": None, "dev_fraction": 0.1,
            "max_length": 128}
FINETUNED = {  # a fine-tuned classifier's manifest, keys in the order save_artifact writes them
    "format": "supremum-artifact", "format_version": 1, "id": "aaaaaaaaaaaa", "task": "text-classification",
    "label_names": ["neg", "pos"], "base_model": "tiny-bert", "model_type": "bert", "storage": "full",
    "backend": "pytorch", "transforms": [], "parents": [],
    "config": {"task": "auto", "model": {"name": "tiny-bert"}, "data": DATA_CFG, "method": {"name": "full"}},
    "created": "2026-01-01T00:00:00+00:00", "tool_version": "0.1.0", "run_id": "r0",
    "data": {"source": "/data/sst2", "sha256": "ab" * 32, "sizes": {"train": 200}},
    "method": "full",
}
OLD_MINIMAL = {  # an old artifact: no backend, transforms, run_id, method or data keys
    "format": "supremum-artifact", "id": "bbbbbbbbbbbb", "task": "text-classification", "label_names": ["a", "b"],
    "base_model": "tiny-bert", "config": {},
}
CALIBRATED = {**FINETUNED, "id": "cccccccccccc", "parents": ["aaaaaaaaaaaa"], "parent_path": "/x/parent",
              "compression": [{"method": "prune-heads", "config": {"amount": 0.25}, "report": {"heads": 3}},
                              {"method": METHOD, "config": {"data": "/d", "split": "dev"}, "report": {}}],
              "temperature": 1.7, "calibration": {"temperature": 1.7}}


def _artifact(tmp_path: Path, manifest: dict, name="parent") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"weights")
    (d / "config.json").write_text("{}")
    (d / "members").mkdir()
    (d / "members" / "w").write_text("member")  # a nested directory travels too
    (d / METRICS).write_text('{"dev": {}}')
    (d / ".hidden").write_text("x")
    m = {**manifest, "files": {p.name: sha256_file(p) for p in sorted(d.iterdir())
                               if p.is_file() and p.name not in (METRICS, ".hidden")}}
    write_json(d / MANIFEST, m)
    return d


def _legacy_write(parent, art_id, run_id, record, out, created):
    """calibrate._write as it was before `derive` (verbatim but for the fixed `created`)."""
    m = parent.manifest.as_dict()
    m.update({"id": art_id, "parents": [parent.id], "parent_path": str(parent.path.resolve()),
              "run_id": run_id, "created": created,
              "tool_version": __version__, "temperature": record["temperature"], "calibration": record,
              "compression": [*(c for c in m.get("compression", []) if c.get("method") != METHOD),
                              {"method": METHOD, "config": {"data": record["data"], "split": "dev"},
                               "report": record}]})
    m.setdefault("method", parent.manifest.method)
    with atomic_dir(out) as tmp:
        shutil.copytree(parent.path, tmp, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*", MANIFEST, METRICS))
        m["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        write_json(tmp / MANIFEST, m)


@pytest.mark.parametrize("manifest", [FINETUNED, OLD_MINIMAL, CALIBRATED], ids=["finetuned", "old", "refit"])
def test_calibrated_manifest_is_byte_for_byte_the_old_writers(tmp_path, manifest):
    parent = open_artifact(_artifact(tmp_path, manifest))
    record = {"temperature": 1.25, "method": "temperature scaling", "data": "/d/x.csv", "split": "dev",
              "examples": 40, "before": {"nll": 0.7}, "after": {"nll": 0.6}, "at_bound": None}
    child = _write(parent, "dddddddddddd", "r1", record, tmp_path / "child")
    _legacy_write(parent, "dddddddddddd", "r1", record, tmp_path / "legacy", child.manifest.created)
    new, old = (tmp_path / "child" / MANIFEST).read_bytes(), (tmp_path / "legacy" / MANIFEST).read_bytes()
    assert new == old
    assert datetime.fromisoformat(child.manifest.created) <= datetime.now(UTC)
    assert sorted(p.name for p in (tmp_path / "child").rglob("*")) == ["config.json", MANIFEST, "members",
                                                                       "model.safetensors", "w"]
    steps = [c.method for c in child.manifest.compression]
    assert steps == (["prune-heads", METHOD] if manifest is CALIBRATED else [METHOD])


def test_derive_keeps_parent_order_appends_new_keys_and_refuses_a_wrong_type(tmp_path):
    parent = open_artifact(_artifact(tmp_path, OLD_MINIMAL))
    child = derive(parent, tmp_path / "child", artifact_id="eeeeeeeeeeee", run_id="r2", temperature=2.0,
                   method=None)
    keys = list(json.loads((tmp_path / "child" / MANIFEST).read_text()))
    assert keys == ["format", "id", "task", "label_names", "base_model", "config", "files", "parents",
                    "parent_path", "run_id", "created", "tool_version", "temperature", "method"]
    assert child.manifest.parents == [parent.id] and child.manifest.parent_path == str(parent.path.resolve())
    assert child.manifest.files == parent.manifest.files and child.id == "eeeeeeeeeeee"
    with pytest.raises(ValueError, match="temperature"):
        derive(parent, tmp_path / "bad", artifact_id="f" * 12, run_id="r3", temperature="hot")
    assert not (tmp_path / "bad").exists()  # nothing half-written


def _m(**keys):
    from supremum.artifact import Manifest

    return Manifest.model_validate({**OLD_MINIMAL, "files": {}, **keys})


def test_trained_data_and_its_path():
    assert _m(config=FINETUNED["config"]).trained_data == DATA_CFG
    assert _m(config=FINETUNED["config"]).trained_data_path == "/data/sst2"
    assert _m().trained_data is None and _m().trained_data_path is None  # old: no config.data
    assert _m(config={"data": None}).trained_data is None  # an ensemble of imported models stores None
    assert _m(config={"data": {"text_column": "t"}}).trained_data_path is None


def test_method_config():
    assert _m(config=FINETUNED["config"]).method_config == {"name": "full"}
    lora = {"name": "lora", "r": 8, "merge": False}
    assert _m(config={"method": lora}).method_config == lora
    with pytest.raises(KeyError, match="method"):
        _ = _m().method_config


def test_data_sha256():
    assert _m(data=FINETUNED["data"]).data_sha256 == "ab" * 32
    assert _m().data_sha256 is None  # older artifacts recorded no data
    assert _m(data={"source": "/d", "files": {}}).data_sha256 is None  # a directory: no digest


def test_instruction_tuned():
    assert _m(data={"kind": "instruction", "format": "jsonl"}).instruction_tuned is True
    assert _m(data={"kind": "text", "prompt": {"template": "chatml"}}).instruction_tuned is True
    assert _m(data={"kind": "text", "prompt": None}).instruction_tuned is False
    assert _m().instruction_tuned is False


def test_gguf_quant_and_lora():
    plain = _m(gguf={"quant": "q8_0", "gguf_mb": 0.03, "tensor_types": "llama.cpp (F32/Q8_0 tensors)"})
    assert plain.gguf_quant == "q8_0" and plain.gguf_lora is False
    adapter = _m(gguf={"quant": "source", "lora": {"tensors": 24}})
    assert adapter.gguf_quant == "source" and adapter.gguf_lora is True
    assert _m().gguf_quant is None and _m().gguf_lora is False  # not a GGUF artifact


def test_accessors_write_nothing_back(tmp_path):
    path = _artifact(tmp_path, FINETUNED)
    before = (path / MANIFEST).read_bytes()
    art = open_artifact(path)
    reads = (art.manifest.trained_data_path, art.manifest.data_sha256, art.manifest.method_config,
             art.manifest.instruction_tuned, art.manifest.gguf_quant, art.manifest.gguf_lora)
    assert reads == ("/data/sst2", "ab" * 32, {"name": "full"}, False, None, False)
    assert json.dumps(art.manifest.as_dict(), indent=2) + "\n" == before.decode()


FIT = {"temperature": 1.23456, "method": "temperature scaling", "data": "/d/reviews.csv", "split": "dev",
       "examples": 1234, "before": {"nll": 0.71234, "ece": 0.1234, "adaptive_ece": 0.11, "brier": 0.25123},
       "after": {"nll": 0.61234, "ece": 0.0456, "adaptive_ece": 0.04, "brier": 0.21123}, "at_bound": None}


def _printed_calibrate(tmp_path, record) -> str:
    from supremum import cli_render

    child = _write(open_artifact(_artifact(tmp_path, FINETUNED)), "dddddddddddd", "r1", record, tmp_path / "c")
    with cli_render.out.capture() as cap:
        cli_render.print_calibrate(child)
    return cap.get()


def test_print_calibrate_reads_the_fit(tmp_path):
    assert _printed_calibrate(tmp_path, FIT).splitlines() == [
        f"artifact dddddddddddd: {tmp_path / 'c'}  (full>temperature, parent aaaaaaaaaaaa)",
        "temperature 1.2346 fitted on 1,234 dev examples of reviews.csv: NLL 0.7123 -> 0.6123, ECE 12.34% -> "
        "4.56%, Brier 0.2512 -> 0.2112; predictions unchanged"]


def test_print_calibrate_notes_a_bound_and_a_refit(tmp_path):
    lines = _printed_calibrate(tmp_path, {**FIT, "at_bound": "T reached the upper search bound 100",
                                          "replaces_temperature": 2.5}).splitlines()
    assert lines[2:] == ["note: T reached the upper search bound 100",
                         "note: a refit from the uncalibrated logits; it replaces the parent's T = 2.5000 (the "
                         "'before' numbers are the uncalibrated model's)"]


def test_temperature_fit_reads_old_records():
    fit = _m(calibration=FIT).temperature_fit
    assert (fit.temperature, fit.examples, fit.split, fit.data) == (1.23456, 1234, "dev", "/d/reviews.csv")
    assert (fit.before.nll, fit.after.ece, fit.at_bound, fit.replaces_temperature) == (0.71234, 0.0456, None, None)
    assert _m().temperature_fit is None  # not calibrated
    assert _m(calibration={**FIT, "replaces_temperature": 2.5}).temperature_fit.replaces_temperature == 2.5
