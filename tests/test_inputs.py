"""Files as users bring them (tests/cases, copied from the shared faulty-input cases): byte-order
marks, repeated column names, numeric labels spelled two ways, records spanning lines, empty
texts, recipe shorthands and the instruction formats in circulation. Each test feeds the faulty
input and asserts the value read or the exact one-line error."""

import codecs
import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli, sentiment_rows

from supremum.config import DataConfig
from supremum.data import load_data
from supremum.data.tables import read_table
from supremum.errors import UserError

CASES = Path(__file__).parent / "cases"


def error(cfg: DataConfig, loader=load_data) -> str:
    with pytest.raises(UserError) as e:
        loader(cfg)
    return str(e.value)


def case(name: str) -> str:
    return str(CASES / name)


# ---- 9: a UTF-8 byte-order mark, in every format -------------------------------------------

def _labeled(tmp_path: Path, suffix: str) -> Path:
    rows = sentiment_rows(40)
    p = tmp_path / f"bom{suffix}"
    if suffix == ".jsonl":
        text = "\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows)
    elif suffix == ".json":
        text = json.dumps([{"text": t, "label": lab} for t, lab in rows], indent=1)
    else:
        sep = "\t" if suffix == ".tsv" else ","
        text = "\n".join([f"text{sep}label"] + [f"{t}{sep}{lab}" for t, lab in rows])
    p.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    return p


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_bom_is_read_as_utf8_in_every_table_format(tmp_path, suffix):
    data = load_data(DataConfig(path=str(_labeled(tmp_path, suffix))))
    assert data.info["columns"]["text"] == "text" and data.info["columns"]["label"] == "label"
    assert data.label_names == ["neg", "pos"] and sum(data.info["sizes"].values()) == 40
    assert not any(t.startswith("\ufeff") for s in ("train", "dev", "test") for t in data.texts(s))


def test_bom_shared_cases_and_lm_formats(tmp_path):
    from supremum.lm.data import is_lm_data, load_lm_data

    labeled = load_data(DataConfig(path=case("bom-labeled.jsonl")))
    assert labeled.label_names == ["neg", "pos"] and sum(labeled.info["sizes"].values()) == 60
    chats = DataConfig(path=case("bom-chats.jsonl"))
    assert is_lm_data(chats)
    data = load_lm_data(chats)
    assert data.kind == "instruction" and sum(data.info["sizes"].values()) == 40
    assert data.records["train"][0]["messages"][0] == {"role": "user", "content": "say yes or no 0"}
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(codecs.BOM_UTF8 + b"first line\nsecond line\n" * 20)
    assert load_lm_data(DataConfig(path=str(corpus))).records["train"][0].startswith("first line")


def test_utf16_file_is_named_as_such(tmp_path):
    p = tmp_path / "u16.csv"
    p.write_bytes("text,label\ngood,pos\n".encode("utf-16"))
    assert error(DataConfig(path=str(p))) == (f"{p}: the file is UTF-16 (it starts with a UTF-16 byte-order "
                                              "mark) (pass --encoding utf-16, or save it as UTF-8)")


# ---- 4: repeated column names --------------------------------------------------------------

def _column(path: str, index: int) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return {r[0]: r[index] for r in rows}


def test_repeated_label_column_is_refused_then_chosen_by_position():
    path = case("dup-label-columns.csv")
    assert error(DataConfig(path=path)) == (
        f"{path}: the header has 2 columns named 'label' (columns 2 and 3), so the label column is ambiguous "
        "(choose one by position counted from 1, e.g. --label-column 3, or rename the columns)")
    assert error(DataConfig(path=path, label_column="label")).startswith(f"{path}: the header has 2 columns")
    data = load_data(DataConfig(path=path, label_column="3"))
    want = _column(path, 2)  # the second 'label' column: the real one
    for split in ("train", "dev", "test"):
        got = [data.label_names[i] for i in data.labels(split)]
        assert got == [want[t] for t in data.texts(split)]
    assert data.info["columns"]["label"] == "label (column 3)"
    assert error(DataConfig(path=path, label_column="7")) == (
        f"{path}: no column 7; the file has 3 columns (text, label, label) "
        "(pass --label-column 1 to 3, or a name)")


def test_repeated_text_column_is_refused_then_chosen_by_position(tmp_path):
    path = case("dup-text-columns.csv")
    assert error(DataConfig(path=path)) == (
        f"{path}: the header has 2 columns named 'text' (columns 1 and 2), so the text column is ambiguous "
        "(choose one by position counted from 1, e.g. --text-column 2, or rename the columns)")
    data = load_data(DataConfig(path=path, text_column="2"))
    assert all(not t.startswith("title") for t in data.texts("train"))
    tsv = tmp_path / "d.tsv"  # TSV: the same rule
    tsv.write_text("text\ttext\tlabel\n" + "".join(f"t{i}\treview {t}\t{lab}\n"
                                                    for i, (t, lab) in enumerate(sentiment_rows(30))))
    assert "the header has 2 columns named 'text' (columns 1 and 2)" in error(DataConfig(path=str(tsv)))
    assert load_data(DataConfig(path=str(tsv), text_column="2")).texts("train")[0].startswith("review")


def test_a_tsv_written_with_quotes_is_read_with_them(tmp_path, capsys):
    """pandas' to_csv(sep="\t") quotes texts holding line breaks, tabs or quotes: read unquoted they
    fell apart into rows with empty labels. A TSV whose texts only contain quotes reads as before."""
    import pandas as pd

    rows = sentiment_rows(40)
    texts = [f'{t}\nsecond line "quoted"' if i % 4 == 0 else (f"{t}\twith a tab" if i % 4 == 1 else t)
             for i, (t, _) in enumerate(rows)]
    tsv = tmp_path / "multiline.tsv"
    pd.DataFrame({"text": texts, "label": [lab for _, lab in rows]}).to_csv(tsv, sep="\t", index=False)
    data = load_data(DataConfig(path=str(tsv)), whole=True)
    assert sorted(data.texts("all")) == sorted(texts)
    truth = dict(zip(texts, (lab for _, lab in rows), strict=True))
    assert [data.label_names[i] for i in data.labels("all")] == [truth[t] for t in data.texts("all")]
    assert f"data: {tsv}: a tab-separated file with quoted fields" in capsys.readouterr().err
    plain = tmp_path / "sst.tsv"  # SST-2's way: quotes inside unquoted texts, every row whole
    plain.write_text("sentence\tlabel\n" + "".join(f'"{t}" , he said\t{lab}\n' for t, lab in rows))
    data = load_data(DataConfig(path=str(plain)), whole=True)
    assert sorted(data.texts("all")) == sorted(f'"{t}" , he said' for t, _ in rows)
    assert "quoted fields" not in capsys.readouterr().err


