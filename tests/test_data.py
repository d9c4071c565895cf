import json

import pytest
from conftest import sentiment_rows, write_csv

from supremum.config import DataConfig
from supremum.data import load_data
from supremum.errors import UserError


def test_csv_autodetect_and_stratified_seeded_split(csv_data):
    a = load_data(DataConfig(path=str(csv_data)))
    b = load_data(DataConfig(path=str(csv_data)))
    assert a.info["columns"] == {"text": "text", "label": "label", "auto_detected": ["text", "label"]}
    assert a.label_names == ["neg", "pos"]
    assert a.info["sizes"] == {"train": 192, "dev": 24, "test": 24}
    assert a.texts("test") == b.texts("test")  # seeded
    assert set(a.texts("train")).isdisjoint(a.texts("test"))
    frac = sum(a.labels("train")) / 192
    assert abs(sum(a.labels("test")) / 24 - frac) < 0.1  # stratified
    assert "stratified" in a.info["splits_made"]["dev"]


def test_a_text_column_guessed_by_length_is_said_to_be_a_guess(tmp_path):
    """No usual text name: the longest column is taken, and the record and console say it was guessed."""
    from supremum.cli_render import data_line

    p = tmp_path / "d.csv"
    write_csv(p, [(f"id{i}", t, lab) for i, (t, lab) in enumerate(sentiment_rows(60))], ("key", "words", "label"))
    data = load_data(DataConfig(path=str(p)))
    assert data.info["columns"]["text"] == "words"
    assert data.info["columns"]["guessed"] == ["text"]
    assert "text column 'words' (guessed: the longest texts" in data_line(data.info)
    assert "label column 'label' (auto)" in data_line(data.info)
    named = load_data(DataConfig(path=str(p), text_column="words"))
    assert "guessed" not in named.info["columns"] and named.info["columns"]["auto_detected"] == ["label"]
    assert "text column 'words', label column 'label' (auto)" in data_line(named.info)


def test_directory_with_named_splits_and_integer_labels(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    rows = [(t, "1" if lab == "pos" else "0") for t, lab in sentiment_rows(50)]
    write_csv(d / "train.tsv", rows, ("sentence", "label"), "\t")
    write_csv(d / "dev.tsv", rows[:10], ("sentence", "label"), "\t")
    data = load_data(DataConfig(path=str(d)))
    assert data.label_names == ["0", "1"]
    assert data.info["sizes"]["dev"] == 10 and "test" in data.info["splits_made"]
    assert data.info["duplicates"]["train_overlap_dev"] == 10


def test_jsonl_and_string_labels_and_dedup(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = sentiment_rows(60)
    rows.append(("  " + rows[0][0].upper().replace(" ", "  "), rows[0][1]))
    p.write_text("\n".join(json.dumps({"review": t, "sentiment": lab}) for t, lab in rows))
    data = load_data(DataConfig(path=str(p)))
    assert data.info["columns"]["text"] == "review" and data.info["columns"]["label"] == "sentiment"
    total_dups = sum(data.info["duplicates"].values())
    assert total_dups >= 1  # the normalized duplicate is reported
    dedup = load_data(DataConfig(path=str(p), dedup=True))
    assert sum(dedup.info["sizes"].values()) == sum(data.info["sizes"].values()) - 1


def test_datasets_save_to_disk_directory(tmp_path):
    import datasets

    rows = sentiment_rows(40)
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [r[0] for r in rows], "label": [r[1] for r in rows]}),
        "validation": datasets.Dataset.from_dict({"text": ["a good film"], "label": ["pos"]}),
    })
    ds.save_to_disk(str(tmp_path / "hf"))
    data = load_data(DataConfig(path=str(tmp_path / "hf")))
    assert data.info["sizes"]["dev"] == 1 and data.label_names == ["neg", "pos"]


def err(cfg: DataConfig) -> str:
    with pytest.raises(UserError) as e:
        load_data(cfg)
    return str(e.value)


def test_error_missing_file(tmp_path):
    msg = err(DataConfig(path=str(tmp_path / "nope.csv")))
    assert "nope.csv: no such file" in msg and "--data" in msg


def test_error_misspelled_column(csv_data):
    msg = err(DataConfig(path=str(csv_data), label_column="lable"))
    assert "no label column 'lable'" in msg and "did you mean 'label'" in msg


