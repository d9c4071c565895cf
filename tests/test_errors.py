"""Error analysis: confusion matrix, confident errors and accuracy by slice against hand
computations; slice membership on fixed strings; --slice-column end to end; the report section."""

import json
import math

import numpy as np
import pytest
from conftest import run_cli, sentiment_rows, write_csv

from supremum.evaluate import errors

NAMES = ["neg", "pos"]
TEXTS = ["not good at all", "great", "I don't like it", "fine film really", "bad", "ok again"]
LABELS = [0, 1, 0, 1, 0, 1]
# predicted: pos (wrong, 0.9), pos, neg, neg (wrong, 0.6), neg, pos
PROBS = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.95, 0.05], [0.45, 0.55]])
COLUMN = ("source", ["a", "b", "a", "b", "a", " "])


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [centre - half, centre + half]


def test_confusion_confident_errors_and_slices_equal_hand_computations():
    res = errors.analysis(TEXTS, LABELS, PROBS, NAMES, column=COLUMN, top=5)
    assert res["confusion"]["matrix"] == [[2, 1], [1, 2]]  # rows true neg/pos, columns predicted
    assert res["confusion"]["labels"] == NAMES
    assert (res["errors"], res["examples"]) == (2, 6)
    assert [(e["index"], e["label"], e["predicted"], e["confidence"]) for e in res["confident_errors"]] == [
        (0, "neg", "pos", 0.9), (3, "pos", "neg", 0.6)]
    got = {(s["slice"], s["value"]): (s["examples"], s["correct"]) for s in res["slices"]}
    # word counts 4,1,4,3,1,2: quartile cut points ("higher") 2, 3, 4
    assert got == {("length", "1-2 words"): (3, 3), ("length", "3 words"): (1, 0), ("length", "4 words"): (2, 1),
                   ("negation", "has negation"): (2, 1), ("negation", "no negation"): (4, 3),
                   ("source", "(empty)"): (1, 1), ("source", "a"): (3, 2), ("source", "b"): (2, 1)}
    for s in res["slices"]:
        assert s["accuracy"] == s["correct"] / s["examples"]
        assert s["ci"] == pytest.approx(wilson_by_hand(s["correct"], s["examples"]), abs=1e-9)
    assert [s["value"] for s in res["slices"] if s["slice"] == "length"] == ["1-2 words", "3 words", "4 words"]
    assert errors.analysis(TEXTS, LABELS, PROBS, NAMES, top=1)["confident_errors"][0]["index"] == 0


@pytest.mark.parametrize("text, negated", [
    ("I don't like it", True), ("it isn’t", True), ("Not bad", True), ("nothing works", True),
    ("no.", True), ("NEITHER of them", True), ("I cannot", True), ("without a doubt", True),
    ("note the knot", False), ("snot canon", False), ("nowhere", True), ("a fine film", False)])
def test_negation_membership(text, negated):
    assert errors.has_negation(text) is negated


def test_length_buckets_cut_word_counts_at_quartiles():
    counts = [1, 2, 3, 4, 5, 6, 7, 8]  # "higher" quartiles: 3, 5, 7
    assert errors.length_buckets(counts) == ["1-3 words"] * 3 + ["4-5 words"] * 2 + ["6-7 words"] * 2 + ["8 words"]
    assert errors.length_buckets([5, 5, 5]) == ["5 words"] * 3


def wordpiece():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[UNK]", "[PAD]", "the", "film", "##s", "good", "un", "##real"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def test_out_of_vocabulary_share_counts_split_and_unknown_words():
    tok = wordpiece()
    # the, good: one token; films (film ##s), unreal (un ##real): split; ok: [UNK]; "!" is no word
    assert errors.oov_share(tok, "the films good unreal ok!") == pytest.approx(3 / 5)
    assert errors.oov_share(tok, "the good film") == 0.0
    assert errors.oov_share(tok, "!!!") is None
    assert [errors.oov_bucket(x) for x in (0.0, 0.05, 0.1, 0.2, 0.6)] == ["0%", "0-10%", "0-10%", "10-25%", ">25%"]
    res = errors.analysis(["the good film", "the films good unreal ok!", "!!!"], [0, 1, 1],
                          np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), NAMES, tok)
    oov = {s["value"]: (s["examples"], s["correct"]) for s in res["slices"]
           if s["slice"] == "out-of-vocabulary share"}
    assert oov == {"0%": (1, 1), ">25%": (1, 0)}  # "!!!" has no words: not in this slice