def test_repeated_json_key_is_refused(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "good", "label": "pos"}\n\n{"text": "bad", "label": "neg", "label": "pos"}\n')
    assert error(DataConfig(path=str(p))) == (
        f"{p}: line 3 repeats the key 'label' in one record (keep one (JSON readers silently keep only the last))")


def test_repeated_column_cli_is_one_line_exit_2():
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", case("dup-label-columns.csv"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {case('dup-label-columns.csv')}: the header has 2 columns named 'label' (columns 2 and 3), so "
        "the label column is ambiguous (choose one by position counted from 1, e.g. --label-column 3, or "
        "rename the columns)"]


# ---- 7: labels written 1 and 1.0 -----------------------------------------------------------

def test_numeric_label_spellings_are_one_label(capsys):
    mixed = load_data(DataConfig(path=case("float-labels-mixed.jsonl")))
    assert mixed.label_names == ["0", "1"]
    assert mixed.info["labels_unified"] == {"0.0": "0", "1.0": "1"}
    assert "data: labels that are the same number are one label: read '0.0' as '0', '1.0' as '1'" in \
        capsys.readouterr().err
    ints = load_data(DataConfig(path=case("float-labels-ints.jsonl")), label_names=mixed.label_names)
    want = {json.loads(x)["text"]: str(json.loads(x)["label"])
            for x in Path(case("float-labels-ints.jsonl")).read_text().splitlines()}
    for split in ("train", "dev", "test"):
        assert [ints.label_names[i] for i in ints.labels(split)] == [want[t] for t in ints.texts(split)]


def test_consistent_float_labels_keep_their_spelling_and_match_ints(tmp_path):
    p = tmp_path / "floats.jsonl"
    p.write_text("".join(json.dumps({"text": t, "label": 1.0 if lab == "pos" else 0.0}) + "\n"
                         for t, lab in sentiment_rows(40)))
    floats = load_data(DataConfig(path=str(p)))
    assert floats.label_names == ["0.0", "1.0"] and "labels_unified" not in floats.info
    ints = load_data(DataConfig(path=case("float-labels-ints.jsonl")), label_names=floats.label_names)
    assert ints.info["labels_unified"] == {"0": "0.0", "1": "1.0"}
    # a JSON column of ints with a null stays ints (pandas would turn it into floats)
    gaps = tmp_path / "gaps.jsonl"
    gaps.write_text("".join(json.dumps({"text": t, "label": 1 if lab == "pos" else 0, "score": None if i else 3})
                            + "\n" for i, (t, lab) in enumerate(sentiment_rows(40))))
    assert load_data(DataConfig(path=str(gaps))).label_names == ["0", "1"]


@pytest.mark.slow
def test_model_trained_on_mixed_labels_evaluates_on_int_labels(tmp_path):
    art = tmp_path / "art"
    run_cli("finetune", "--model", "tiny-bert", "--data", case("float-labels-mixed.jsonl"), "--max-steps", "3",
            "--output", str(art), check=True)
    assert json.loads((art / "manifest.json").read_text())["label_names"] == ["0", "1"]
    proc = run_cli("eval", str(art), "--data", case("float-labels-ints.jsonl"), "--no-speed", "--json", check=True)
    m = json.loads(proc.stdout)  # a file that is not the training source is scored whole
    ints = [json.loads(x)["label"] for x in Path(case("float-labels-ints.jsonl")).read_text().splitlines()]
    assert m["examples"] == len(ints) == 30
    assert {k: c["support"] for k, c in m["per_class"].items()} == {"0": ints.count(0), "1": ints.count(1)}


# ---- 10: errors name the line of the file ----------------------------------------------------

def test_errors_name_file_lines_not_record_numbers(tmp_path):
    multi, crlf = case("multiline-empty-text.csv"), case("crlf-blank-empty-text.jsonl")
    hint = "remove those rows or fill them in, or pass --drop-empty (recipe: data.drop_empty: true) to drop them"
    assert error(DataConfig(path=multi)) == f"{multi}: line 24 has an empty text ({hint})"
    assert error(DataConfig(path=crlf)) == f"{crlf}: line 37 has an empty text ({hint})"
    wide = tmp_path / "wide.csv"
    wide.write_text('text,label\n"one\ntwo",pos\n\nthree,neg,extra\n')
    assert error(DataConfig(path=str(wide))) == (f"{wide}: line 5 has 3 fields, the header has 2; the separator "
                                                 "is ',', detected from the header line (quote fields "
                                                 'that contain the separator, e.g. "good, not great", or pass '
                                                 "--delimiter)")
    unclosed = tmp_path / "open.csv"
    unclosed.write_text('text,label\ngood,pos\n"bad\nfilm,neg\nok,pos\n')
    assert error(DataConfig(path=str(unclosed))) == (
        f"{unclosed}: line 3 opens a quote (\") that is never closed (close it, or double a quote inside a "
        'quoted field (""))')
    long = tmp_path / "long.csv"  # a text longer than the csv module's default field limit
    long.write_text("text,label\n" + "".join(f'"{"word " * 40_000}{i}",{lab}\n' for i, (_, lab) in
                                              enumerate(sentiment_rows(12))))
    assert len(load_data(DataConfig(path=str(long))).texts("train")[0]) > 200_000
    array = tmp_path / "a.json"
    array.write_text('[\n  {"text": "good", "label": "pos"},\n\n  "oops"\n]\n')
    assert error(DataConfig(path=str(array))) == (f"{array}: line 4 is not a JSON object (write "
                                                  '{"text": ..., "label": ...} per line)')
    broken = tmp_path / "b.json"
    broken.write_text('[\n  {"text": "good", "label": "pos"},\n  {"text": "bad" "label": "neg"}\n]\n')
    assert error(DataConfig(path=str(broken))).startswith(f"{broken}: line 3 is not valid JSON")


