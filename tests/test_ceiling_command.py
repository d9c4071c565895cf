"""`supremum ceiling`: the search from the user's configuration, the best over seeds, its learning
curve, the verdict's keys and values, the budget, resume, and bad input."""

from __future__ import annotations

import json
import math
import random

import pytest
import yaml
from conftest import run_cli, sentiment_rows, write_csv

from supremum.errors import UserError


def noisy(n: int, seed: int, share: float = 0.15) -> list[tuple[str, str]]:
    """The easy sentiment task with a share of labels flipped (seeded): no model scores 100%."""
    rng = random.Random(seed + 100)
    flip = {"pos": "neg", "neg": "pos"}
    return [(t, flip[y] if rng.random() < share else y) for t, y in sentiment_rows(n, seed)]


def wider_tiny_bert(path):
    """A tiny BERT twice as wide as `tiny-bert` (same tokenizer), saved as a local model directory."""
    from transformers import BertModel

    from supremum.models.tiny import bert_tokenizer, tiny_config

    tok = bert_tokenizer()
    cfg = tiny_config("tiny-bert", len(tok))
    cfg.hidden_size, cfg.intermediate_size = 64, 128
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def task(tmp_path):
    d = tmp_path / "splits"
    d.mkdir()
    write_csv(d / "train.tsv", noisy(160, 1), ("sentence", "label"), "\t")
    write_csv(d / "dev.tsv", noisy(40, 2), ("sentence", "label"), "\t")
    write_csv(d / "test.tsv", noisy(60, 3), ("sentence", "label"), "\t")
    recipe = tmp_path / "ceiling.yaml"
    recipe.write_text(yaml.safe_dump({
        "base": {"model": "tiny-bert", "data": {"path": str(d)}, "method": "full",
                 "train": {"max_steps": 60, "eval_every": 20, "batch_size": 8, "lr": 3e-3}},
        "budget_minutes": 10, "n_trials": 3, "seeds": [42, 43], "fractions": [0.25, 0.5, 1.0], "folds": 2,
        "min_steps": 1, "models": ["tiny-bert", wider_tiny_bert(tmp_path / "wide")],
        "space": {"lr": {"full": [1e-3, 4e-3], "lora": [3e-3, 3e-2]}, "batch_size": [8]},
        "output": str(tmp_path / "out")}))
    return recipe


