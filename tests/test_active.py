"""Active learning (`supremum label`): query strategies on hand-made inputs, the stopping rules,
the annotators' CSV round trip and its one-line errors, the loop's state across calls, the
simulation's oracle, and the learners' scores against the fine-tuned artifact's."""

import csv
import json

import numpy as np
import pytest
from conftest import Watched, run_cli, sentiment_rows, write_csv

from supremum.errors import UserError
from supremum.studies import active, batches, query, simulate, stopping
from supremum.studies.learners import LearnerSpec, ProbeLearner

# --- query strategies -------------------------------------------------------------------------

# rows: a tie of two classes, an even spread, a confident row, a near-even spread
P3 = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])


def test_uncertainty_measures_equal_their_formulas():
    ent = -(P3 * np.log(np.where(P3 > 0, P3, 1))).sum(axis=1)
    assert query.uncertainty(P3, "entropy") == pytest.approx(ent)
    assert query.uncertainty(P3, "margin") == pytest.approx([0.0, -0.1, -0.85, -0.01])
    assert query.uncertainty(P3, "least-confidence") == pytest.approx([-0.5, -0.4, -0.9, -0.34])


@pytest.mark.parametrize(("strategy", "picked"), [("margin", [0, 3]), ("entropy", [3, 1]),
                                                  ("least-confidence", [3, 1])])
def test_uncertainty_strategies_pick_the_expected_rows(strategy, picked):
    rng = np.random.default_rng(0)
    got = query.select(strategy, 2, np.arange(4), np.array([], dtype=int), P3, None, rng)
    assert got == picked


def test_uncertainty_ties_go_to_the_lower_row_and_labelled_rows_are_never_picked():
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.5, 0.5]])
    got = query.select("margin", 2, np.array([1, 2, 3]), np.array([0]), p, None, np.random.default_rng(0))
    assert got == [2, 3]


def _circle(degrees):
    a = np.radians(degrees)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def test_kcenter_greedy_picks_the_farthest_row_then_the_next_farthest():
    x = _circle([0, 10, 20, 90, 180])  # labelled: 0 degrees
    assert query.kcenter_greedy(x, np.arange(1, 5), np.array([0]), 2) == [4, 3]


@pytest.mark.filterwarnings("ignore:Default distance metric has changed")  # small-text's note on its 1.2 change
def test_kcenter_greedy_equals_small_texts_greedy_coreset():
    from small_text.query_strategies import GreedyCoreset

    x = np.random.default_rng(1).normal(size=(60, 5))
    lab = np.array([3, 7, 11, 40])
    unl = np.setdiff1d(np.arange(60), lab)
    theirs = GreedyCoreset(distance_metric="euclidean", normalize=True).query(
        None, np.arange(60), unl, lab, None, n=6, embeddings=np.concatenate([x[unl], x[lab]]))
    assert query.kcenter_greedy(x, unl, lab, 6) == [int(i) for i in theirs]


def test_badge_gradient_embeddings_and_first_pick():
    emb, p = np.array([[1.0, 2.0], [3.0, 0.0], [1.0, 1.0]]), np.array([[0.7, 0.3], [0.99, 0.01], [0.5, 0.5]])
    g = query.gradient_embeddings(emb, p)
    # (p - onehot(argmax)) outer h: row 0 is (-0.3, 0.3) x (1, 2)
    assert g[0] == pytest.approx([-0.3, -0.6, 0.3, 0.6])
    assert g[1] == pytest.approx([-0.03, 0.0, 0.03, 0.0])
    norms = (g * g).sum(axis=1)  # 0.9, 0.0018, 1.0: the most uncertain row has the largest gradient
    assert norms == pytest.approx([0.9, 0.0018, 1.0])
    got = query.badge(emb, p, np.arange(3), 1, np.random.default_rng(0))
    assert got == [2]


def test_badge_picks_distinct_rows_reproducibly():
    rng = np.random.default_rng(3)
    emb, p = rng.normal(size=(50, 4)), rng.dirichlet([1, 1, 1], size=50)
    a = query.select("entropy+badge", 8, np.arange(50), np.array([], dtype=int), p, emb, np.random.default_rng(5))
    b = query.select("entropy+badge", 8, np.arange(50), np.array([], dtype=int), p, emb, np.random.default_rng(5))
    assert a == b and len(set(a)) == 8


def test_an_unknown_strategy_is_one_line():
    with pytest.raises(UserError) as e:
        query.parse_strategy("margin+entropy")
    assert str(e.value) == ("unknown query strategy 'margin+entropy' (use random, one of entropy, margin, "
                            "least-confidence, kcenter, badge, or uncertainty+diversity such as margin+kcenter)")


# --- stopping rules ---------------------------------------------------------------------------


