"""Cross-validation folds as a data seam (data.cv_folds / data.cv_fold), out-of-fold probabilities
and the label-noise stage of `supremum ceiling` (issue 19, part 3)."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
from conftest import NEG, POS, run_cli, sentiment_rows, write_csv

from supremum.config import DataConfig
from supremum.data import CV_HELDOUT, TRAIN_ROW, load_data
from supremum.errors import UserError
from supremum.store import Store
from supremum.studies.oof import label_noise_stage, out_of_fold_probs
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import config_hash, finetune

FLIP = {"pos": "neg", "neg": "pos"}


def _three_classes(path, n=90, seed=0):
    rng = random.Random(seed)
    words = {"pos": POS, "neg": NEG, "mid": ["okay", "average", "so-so"]}
    labels = ["pos"] * (n // 2) + ["neg"] * (n // 3) + ["mid"] * (n - n // 2 - n // 3)  # 45 / 30 / 15
    rng.shuffle(labels)
    rows = [(f"{' '.join(rng.choices(words[lab], k=3))} {i}", lab) for i, lab in enumerate(labels)]
    return write_csv(path, rows)


def test_folds_partition_train_stratified_and_deterministic(tmp_path):
    path = str(_three_classes(tmp_path / "d.csv"))
    full = load_data(DataConfig(path=path, train_limit=60)).splits["train"]
    k, held_rows = 4, []
    for fold in range(k):
        cfg = DataConfig(path=path, train_limit=60, cv_folds=k, cv_fold=fold)
        d = load_data(cfg)
        held, train = d.splits[CV_HELDOUT], d.splits["train"]
        rows = held[TRAIN_ROW].tolist()
        held_rows += rows
        # the held-out rows are those train rows, in train order, and absent from the training data
        assert held["text"].tolist() == full["text"].iloc[rows].tolist()
        assert held["label"].tolist() == full["label"].iloc[rows].tolist()
        assert set(train["text"]) == set(full["text"]) - set(held["text"]) and len(train) + len(held) == 60
        # stratified: each class's share of the fold is its share of train, to within one row
        for c, total in enumerate(np.bincount(full["label"], minlength=3)):
            assert abs((held["label"] == c).sum() - total / k) < 1
        assert d.info["cv"] == {"folds": 4, "fold": fold, "seed": 0, "heldout": len(held), "of": 60}
        assert load_data(cfg).splits[CV_HELDOUT].equals(held)  # deterministic
        # a fixed label map (scoring an artifact) holds out the same rows
        fixed = load_data(cfg, label_names=d.label_names).splits[CV_HELDOUT]
        assert fixed[TRAIN_ROW].tolist() == rows
    assert sorted(held_rows) == list(range(60))  # the folds partition train
    other = load_data(DataConfig(path=path, train_limit=60, cv_folds=k, cv_fold=0, split_seed=1))
    assert other.splits[CV_HELDOUT][TRAIN_ROW].tolist() != load_data(
        DataConfig(path=path, train_limit=60, cv_folds=k, cv_fold=0)).splits[CV_HELDOUT][TRAIN_ROW].tolist()


def test_fold_keys_leave_unset_hashes_alone_and_name_each_fold(tmp_path):
    raw = {"model": "tiny-bert", "data": {"path": "x.csv"}, "train": {"max_steps": 3}}
    plain = FinetuneConfig.model_validate(raw)
    unset = FinetuneConfig.model_validate({**raw, "data": {"path": "x.csv", "cv_folds": None, "cv_fold": None}})
    assert "cv_folds" not in plain.data.model_dump() and "cv_fold" not in plain.model_dump(mode="json")["data"]
    assert config_hash(plain) == config_hash(unset)
    folds = [FinetuneConfig.model_validate({**raw, "data": {"path": "x.csv", "cv_folds": 3, "cv_fold": i}})
             for i in range(3)]
    assert len({config_hash(plain), *map(config_hash, folds)}) == 4
    assert FinetuneConfig.model_validate(folds[1].model_dump()) == folds[1]  # a dump round-trips


def test_bad_fold_settings_are_one_line_errors(tmp_path, csv_data):
    p = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "data.cv_fold=1")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: command line: data.cv_folds and data.cv_fold go together: set both "
        "(train without fold cv_fold of cv_folds) or neither (see `supremum finetune --help`)"]
    with pytest.raises(ValueError, match=r"data.cv_fold=3 is not a fold of cv_folds=3 \(folds are 0..2\)"):
        DataConfig(path="x.csv", cv_folds=3, cv_fold=3)
    with pytest.raises(UserError, match=r"cv_folds=5 needs at least 5 training examples; there are 4 \(use fewer"):
        load_data(DataConfig(path=str(csv_data), train_limit=4, cv_folds=5, cv_fold=0))  # folds after the limit
    text = tmp_path / "corpus.txt"
    text.write_text("some words of a corpus\n" * 50)
    from supremum.lm.data import load_lm_data

    with pytest.raises(UserError, match="data.cv_folds/cv_fold apply to classification data only"):
        load_lm_data(DataConfig(path=str(text), cv_folds=3, cv_fold=0))  # never trains on a held-out fold
    lm = FinetuneConfig.model_validate({"model": "tiny-llama", "data": {"path": str(text)}})
    with pytest.raises(UserError, match="label noise does not apply to a causal language model"):
        out_of_fold_probs(lm, 3, Store(tmp_path / "h"))
    with pytest.raises(UserError, match="at least 2 folds; got 1"):
        out_of_fold_probs(FinetuneConfig.model_validate({"data": {"path": str(csv_data)}}), 1, Store(tmp_path))


def _noisy_splits(tmp_path, n_train=200, share=0.1):
    rng = np.random.default_rng(0)
    flipped = {}
    d = tmp_path / "data"
    d.mkdir()
    for split, n, seed in (("train", n_train, 1), ("dev", 40, 2), ("test", 60, 3)):
        rows = sentiment_rows(n, seed)
        flip = np.sort(rng.choice(n, round(share * n), replace=False)) if split != "dev" else np.array([], int)
        rows = [(t, FLIP[lab] if i in set(flip) else lab) for i, (t, lab) in enumerate(rows)]
        write_csv(d / f"{split}.csv", rows)
        flipped[split] = flip
    return d, flipped


def _suspect_rows(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_label_noise_stage_finds_planted_flips(tmp_path):
    from supremum.limit.label_noise import flag_quality

    data, flipped = _noisy_splits(tmp_path)
    base = FinetuneConfig.model_validate({"model": "tiny-bert", "data": {"path": str(data), "max_length": 32},
                                          "train": {"max_steps": 120, "batch_size": 8, "lr": 3e-3,
                                                    "eval_every": 120}})
    store = Store(tmp_path / "home")
    best = finetune(base, store=store, progress=False)
    events = []
    res = label_noise_stage(base, best.artifact, 3, tmp_path / "out", store, resamples=50, on_event=events.append)
    assert not list((tmp_path / "home").glob(".oof-*"))  # the fold models are gone
    assert sum(e.startswith("label noise: fold") for e in events) == 3
    assert set(res["splits"]) == {"train", "dev", "test"} and res["folds"] == 3 and len(res["fold_seconds"]) == 3
    # 20 of 200 train labels and 6 of 60 test labels flipped (10%); measured here: every flip found,
    # nothing else flagged (precision = recall = 1, rates 0.100 / 0.100 / dev 0.0)
    for split, n in (("train", 200), ("test", 60)):
        r = res["splits"][split]
        assert r["examples"] == n and abs(r["rate"] - 0.10) <= 0.03, r
        assert r["ci"][0] <= 0.10 <= r["ci"][1], r
        head, rows = _suspect_rows(r["suspects_path"])
        assert head == ["row", "text", "given_label", "suggested_label", "confidence", "given_label_confidence"]
        assert len(rows) == r["suspects"]
        q = flag_quality([int(x["row"]) for x in rows], flipped[split], n)
        assert q["recall"] >= 0.8 and q["precision"] >= 0.8, (split, q)
        truth = dict(sentiment_rows(n, 1 if split == "train" else 3))
        for x in rows:  # row, text and labels line up: the suggestion is the label before the flip
            if int(x["row"]) in set(flipped[split]):
                assert truth[x["text"]] == x["suggested_label"] == FLIP[x["given_label"]]
    assert res["splits"]["dev"]["rate"] <= 0.03
    assert res["rate"] == res["splits"]["test"]["rate"] and res["max_accuracy"] == pytest.approx(1 - res["rate"])
    assert res["max_accuracy_ci"] == pytest.approx([1 - res["ci"][1], 1 - res["ci"][0]])
    # the accuracy itself is kept; without the suspects is a separate number
    assert res["accuracy"] <= res["max_accuracy"] + 1e-9 and res["accuracy_without_suspects"] >= res["accuracy"]
    assert res["rows_kept"] == 60 - res["splits"]["test"]["suspects"]
    assert json.loads(json.dumps(res)) == res  # JSON-able values only
    with pytest.raises(UserError, match="^3 test predictions for 60 test rows"):  # before any fine-tune
        label_noise_stage(base, best.artifact.path, 3, tmp_path / "out2", store, predictions=[0, 1, 0])