def test_lm_errors_name_file_lines(tmp_path):
    from supremum.lm.data import load_lm_data

    p = tmp_path / "texts.jsonl"
    p.write_text('{"text": "a b"}\r\n\r\n{"text": "c d"}\r\n\r\n{"text": "  "}\r\n')
    assert error(DataConfig(path=str(p)), load_lm_data) == (
        f"{p}: line 5 has an empty text (remove or fill in that record, or pass --drop-empty (recipe: "
        "data.drop_empty: true) to drop such records)")
    u2028 = tmp_path / "sep.jsonl"  # a line separator inside a JSON string is not a record break
    u2028.write_text('{"text": "first\u2028still first"}\n' * 20, encoding="utf-8")
    assert load_lm_data(DataConfig(path=str(u2028))).info["sizes"]["train"] == 16


# ---- 11: --drop-empty, single-class splits, unlabeled test files -----------------------------

def test_drop_empty_reports_count_and_lines(capsys):
    multi = case("multiline-empty-text.csv")
    data = load_data(DataConfig(path=multi, drop_empty=True))
    assert data.info["dropped_empty"] == {"train": {"rows": 1, "where": ["line 24"]}}
    assert sum(data.info["sizes"].values()) == 39  # 40 records, one dropped
    assert f"data: dropped 1 row with an empty text from {multi} (line 24)" in capsys.readouterr().err
    crlf = case("crlf-blank-empty-text.jsonl")
    evaluated = load_data(DataConfig(path=crlf, drop_empty=True), label_names=["neg", "pos"])
    assert evaluated.info["dropped_empty"] == {"train": {"rows": 1, "where": ["line 37"]}}


def test_drop_empty_for_lm_records(tmp_path, capsys):
    from supremum.lm.data import load_lm_data

    p = tmp_path / "chat.jsonl"
    rows = [{"prompt": f"q{i}", "response": "" if i in (3, 7) else f"a{i}"} for i in range(20)]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    assert "line 4 has an empty answer" in error(DataConfig(path=str(p)), load_lm_data)
    data = load_lm_data(DataConfig(path=str(p), drop_empty=True))
    assert data.info["dropped_empty"] == {"train": {"rows": 2, "where": ["line 4", "line 8"]}}
    assert sum(data.info["sizes"].values()) == 18
    assert f"data: dropped 2 records with an empty text from {p} (lines 4, 8)" in capsys.readouterr().err


def test_drop_empty_leaves_config_hashes_unchanged():
    from supremum.pipeline import PipelineConfig, stage_hashes
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import config_hash

    # values computed before data.drop_empty existed: runs cached then are found again
    # (as saved then: train.bf16 was a bool whose false every dump held)
    cfg = FinetuneConfig.model_validate({"model": {"name": "tiny-bert"}, "data": {"path": "x.csv"},
                                         "train": {"bf16": False}})
    assert config_hash(cfg) == "5ed5188a7749f38c"
    pipe = {"name": "p", "data": {"path": "x.csv"}, "train": {"bf16": False}, "stages": [
        {"id": "ft", "finetune": {"method": {"name": "lora", "dropout": 0.1}}},  # LoRA's default then
        {"id": "q", "from": "ft", "compress": {"method": "int8"}}]}
    assert stage_hashes(PipelineConfig.model_validate(pipe)) == {"ft": "e3e296762f06", "q": "19cd1f97fd4a"}
    on = FinetuneConfig.model_validate({"model": {"name": "tiny-bert"},
                                        "data": {"path": "x.csv", "drop_empty": True}})
    assert config_hash(on) != config_hash(cfg)


@pytest.mark.slow
def test_drop_empty_cli_flags(tmp_path):
    multi = case("multiline-empty-text.csv")
    refused = run_cli("finetune", "--model", "tiny-bert", "--data", multi, "--max-steps", "1")
    assert refused.returncode == 2 and "line 24 has an empty text" in refused.stderr
    art = tmp_path / "art"
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", multi, "--max-steps", "1", "--drop-empty",
                   "--output", str(art), check=True)
    assert f"data: dropped 1 row with an empty text from {multi} (line 24)" in proc.stderr
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["config"]["data"]["drop_empty"] is True
    assert manifest["data"]["dropped_empty"] == {"train": {"rows": 1, "where": ["line 24"]}}
    crlf = case("crlf-blank-empty-text.jsonl")
    assert run_cli("eval", str(art), "--data", crlf, "--no-speed", "--no-drop-empty").returncode == 2
    ev = run_cli("eval", str(art), "--data", crlf, "--no-speed", check=True)  # read as the training data was
    assert f"data: dropped 1 row with an empty text from {crlf} (line 37)" in ev.stderr