def test_stable_predictions_fire_after_patience_rounds_below_the_threshold():
    rule = stopping.StopRule(max_changed=0.01, patience=2)
    assert stopping.decide([0.2, 0.05, 0.008], [], 10, rule).rule is None  # one round below
    assert stopping.decide([0.2, 0.008, 0.02], [], 10, rule).rule is None  # not in a row
    assert stopping.decide([0.2], [], 10, rule).reason.endswith("learning curve: off without --eval-data "
                                                                 "(no accuracies to fit)")
    assert stopping.decide([0.2], [(10, 0.6)], 20, rule).reason == (
        "continue: 20.00% of pool predictions changed; learning curve: needs 3 more rounds and accuracies at 2 "
        "more label counts (a fit needs 4 rounds, accuracies at 3 label counts)")
    # round 3 of a loop: its accuracies are at 3 label counts already, so only the round is missing
    assert stopping.decide([0.2, 0.1], [(10, 0.6), (20, 0.7), (30, 0.75)], 40, rule).reason == (
        "continue: 10.00% of pool predictions changed; learning curve: needs 1 more round (a fit needs 4 "
        "rounds, accuracies at 3 label counts)")
    assert stopping.fit_missing([(10, 0.6), (10, 0.62), (20, 0.7), (20, 0.71)]) == [
        "accuracies at 1 more label count"]
    assert stopping.fit_missing([(10, 0.6), (20, 0.7), (30, 0.75), (40, 0.78)]) == []
    d = stopping.decide([0.2, 0.05, 0.008, 0.004], [], 10, rule)
    assert d.rule == "stable predictions" and d.changed == 0.004
    assert d.reason == ("stable predictions: under 1% of pool predictions changed in each of the last 2 "
                        "round(s) (0.80%, 0.40%)")


def test_learning_curve_rule_fires_when_the_next_batch_buys_little():
    ns = [50, 100, 150, 200, 250, 300]
    flat = [(n, 0.9 - 0.5 * n ** -0.5) for n in ns]  # exact power laws: the fit recovers them
    steep = [(n, 0.99 - 3 * n ** -0.5) for n in ns]
    gain = lambda a, b: 100 * ((0.9 - a * 350 ** -0.5) - (0.9 - a * 300 ** -0.5))  # noqa: E731
    assert stopping.next_batch_gain(flat, 350) == pytest.approx(gain(0.5, 0), abs=1e-3)  # 0.214 pt
    assert stopping.next_batch_gain(steep, 350) == pytest.approx(gain(3, 0), abs=1e-3)  # 1.285 pt
    d = stopping.decide([0.5, 0.3], flat, 350, stopping.StopRule(min_gain_pt=0.5))
    assert d.rule == "learning curve" and d.gain_pt == pytest.approx(0.2141, abs=1e-3)
    assert stopping.decide([0.5, 0.3], steep, 350, stopping.StopRule(min_gain_pt=0.5)).rule is None
    assert stopping.next_batch_gain(flat[:2], 150) is None  # too few sizes for a fit


# --- annotators' CSV --------------------------------------------------------------------------

TEXTS = ['plain', 'with, a comma', 'with "quotes"', 'two\nlines', 'ünïcödé', 'last']


def _fill(path, labels: dict, sep=",", bom=False):
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f, delimiter=sep)
        w.writerow(["row_id", "text", "label"])
        for r in rows:
            w.writerow([r["row_id"], r["text"], labels.get(int(r["row_id"]), "")])
    return rows


def test_batch_round_trip_keeps_every_row_once(tmp_path):
    path = batches.write_batch(tmp_path / "b.csv", [5, 1, 3, 2], TEXTS)
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    assert [(int(r["row_id"]), r["text"], r["label"]) for r in rows] == [(5, "last", ""), (1, "with, a comma", ""),
                                                                        (3, "two\nlines", ""),
                                                                        (2, 'with "quotes"', "")]
    assert [p.name for p in tmp_path.iterdir()] == ["b.csv"]  # no temporary left
    _fill(path, {5: "pos", 1: "neg", 3: "pos", 2: "neg"}, sep=";", bom=True)  # a spreadsheet's save
    got = batches.read_batch(path, [5, 1, 3, 2], TEXTS, ["neg", "pos"])
    assert got == {5: "pos", 1: "neg", 3: "pos", 2: "neg"}
    path = batches.write_batch(tmp_path / "b.csv", [5, 1, 3, 2], TEXTS)
    _fill(path, {5: "Pos", 1: " NEG", 3: "pos", 2: "neg"})  # case and spaces, as training data reads them
    assert batches.read_batch(path, [5, 1, 3, 2], TEXTS, ["neg", "pos"]) == got
    path = batches.write_batch(tmp_path / "b.csv", [5, 1, 3, 2], TEXTS)
    _fill(path, {5: "Pos", 1: "neg", 3: "pos", 2: "neg"})
    with pytest.raises(UserError, match="label 'Pos' of row id 5 is not in the label set"):  # two labels match
        batches.read_batch(path, [5, 1, 3, 2], TEXTS, ["neg", "pos", "POS"])
    cfg = active.LabelConfig(pool="p.csv", labels=["neg", " pos", "neutral "])
    assert cfg.labels == ["neg", "pos", "neutral"]  # "--labels neg, pos, neutral" as meant
    with pytest.raises(ValueError, match="a label is empty"):
        active.LabelConfig(pool="p.csv", labels=["neg", " "])