def test_plain_text_file_is_refused_as_unlabelled_not_as_a_missing_column(tmp_path):
    (tmp_path / "corpus.txt").write_text("a good movie\na bad movie\n")
    assert err(DataConfig(path=str(tmp_path / "corpus.txt"))).startswith(
        f"{tmp_path / 'corpus.txt'}: plain text has no labels; this command needs labelled examples")
    (tmp_path / "table.txt").write_text("text\tlabel\n" + "".join(f"movie {i}\t{i % 2}\n" for i in range(40)))
    assert load_data(DataConfig(path=str(tmp_path / "table.txt"))).info["sizes"]["train"] > 0  # a table named .txt


def test_error_empty_file_and_header_only(tmp_path):
    (tmp_path / "e.csv").write_text("")
    assert "the file is empty" in err(DataConfig(path=str(tmp_path / "e.csv")))
    (tmp_path / "h.csv").write_text("text,label\n")
    assert "no rows" in err(DataConfig(path=str(tmp_path / "h.csv")))


def test_error_label_only_in_dev(split_dir):
    write_csv(split_dir / "dev.tsv", [("a film", "pos"), ("meh film", "neutral")], ("sentence", "label"), "\t")
    msg = err(DataConfig(path=str(split_dir)))
    assert "label 'neutral' occurs in dev (1 rows) but never in train" in msg and "dev.tsv" in msg


def test_error_not_utf8_names_line(tmp_path):
    p = tmp_path / "latin.csv"
    rows = b"".join(b"good film %d,pos\nbad film %d,neg\n" % (i, i) for i in range(10))
    p.write_bytes(b"text,label\n" + rows + b"caf\xe9 film,neg\n")
    msg = err(DataConfig(path=str(p)))
    assert "line 22" in msg and "--encoding" in msg
    ok = load_data(DataConfig(path=str(p), encoding="latin-1"))
    assert sum(ok.info["sizes"].values()) == 21


def test_error_too_few_rows_to_split(tmp_path):
    p = write_csv(tmp_path / "x.csv", [("good", "pos"), ("bad", "neg"), ("ok", "pos")])
    assert "only 3 rows, too few to split" in err(DataConfig(path=str(p)))


def test_error_empty_text_row(tmp_path):
    p = write_csv(tmp_path / "x.csv", [("good", "pos"), ("", "neg"), ("bad", "neg")])
    msg = err(DataConfig(path=str(p)))
    assert "line 3 has an empty text" in msg


def test_error_bad_jsonl_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n{broken\n')
    assert "line 2 is not valid JSON" in err(DataConfig(path=str(p)))


def test_error_single_class(tmp_path):
    p = write_csv(tmp_path / "x.csv", [(f"film {i}", "pos") for i in range(20)])
    assert "only one label" in err(DataConfig(path=str(p)))


def test_duplicate_report_counts_the_train_limit_rows_used(tmp_path):
    """Duplicates and dev overlap that lie beyond data.train_limit are not trained on: not reported."""
    from supremum.data.splits import normalize

    d = tmp_path / "d"
    d.mkdir()
    unique = [(f"review number {i} of the film", "pos" if i % 2 else "neg") for i in range(40)]
    write_csv(d / "train.csv", unique + [("the same words again", "pos")] * 20)
    write_csv(d / "dev.csv", unique[:10] + [("a dev only review", "neg")])
    write_csv(d / "test.csv", [("a test only review", "neg"), ("another test review", "pos")])
    full = load_data(DataConfig(path=str(d)))
    assert full.info["duplicates"] == {"duplicates_in_train": 19, "duplicates_in_dev": 0, "duplicates_in_test": 0,
                                       "train_overlap_dev": 10, "train_overlap_test": 0}
    limited = load_data(DataConfig(path=str(d), train_limit=12))
    used = [normalize(t) for t in limited.texts("train")]
    dev = [normalize(t) for t in limited.texts("dev")]
    expected = {"duplicates_in_train": len(used) - len(set(used)), "duplicates_in_dev": 0, "duplicates_in_test": 0,
                "train_overlap_dev": sum(t in set(used) for t in dev), "train_overlap_test": 0}
    assert limited.info["duplicates"] == expected
    assert expected["duplicates_in_train"] < 19 and expected["train_overlap_dev"] < 10  # the case is one