def test_single_class_split_and_unlabeled_test_are_said(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    rows = sentiment_rows(60)
    (d / "train.csv").write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    (d / "dev.csv").write_text("text,label\n" + "".join(f"{t},pos\n" for t, _ in rows[:5]))
    (d / "test.csv").write_text("text,label\n" + "".join(f"{t},-1\n" for t, _ in rows[5:10]))
    data = load_data(DataConfig(path=str(d)))
    err = capsys.readouterr().err
    assert ("data: test split has no labels (all empty or -1): not evaluated; a split is made from train "
            "instead") in err
    assert ("data: the dev split holds a single class ('pos'): macro-F1 and MCC are degenerate there "
            "(accuracy is the share of that class predicted)") in err
    assert len(data.info["notes"]) == 2
    whole = load_data(DataConfig(path=str(d / "dev.csv")), label_names=["neg", "pos"], whole=True)
    assert whole.info["notes"] == ["the scored file holds a single class ('pos'): macro-F1 and MCC are "
                                   "degenerate there (accuracy is the share of that class predicted)"]


# ---- 13: recipe shorthands -----------------------------------------------------------------

def test_recipe_shorthands_in_every_recipe_kind(tmp_path):
    from supremum.cli_config import Assembly
    from supremum.compare import CompareConfig
    from supremum.limit.curve import CurveConfig
    from supremum.pipeline import PipelineConfig, stage_hashes
    from supremum.recipe import build
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import config_hash

    short = build(FinetuneConfig, {"model": "tiny-llama", "method": "lora", "data": {"path": "x.txt"}})
    long = build(FinetuneConfig, {"model": {"name": "tiny-llama"}, "method": {"name": "lora"},
                                  "data": {"path": "x.txt"}})
    assert short == long and config_hash(short) == config_hash(long)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: tiny-llama\nmethod: lora\ndata: {path: x.txt}\n")
    cfg = Assembly(recipe).overrides(["method.r=16"]).build(FinetuneConfig, "supremum finetune --help")
    assert cfg.method.name == "lora" and cfg.method.r == 16 and cfg.model.name == "tiny-llama"
    stages = [{"id": "ft", "finetune": {"method": "lora"}},
              {"id": "q", "from": "ft", "compress": {"method": "int8"}}]
    pipe = PipelineConfig.model_validate({"name": "p", "model": "tiny-bert", "data": {"path": "x.csv"},
                                          "stages": stages})
    stages[0]["finetune"]["method"] = {"name": "lora"}
    spelled = PipelineConfig.model_validate({"name": "p", "model": {"name": "tiny-bert"},
                                             "data": {"path": "x.csv"}, "stages": stages})
    assert stage_hashes(pipe) == stage_hashes(spelled)
    comp = CompareConfig.model_validate({"name": "c", "model": "tiny-bert", "data": {"path": "x.csv"},
                                         "methods": [{"label": "a", "method": "lora"}, "full"]})
    assert comp.methods[0].method == {"name": "lora"} and comp.model.name == "tiny-bert"
    curve = CurveConfig.model_validate({"model": "tiny-bert", "data": {"path": "x.csv"}, "method": "bitfit"})
    assert curve.method == {"name": "bitfit"}


# ---- 15: instruction formats -----------------------------------------------------------------

def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_instruction_formats(tmp_path):
    from supremum.lm.data import is_lm_data, load_lm_data

    alpaca = _jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": "Translate", "input": f"hello {i}" if i % 2 else "", "output": f"hallo {i}"}
        for i in range(20)])
    cfg = DataConfig(path=str(alpaca))
    assert is_lm_data(cfg)
    data = load_lm_data(cfg)
    assert data.info["format"] == "alpaca"
    assert data.records["train"][0]["messages"] == [{"role": "user", "content": "Translate"},
                                                    {"role": "assistant", "content": "hallo 0"}]
    assert data.records["train"][1]["messages"][0] == {"role": "user", "content": "Translate\n\nhello 1"}
    share = _jsonl(tmp_path / "sharegpt.jsonl", [{"conversations": [
        {"from": "system", "value": "be brief"}, {"from": "human", "value": f"hi {i}"},
        {"from": "gpt", "value": f"yo {i}"}]} for i in range(20)])
    data = load_lm_data(DataConfig(path=str(share)))
    assert is_lm_data(DataConfig(path=str(share))) and data.info["format"] == "sharegpt"
    assert data.records["train"][0]["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi 0"},
        {"role": "assistant", "content": "yo 0"}]
    openai = _jsonl(tmp_path / "openai.jsonl", [{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": str(i)}]},
        {"role": "assistant", "content": "yo"}]} for i in range(20)])
    data = load_lm_data(DataConfig(path=str(openai)))
    assert data.info["format"] == "openai" and data.records["train"][3]["messages"][0]["content"] == "hi 3"
    bad_role = _jsonl(tmp_path / "role.jsonl", [{"conversations": [{"from": "bot", "value": "x"}]}])
    assert error(DataConfig(path=str(bad_role)), load_lm_data) == (
        f"{bad_role}: line 1: 'conversations' must be a list of {{from, value}} with from one of human, user, "
        "gpt, assistant, chatgpt, system (fix or remove that record)")


def test_unknown_record_shape_lists_the_accepted_ones(tmp_path):
    from supremum.lm.data import load_lm_data

    p = _jsonl(tmp_path / "qa.jsonl", [{"q": "x", "a": "y"}])
    assert error(DataConfig(path=str(p)), load_lm_data) == (
        f"{p}: line 1 has fields 'q', 'a', which is no record shape read here; accepted: "
        '{"messages": [{"role", "content"}, ...]} (OpenAI); {"conversations": [{"from", "value"}, ...]} '
        '(ShareGPT; from: human, gpt, system); {"instruction", "input", "output"} (Alpaca; input optional); '
        '{"prompt", "response"} (or prompt/completion, question/answer, input/output); {"text"} (plain text) '
        "(rename the fields, or pass --text-column for plain text)")
    proc = run_cli("finetune", "--model", "tiny-llama", "--task", "causal-lm", "--data", str(p))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_served_instruction_model_gets_its_prompt_format(tmp_path):
    import torch
    from fastapi.testclient import TestClient

    from supremum.artifact import load_artifact_model
    from supremum.lm.data import render_prompt
    from supremum.serve import ServeConfig
    from supremum.serve.app import create_app
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    data = _jsonl(tmp_path / "alpaca.jsonl", [{"instruction": f"add {i} and 1", "input": "", "output": str(i + 1)}
                                              for i in range(30)])
    cfg = FinetuneConfig.model_validate({"model": "tiny-llama", "data": {"path": str(data)},
                                         "train": {"max_steps": 2}, "output": str(tmp_path / "art")})
    art = finetune(cfg, progress=False).artifact
    assert art.manifest.data["prompt"] == {"records": "alpaca", "template": "role lines"}
    model, tok = load_artifact_model(art)

    def greedy(ids: list[int]) -> str:
        out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.eos_token_id)
        return tok.decode(out[0, len(ids):], skip_special_tokens=True)

    chat, raw = greedy(render_prompt(tok, "add 3 and 1")), greedy(tok("add 3 and 1")["input_ids"])
    with TestClient(create_app(art, ServeConfig())) as client:
        ask = {"prompt": "add 3 and 1", "max_new_tokens": 6, "temperature": 0}
        assert client.post("/v1/generate", json=ask).json()["text"] == chat
        assert client.post("/v1/generate", json={**ask, "raw": True}).json()["text"] == raw
    assert render_prompt(tok, "add 3 and 1") != tok("add 3 and 1")["input_ids"]