@pytest.mark.parametrize(("edit", "message"), [
    (lambda rows: rows.__setitem__(1, [1, "with, a comma", "maybe"]),
     "{path}, line 3: label 'maybe' of row id 1 is not in the label set (use one of: neg, pos)"),
    (lambda rows: rows.__setitem__(1, [1, "with, a comma", " "]),
     "{path}, line 3: row id 1 has an empty label (fill in one of: neg, pos)"),
    (lambda rows: rows.append([4, "ünïcödé", "pos"]),
     "{path}, line 7: row id 4 is not in this batch (label only the rows of the exported batch; do not edit "
     "the row_id column)"),
    (lambda rows: rows.append([5, "last", "pos"]),
     "{path}, line 7: row id 5 is given twice (first on line 2) (keep one row per row id)"),
    (lambda rows: rows.pop(),
     "{path}: 1 row(s) of the batch are missing (row ids 2) (restore them from the exported batch and "
     "label them)"),
])
def test_a_bad_batch_is_one_line_naming_file_and_line(tmp_path, edit, message):
    path = batches.write_batch(tmp_path / "b.csv", [5, 1, 3, 2], TEXTS)
    # line 4 holds a text of two lines, so the rows after it start one line later
    rows = [[5, "last", "pos"], [1, "with, a comma", "neg"], [3, "two\nlines", "pos"], [2, 'with "quotes"', "neg"]]
    edit(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["row_id", "text", "label"], *rows])
    with pytest.raises(UserError) as e:
        batches.read_batch(path, [5, 1, 3, 2], TEXTS, ["neg", "pos"])
    assert str(e.value) == message.format(path=path)


def test_an_edited_text_or_header_is_refused(tmp_path):
    path = batches.write_batch(tmp_path / "b.csv", [0], TEXTS)
    path.write_text("row_id,text,label\n0,plain edited,pos\n")
    with pytest.raises(UserError, match=r"line 2: the text of row id 0 differs from the pool's"):
        batches.read_batch(path, [0], TEXTS, ["neg", "pos"])
    path.write_text("id,text,label\n0,plain,pos\n")
    with pytest.raises(UserError, match=r"line 1: no column row_id \(header: id, text, label\)"):
        batches.read_batch(path, [0], TEXTS, ["neg", "pos"])


# --- the loop: state across calls, CLI errors -------------------------------------------------


@pytest.fixture
def pool(tmp_path):
    rows = sentiment_rows(60, 7)
    write_csv(tmp_path / "pool.csv", [(t,) for t, _ in rows], header=("text",))
    return tmp_path / "pool.csv", {i: lab for i, (_, lab) in enumerate(rows)}


def _label_all(path, truth):
    _fill(path, {int(r["row_id"]): truth[int(r["row_id"])]
                 for r in csv.DictReader(path.open(newline="", encoding="utf-8"))})


def test_a_first_batch_that_takes_the_whole_pool_is_said(tmp_path, pool):
    path, _ = pool  # 60 texts
    said = []
    cfg = active.LabelConfig(pool=str(path), labels=["neg", "pos"], model="tiny-bert", batch_size=70)
    s = active.step(tmp_path / "all", cfg, on_event=said.append)
    assert len(s.pending) == 60
    assert said[0] == ("note: the first batch asks for 70 texts and the pool holds 60: it is the whole pool, so "
                       "no later round has texts left to choose from")
    quiet = []
    active.step(tmp_path / "some", cfg.model_copy(update={"batch_size": 8}), on_event=quiet.append)
    assert not any(m.startswith("note:") for m in quiet)