def test_ceiling_end_to_end_values_and_resume(task, tmp_path):
    proc = run_cli("ceiling", "--recipe", str(task), "--json", check=True)
    r = json.loads(proc.stdout)
    study = r["search"]
    assert study["trials"] == 3 and study["stopped"] == "n_trials" and len(study["history"]) == 3
    assert study["history"][0]["value"] == pytest.approx(r["now"]["dev"])
    # the user's configuration is trial 0, measured by the same protocol as every trial
    assert r["now"]["params"]["method"] == "full" and r["now"]["params"]["lr_full"] == pytest.approx(3e-3)
    best = r["best"]
    assert len(best["seeds"]) == 2 and {s["seed"] for s in best["seeds"]} == {42, 43}
    assert best["dev"] == pytest.approx(sum(s["dev"] for s in best["seeds"]) / 2)
    assert best["test"] == pytest.approx(sum(s["test"] for s in best["seeds"]) / 2)
    assert 0.7 <= best["dev"] < 1.0, "tiny-bert learns this task in 60 steps, up to its flipped labels"
    assert best["search_dev"] >= r["now"]["dev"]
    # seed 42 is the best trial's own seed: its re-run in a fresh process reproduces the trial's dev score
    trial = next(s for s in best["seeds"] if s["seed"] == 42)
    assert trial["dev"] == pytest.approx(best["search_dev"])
    c = r["ceiling"]
    assert c["ci"][0] <= c["accuracy"] <= c["ci"][1] and c["ci"][1] > c["ci"][0]
    assert c["verdict"] in ("identified", "loosely identified", "not identified")
    pts = r["curve"]["points"]
    assert sorted({p["n"] for p in pts}) == [40, 80, 160] and len(pts) == 6
    # the full-data curve points are the seeds' re-run (same cells), not new runs
    assert sorted(1 - p["error"] for p in pts if p["n"] == 160) == pytest.approx(
        sorted(s["test"] for s in best["seeds"]))
    a = best["test"]
    assert r["resolution_pt"] == pytest.approx(100 * 1.959964 * math.sqrt(2 * a * (1 - a) / 60), rel=1e-4)
    ln = r["label_noise"]  # 15% of the labels were flipped in every split
    assert ln["split"] == "test" and 0.05 <= ln["rate"] <= 0.3 and ln["ci"][0] <= ln["rate"] <= ln["ci"][1]
    assert ln["max_accuracy"] == pytest.approx(1 - ln["rate"])
    assert set(ln["splits"]) == {"train", "dev", "test"} and ln["splits"]["train"]["examples"] == 160
    with open(ln["suspects_path"]) as f:
        assert f.readline().startswith("row,text,given_label,suggested_label,confidence")
    m = r["models"]  # the searched model's seeds' mean, then the wider model with the best configuration
    assert [p["model"] for p in m["points"]] == ["tiny-bert", str(tmp_path / "wide")]
    assert m["points"][0]["test"] == pytest.approx(best["test"]) and m["points"][0]["total_params"] == 39234
    assert m["points"][1]["total_params"] > 2 * 39234
    x = [math.log2(p["total_params"]) for p in m["points"]]
    y = [p["test"] for p in m["points"]]
    assert m["slope_per_doubling"] == pytest.approx((y[1] - y[0]) / (x[1] - x[0]))
    assert "slope_ci" not in m, "two models give a line but no interval"
    assert (tmp_path / "out" / "search_history.png").stat().st_size > 0
    assert (tmp_path / "out" / "learning_curve.png").stat().st_size > 0
    assert "now " in r["sentence"] and "ceiling with unlimited labels" in r["sentence"]
    assert r["search_best"]["dev"] == pytest.approx(max(t["value"] for t in study["history"] if t["value"]))
    train = [y for _, y in noisy(160, 1)]
    top = max(("pos", "neg"), key=train.count)
    assert r["majority"] == pytest.approx(sum(y == top for _, y in noisy(60, 3)) / 60)

    page = tmp_path / "report.html"
    run_cli("report", "--output", str(page), check=True)
    html = page.read_text()
    assert "How good can tiny-bert get on" in html and html.count("<svg") >= 2 and "Search history" in html
    assert "ceiling (labels -&gt; inf)" in html and "best re-run" in html and "majority class" in html
    assert (f'<p class="takeaway">Best {100 * best["test"]:.1f}% test; ceiling {100 * c["accuracy"]:.1f}% '
            f'[{100 * c["ci"][0]:.1f}, {100 * c["ci"][1]:.1f}]; label noise caps the test set at '
            f'{100 * ln["max_accuracy"]:.1f}%.</p>') in html

    again = run_cli("ceiling", "--recipe", str(task), "--json", check=True)
    r2 = json.loads(again.stdout)
    assert r2["search"]["trials"] == 3, "finished trials are not redone"
    assert "seed 42" not in again.stderr, "cached cells are not retrained"
    assert r2["best"]["seeds"] == best["seeds"] and r2["ceiling"] == r["ceiling"]


