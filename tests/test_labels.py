"""`supremum labels` (supremum.studies.labels): label budgets are seeded class-stratified subsets
nested across budgets, every point is scored on one test set, cells an approach cannot run are
skipped with their reason, the advice per budget is exact text, and bad options are one line."""

import json

import numpy as np
import pytest
from conftest import Watched, run_cli, sentiment_rows, write_csv

from supremum.config import DataConfig
from supremum.data import load_data
from supremum.errors import UserError
from supremum.store import Store
from supremum.studies.labels import APPROACHES, LabelsConfig, plan, sentences, split_digest


@pytest.fixture
def small(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    write_csv(d / "train.csv", sentiment_rows(60, 1))
    write_csv(d / "dev.csv", sentiment_rows(20, 2))
    write_csv(d / "test.csv", sentiment_rows(30, 3))
    return d


def _imbalanced(tmp_path):
    d = tmp_path / "imb"
    d.mkdir()
    write_csv(d / "train.csv", [(f"row {i}", "a" if i % 4 else "b") for i in range(40)])  # 30 a, 10 b
    write_csv(d / "dev.csv", [(f"dev {i}", "ab"[i % 2]) for i in range(10)])
    write_csv(d / "test.csv", [(f"test {i}", "ab"[i % 2]) for i in range(10)])
    return d


def test_budgets_are_stratified_and_nested(tmp_path):
    """Every prefix keeps the 3:1 class shares (one of each class first), and a seed's smaller
    subset lies inside its larger one; another seed draws other rows."""
    d = _imbalanced(tmp_path)

    def subset(n, seed):
        cfg = DataConfig(path=str(d), train_limit=n, train_limit_seed=seed, train_limit_stratify=True)
        return load_data(cfg).split("train")

    for seed in (0, 1):
        counts = {n: subset(n, seed)["label"].value_counts().sort_index().tolist() for n in (2, 4, 8, 20)}
        assert counts == {2: [1, 1], 4: [3, 1], 8: [6, 2], 20: [15, 5]}
        texts = [set(subset(n, seed)["text"]) for n in (2, 4, 8, 20, 39)]
        assert all(a < b for a, b in zip(texts, texts[1:], strict=False))
    assert set(subset(8, 0)["text"]) != set(subset(8, 1)["text"])
    # the option leaves the hash of configs without it as it was
    assert "train_limit_stratify" not in DataConfig(path="x").model_dump()


def _cfg(data, **kw):
    base = {"model": {"name": "tiny-bert"}, "data": {"path": str(data)}, "train": {"batch_size": 8},
            "min_steps": 5, "incontext": {"model": "tiny-llama", "max_shots": 2}}
    return LabelsConfig.model_validate({**base, **kw})


def test_every_cell_has_its_budget_one_test_set_and_no_label_beyond_it(small):
    """Each fine-tune cell trains on exactly its budget (nested per seed), is scored on the study's
    test set, and its training cannot pick weights by dev: fixed steps, last weights."""
    cfg = _cfg(small, approaches=["linear-probe", "full"], budgets=[2, 4, 16, "all"], seeds=[0, 1])
    p = plan(cfg)
    study = p["study"]
    want = split_digest(study.data, "test")
    assert want["examples"] == 30
    trains = {}
    for c in p["cells"]:
        cc = APPROACHES[c.approach]
        compare = cc.compare_config(study, c.budget, c.seed)
        data = load_data(DataConfig(**compare.methods[0].data))
        assert split_digest(data, "test") == want
        assert len(data.split("train")) == c.budget
        trains[(c.approach, c.budget, c.seed)] = set(data.split("train")["text"])
        train = compare.methods[0].train
        if c.approach == "full":
            steps = {2: 5, 4: 5, 16: 6, 60: 24}[c.budget]  # max(min_steps, 3 epochs of batches of 8)
            assert train == {"batch_size": 8, "max_steps": steps, "eval_every": steps, "keep_best": False}
        else:
            assert train == {"batch_size": 8}
    for seed in (0, 1):
        chain = [trains[("full", n, seed)] for n in (2, 4, 16, 60)]
        assert all(a < b for a, b in zip(chain, chain[1:], strict=False))
        assert trains[("full", 16, seed)] == trains[("linear-probe", 16, seed)]
    assert len(p["cells"]) == 16 and p["skipped"] == []


def test_cells_an_approach_cannot_run_are_skipped_with_their_reason(small):
    cfg = _cfg(small, approaches=["zeroshot", "linear-probe", "setfit", "full"], budgets=[0, 2, 4, "all"],
               seeds=[0], max_labels={"setfit": 4})
    p = plan(cfg)
    prompt = "a prompt holds at most incontext.max_shots=2 examples; more labels would go unused"
    none = "needs a labelled example of every class; there are none"
    assert p["skipped"] == [
        {"approach": "zeroshot", "budget": 4, "seeds": [0], "reason": prompt},
        {"approach": "zeroshot", "budget": 60, "seeds": [0], "reason": prompt},
        {"approach": "linear-probe", "budget": 0, "seeds": [0], "reason": none},
        {"approach": "setfit", "budget": 0, "seeds": [0], "reason": "needs 2 labelled examples of every class "
                                                                     "(a positive pair of each); there are none"},
        {"approach": "setfit", "budget": 2, "seeds": [0], "reason": "needs 2 labelled examples of every class "
                                                                     "(a positive pair of each); 2 labels hold 1 "
                                                                     "of the rarest class"},
        {"approach": "setfit", "budget": 60, "seeds": [0], "reason": "above max_labels.setfit=4"},
        {"approach": "full", "budget": 0, "seeds": [0], "reason": none}]
    ran = sorted((c.approach, c.budget, c.seed) for c in p["cells"])
    assert ran == [("full", 2, 0), ("full", 4, 0), ("full", 60, 0), ("linear-probe", 2, 0), ("linear-probe", 4, 0),
                   ("linear-probe", 60, 0), ("setfit", 4, 0), ("zeroshot", 0, None), ("zeroshot", 2, 0)]


def _row(approach, budget, title, mean, sd=None):
    return {"approach": approach, "budget": budget, "title": title, "mean": mean, "sd": sd}


HAND = [_row("zeroshot", 0, "zero-shot prompting", 0.52), _row("zeroshot", 8, "8-shot prompting", 0.55, 0.03),
        _row("linear-probe", 8, "a linear probe", 0.60, 0.02), _row("setfit", 8, "SetFit", 0.58, 0.04),
        _row("linear-probe", 32, "a linear probe", 0.70, 0.02), _row("setfit", 32, "SetFit", 0.81, 0.02),
        _row("full", 32, "plain fine-tuning", 0.65, 0.05), _row("setfit", 128, "SetFit", 0.84, 0.01),
        _row("full", 128, "plain fine-tuning", 0.80, 0.02), _row("setfit", 512, "SetFit", 0.86, 0.01),
        _row("full", 512, "plain fine-tuning", 0.88, 0.01), _row("full", 1000, "plain fine-tuning", 0.90, 0.005)]


def test_sentences_from_measured_means():
    """Crossings interpolated in log labels: SetFit passes the probe between 8 (-2 pt) and 32 (+11 pt)
    at 8 * 4^(2/13) = 9.9; plain fine-tuning passes SetFit between 128 (-4 pt) and 512 (+2 pt) at
    128 * 4^(2/3) = 322.5."""
    assert sentences(HAND, 1000) == [
        "with 0 labels use zero-shot prompting (52.0%); a linear probe overtakes it by 8 labels (measured means).",
        "with 8 labels use a linear probe (60.0 ± 2.0%); SetFit overtakes it at ~10 labels (measured means).",
        "with 32 labels use SetFit (81.0 ± 2.0%); plain fine-tuning overtakes it at ~320 labels "
        "(measured means).",
        "with 128 labels use SetFit (84.0 ± 1.0%); plain fine-tuning overtakes it at ~320 labels "
        "(measured means).",
        "with 512 labels use plain fine-tuning (88.0 ± 1.0%).",
        "with all 1,000 labels use plain fine-tuning (90.0 ± 0.5%)."]


def test_sentences_keep_an_approach_with_fewer_labels_that_is_still_ahead():
    """Measured on SST-2 (bench/results/labels_sst2.json): zero-shot prompting of smollm2-135m with no
    labels (80.9%) beat every approach trained on 64 labels; the 64-label advice must not be SetFit."""
    rows = [_row("zeroshot", 0, "zero-shot prompting", 0.809), _row("setfit", 64, "SetFit", 0.755, 0.031),
            _row("full", 64, "plain fine-tuning", 0.710, 0.059), _row("setfit", 512, "SetFit", 0.84, 0.01)]
    assert sentences(rows, 6920, majority=0.5) == [
        "with 0 labels use zero-shot prompting (80.9%); SetFit passes that by 512 labels (measured means).",
        "with 64 labels zero-shot prompting with 0 labels (80.9%) still beats every approach given 64 "
        "(best: SetFit, 75.5 ± 3.1%).",
        "with 512 labels use SetFit (84.0 ± 1.0%)."]


def test_sentences_name_a_point_with_fewer_labels_within_one_sd():
    """Measured on MR (bench/results/labels_mr.json): plain fine-tuning on 512 labels, 75.6 ± 1.6%,
    was ahead of zero-shot prompting with none (75.4%) by less than its seed spread."""
    rows = [_row("zeroshot", 0, "zero-shot prompting", 0.754),
            _row("full", 512, "plain fine-tuning", 0.756, 0.016),
            _row("full", 1024, "plain fine-tuning", 0.80, 0.01)]
    assert sentences(rows, 2000, majority=0.5)[1:] == [
        "with 512 labels use plain fine-tuning (75.6 ± 1.6%), within one s.d. of zero-shot prompting with 0 "
        "labels (75.4%).",
        "with 1,024 labels use plain fine-tuning (80.0 ± 1.0%)."]  # 4.4 pt ahead of 512: more than its s.d.


def test_sentences_say_ties_and_when_nothing_beats_the_majority_class():
    rows = [_row("linear-probe", 8, "a linear probe", 0.50, 0.0), _row("full", 8, "plain fine-tuning", 0.50, 0.0),
            _row("linear-probe", 16, "a linear probe", 0.62, 0.01),
            _row("full", 16, "plain fine-tuning", 0.62, 0.02)]
    assert sentences(rows, 100, majority=0.5) == [
        "with 8 labels no approach beats the majority class (50.0%; best: a linear probe, 50.0 ± 0.0%).",
        "with 16 labels a linear probe (62.0 ± 1.0%) and plain fine-tuning (62.0 ± 2.0%) tie."]  # each its s.d.


def test_self_training_that_added_no_pseudo_label_is_left_out_of_the_advice():
    """The tryout's case: 10 steps on 8 labels left no text at the 0.9 threshold, so self-training was
    plain fine-tuning and the advice called the two a tie."""
    full = _row("full", 8, "plain fine-tuning", 0.817, 0.212)
    st = "self-training (plain fine-tuning)"
    idle = {**_row("self-training", 8, st, 0.817, 0.212), "pseudo_labelled": [0, 0]}
    some = {**_row("self-training", 32, st, 0.99, 0.01), "pseudo_labelled": [0, 12]}
    rows = [full, idle, _row("full", 32, "plain fine-tuning", 0.983, 0.024), some]
    assert sentences(rows, 200, majority=0.5) == [
        "with 8 labels use plain fine-tuning (81.7 ± 21.2%); self-training (plain fine-tuning) overtakes it by 32 "
        "labels (measured means).",
        "with 32 labels use self-training (plain fine-tuning) (99.0 ± 1.0%).",
        "with 8 labels self-training (plain fine-tuning) added no pseudo-label in any seed (no unlabelled text "
        "was confident enough): it is plain fine-tuning there, left out of the advice."]


def test_sentences_from_the_fitted_curve_and_a_capped_approach():
    curve = {"fit": {"E": 0.05, "B": 1.0, "beta": 0.5},
             "ceiling": {"accuracy": 0.95, "ci": [0.93, 0.97], "identified": True, "verdict": "identified"}}
    rows = [_row("setfit", 100, "SetFit", 0.85, 0.01), _row("full", 100, "plain fine-tuning", 0.80, 0.01),
            _row("setfit", 1000, "SetFit", 0.93, 0.01), _row("full", 1000, "plain fine-tuning", 0.90, 0.01)]
    # (B / (1 - E - 0.93))^(1/beta) = (1 / 0.02)^2 = 2,500 labels, beyond the largest budget
    assert sentences(rows, 1000, curve) == [
        "with 100 labels use SetFit (85.0 ± 1.0%).",
        "with all 1,000 labels use SetFit (93.0 ± 1.0%); plain fine-tuning would reach that at ~2,500 labels "
        "(fitted curve)."]
    low = {**curve, "ceiling": {"accuracy": 0.91, "ci": [0.90, 0.92], "identified": True, "verdict": "identified"}}
    assert sentences(rows, 1000, low)[1] == (
        "with all 1,000 labels use SetFit (93.0 ± 1.0%); plain fine-tuning's fitted ceiling (91.0%, 95% CI up to "
        "92.0%) stays below it (fitted curve).")
    for verdict in ("not identified", "loosely identified"):  # nothing read off a fit that does not pin it
        loose = {**curve, "ceiling": {**curve["ceiling"], "identified": verdict != "not identified",
                                      "verdict": verdict}}
        assert sentences(rows, 1000, loose)[1] == "with all 1,000 labels use SetFit (93.0 ± 1.0%)."
    plain = "plain fine-tuning"
    capped = [_row("setfit", 32, "SetFit", 0.81, 0.02), _row("full", 32, plain, 0.70, 0.02),
              _row("full", 128, plain, 0.78, 0.02), _row("full", 512, plain, 0.86, 0.01)]
    assert sentences(capped, 1000)[0] == ("with 32 labels use SetFit (81.0 ± 2.0%); plain fine-tuning passes that "
                                          "by 512 labels (measured means).")


def test_prompting_points_json_plot_and_resume(small, tmp_path):
    """The command's JSON holds every point with its seed, the spread, the shared test set and the
    advice; a second call reuses every cached point."""
    # seeds without 0: the seedless zero-shot cell must not look up seed 0's subset
    args = ["labels", "--model", "tiny-bert", "--data", str(small), "--approaches", "zeroshot",
            "--lm", "tiny-llama", "--budgets", "0,2", "--seeds", "1,2", "--max-shots", "4", "--json"]
    first = run_cli(*args, check=True)
    r = json.loads(first.stdout)
    assert set(r) == {"kind", "name", "model", "lm", "data", "split", "test", "n_train", "labels", "budgets",
                      "seeds", "approaches", "majority", "points", "summary", "skipped", "cells", "curve", "plain",
                      "method", "sentences", "plot"}
    assert r["budgets"] == [0, 2] and r["n_train"] == 60 and r["test"]["examples"] == 30
    assert [(p["budget"], p["seed"]) for p in r["points"]] == [(0, None), (2, 1), (2, 2)]
    assert [p["label_counts"] for p in r["points"]][0] == [0, 0]
    assert all(0 <= p["accuracy"] <= 1 and p["cached"] is False for p in r["points"])
    two = [p["accuracy"] for p in r["points"] if p["budget"] == 2]
    s2 = next(s for s in r["summary"] if s["budget"] == 2)
    assert s2["mean"] == pytest.approx(np.mean(two)) and s2["sd"] == pytest.approx(np.std(two, ddof=1))
    assert s2["seeds"] == [1, 2] and s2["title"] == "2-shot prompting"
    assert [len(p["shot_rows"]) for p in r["points"]] == [0, 2, 2]
    assert r["curve"] == {"not_fitted": "full has no measured point"}
    zero = next(p["accuracy"] for p in r["points"] if p["budget"] == 0)
    assert len(r["sentences"]) == 2 and r["sentences"][0].startswith(
        "with 0 labels use zero-shot prompting (" if zero > r["majority"]["accuracy"]
        else f"with 0 labels no approach beats the majority class ({100 * r['majority']['accuracy']:.1f}%; "
             "best: zero-shot prompting")
    assert r["majority"]["accuracy"] == pytest.approx(max(np.mean([y == c for _, y in sentiment_rows(30, 3)])
                                                          for c in ("neg", "pos")))
    from pathlib import Path

    assert Path(r["plot"]).read_bytes()[:4] == b"\x89PNG"
    again = json.loads(run_cli(*args, check=True).stdout)
    assert all(p["cached"] for p in again["points"]) and again["cells"] == {"total": 3, "cached": 3}
    assert [p["accuracy"] for p in again["points"]] == [p["accuracy"] for p in r["points"]]
    assert [x["kind"] for x in Store().runs()].count("labels") == 2


@pytest.mark.parametrize("flags, message", [
    (["--budgets", "0,500"], "error: budget 500 is above the 60 training examples of {data} (use budgets up to "
                             "60, or 'all')"),
    (["--budgets", "0,x"], "error: --budgets '0,x': 'x' is neither a number of labels nor 'all' (e.g. --budgets "
                           "0,8,32,all)"),
    (["--budgets", "1"], "error: --budgets 1: a label budget is 0, 2 or more, or 'all' (1 label "
                         "holds one class only) (see `supremum labels --help`)"),
    (["--approaches", "zeroshot,magic"],
     "error: --approaches zeroshot,magic: unknown approach 'magic'; known: zeroshot, "
     "linear-probe, setfit, full, lora, active, self-training (see `supremum labels --help`)"),
    (["--split", "nope"], "error: {data} has no labelled 'nope' split to score on (choose another --split (dev "
                          "or test))"),
])
def test_bad_options_are_one_line(flags, message, small):
    p = run_cli("labels", "--model", "tiny-bert", "--data", str(small), *flags, "--dry-run")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [message.format(data=small)]


def test_a_budget_above_the_training_set_names_its_size_and_defaults_above_it_are_left_out(small):
    with pytest.raises(UserError, match="budget 2,048 is above the 60 training examples"):
        plan(_cfg(small, budgets=[0, 2048]))
    assert plan(_cfg(small, approaches=["full"]))["study"].budgets == [0, 8, 32, 60]


@pytest.mark.slow
def test_fine_tune_cells_curve_report_and_resume(small, tmp_path):
    """Fine-tune cells in fresh processes, plain fine-tuning's fitted curve, the report's section
    (plot and sentences), and a re-run that trains nothing."""
    args = ["labels", "--model", "tiny-bert", "--data", str(small), "--approaches", "linear-probe,full",
            "--budgets", "0,4,16,all", "--seeds", "0,1", "--min-steps", "3",
            "--text-column", "text", "--label-column", "label"]  # the data flags finetune and ceiling have
    proc = run_cli(*args, check=True)  # progress goes to stderr without --json (--json is quiet)
    counted = [line.split("]")[0] + "]" for line in proc.stderr.splitlines() if line.startswith("[")]
    assert counted == [f"[{i}/12]" for i in range(1, 13)]  # over the study, not [1/1] per fine-tune
    again = run_cli(*args, "--json", check=True)
    r = json.loads(again.stdout)
    assert r["cells"]["cached"] == 12 and not again.stderr.strip()  # the re-run trains nothing
    assert len(r["points"]) == 12 and {s["approach"] for s in r["skipped"]} == {"linear-probe", "full"}
    assert "fit" in r["curve"] and "band" not in r["curve"]
    assert {p["budget"] for p in r["points"] if p["approach"] == "full"} == {4, 16, 60}
    report = tmp_path / "report.md"
    run_cli("report", "--output", str(report), "--format", "md", check=True)
    text = report.read_text()
    assert "## Accuracy against labels labels-tiny-bert-small" in text
    assert all(f"- {s}" in text for s in r["sentences"])
    from supremum.frontier.sections import labels_takeaway

    best = max((s for s in r["summary"] if s["budget"] == 60), key=lambda s: s["mean"])
    assert f"**{labels_takeaway(r)}**" in text and f"With all 60 labels {best['title']} leads" in text
    html = tmp_path / "report.html"
    run_cli("report", "--output", str(html), check=True)
    assert html.read_text().count("<svg") >= 1 and "Accuracy against labels" in html.read_text()


def test_the_example_recipe_validates(monkeypatch, tmp_path):
    from pathlib import Path

    from supremum.recipe import build, load_yaml

    monkeypatch.setenv("SUPREMUM_DATA", str(tmp_path))
    data, _ = load_yaml(Path(__file__).parent.parent / "recipes" / "labels" / "sst2.yaml")
    cfg = build(LabelsConfig, data)
    assert cfg.budgets == [0, 8, 32, 64, 128, 512, 2048, "all"] and cfg.data.path == f"{tmp_path}/sst2"
    assert cfg.incontext.verbalizers == {"0": "negative", "1": "positive"}


def test_a_recipes_data_may_be_a_path_alone(small, tmp_path):
    """`data: file` is `data: {path: file}`, as `model: name` is `model: {name: ...}` (the tryout's
    recipe said "labels needs data")."""
    assert DataConfig.model_validate(str(small)) == DataConfig(path=str(small))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: tiny-bert\ndata: {small}\napproaches: [full]\nbudgets: [4]\nseeds: [0]\n")
    proc = run_cli("labels", "--recipe", str(recipe), "--dry-run", "--json", check=True)
    assert json.loads(proc.stdout)["cells"][0]["budget"] == 4
    with_flag = run_cli("labels", "--recipe", str(recipe), "--text-column", "text", "--dry-run", "--json",
                        check=True)  # a flag's data.* key lands in the mapping the path became
    assert [c["budget"] for c in json.loads(with_flag.stdout)["cells"]] == [4]


def test_a_plan_counts_skipped_cells_and_names_an_approach_with_none_to_run(small):
    """Every self-training budget skipped (0: no labels; all: no unlabelled text) is no cell to run,
    not "0 cells, 0 cached (every cell cached)"; skips are counted in cells (budget x seed)."""
    proc = run_cli("labels", "--model", "tiny-bert", "--data", str(small), "--approaches", "full,self-training",
                   "--budgets", "0,all", "--seeds", "0,1", "--dry-run", check=True)
    out = proc.stdout
    # skipped: full at 0, self-training at 0 and at all, 2 seeds each
    assert "2 cells (0 cached, 2 to run): full 2, self-training 0; 6 skipped" in out
    assert "  self-training: no cell to run (every budget skipped, below)" in out
    assert "every cell cached" not in out
    assert "data: text column 'text' (auto), label column 'label' (auto); sizes" in proc.stderr


# --- active learning and self-training: one registry entry each ----------------------------------


def test_active_points_are_a_simulations_rounds_at_the_budgets(small, monkeypatch):
    """One simulation per seed to its largest budget, batches cut at every budget; its points equal a
    direct `simulate` of the same settings, read only queried labels, and share the test set."""
    from supremum.studies import simulate
    from supremum.studies.labels import run_labels
    from supremum.studies.labels_approaches import ActiveLearning

    made = []

    def oracle(labels):
        w = Watched(labels)
        made.append((simulate.Oracle(w), w))
        return made[-1][0]

    monkeypatch.setitem(APPROACHES, "active", ActiveLearning(oracle=oracle))
    cfg = _cfg(small, approaches=["active"], budgets=[0, 4, 10, 16, 32], seeds=[0, 1],
               max_labels={"active": 16}, active={"batch_size": 4, "seed_size": 6})
    rec = run_labels(cfg)
    below = "below the random seed set of 6 labels (active.seed_size)"
    assert rec["skipped"] == [{"approach": "active", "budget": b, "seeds": [0, 1], "reason": r}
                              for b, r in ((0, below), (4, below), (32, "above max_labels.active=16"))]
    pts = {(p["budget"], p["seed"]): p for p in rec["points"]}
    assert list(pts) == [(10, 0), (10, 1), (16, 0), (16, 1)]
    direct = simulate.simulate(simulate.SimulateConfig(
        data={"path": str(small)}, model="tiny-bert", train={"batch_size": 8}, strategies=["margin+kcenter"],
        batch_size=4, seed_size=6, budget=16, seeds=[0, 1], evaluate_at=[10, 16]), small.parent / "sim")
    from supremum.studies.labels_approaches import schedule

    assert schedule(APPROACHES["active"].simulation(plan(cfg)["study"], 0)) == [6, 10, 14, 16]
    for r in (r for r in direct["runs"] if r["strategy"] == "margin+kcenter"):
        assert [p["n_labels"] for p in r["curve"]] == [6, 10, 14, 16]
        for p in r["curve"][1::2]:
            assert pts[(p["n_labels"], r["seed"])]["accuracy"] == p["accuracy"]
            assert pts[(p["n_labels"], r["seed"])]["label_counts"] == p["label_counts"]
    assert len(made) == 2  # one simulation per seed
    y = load_data(DataConfig(path=str(small))).labels("train")
    for (o, w), seed in zip(made, (0, 1), strict=True):
        assert sorted(w.read) == sorted(o.revealed) and len(set(o.revealed)) == 16
        for b in (10, 16):
            paid = [y[r] for r in o.revealed[:b]]
            assert pts[(b, seed)]["label_counts"] == np.bincount(paid, minlength=2).tolist()
    assert all(p["test_sha256"] == rec["test"]["sha256"] and p["strategy"] == "margin+kcenter"
               and p["method"] == "linear-probe" for p in pts.values())
    assert [s["title"] for s in rec["summary"]] == ["active learning"] * 2
    again = run_labels(cfg)
    assert len(made) == 2 and all(p["cached"] for p in again["points"])
    assert [p["accuracy"] for p in again["points"]] == [p["accuracy"] for p in rec["points"]]


def test_active_skips_a_seed_set_of_one_class(tmp_path):
    d = _imbalanced(tmp_path)  # 30 a, 10 b
    p = plan(_cfg(d, approaches=["active"], budgets=[2, 4], seeds=list(range(8)), active={"batch_size": 2}))
    one = [s for s in p["skipped"] if s["reason"].startswith("the random seed set")]
    assert one and one[0]["reason"] == "the random seed set of 2 labels holds one class only; a learner needs two"
    y = load_data(DataConfig(path=str(d))).labels("train")
    from supremum.studies.simulate import seed_set

    for s in one[0]["seeds"]:
        assert len({y[r] for r in seed_set(s, 40, 2)}) == 1
    assert {c.seed for c in p["cells"]} == set(range(8)) - set(one[0]["seeds"])


def test_self_training_cell_reads_the_other_train_texts_without_labels(small):
    from supremum.compare import cells
    from supremum.data.unlabeled import read_unlabeled

    cfg = _cfg(small, approaches=["self-training"], budgets=[0, 4, "all"], seeds=[0])
    p = plan(cfg)
    assert p["skipped"] == [
        {"approach": "self-training", "budget": 0, "seeds": [0],
         "reason": "needs a labelled example of every class; there are none"},
        {"approach": "self-training", "budget": 60, "seeds": [0],
         "reason": "all 60 training labels leave no unlabelled text to pseudo-label"}]
    [c] = p["cells"]
    a, study = APPROACHES["self-training"], p["study"]
    cell = cells(a.compare_config(study, 4, 0))[0]["config"]
    # round_steps "epochs": the pseudo-label round trains its own epochs, not the budget's max_steps
    assert cell["self_training"] == {"rounds": 1, "threshold": 0.9, "max_per_round": None, "balance": True,
                                     "keep": "last", "round_steps": "epochs"}
    path, body, n = a.unlabeled(study, 4, 0)
    assert cell["data"]["unlabeled"] == str(path) and path.suffix == ".txt" and n == 56
    labelled = load_data(DataConfig(**cell["data"])).split("train")
    assert len(labelled) == 4
    rest = [t for t in study.data.texts("train") if t not in set(labelled["text"])]
    assert body.decode().splitlines() == rest  # texts only, split order, no label column
    from supremum.fsutil import write_bytes

    write_bytes(path, body)
    assert read_unlabeled(DataConfig(path=str(small), unlabeled=str(path)))[0] == rest
    assert c.key == cells(a.compare_config(study, 4, 0))[0]["hash"]


def test_a_self_training_cell_with_no_pseudo_label_is_plain_fine_tuning_and_said_so(small):
    """Threshold 1.0: no text is added, the rounds stop, and the cell is the plain fine-tune of
    the same labels and seed, to the last digit; the study records 0 pseudo-labels and says so."""
    from supremum.studies.labels import run_labels

    cfg = _cfg(small, approaches=["full", "self-training"], budgets=[8], seeds=[0],
               self_training={"threshold": 1.0})
    rec = run_labels(cfg)
    full, st = sorted(rec["points"], key=lambda p: p["approach"])
    assert (full["approach"], st["approach"]) == ("full", "self-training")
    assert st["pseudo_labelled"] == 0 and "pseudo_labelled" not in full
    assert st["accuracy"] == full["accuracy"]
    assert [r.get("pseudo_labelled") for r in rec["summary"]] == [None, [0]]
    assert rec["sentences"][-1] == ("with 8 labels self-training (plain fine-tuning) added no pseudo-label in any "
                                    "seed (no unlabelled text was confident enough): it is plain fine-tuning "
                                    "there, left out of the advice.")


def test_self_training_estimate_counts_each_round_at_its_epochs(small):
    """At 4 labels (batch 8, min_steps 5, 3 epochs) the first training is max(5, 3 x 1) = 5 steps;
    the round, counted at every one of the 60 training texts pseudo-labelled, 3 x ceil(60 / 8) = 24.
    A user's round_steps "same" keeps the round at the first training's 5 steps."""
    study = plan(_cfg(small, approaches=["self-training"], budgets=[4], seeds=[0]))["study"]
    a = APPROACHES["self-training"]
    [c] = a.cells(study, 4)
    assert a.examples(study, c) == 5 * 8 + 24 * 8
    same = plan(_cfg(small, approaches=["self-training"], budgets=[4], seeds=[0],
                     self_training={"round_steps": "same"}))["study"]
    assert a.examples(same, a.cells(same, 4)[0]) == 2 * 5 * 8


def test_self_training_estimate_adds_scoring_the_unlabelled_texts(small, monkeypatch):
    """At a past rate of 10 examples/s: (5 + 24) x 8 training examples (see above) = 23.2 s, and the
    round scores the other 56 training texts at 3 x 10/s = 1.87 s (the tryout's MR cell took
    minutes more than its estimate, which left the scoring out)."""
    import supremum.estimate

    monkeypatch.setattr(supremum.estimate, "training_rate", lambda *a: (10.0, "a past rate"))
    study = plan(_cfg(small, approaches=["self-training"], budgets=[4], seeds=[0]))["study"]
    a = APPROACHES["self-training"]
    seconds, basis = a.seconds(study, a.cells(study, 4))
    assert seconds == pytest.approx(23.2 + 56 / 30)
    assert basis.endswith("scoring 56 unlabelled texts at 3x that rate (a forward pass, not measured here)")


def test_unlabeled_file_keeps_multi_line_texts(tmp_path):
    from supremum.data.unlabeled import read_unlabeled
    from supremum.studies.labels_approaches import unlabeled_file

    texts = ["one line", "two\nlines", "  padded  "]
    for column, want in ((None, ".jsonl"), ("sentence", ".jsonl"), ("2", ".jsonl")):
        cfg = DataConfig(path="x", text_column=column)
        body, suffix = unlabeled_file(texts, cfg)
        path = tmp_path / f"u{column}{suffix}"
        path.write_bytes(body)
        assert suffix == want and read_unlabeled(cfg.model_copy(update={"unlabeled": str(path)}))[0] == texts
    assert unlabeled_file(["a", "b"], DataConfig(path="x")) == (b"a\nb\n", ".txt")


@pytest.mark.slow
def test_cli_runs_active_and_self_training_into_the_json(small, tmp_path):
    recipe = tmp_path / "labels.yaml"
    recipe.write_text("active: {batch_size: 4}\nself_training: {threshold: 0.6}\n")
    args = ["labels", "--model", "tiny-bert", "--data", str(small), "--approaches", "active,self-training",
            "--budgets", "8", "--seeds", "0", "--min-steps", "3", "--recipe", str(recipe), "--json"]
    r = json.loads(run_cli(*args, check=True).stdout)
    assert r["approaches"] == ["active", "self-training"] and r["skipped"] == []
    by = {p["approach"]: p for p in r["points"]}
    assert set(by) == {"active", "self-training"} and all(0 <= p["accuracy"] <= 1 for p in by.values())
    u = by["self-training"]["unlabeled"]
    assert u["texts"] == 52 and open(u["file"], encoding="utf-8").read().count("\n") == 52
    assert [s["title"] for s in r["summary"]] == ["active learning", "self-training (plain fine-tuning)"]
    assert len(r["sentences"]) == 1
    from pathlib import Path

    art = Path(Store().get_artifact(by["self-training"]["artifact"])["path"])
    m = json.loads((art / "manifest.json").read_text())
    assert m["unlabeled"]["texts"] == 52 and m["unlabeled"]["sha256"] == u["sha256"]
    assert m["config"]["self_training"]["threshold"] == 0.6 and m["self_training"]["kept_round"] == 1
    rounds = m["self_training"]["rounds_run"]
    assert [x["round"] for x in rounds] == [0, 1]
    # round 1 trains its own epochs over 8 labels + its pseudo-labels, not the 3 steps of 8 labels
    epochs, bs = m["config"]["train"]["epochs"], m["config"]["train"]["batch_size"]
    assert rounds[1]["steps"] == max(3, int(epochs * -(-(8 + rounds[1]["pseudo_labelled"]) // bs)))


def test_self_training_keeps_the_last_round_and_variant_keys_stay_in_their_fields(small):
    """keep: best would let dev labels choose the round; a variant's other fine-tune keys cannot
    replace the fields a cell sets."""
    from pydantic import ValidationError

    from supremum.compare import Variant

    with pytest.raises(ValidationError, match="self_training.keep\n  Input should be 'last'"):
        _cfg(small, self_training={"keep": "best"})
    with pytest.raises(ValidationError, match=r"finetune keys \['train'\] have their own variant field"):
        Variant(method="full", finetune={"train": {"epochs": 1}})