def test_the_loop_resumes_from_its_state_file(tmp_path, pool):
    path, truth = pool
    out = tmp_path / "loop"
    cfg = active.LabelConfig(pool=str(path), labels=["neg", "pos"], model="tiny-bert", batch_size=8,
                             strategy="margin")
    s1 = active.step(out, cfg)
    assert s1.pending_file == str(out / "batch-001.csv") and len(s1.pending) == 8 and not s1.rounds
    _label_all(out / "batch-001.csv", truth)
    s2 = active.step(out)  # a new call: everything comes from out/state.json
    assert sorted(s2.labelled) == sorted(s1.pending) and len(s2.rounds) == 1
    assert s2.rounds[0].labelled == 8 and s2.rounds[0].changed is None
    assert len(s2.pending) == 8 and not set(s2.pending) & set(s2.labelled)
    saved = active.LabelState.model_validate_json((out / "state.json").read_text())
    assert saved == s2 and saved.labelled == {r: truth[r] for r in s1.pending}
    labelled = list(csv.DictReader((out / "labelled.csv").open(encoding="utf-8")))
    assert [(int(r["row_id"]), r["label"]) for r in labelled] == sorted(saved.labelled.items())
    # margin: the batch is the 8 unlabelled rows the round's probe was least sure of
    x = ProbeLearner(LearnerSpec("tiny-bert", {"name": "linear-probe"}, {}, ["neg", "pos"]),
                     [r[0] for r in csv.reader(path.open())][1:])
    probs = x.fit(sorted(s2.labelled), [["neg", "pos"].index(s2.labelled[r]) for r in sorted(s2.labelled)]).probs
    unl = np.setdiff1d(np.arange(60), sorted(s2.labelled))
    margin = np.abs(probs[unl, 0] - probs[unl, 1])
    assert s2.pending == [int(i) for i in unl[np.lexsort((unl, margin))][:8]]
    [cached] = (out / "rounds").glob("embeddings-*.safetensors")  # the pool embedded once, reused
    stamp = cached.stat().st_mtime_ns
    _label_all(out / "batch-002.csv", truth)
    s3 = active.step(out)
    assert len(s3.labelled) == 16 and s3.rounds[1].changed is not None
    assert [p.name for p in (out / "rounds").iterdir()] == [cached.name] and cached.stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="a loop with another configuration runs there"):
        active.step(out, cfg.model_copy(update={"batch_size": 9}))
    path.write_text(path.read_text().replace("great", "grand"))
    with pytest.raises(UserError, match="the pool changed since the loop started"):
        active.step(out)


def test_cli_bad_labels_are_one_line_and_exit_2(tmp_path, pool):
    path, truth = pool
    out = tmp_path / "loop"
    run_cli("label", str(out), "--pool", str(path), "--labels", "neg,pos", "--model", "tiny-bert",
            "--batch-size", "4", check=True)
    batch = out / "batch-001.csv"
    first = int(next(csv.DictReader(batch.open()))["row_id"])
    _fill(batch, {first: "positive"})
    p = run_cli("label", str(out))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines()[-1] == (f"error: {batch}, line 2: label 'positive' of row id {first} is "
                                                 "not in the label set (use one of: neg, pos)")
    _fill(batch, {first: "pos"})
    p = run_cli("label", str(out))
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == (f"error: {batch}, line 3: row id "
                                                 f"{int(list(csv.DictReader(batch.open()))[1]['row_id'])} has an "
                                                 "empty label (fill in one of: neg, pos)")
    p = run_cli("label", str(tmp_path / "nothing"))
    assert p.returncode == 2 and p.stderr.strip() == (f"error: {tmp_path / 'nothing'}: no labelling loop there "
                                                      "yet (start one with --pool FILE --labels A,B)")
    p = run_cli("label", str(out), "--strategy", "random")  # a loop option on a running loop
    assert p.returncode == 2 and p.stderr.strip() == (
        f"error: {out}: a loop runs there; its options were fixed when it started (run `supremum label {out}` "
        "(with --ingest FILE if the batch is elsewhere) without loop options, or start a new loop in another "
        "directory)")


def test_eval_data_with_its_own_column_names_is_scored_every_round(tmp_path, pool):
    """--eval-text-column/--eval-label-column name eval data's columns when no usual name does;
    each round's eval accuracy is the probe's on those rows, and round 3 says what the fit lacks."""
    path, truth = pool
    ev_rows = sentiment_rows(16, 9)
    ev = write_csv(tmp_path / "evalset.csv", ev_rows, header=("customer_message", "team"))
    out = tmp_path / "loop"
    run_cli("label", str(out), "--pool", str(path), "--labels", "neg,pos", "--model", "tiny-bert", "--batch-size",
            "8", "--strategy", "margin", "--eval-data", str(ev), "--eval-text-column", "customer_message",
            "--eval-label-column", "team", "--max-changed", "0", check=True)  # 0: predictions never "stable"
    state = active.LabelState.model_validate_json((out / "state.json").read_text())
    assert (state.config.eval_text_column, state.config.eval_label_column) == ("customer_message", "team")
    said: list[str] = []
    for n in (1, 2, 3):
        _label_all(out / f"batch-00{n}.csv", truth)
        state = active.step(out, on_event=said.append)
    texts = [r[0] for r in csv.reader(path.open())][1:]
    probe = ProbeLearner(LearnerSpec("tiny-bert", {"name": "linear-probe"}, {}, ["neg", "pos"]),
                         texts + [t for t, _ in ev_rows])
    gold = np.array([["neg", "pos"].index(lab) for _, lab in ev_rows])
    labelled: set[int] = set()
    for r in state.rounds:  # round k trained on the labels of batches 1..k
        batch = out / f"batch-{r.round:03d}.csv"
        labelled |= {int(x["row_id"]) for x in csv.DictReader(batch.open(encoding="utf-8"))}
        rows = sorted(labelled)
        probs = probe.fit(rows, [["neg", "pos"].index(truth[i]) for i in rows]).probs
        assert r.labelled == len(rows) == 8 * r.round
        assert r.eval_accuracy == pytest.approx(float(np.mean(probs[60:].argmax(axis=1) == gold)))
    first, third = state.rounds[0], state.rounds[2]
    assert first.decision.reason == ("continue: first model; learning curve: needs 3 more rounds and accuracies "
                                     "at 2 more label counts (a fit needs 4 rounds, accuracies at 3 label counts)")
    assert third.decision.reason == (f"continue: {100 * third.changed:.2f}% of pool predictions changed; learning "
                                     "curve: needs 1 more round (a fit needs 4 rounds, accuracies at 3 label "
                                     "counts)")
    rounds = [m for m in said if m.startswith("round ")]
    assert rounds[2] == f"round 3: 24 labels, eval accuracy {third.eval_accuracy:.4f}; {third.decision.reason}"