def test_predictions_jsonl_holds_every_example(tmp_path):
    path = errors.write_predictions(tmp_path / "p" / "run.jsonl", TEXTS, LABELS, PROBS, NAMES, COLUMN)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["index"], r["label"], r["predicted"], r["source"]) for r in rows][:2] == [
        (0, "neg", "pos", "a"), (1, "pos", "pos", "b")]
    assert rows[3]["probabilities"] == {"neg": 0.6, "pos": 0.4}
    assert len(rows) == 6 and not list(path.parent.glob(".*"))  # no temporary left


def test_suspects_of_a_ceiling_on_the_same_data(tmp_path):
    from supremum.frontier.error_analysis import suspects
    from supremum.limit.label_noise import write_suspects

    data = tmp_path / "d.csv"
    found = {"suspects": [2, 0], "suggested": [1, 0], "confidence": [0.9, 0.8], "given_confidence": [0.1, 0.2]}
    path = str(write_suspects(tmp_path / "suspects-test.csv", found, ["a b", "c", "d e"], [0, 1, 0], NAMES))
    m = {"data": str(data), "split": "test",
         "label_noise": {"rate": 0.1, "split": "test", "suspects_path": path,
                         "splits": {"test": {"suspects_path": path}}}}
    got = suspects(str(data), "test", [("ceiling", "x", m)])
    assert (got["count"], got["split"], got["rows"][0]["text"], got["rows"][0]["suggested_label"]) == (
        2, "test", "d e", "pos")
    assert suspects(str(tmp_path / "other.csv"), "test", [("ceiling", "x", m)]) is None


def test_slice_column_end_to_end_and_the_report_section(tmp_path):
    """One tiny fine-tune; eval with --slice-column on a file with an extra column (values equal a
    count from the per-example predictions); a missing column is one line and exit 2; the report
    shows the section with the confident errors' coloured words."""
    from supremum.frontier.report import write_report

    train = write_csv(tmp_path / "train.csv", sentiment_rows(120))
    art = tmp_path / "art"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(train), "--max-steps", "10", "--lr", "3e-3",
            "--output", str(art), check=True)
    # every text twice with both labels: errors are certain, whatever the model learned
    rows = [(t, y, src) for i, (t, _) in enumerate(sentiment_rows(20, 5))
            for y, src in (("pos", "web" if i % 2 else "mail"), ("neg", "mail"))]
    data = write_csv(tmp_path / "new.csv", rows, ("text", "label", "source"))
    proc = run_cli("eval", str(art), "--data", str(data), "--slice-column", "source", "--repeats", "3",
                   "--confident-errors", "3", "--json", check=True)
    m = json.loads(proc.stdout)["error_analysis"]
    preds = [json.loads(x) for x in open(m["predictions"], encoding="utf-8")]
    assert len(preds) == 40 and m["examples"] == 40 and m["errors"] >= 20
    for value in ("mail", "web"):
        mine = [p for p in preds if p["source"] == value]
        row = next(s for s in m["slices"] if s["slice"] == "source" and s["value"] == value)
        assert (row["examples"], row["correct"]) == (len(mine), sum(p["label"] == p["predicted"] for p in mine))
    assert row["examples"] == 10  # web: the pos copy of every odd text
    assert len(m["confident_errors"]) == 3
    conf = [max(p["probabilities"].values()) for p in preds if p["label"] != p["predicted"]]
    assert m["confident_errors"][0]["confidence"] == pytest.approx(max(conf))

    bad = run_cli("eval", str(art), "--data", str(data), "--slice-column", "sourse", "--no-speed")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        f"error: {data}: no slice column 'sourse'; columns are: text, label, source (did you mean 'source'? "
        "pass --slice-column with one of them)")

    page = write_report(tmp_path / "report.html").read_text()
    assert "Error analysis of" in page and "Accuracy by slice" in page and "Suspected label errors" not in page
    assert page.count('<p>predicted <b>') == 3 and "background:rgba(" in page.split("Most confident errors")[1]
    assert "<td>source</td><td>web</td><td>10</td>" in page

    by_position = run_cli("eval", str(art), "--data", str(data), "--slice-column", "3", "--no-speed", "--json",
                          check=True)
    slices = json.loads(by_position.stdout)["error_analysis"]["slices"]
    assert {s["slice"] for s in slices if s["value"] in ("mail", "web")} == {"source"}  # named by its header


def test_no_section_without_a_classifier_error_analysis():
    from test_report import demo_store

    from supremum.frontier.report import build, markdown, render_html

    rep = build(demo_store())  # evaluations recorded without an error analysis
    assert rep["error_analysis"] is None
    assert "Error analysis" not in render_html(rep) and "Error analysis" not in markdown(rep)


def test_new_eval_keys_leave_the_recorded_config_as_it_was():
    from supremum.config import EvalConfig

    assert not {"slice_column", "confident_errors"} & set(EvalConfig().model_dump())
    assert EvalConfig(slice_column="source", confident_errors=2).model_dump()["slice_column"] == "source"