# ---- 17: real-world inputs --------------------------------------------------------------------

@pytest.mark.slow
def test_training_file_changed_after_training_refuses_splits(tmp_path):
    from conftest import write_csv

    data = tmp_path / "train.csv"
    write_csv(data, sentiment_rows(60))
    art = tmp_path / "art"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "2", "--output", str(art),
            check=True)
    art_id = json.loads((art / "manifest.json").read_text())["id"]
    write_csv(data, sentiment_rows(60) + sentiment_rows(20, seed=1))  # rows appended after training
    line = (f"{data} has changed since artifact {art_id} was trained on it (sha256 differs), so its "
            "dev/test split would not be the held-out one (restore the file, or score it whole with --split all)")
    for split in (["--split", "test"], ["--split", "dev"], []):
        proc = run_cli("eval", str(art), "--data", str(data), "--no-speed", *split)
        assert proc.returncode == 2 and line in proc.stderr, proc.stderr
    assert run_cli("eval", str(art), "--no-speed").returncode == 2  # the recorded path, by default
    whole = run_cli("eval", str(art), "--data", str(data), "--no-speed", "--split", "all", "--json", check=True)
    assert json.loads(whole.stdout)["examples"] == 80


def test_labels_differing_by_whitespace_are_one_label(tmp_path, capsys):
    rows = sentiment_rows(40)
    spaced = [(t, (lab + " " if lab == "pos" else " " + lab) if i % 2 else lab) for i, (t, lab) in enumerate(rows)]
    p = tmp_path / "spaced.csv"
    p.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in spaced))
    assert {lab for _, lab in spaced} == {"pos", "pos ", "neg", " neg"}
    data = load_data(DataConfig(path=str(p)))
    assert data.label_names == ["neg", "pos"]
    truth = dict(rows)
    for split in ("train", "dev", "test"):
        assert [data.label_names[i] for i in data.labels(split)] == [truth[t] for t in data.texts(split)]
    assert ("data: labels that differ only by surrounding whitespace are one label: read ' neg' as 'neg', "
            "'pos ' as 'pos'") in capsys.readouterr().err
    evaluated = load_data(DataConfig(path=str(p)), label_names=["neg", "pos"], whole=True)
    assert [evaluated.label_names[i] for i in evaluated.labels("all")] == [lab for _, lab in rows]


def test_labels_differing_only_in_case_are_one_label(tmp_path, capsys):
    rows = sentiment_rows(60)
    spellings = {"pos": ["positive", "Positive", "positive", "POSITIVE"], "neg": ["negative", "Negative"]}
    cased = [(t, spellings[lab][i % len(spellings[lab])]) for i, (t, lab) in enumerate(rows)]
    p = tmp_path / "cased.csv"
    p.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in cased))
    data = load_data(DataConfig(path=str(p)))
    assert data.label_names == ["negative", "positive"]  # each group's most frequent spelling
    truth = {t: "positive" if lab == "pos" else "negative" for t, lab in rows}
    for split in ("train", "dev", "test"):
        assert [data.label_names[i] for i in data.labels(split)] == [truth[t] for t in data.texts(split)]
    assert ("data: labels that differ only in case are one label: read 'Negative' as 'negative', 'POSITIVE' as "
            "'positive', 'Positive' as 'positive' (if they are different classes") in capsys.readouterr().err
    # against a model's labels: the model's spelling; a model with case-distinct labels keeps them apart
    scored = load_data(DataConfig(path=str(p)), label_names=["Negative", "Positive"], whole=True)
    assert [scored.label_names[i] for i in scored.labels("all")] == [truth[t].capitalize() for t, _ in rows]
    apart = load_data(DataConfig(path=str(p)), label_names=["negative", "Negative", "positive"], whole=True)
    assert [apart.label_names[i] for i in apart.labels("all")] == [
        lab if lab.lower() == "negative" else "positive" for _, lab in cased]


def test_a_search_or_ceiling_says_each_data_note_once(capsys):
    from supremum.data import say_once

    excel = case("excel-semicolon.csv")
    note = f"data: {excel}: the header is semicolon-separated, read as such"
    with say_once():
        loads = [load_data(DataConfig(path=excel), whole=True) for _ in range(3)]
    assert capsys.readouterr().err.count(note) == 1
    assert all(d.info["notes"] == loads[0].info["notes"] for d in loads)  # still recorded by every load
    load_data(DataConfig(path=excel), whole=True)
    load_data(DataConfig(path=excel), whole=True)
    assert capsys.readouterr().err.count(note) == 2  # outside the block every load says it