def test_a_bad_eval_file_is_refused_when_the_loop_starts_naming_the_eval_flags(tmp_path, pool):
    path, _ = pool
    ev = write_csv(tmp_path / "evalset.csv", sentiment_rows(6, 9), header=("customer_message", "team"))
    out = tmp_path / "loop"
    start = ("label", str(out), "--pool", str(path), "--labels", "neg,pos", "--batch-size", "8", "--eval-data",
             str(ev))
    p = run_cli(*start)
    assert p.returncode == 2 and p.stderr.strip() == (
        f"error: {ev}: cannot tell which column holds the label; columns are: customer_message, team (pass "
        "--eval-label-column)")
    assert not out.exists()  # no batch, no state: the loop did not start
    p = run_cli(*start, "--eval-label-column", "team", "--eval-text-column", "message")
    assert p.returncode == 2 and p.stderr.strip() == (
        f"error: {ev}: no text column 'message'; columns are: customer_message, team (did you mean "
        "'customer_message'? pass --eval-text-column with one of them)")
    assert not out.exists()
    with pytest.raises(UserError) as e:
        active.step(out, active.LabelConfig(pool=str(path), labels=["neg", "pos"],
                                            eval_data=str(tmp_path / "none.csv")))
    assert str(e.value) == f"{tmp_path / 'none.csv'}: no such file or directory (check the --eval-data path)"
    assert not out.exists()
    p = run_cli("label", str(out), "--pool", str(path), "--labels", "neg,pos", "--label-column", "team")
    assert p.returncode == 2 and p.stderr.strip() == ("error: --label-column names the label column of --simulate "
                                                      "data (for --eval-data use --eval-label-column)")


def test_a_state_written_before_the_eval_columns_existed_loads_equal(tmp_path, pool):
    path, _ = pool
    cfg = active.LabelConfig(pool=str(path), labels=["neg", "pos"], batch_size=8)
    active.step(tmp_path / "loop", cfg)  # the seed batch: no model is loaded
    saved = json.loads((tmp_path / "loop" / "state.json").read_text())
    assert saved["config"].pop("eval_text_column") is None and saved["config"].pop("eval_label_column") is None
    old = active.LabelState.model_validate(saved)
    assert old.config == cfg and old == active.LabelState.model_validate_json(
        (tmp_path / "loop" / "state.json").read_text())


def test_a_label_given_twice_is_refused():
    with pytest.raises(Exception, match="label 'neg' is given twice; give each label once"):
        active.LabelConfig(pool="p.txt", labels=["neg", "pos", "neg"])


# --- simulation -------------------------------------------------------------------------------


def test_simulation_reads_no_label_it_did_not_query(tmp_path, split_dir):
    made: list[tuple[simulate.Oracle, Watched]] = []

    def oracle(labels):
        w = Watched(labels)
        made.append((simulate.Oracle(w), w))
        return made[-1][0]

    cfg = simulate.SimulateConfig(data={"path": str(split_dir)}, model="tiny-bert", batch_size=6, budget=18,
                                  seeds=[0, 1], strategies=["margin+kcenter", "badge"])
    res = simulate.simulate(cfg, tmp_path / "sim", oracle=oracle)
    assert len(made) == 6  # 2 seeds x (random + 2 strategies)
    for o, w in made:
        assert sorted(w.read) == sorted(o.revealed) and len(set(o.revealed)) == 18  # each row once, 18 in all
    assert [r["revealed"] for r in res["runs"]] == [18] * 6
    # the same seed set for every strategy of a seed, different across seeds
    first = {(r["seed"]): set(o.revealed[:6]) for r, (o, _) in zip(res["runs"], made, strict=True)}
    assert all(set(o.revealed[:6]) == first[r["seed"]] for r, (o, _) in zip(res["runs"], made, strict=True))
    assert first[0] != first[1]
    s = res["summary"]["random"]
    assert [p["n_labels"] for p in s] == [6, 12, 18] and all(p["n"] == 2 for p in s)
    accs = [r["curve"][2]["accuracy"] for r in res["runs"] if r["strategy"] == "random"]
    assert s[2]["mean"] == pytest.approx(np.mean(accs)) and s[2]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert res["eval_examples"] == 40 and (tmp_path / "sim" / "simulation.png").stat().st_size > 1000
    pts = simulate.points(res)
    assert len(pts) == 6 * 3 and pts[0] == ("random (linear-probe)", 6, 0, res["runs"][0]["curve"][0]["accuracy"])
    assert json.loads((tmp_path / "sim" / "simulation.json").read_text())["summary"] == res["summary"]