def test_budget_too_small_for_one_trial_is_one_line(task):
    proc = run_cli("ceiling", "--recipe", str(task), "--budget-minutes", "0.0005")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "cannot hold one search trial" in line and "--budget-minutes" in line
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, words", [
    (["--folds", "1"], "one fold leaves nothing to train on"),
    (["--seeds", "0"], "at least 2 distinct seeds"),
    (["--split", "nope"], "no labelled 'nope' split"),
])
def test_bad_options_are_one_line(task, args, words):
    proc = run_cli("ceiling", "--recipe", str(task), *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_a_stage_the_budget_cannot_hold_is_skipped_with_its_estimate():
    from supremum.studies.ceiling import Plan, _stage

    rec = {"plans": [], "not_measured": {}}
    ran = []
    _stage(rec, "curve", Plan(stage="curve", seconds=600, runs=4.0), lambda: 300.0, lambda m: None,
           lambda: ran.append(1))
    assert not ran
    assert rec["not_measured"]["curve"] == ("needs about 10.0 min (4.0 fine-tunes of the best configuration) and "
                                            "5.0 min of the budget were left")
    _stage(rec, "seeds", Plan(stage="seeds", seconds=60, runs=2.0), lambda: 300.0, lambda m: None,
           lambda: ran.append(1))
    assert ran == [1] and "seeds" not in rec["not_measured"]

    def rare():
        raise UserError("label noise needs 2 test examples of every class", "give a larger test split")

    said = []
    _stage(rec, "label_noise", Plan(stage="label_noise", seconds=60, runs=4.0), lambda: 300.0, said.append, rare)
    # one stage's data problem is recorded, and the verdict keeps what the other stages measured
    assert rec["not_measured"]["label_noise"] == ("label noise needs 2 test examples of every class (give a "
                                                  "larger test split)")
    assert said[-1] == "label_noise: not measured, " + rec["not_measured"]["label_noise"]


def test_the_search_space_grows_to_contain_the_users_configuration(csv_data, tmp_path):
    from supremum.studies.search import SearchConfig, containing
    from supremum.train.config import FinetuneConfig

    base = FinetuneConfig.model_validate({"model": "tiny-bert", "data": {"path": str(csv_data)},
                                          "method": {"name": "lora", "r": 64},
                                          "train": {"lr": 5e-2, "batch_size": 48, "epochs": 6,
                                                    "warmup_ratio": 0.3}})
    cfg, params = containing(SearchConfig(base=base, methods=["full"], budget_minutes=1, output=str(tmp_path)))
    assert params == {"method": "lora", "lr_lora": 5e-2, "batch_size": 48, "warmup_ratio": 0.3,
                      "weight_decay": 0.01, "epochs": 6, "lora_rank": 64}
    assert cfg.methods == ["lora", "full"]
    assert cfg.space.lr["lora"][1] == 5e-2 and 48 in cfg.space.batch_size and 64 in cfg.space.lora_rank
    assert cfg.space.epochs == (1, 6) and cfg.space.warmup_ratio == (0.0, 0.3)


def test_verdict_words_and_table_from_a_record():
    from supremum.limit.verdict import paragraph, rows

    rec = {"metric": "accuracy", "split": "test", "now": {"dev": 0.85},
           "best": {"dev": 0.9, "test": 0.88, "test_std": 0.004, "dev_std": 0.003, "test_ci": [0.87, 0.89],
                    "split": "test", "seeds": [{}, {}, {}],
                    "config": {"method": {"name": "lora", "r": 16}, "train": {"lr": 3e-4, "epochs": 2,
                                                                           "batch_size": 16}}},
           "ceiling": {"accuracy": 0.92, "ci": [0.9, 0.95], "verdict": "identified"},
           "at_1x": {"accuracy": 0.876, "ci": [0.87, 0.88]}, "at_10x": {"accuracy": 0.905, "ci": [0.89, 0.92]},
           "label_noise": {"rate": 0.03, "ci": [0.02, 0.04], "max_accuracy": 0.97},
           "resolution_pt": 2.1, "not_measured": {"models": "no model ladder named"},
           "search": {"trials": 12, "pruned": 5, "stopped": "budget"}}
    text = paragraph(rec)
    assert text.startswith(
        "now 85.0% dev (your configuration); its re-run over 3 seeds 90.0% dev, 88.0% ± 0.40 pt test "
        "(lora, r 16, lr 0.0003, 2 epochs, batch 16); ceiling with unlimited labels 92.0% "
        "[90.0, 95.0] (identified); label noise 3.0% [2.0, 4.0] caps the test set at 97.0%; "
        "10x the labels buys +2.9 pt by the fit (87.6% -> 90.5% [89.0, 92.0]); the test set resolves "
        "differences of 2.1 pt or more")
    assert text.endswith("models not measured: no model ladder named.")
    # the cap read against the numbers beside it
    high_ceiling = {**rec, "ceiling": {**rec["ceiling"], "accuracy": 0.98, "ci": [0.975, 0.99]}}
    loose = {**rec, "ceiling": {**high_ceiling["ceiling"], "verdict": "not identified"}}
    assert "caps the test set at 97.0%; " in paragraph(loose)  # nothing read off a ceiling the runs do not pin
    assert ("caps the test set at 97.0% (below the fitted ceiling: the test set's own label errors, not the "
            "model, would stop the gains first); ") in paragraph(high_ceiling)
    above = {**rec, "best": {**rec["best"], "test": 0.98}}
    assert "caps the test set at 97.0% (the best re-run already scores 98.0%, above it: the rate is likely " \
           "overestimated); " in paragraph(above)
    table = {r[0]: r[1] for r in rows(rec)}
    assert table["ceiling (labels -> inf)"] == "92.0% [90.0, 95.0]" and table["resolution"] == "2.1 pt"
    assert table["search"] == "12 trials, 5 pruned"
    assert "backtest" not in paragraph(rec)
    rec["backtest"] = {"n": 3200, "predicted": 0.86, "ci": [0.855, 0.865], "measured": 0.88, "inside": False}
    assert ("10x the labels buys +2.9 pt by the fit (87.6% -> 90.5% [89.0, 92.0]); but the curve's own backtest "
            "missed its largest "
            "size (predicted 86.0% [85.5, 86.5], measured 88.0%), so read these extrapolations with care; "
            "the test set resolves") in paragraph(rec)
    row = next(r for r in rows(rec) if r[0] == "backtest at 3,200")
    assert row[1:] == ("predicted 86.0% [85.5, 86.5], measured 88.0%",
                       "refit without the largest size, OUTSIDE its 95% interval")
    on_dev = {**rec, "split": "dev", "best": {**rec["best"], "split": "dev", "test": 0.9}}
    assert "its re-run over 3 seeds 90.0% ± 0.40 pt dev (lora" in paragraph(on_dev)
    rec["backtest"]["inside"] = True
    assert "backtest" not in paragraph(rec) and "inside its 95% interval" in dict(
        (r[0], r[2]) for r in rows(rec))["backtest at 3,200"]


def test_ceiling_config_rejects_fewer_than_three_curve_sizes(csv_data):
    from supremum.recipe import build
    from supremum.studies.ceiling import CeilingConfig

    with pytest.raises(UserError, match="3 distinct"):
        build(CeilingConfig, {"base": {"data": {"path": str(csv_data)}}, "budget_minutes": 1,
                              "fractions": [0.5]}, "test")


def test_ceiling_of_a_causal_lm_is_in_perplexity_and_label_noise_does_not_apply(tmp_path):
    rng = random.Random(0)
    words = "the king shall speak of love and war to thee my lord".split()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(300)) + "\n")
    recipe = tmp_path / "lm.yaml"
    recipe.write_text(yaml.safe_dump({
        "base": {"model": "tiny-llama", "data": {"path": str(corpus), "max_length": 32}, "method": "full",
                 "train": {"max_steps": 12, "eval_every": 6, "batch_size": 8, "lr": 3e-3}},
        "budget_minutes": 10, "n_trials": 2, "seeds": [0, 1], "fractions": [0.25, 0.5, 1.0], "min_steps": 1,
        "space": {"lr": {"full": [1e-3, 5e-3], "lora": [1e-2, 3e-2]}, "batch_size": [8]},
        "split": "test", "output": str(tmp_path / "out")}))
    r = json.loads(run_cli("ceiling", "--recipe", str(recipe), "--json", check=True).stdout)
    assert r["metric"] == "perplexity" and r["label_noise"] is None
    assert r["not_measured"]["label_noise"] == "label noise does not apply to a language model's next tokens"
    best = r["best"]
    assert best["metric"] == "perplexity" and len(best["seeds"]) == 2
    assert best["test"] == pytest.approx(sum(s["test"] for s in best["seeds"]) / 2)
    assert 1 < best["test"] < 1000 and best["search_dev"] <= r["now"]["dev"] + 1e-9  # lower is better
    floor = r["ceiling"]
    assert floor["ci"][0] <= floor["perplexity"] <= floor["ci"][1]
    assert r["now"]["dev"] == pytest.approx(math.exp(-r["search"]["history"][0]["value"]))
    assert "perplexity floor with unlimited data" in r["sentence"] and r["resolution_pt"] is None