def test_semicolon_csv_from_excel_is_read(tmp_path, capsys):
    excel = case("excel-semicolon.csv")  # BOM, text;label, CRLF, commas and ; inside texts
    data = load_data(DataConfig(path=excel), whole=True)
    assert f"data: {excel}: the header is semicolon-separated, read as such" in capsys.readouterr().err
    assert data.info["columns"]["text"] == "text" and data.info["columns"]["label"] == "label"
    records = [x.split(";") for x in Path(excel).read_text(encoding="utf-8-sig").splitlines()[1:]]
    assert data.texts("all")[0] == 'superb, great brilliant 0; said "me"'  # a quoted field keeps its ; and quotes
    assert data.texts("all")[1:3] == [records[1][0], records[2][0]]
    assert sum("," in t for t in data.texts("all")) == 14
    assert [data.label_names[i] for i in data.labels("all")] == [r[-1] for r in records]
    assert load_data(DataConfig(path=excel, delimiter=";"), whole=True).texts("all") == data.texts("all")
    tsv = tmp_path / "pipes.csv"
    tsv.write_text("text|label\nfine, really|pos\nawful; truly|neg\n")
    assert read_table(tsv).values.tolist() == [["fine, really", "pos"], ["awful; truly", "neg"]]
    assert DataConfig(path="x", delimiter="\\t").delimiter == "\t"


SEPARATOR_ERROR = ("a field separator is one character (not a quote or a line break) or one of the names \\t, "
                   "tab, comma, semicolon, pipe")


@pytest.mark.parametrize(("given", "sep"), [("\\t", "\t"), ("tab", "\t"), ("TAB", "\t"), ("\t", "\t"),
                                            ("comma", ","), ("semicolon", ";"), ("pipe", "|"), ("|", "|")])
def test_every_delimiter_key_accepts_the_same_spellings(given, sep):
    from supremum.studies.active import LabelConfig

    assert DataConfig(path="x", delimiter=given).delimiter == sep
    assert LabelConfig(pool="p.csv", labels=["a", "b"], delimiter=given).delimiter == sep


@pytest.mark.parametrize("given", [";;", "\\n", '"', "\n", ""])
def test_every_delimiter_key_refuses_the_same_way(given):
    from pydantic import ValidationError

    from supremum.studies.active import LabelConfig

    for make in (lambda: DataConfig(path="x", delimiter=given),
                 lambda: LabelConfig(pool="p.csv", labels=["a", "b"], delimiter=given)):
        with pytest.raises(ValidationError) as e:
            make()
        errors = [(x["loc"], x["msg"]) for x in e.value.errors()]
        assert errors == [(("delimiter",), "Value error, " + SEPARATOR_ERROR)]


def test_bad_delimiter_is_one_line_on_every_command(tmp_path):
    """label used to end in csv's TypeError (exit 1): its pool delimiter had no validation."""
    pool = tmp_path / "pool.psv"
    pool.write_text("id\ttext\n1\tgood film\n2\tbad film\n3\tfine film\n", encoding="utf-8")
    for command in (["label", str(tmp_path / "w"), "--pool", str(pool), "--labels", "neg,pos"],
                    ["finetune", "--model", "tiny-bert", "--data", str(pool)]):
        r = run_cli(*command, "--delimiter", ";;")
        assert (r.returncode, r.stderr.splitlines()) == (2, [
            f"error: --delimiter ;;: {SEPARATOR_ERROR} (see `supremum {command[0]} --help`)"])
    for typed in ("\\t", "tab"):  # the shell passes \t as two characters
        out = tmp_path / f"w-{typed}"
        r = run_cli("label", str(out), "--pool", str(pool), "--labels", "neg,pos", "--delimiter", typed,
                    check=True)
        batch = list(csv.DictReader((out / "batch-001.csv").open(encoding="utf-8")))
        assert sorted(row["text"] for row in batch) == ["bad film", "fine film", "good film"], r.stderr