def test_labels_to_match_reads_the_summary():
    summary = {"random": [{"n_labels": 10, "mean": 0.6}, {"n_labels": 20, "mean": 0.8}],
               "badge": [{"n_labels": 10, "mean": 0.81}, {"n_labels": 20, "mean": 0.9}],
               "margin": [{"n_labels": 10, "mean": 0.7}, {"n_labels": 20, "mean": 0.79}],
               # above the reference at 10 labels (the seed set), below it at 20: not matched
               "kcenter": [{"n_labels": 10, "mean": 0.85}, {"n_labels": 20, "mean": 0.75}],
               "entropy": [{"n_labels": 10, "mean": 0.85}, {"n_labels": 15, "mean": 0.7},
                           {"n_labels": 20, "mean": 0.8}]}
    assert simulate.labels_to_match(summary) == {
        "reference": {"strategy": "random", "n_labels": 20, "mean": 0.8},
        "strategies": {"badge": {"n_labels": 10, "share": 0.5}, "margin": {"n_labels": None, "share": None},
                       "kcenter": {"n_labels": None, "share": None}, "entropy": {"n_labels": 20, "share": 1.0}}}


def test_cli_simulate_writes_json_and_plot(tmp_path, split_dir):
    p = run_cli("label", str(tmp_path / "sim"), "--simulate", str(split_dir), "--model", "tiny-bert",
                "--batch-size", "10", "--budget", "20", "--seeds", "0", "--strategies", "margin", "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert [r["strategy"] for r in res["runs"]] == ["random", "margin"]
    assert [p["n_labels"] for p in res["runs"][1]["curve"]] == [10, 20]
    assert (tmp_path / "sim" / "simulation.png").exists()


def test_cli_simulate_names_the_datas_columns(tmp_path):
    from supremum.config import DataConfig
    from supremum.data import load_data

    data = write_csv(tmp_path / "tickets.csv", sentiment_rows(60, 4), header=("customer_message", "team"))
    p = run_cli("label", str(tmp_path / "sim"), "--simulate", str(data), "--text-column", "customer_message",
                "--label-column", "team", "--model", "tiny-bert", "--batch-size", "4", "--budget", "8", "--seeds",
                "0", "--strategies", "margin", "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["config"]["data"] == {"path": str(data), "text_column": "customer_message", "label_column": "team"}
    want = load_data(DataConfig(path=str(data), text_column="customer_message", label_column="team"))
    assert (res["pool"], res["eval_examples"]) == (len(want.texts("train")), len(want.texts("test")))
    assert [p["n_labels"] for p in res["runs"][1]["curve"]] == [4, 8]


def test_simulation_match_sentences():
    from supremum.cli_render import match_lines

    res = {"match": {"reference": {"strategy": "random", "n_labels": 8, "mean": 1.0},
                     "strategies": {"margin": {"n_labels": None, "share": None},
                                    "badge": {"n_labels": 4, "share": 0.5}}},
           "summary": {"random": [{"n_labels": 4, "mean": 0.75}, {"n_labels": 8, "mean": 1.0}],
                       "margin": [{"n_labels": 4, "mean": 0.75}, {"n_labels": 8, "mean": 0.875}],
                       "badge": [{"n_labels": 4, "mean": 1.0}, {"n_labels": 8, "mean": 1.0}]}}
    assert match_lines(res) == ["margin: does not reach random's 100.0% at 8 labels within the budget (it ends at "
                                "87.5%)",
                                "badge: reaches random's 100.0% at 8 labels with 4 labels (50%)"]


# --- learners ---------------------------------------------------------------------------------


def test_probe_learner_equals_the_linear_probe_artifact(tmp_path, split_dir):
    """The in-process probe and a linear-probe fine-tune of the same rows give the same
    probabilities; the worker's embeddings are the classifier's input (classifier(emb) = logits)."""
    import torch

    from supremum import backends
    from supremum.data import load_data
    from supremum.studies.active_worker import score
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    data = load_data(FinetuneConfig(data={"path": str(split_dir)}, output="x").data)
    texts, labels = data.texts("train"), data.labels("train")
    rows = list(range(0, 200, 5))
    probe = ProbeLearner(LearnerSpec("tiny-bert", {"name": "linear-probe"}, {}, data.label_names), texts)
    mine = probe.fit(rows, [labels[r] for r in rows], seed=42)
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "train.csv", [(texts[r], data.label_names[labels[r]]) for r in rows])
    for split in ("dev", "test"):
        write_csv(d / f"{split}.csv", [(t, data.label_names[y]) for t, y in zip(data.texts(split),
                                                                                data.labels(split), strict=True)])
    res = finetune(FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(d)},
                                  method={"name": "linear-probe"}, output=str(tmp_path / "art")), progress=False)
    model, tok = backends.load(res.artifact)
    ids = tok(texts, truncation=True, max_length=128)["input_ids"]
    probs, emb = score(model, ids, tok.pad_token_id, 2)
    assert probs == pytest.approx(mine.probs, abs=1e-6)
    assert emb == pytest.approx(mine.emb, abs=1e-5)
    with torch.no_grad():
        logits = model.classifier(torch.from_numpy(emb[:4]).float()).double()
    assert torch.softmax(logits, -1).numpy() == pytest.approx(probs[:4], abs=1e-6)