def test_frontier_rows_within_the_split_resolution_are_marked():
    from supremum.frontier.report import resolution_for, within_resolution

    res = {"metric": "accuracy", "group": {"data": "/d/sst2", "split": "test"},
           "frontier": [{"metrics": {"accuracy": 0.90}}, {"metrics": {"accuracy": 0.885}}],
           "dominated": [{"metrics": {"accuracy": 0.85}}]}
    lims = [("ceiling", "a", {"resolution_pt": 2.0, "split": "test", "data": "/d/sst2/"}),
            ("ceiling", "b", {"resolution_pt": 9.0, "split": "dev", "data": "/d/sst2"}),
            ("curve", "c", {})]
    pt = resolution_for(res, lims)
    assert pt == 2.0, "only a ceiling on the same data and split counts"
    marks = [within_resolution(res, r, pt) for r in res["frontier"] + res["dominated"]]
    assert marks == [False, True, False]  # the best itself is never marked; 1.5 pt < 2.0; 5 pt is resolved
    assert resolution_for({**res, "metric": "perplexity"}, lims) is None


def test_data_flags_reach_the_data_and_errors_leave_no_files(tmp_path):
    d = tmp_path / "latin.csv"
    d.write_bytes(b"text;label\n" + "".join(f"caf\u00e9 {w} {i};{y}\n" for i, (w, y) in enumerate(
        [("bon", "pos"), ("mauvais", "neg")] * 30)).encode("cp1252"))
    out = tmp_path / "out"
    args = ["ceiling", "--model", "tiny-bert", "--data", str(d), "--budget-minutes", "0.0005",
            "--output", str(out)]
    bad = run_cli(*args)  # the loader's advice names a flag ceiling has
    assert bad.returncode == 2 and "--encoding cp1252" in bad.stderr and not out.exists()
    small = run_cli(*args, "--encoding", "cp1252")  # now the data loads; the budget is what is too small
    assert small.returncode == 2 and "cannot hold one search trial" in small.stderr
    assert not (out / "search" / "study.db").exists(), "no study is created for a call that cannot run"
    seeds = run_cli(*args, "--encoding", "cp1252", "--seeds", "0")
    assert seeds.stderr.strip().splitlines() == [
        "error: --seeds 0: the best configuration's spread needs at least 2 distinct seeds, "
        "e.g. 0,1,2 (see `supremum ceiling --help`)"], "the error names the problem, not the whole config"
    methods = run_cli(*args, "--encoding", "cp1252", "--methods", "full,bogus")
    assert methods.returncode == 2 and "unknown methods ['bogus']" in methods.stderr
    assert len(methods.stderr.strip().splitlines()[-1]) < 400