def test_too_wide_row_with_a_given_delimiter_says_to_check_it(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text("text;label\ngood;pos\nbad; really;neg\n")
    assert error(DataConfig(path=str(wide), delimiter=";")) == (
        f"{wide}: line 3 has 3 fields, the header has 2; the separator is ';', given with --delimiter (quote "
        "fields that contain the separator, e.g. \"good; not great\", or check the separator given with "
        "--delimiter (';'))")
    tsv = tmp_path / "wide.tsv"
    tsv.write_text("text,label\ngood,pos\nbad, really,neg\n")
    assert error(DataConfig(path=str(tsv), delimiter=",")) == (  # a .tsv read with a comma is a CSV
        f"{tsv}: line 3 has 3 fields, the header has 2; the separator is ',', given with --delimiter (quote "
        "fields that contain the separator, e.g. \"good, not great\", or check the separator given with "
        "--delimiter (','))")
    tsv.write_text("text\tlabel\ngood\tpos\nbad\t really\tneg\n")
    assert error(DataConfig(path=str(tsv), delimiter="\t")) == (  # its own tab: no quoting
        f"{tsv}: line 3 has 3 fields, the header has 2; the separator is tab, given with --delimiter (a text "
        "must not contain the separator, or check the separator given with --delimiter ('\\t'))")


def test_delimiter_leaves_config_hashes_unchanged():
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import config_hash

    cfg = FinetuneConfig.model_validate({"model": {"name": "tiny-bert"}, "data": {"path": "x.csv"},
                                         "train": {"bf16": False}})
    assert config_hash(cfg) == "5ed5188a7749f38c"  # the hash before data.delimiter existed
    semi = FinetuneConfig.model_validate({"model": {"name": "tiny-bert"}, "train": {"bf16": False},
                                          "data": {"path": "x.csv", "delimiter": ";"}})
    assert config_hash(semi) != config_hash(cfg)


def test_empty_or_missing_labels_are_named_by_line_and_dropped(tmp_path, capsys):
    rows = sentiment_rows(40)
    csv_path = tmp_path / "gaps.csv"
    csv_path.write_text("text,label\n" + "".join(
        f"{t},{'' if i == 4 else '  ' if i == 9 else lab}\n" for i, (t, lab) in enumerate(rows)))
    hint = "remove those rows or fill them in, or pass --drop-empty (recipe: data.drop_empty: true) to drop them"
    assert error(DataConfig(path=str(csv_path))) == (
        f"{csv_path}: 2 rows have an empty label (lines 6, 11) ({hint})")
    jsonl = tmp_path / "gaps.jsonl"
    records = [{"text": t} if i == 2 else {"text": t, "label": None if i == 30 else lab}
               for i, (t, lab) in enumerate(rows)]
    jsonl.write_text("\n".join(json.dumps(r) for r in records))
    assert error(DataConfig(path=str(jsonl))) == f"{jsonl}: 2 rows have an empty label (lines 3, 31) ({hint})"
    capsys.readouterr()
    data = load_data(DataConfig(path=str(jsonl), drop_empty=True))
    assert data.info["dropped_empty_label"] == {"train": {"rows": 2, "where": ["line 3", "line 31"]}}
    assert sum(data.info["sizes"].values()) == 38 and data.label_names == ["neg", "pos"]
    assert f"data: dropped 2 rows with an empty label from {jsonl} (lines 3, 31)" in capsys.readouterr().err
    scored = load_data(DataConfig(path=str(csv_path), drop_empty=True), label_names=["neg", "pos"], whole=True)
    kept = [lab for i, (_, lab) in enumerate(rows) if i not in (4, 9)]
    assert [scored.label_names[i] for i in scored.labels("all")] == kept
    one = tmp_path / "one.csv"
    one.write_text("text,label\n" + "".join(f"{t},{'' if i == 7 else lab}\n" for i, (t, lab) in enumerate(rows)))
    assert error(DataConfig(path=str(one)), lambda c: load_data(c, label_names=["neg", "pos"])) == (
        f"{one}: line 9 has an empty label ({hint})")


def test_windows_1252_file_is_pointed_at_cp1252(tmp_path):
    rows = b"".join(b"good film %d,pos\r\nbad film %d,neg\r\n" % (i, i) for i in range(10))
    p = tmp_path / "excel.csv"  # Excel's "CSV" in the West: curly quotes 0x93/0x94, en dash 0x96
    p.write_bytes(b"text,label\r\n" + rows + b"\x93great\x94 \x96 caf\xe9,pos\r\n")
    assert error(DataConfig(path=str(p))) == (f"{p}: line 22 has bytes that are not valid utf-8 (it decodes as "
                                              "Windows-1252 (Excel's Western encoding): pass --encoding cp1252)")
    assert error(DataConfig(path=str(p), encoding="latin-1")) == (
        f"{p}: line 22 has byte 0x93, which latin-1 reads as a control character (Windows-1252 reads it as a "
        "quote, dash or similar) (pass --encoding cp1252)")
    data = load_data(DataConfig(path=str(p), encoding="cp1252"), whole=True)
    assert data.texts("all")[-1] == "\u201cgreat\u201d \u2013 caf\u00e9"
    undefined = tmp_path / "undefined.csv"  # 0x81 is no Windows-1252 character
    undefined.write_bytes(b"text,label\n" + rows + b"x\x81y,pos\n")
    assert error(DataConfig(path=str(undefined))).endswith(
        "(pass --encoding with the file's encoding, e.g. --encoding cp1252 (Windows) or latin-1)")
    assert load_data(DataConfig(path=str(undefined), encoding="latin-1"), whole=True).texts("all")[-1] == "x\x81y"


# ---- a wrong but valid --delimiter ------------------------------------------------------------

@pytest.mark.parametrize(("given", "shown"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_wrong_delimiter_on_a_comma_csv_names_the_right_one(given, shown):
    """It used to read one column named 'text,label' (or fail on the first row holding the
    separator), far from the cause."""
    comma = case("comma-quoted.csv")  # texts hold , ; tab | and quotes
    assert error(DataConfig(path=comma, delimiter=given)) == (
        f"{comma}: the separator {shown} reads the header as one column ('text,label'), while ',' splits "
        "it and every row into 2 columns (text, label) (pass --delimiter ',')")


def test_wrong_delimiter_on_a_semicolon_csv_and_a_comma_tsv(tmp_path):
    excel = case("excel-semicolon.csv")
    assert error(DataConfig(path=excel, delimiter=",")) == (
        f"{excel}: the separator ',' reads the header as one column ('text;label'), while ';' splits it "
        "and every row into 2 columns (text, label) (pass --delimiter ';')")
    tsv = tmp_path / "comma.tsv"  # a CSV named .tsv: its tab finds one column
    tsv.write_text(Path(case("comma-quoted.csv")).read_text(encoding="utf-8"), encoding="utf-8")
    assert error(DataConfig(path=str(tsv))) == (
        f"{tsv}: the separator tab reads the header as one column ('text,label'), while ',' splits it "
        "and every row into 2 columns (text, label) (pass --delimiter ',')")
    tabs = tmp_path / "tabs.csv"  # the hint is typed as a shell passes it
    tabs.write_text("text\tlabel\ngood, fine\tpos\nbad\tneg\n", encoding="utf-8")
    assert error(DataConfig(path=str(tabs), delimiter=",")) == (
        f"{tabs}: the separator ',' reads the header as one column ('text\\tlabel'), while tab splits it "
        "and every row into 2 columns (text, label) (pass --delimiter '\\t')")
    # the fix the message gives reads it as a CSV, quoted commas kept
    as_csv = read_table(Path(case("comma-quoted.csv"))).values.tolist()
    assert read_table(tsv, delimiter=",").values.tolist() == as_csv


def test_quoted_delimiters_inside_texts_read_right():
    comma = case("comma-quoted.csv")
    expected = [["superb, great film", "pos"], ["dull; slow\tand long", "neg"], ['said "fine", then left', "neg"],
                ["great | brilliant", "pos"], ["awful", "neg"], ["good, good, good", "pos"]]
    assert read_table(Path(comma), delimiter=",").values.tolist() == expected
    assert read_table(Path(comma)).values.tolist() == expected  # detected


def test_one_column_file_is_not_mistaken_for_a_wrong_delimiter(tmp_path):
    """Only a header another separator splits, with every row split the same way, is refused:
    a pool of texts holding commas stays one column, and so does a file whose rows disagree."""
    pool = tmp_path / "pool.csv"
    pool.write_text('text\n"good, fine"\nbad, really, bad\n', encoding="utf-8")
    assert read_table(pool, delimiter=";").values.tolist() == [["good, fine"], ["bad, really, bad"]]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\ngood, fine,pos\n", encoding="utf-8")
    assert read_table(ragged, delimiter=";").values.tolist() == [["good, fine,pos"]]


def test_wrong_delimiter_is_one_line_exit_2_on_the_cli():
    comma = case("comma-quoted.csv")
    r = run_cli("finetune", "--model", "tiny-bert", "--data", comma, "--delimiter", ";", "--max-steps", "1")
    assert (r.returncode, r.stderr.splitlines()) == (2, [
        f"error: {comma}: the separator ';' reads the header as one column ('text,label'), while ',' splits "
        "it and every row into 2 columns (text, label) (pass --delimiter ',')"])


def _label_refuses(tmp_path, body: str) -> tuple:
    """(the pool file, the one stripped stderr line) of `label` refusing a pool.csv holding `body`."""
    pool = tmp_path / "pool.csv"
    pool.write_text(body, encoding="utf-8")
    p = run_cli("label", str(tmp_path / "loop"), "--pool", str(pool), "--labels", "neg,pos")
    assert p.returncode == 2, p.stderr
    return pool, p.stderr.strip()


def test_a_headerless_pool_whose_first_text_holds_a_comma_is_refused(tmp_path):
    """Read as a header of two columns, it would cut every later text at its comma without a word."""
    from supremum.studies.active import LabelConfig, read_pool

    pool, stderr = _label_refuses(tmp_path, "good, not great\nfine film\nok, fine\n")
    assert stderr == (
        f"error: {pool}: no column is named as texts are ('good', ' not great') and line 2 lacks fields the "
        "first line has: is the first line a text, not a header? (add a header line 'text' (quote texts that "
        "hold the separator) or save one text per line as .txt; if the first line is a header, pass "
        "--text-column NAME)")
    assert not (tmp_path / "loop").exists()
    named = tmp_path / "named.csv"  # a real header: columns named as texts are, blank cells allowed
    named.write_text("review,source\ngood film,\nbad film,web\n", encoding="utf-8")
    assert read_pool(LabelConfig(pool=str(named), labels=["neg", "pos"])).texts == ["good film", "bad film"]


def test_one_column_pool_with_commas_says_the_separator_and_the_fix(tmp_path):
    """`label` on a one-column .csv whose texts hold commas: the error names the separator read with
    and how it was chosen, and the fix (quoting, or a separator no text contains); that fix reads it."""
    pool, stderr = _label_refuses(tmp_path, "text\ngood, not great\nfine film\n")
    assert stderr == (
        f"error: {pool}: line 2 has 2 fields, the header has 1; the separator is ',', the default: the header "
        "line holds none of , ; tab | (a one-column file: quote each text that contains ',', e.g. \"good, not "
        "great\", or pass --delimiter with a separator no text contains, e.g. --delimiter tab)")
    from supremum.studies.active import LabelConfig, read_pool

    assert read_pool(LabelConfig(pool=str(pool), labels=["neg", "pos"], delimiter="tab")).texts == [
        "good, not great", "fine film"]
    tsv = tmp_path / "pool.tsv"
    tsv.write_text("text\tlabel\ngood\tpos\tmore\n", encoding="utf-8")
    assert error(DataConfig(path=str(tsv))) == (f"{tsv}: line 2 has 3 fields, the header has 2; the separator is "
                                                "tab, as for every .tsv file (a text must not contain a tab)")


# ---- binary tables and padded header names (a new-user tryout) ------------------------------

def test_a_binary_table_is_named_with_the_way_to_convert_it(tmp_path):
    import pandas as pd

    parquet = tmp_path / "reviews.parquet"
    pd.DataFrame({"text": ["good", "bad"], "label": ["pos", "neg"]}).to_parquet(parquet)
    assert error(DataConfig(path=str(parquet))) == (
        f"{parquet}: a Parquet file; supremum reads tables as CSV, TSV, JSON Lines or JSON "
        "(pandas.read_parquet(path).to_json('data.jsonl', orient='records', lines=True))")
    renamed = tmp_path / "reviews.csv"  # found by its magic bytes once it does not decode
    renamed.write_bytes(parquet.read_bytes())
    assert error(DataConfig(path=str(renamed))).startswith(f"{renamed}: a Parquet file;")
    pickled = tmp_path / "t.pkl"
    pickled.write_bytes(b"\x80\x04")
    assert "never loaded" in error(DataConfig(path=str(pickled)))
    text = tmp_path / "par1.csv"  # text that starts like Parquet is still text
    text.write_text("PAR1 text,label\n" + "".join(f"{t},{y}\n" for t, y in sentiment_rows(20)))
    assert load_data(DataConfig(path=str(text), text_column="PAR1 text")).label_names == ["neg", "pos"]


def test_header_names_with_spaces_around_them_are_found(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_text("ID ,Review Text, Sentiment \n" + "".join(f"{i},{t},{y}\n" for i, (t, y) in
                                                         enumerate(sentiment_rows(30))))
    data = load_data(DataConfig(path=str(p), text_column="Review Text"))
    assert data.label_names == ["neg", "pos"]  # ' Sentiment ' detected as the label column
    named = load_data(DataConfig(path=str(p), text_column="Review Text", label_column="Sentiment"))
    assert named.labels("train") == data.labels("train")


def test_an_unknown_split_names_the_splits_and_all(tmp_path):
    from supremum.config import DataConfig
    from supremum.errors import UserError
    from supremum.preprocessing import eval_split

    cfg = DataConfig(path=str(tmp_path / "any.csv"))
    with pytest.raises(UserError) as e:
        eval_split(None, cfg, "validation")
    assert str(e.value) == "--split 'validation' is not a split (use train, dev, test, or all (the whole file))"
    assert eval_split(None, cfg, "all") == "all" and eval_split(None, cfg, "test") == "test"