def test_fine_tuned_scores_follow_the_loops_label_order(tmp_path):
    """The artifact orders classes as its training data sorts them; the loop's label set may
    not: columns are moved by name, and a class without a labelled row gets probability 0."""
    from safetensors.numpy import save

    from supremum.studies.learners import _read_scores

    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    (tmp_path / "scores.safetensors").write_bytes(save({"probs": probs, "emb": np.zeros((2, 3))},
                                                       metadata={"label_names": json.dumps(["neg", "pos"])}))
    got = _read_scores(tmp_path, ["pos", "meh", "neg"])
    assert got.probs.tolist() == [[0.1, 0.0, 0.9], [0.8, 0.0, 0.2]]


def test_a_stopped_loop_says_which_rule_fired_and_refuses_more(tmp_path, pool):
    path, truth = pool
    out = tmp_path / "loop"
    cfg = active.LabelConfig(pool=str(path), labels=["neg", "pos"], model="tiny-bert", batch_size=6,
                             stop={"max_changed": 1.0, "patience": 1})  # any change below 100% stops
    active.step(out, cfg)
    for n in (1, 2):
        _label_all(out / f"batch-00{n}.csv", truth)
        state = active.step(out)
    assert state.rounds[0].decision.rule is None and state.rounds[1].decision.rule == "stable predictions"
    assert state.stopped == state.rounds[1].decision and state.rounds[1].batch_file is None
    assert state.stopped.reason.startswith("stable predictions: under 100% of pool predictions changed in each of "
                                           "the last 1 round(s)")
    with pytest.raises(UserError, match=r"the loop stopped \(stable predictions: "):
        active.step(out)


def test_first_stops_reads_each_rule_off_a_finished_run():
    ns = [50, 100, 150, 200, 250, 300]
    changed = [None, 0.3, 0.004, 0.002, 0.02, 0.001]
    curve = [{"n_labels": n, "accuracy": 0.9 - 0.5 * n ** -0.5, "changed": c} for n, c in zip(ns, changed,
                                                                                               strict=True)]
    got = stopping.first_stops(curve, stopping.StopRule(max_changed=0.01, patience=2, min_gain_pt=0.5), 50)
    # stable: 0.4%, 0.2% below 1% at 200 labels; curve: the first fit (4 rounds, at 200) predicts
    # +0.5 * (200^-0.5 - 250^-0.5) * 100 = 0.37 pt < 0.5
    assert got == {"stable predictions": 200, "learning curve": 200}
    got = stopping.first_stops(curve, stopping.StopRule(max_changed=0.001, patience=1, min_gain_pt=0.3), 50)
    assert got == {"stable predictions": None, "learning curve": 250}  # 250: +0.29 pt


def test_cli_refuses_flags_of_the_other_mode(tmp_path, split_dir):
    p = run_cli("label", str(tmp_path / "o"), "--simulate", str(split_dir), "--strategy", "badge")
    assert p.returncode == 2 and p.stderr.strip() == ("error: --strategy belong(s) to the labelling loop, not to "
                                                      "--simulate (with --simulate use --strategies, --seeds, "
                                                      "--budget and --split)")
    p = run_cli("label", str(tmp_path / "o"), "--simulate", str(split_dir), "--eval-label-column", "team")
    assert p.returncode == 2 and p.stderr.strip() == (
        "error: --eval-label-column belong(s) to the labelling loop, not to --simulate (with --simulate use "
        "--strategies, --seeds, --budget and --split)")
    p = run_cli("label", str(tmp_path / "o"), "--budget", "100")
    assert p.returncode == 2 and p.stderr.strip() == ("error: --budget belong(s) to --simulate (add --simulate "
                                                      "DATA, or drop them)")

    p = run_cli("label", str(tmp_path / "o"), "--pool", str(tmp_path / "none.txt"), "--labels", "a,b")
    assert p.returncode == 2 and p.stderr.strip() == (f"error: {tmp_path / 'none.txt'}: no such pool file (pass "
                                                      "--pool with a CSV/TSV/JSONL or .txt file of texts)")
    p = run_cli("label", str(tmp_path / "o"), "--pool", str(tmp_path / "none.txt"), "--labels", "a,b",
                "--method", "lorra")  # refused before anything is read or written
    assert p.returncode == 2 and p.stderr.strip().startswith("error: unknown method 'lorra' (use one of: adalora,")
    assert not (tmp_path / "o").exists()


def test_pool_with_a_given_delimiter(tmp_path):
    from supremum.studies.active import LabelConfig, read_pool

    pool = tmp_path / "pool.csv"
    pool.write_text("id|text\n1|good, not great\n2|bad, very bad\n", encoding="utf-8")
    cfg = LabelConfig(pool=str(pool), labels=["neg", "pos"], delimiter="|")
    assert read_pool(cfg).texts == ["good, not great", "bad, very bad"]


def test_a_budget_beyond_the_pool_is_said():
    from supremum.studies.simulate import budget_notes

    assert budget_notes(500, 500) == []
    assert budget_notes(800, 120) == ["the budget of 800 labels is more than the pool's 120 training texts: the "
                                      "simulation ends at 120 (every text labelled)"]


def test_pool_empty_texts_refused_or_left_out_with_drop_empty(tmp_path, capsys):
    from supremum.studies.active import LabelConfig, read_pool

    pool = tmp_path / "pool.csv"
    pool.write_text("text\ngood\n  \nbad\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        read_pool(LabelConfig(pool=str(pool), labels=["neg", "pos"]))
    assert str(e.value) == (f"{pool}, line 3: empty text in the pool (remove the line or write its text, or pass "
                            "--drop-empty to leave such texts out)")
    kept = read_pool(LabelConfig(pool=str(pool), labels=["neg", "pos"], drop_empty=True))
    assert kept.texts == ["good", "bad"] and kept.ids == [0, 2]  # row ids of the file, not renumbered
    # said with count and lines, in the words of every other data reader (it used to drop silently)
    assert capsys.readouterr().err == f"data: dropped 1 row with an empty text from {pool} (line 3)\n"
    txt = tmp_path / "pool.txt"
    txt.write_text("good\n\nbad\n \nfine\n", encoding="utf-8")
    kept = read_pool(LabelConfig(pool=str(txt), labels=["neg", "pos"], drop_empty=True))
    assert kept.texts == ["good", "bad", "fine"] and kept.ids == [0, 2, 4]
    assert capsys.readouterr().err == f"data: dropped 2 rows with an empty text from {txt} (lines 2, 4)\n"


def test_label_drop_empty_says_the_count_once_on_the_cli(tmp_path):
    pool = tmp_path / "pool.csv"
    pool.write_text("text\ngood film\n \nbad film\n\"\"\nfine film\n", encoding="utf-8")
    r = run_cli("label", str(tmp_path / "loop"), "--pool", str(pool), "--labels", "neg,pos", "--drop-empty",
                "--batch-size", "2", check=True)
    notes = [x for x in r.stderr.splitlines() if x.startswith("data:")]
    assert notes == [f"data: dropped 2 rows with an empty text from {pool} (lines 3, 5)"]


def test_drop_empty_keeps_the_pools_row_ids_in_batches_and_labelled_csv(tmp_path):
    """Row ids name the pool file's rows (from 0) also when empty texts before them were left out."""
    rows = sentiment_rows(12, 3)
    texts = [t if i % 3 else " " for i, (t, _) in enumerate(rows)]  # rows 0, 3, 6, 9 empty
    pool = tmp_path / "pool.csv"
    write_csv(pool, [(t,) for t in texts], header=("text",))
    out = tmp_path / "loop"
    run_cli("label", str(out), "--pool", str(pool), "--labels", "neg,pos", "--model", "tiny-bert", "--drop-empty",
            "--batch-size", "4", check=True)
    batch = list(csv.DictReader((out / "batch-001.csv").open(encoding="utf-8")))
    assert len(batch) == 4 and all(r["text"] == texts[int(r["row_id"])] for r in batch)
    assert all(int(r["row_id"]) % 3 for r in batch)  # never an empty row's id
    truth = {i: lab for i, (_, lab) in enumerate(rows)}
    _label_all(out / "batch-001.csv", truth)
    run_cli("label", str(out), check=True)
    labelled = list(csv.DictReader((out / "labelled.csv").open(encoding="utf-8")))
    assert sorted((int(r["row_id"]), r["text"], r["label"]) for r in labelled) == sorted(
        (int(r["row_id"]), texts[int(r["row_id"])], truth[int(r["row_id"])]) for r in batch)
    second = list(csv.DictReader((out / "batch-002.csv").open(encoding="utf-8")))
    assert all(r["text"] == texts[int(r["row_id"])] for r in second)
