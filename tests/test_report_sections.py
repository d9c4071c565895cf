"""The report's sections from other work (calibration, explanations, forgetting; the ceiling,
label-budget and limit studies' sentences): present only when such work is in scope, each with
one sentence whose numbers are checked here against hand-made store records."""

import pytest
from test_report import record

from supremum.frontier.report import build, markdown, render_html
from supremum.frontier.sections import ceiling_takeaway, curve_takeaway, labels_takeaway, scale_takeaway
from supremum.store import Store


def calib(ece: float, aece: float, nll: float, t: float | None = None) -> dict:
    return {"calibration": {"ece": ece, "adaptive_ece": aece, "nll": nll, "brier": 0.1, "temperature": t}}


def calibrated_store() -> Store:
    """full (test ECE 4.12%) and its temperature-scaled child (0.87%), both evaluated on test;
    the calibrate run records its own fit on dev."""
    store = Store()
    full = record(store, "full", "full", 0.9123, 20.0, 255.0, split="test", extra=calib(0.0412, 0.0398, 0.3100))
    child = record(store, "calibrated", "full>temperature", 0.9123, 20.0, 255.0, split="test",
                   extra=calib(0.0087, 0.0101, 0.2500, 1.8345))
    fit = {"temperature": 1.8345, "split": "dev", "examples": 872, "at_bound": None,
           "before": {"ece": 0.05, "adaptive_ece": 0.05, "nll": 0.4, "brier": 0.2},
           "after": {"ece": 0.01, "adaptive_ece": 0.01, "nll": 0.3, "brier": 0.15}}
    store.start_run("cal1", "calibrate", "calibrate", {"parent": full}, {}, parents=[full])
    store.finish_run("cal1", fit, child, str(store.root / "pipelines/demo/calibrated-0a1b2c3d"))
    return store


def test_calibration_section_states_the_held_out_ece_change():
    rep = build(calibrated_store(), split="test")
    [s] = rep["sections"]
    assert s["name"] == "calibration"
    assert s["takeaway"] == ("Temperature scaling of full (T = 1.83) cut test ECE on sst2.csv from 4.1% to 0.9% "
                             "at unchanged accuracy (91.2%).")
    arrow = "\u00a0→\u00a0"  # no-break spaces around the arrow
    assert s["rows"] == [["calibrated", "1.83", "sst2.csv test", f"4.12{arrow}0.87", f"3.98{arrow}1.01",
                          f"0.31{arrow}0.25", f"91.23{arrow}91.23"]]
    page = render_html(rep)
    assert '<section id="calibration">' in page and s["takeaway"] in page
    md = markdown(rep)
    # Markdown cells fold whitespace: plain spaces there
    assert f"**{s['takeaway']}**" in md and "| calibrated | 1.83 | sst2.csv test | 4.12 → 0.87 |" in md


def test_calibration_measured_on_the_split_t_was_fitted_on_is_not_held_out():
    store = calibrated_store()  # add evaluations of both on dev, the fit's own split
    record(store, "full", "full", 0.9000, 20.0, 255.0, extra=calib(0.05, 0.05, 0.4))
    record(store, "calibrated", "full>temperature", 0.9000, 20.0, 255.0, extra=calib(0.01, 0.01, 0.3, 1.8345))
    run = store.get_run("cal1")
    store.finish_run("cal1", run["metrics"] | {"data": "/data/sst2.csv"}, run["artifact_id"], run["artifact_path"])
    [s] = build(store, split="test")["sections"]
    assert [r[2] for r in s["rows"]] == ["sst2.csv test", "sst2.csv dev (fitted on it)"]
    assert s["takeaway"].startswith(
        "Temperature scaling of full (T = 1.83) cut test ECE on sst2.csv from 4.1% to 0.9%")
    store.start_run("cal2", "calibrate", "calibrate", run["config"], {})  # a refit held out nowhere
    store.finish_run("cal2", run["metrics"] | {"data": "/data/sst2.csv"}, "other", "/nowhere/other")
    assert build(store, split="test")["sections"][0]["takeaway"].startswith(
        "Temperature scaling of full (T = 1.83) cut test ECE")  # the held-out measurement, not the latest fit


def test_calibration_without_a_held_out_eval_says_it_is_the_fit():
    store = Store()
    full = record(store, "full", "full", 0.90, 20.0, 255.0)
    fit = {"temperature": 0.74, "split": "dev", "at_bound": None,
           "before": {"ece": 0.031, "adaptive_ece": 0.03, "nll": 0.35, "brier": 0.2},
           "after": {"ece": 0.0449, "adaptive_ece": 0.04, "nll": 0.36, "brier": 0.2}}
    store.start_run("cal1", "calibrate", "calibrate", {"parent": full}, {}, parents=[full])
    store.finish_run("cal1", fit, "child-art", "/nowhere/child-art")
    [s] = build(store)["sections"]
    assert s["takeaway"] == ("Temperature scaling of full (T = 0.74) raised dev ECE from 3.1% to 4.5% on the "
                             "examples T was fitted on; evaluate the calibrated artifact on held-out data to "
                             "measure it.")
    assert s["rows"][0][2] == "dev (fitted on it)" and s["rows"][0][6] == "-"


def explain_run(store: Store, run: str, art: str, drift: bool = True) -> None:
    faith = {"occlusion": {"comprehensiveness": 0.3125, "sufficiency": 0.08, "comprehensiveness_vs_random": 2.5},
             "integrated-gradients": {"comprehensiveness": 0.2751, "sufficiency": 0.05,
                                      "comprehensiveness_vs_random": 2.2},
             "random": {"comprehensiveness": {"mean": 0.125, "sd": 0.01}, "sufficiency": {"mean": 0.2, "sd": 0.0}}}
    m = {"methods": ["occlusion", "integrated-gradients"], "faithfulness": faith, "examples": 20,
         "output": "/x/expl"}
    if drift:
        m["drift"] = {"against": "p", "prediction_agreement": 0.95, "compared": 20,
                      "methods": {"occlusion": {"top_k_overlap": {"5": {"mean": 0.8214}},
                                                "spearman": {"mean": 0.7}}}}
    path = {a["id"]: a["path"] for a in store.artifacts()}[art]
    store.start_run(run, "explain", "explain", {}, {}, parents=[art])
    store.finish_run(run, m, art, path)  # as `supremum explain` records it: the explained artifact


def test_explanations_section_names_the_most_faithful_method_and_its_drift():
    store = Store()
    art = record(store, "int8", "full>int8-dynamic", 0.9, 10.0, 100.0)
    explain_run(store, "ex1", art)
    rep = build(store)
    [s] = rep["sections"]
    assert s["takeaway"] == ("On int8, occlusion is the most faithful of 2 methods: removing its top words lowers "
                             "the predicted class's probability by 0.312, 2.5× random words; it keeps 0.82 of the "
                             "parent's top-5 words and predictions agree on 95%.")
    assert s["rows"] == [["int8", "occlusion", "20", "0.312", "0.080", "2.50", "0.82", "95%"],
                         ["int8", "integrated-gradients", "20", "0.275", "0.050", "2.20", "-", "95%"]]
    assert "/x/expl/explanations.html" in s["note"]


def test_explanations_of_a_model_that_rests_on_no_word_say_so():
    store = Store()
    art = record(store, "int8", "full>int8-dynamic", 0.9, 10.0, 100.0)
    m = {"methods": ["occlusion"], "examples": 4, "output": "/x/e",
         "faithfulness": {"occlusion": {"comprehensiveness": -0.00002, "sufficiency": 0.0,
                                        "comprehensiveness_vs_random": None},
                          "random": {"comprehensiveness": {"mean": 0.00001, "sd": 0.0}}}}
    store.start_run("ex", "explain", "explain", {}, {}, parents=[art])
    store.finish_run("ex", m, art, "/x")
    assert build(store)["sections"][0]["takeaway"] == (
        "On int8, removing words barely moves the predicted class's probability (top words 0.0000, random words "
        "0.0000): no method's ranking can be judged faithful.")


def test_a_drop_below_the_sentences_precision_names_no_most_faithful_method():
    """A tryout's store: 0.0002 would print as "lowers ... by 0.000" under a "most faithful" claim."""
    store = Store()
    art = record(store, "full", "full>temperature", 0.9, 10.0, 100.0)
    m = {"methods": ["occlusion", "input-x-gradient"], "examples": 4, "output": "/x/e",
         "faithfulness": {"occlusion": {"comprehensiveness": 0.0001, "sufficiency": 0.0,
                                        "comprehensiveness_vs_random": 10.0},
                          "input-x-gradient": {"comprehensiveness": 0.0002, "sufficiency": 0.0,
                                               "comprehensiveness_vs_random": 20.0},
                          "random": {"comprehensiveness": {"mean": 0.00001, "sd": 0.0}}}}
    store.start_run("ex", "explain", "explain", {}, {}, parents=[art])
    store.finish_run("ex", m, art, "/x")
    assert build(store)["sections"][0]["takeaway"] == (
        "On full, removing words barely moves the predicted class's probability (top words 0.0002, random words "
        "0.0000): no method's ranking can be judged faithful.")


def test_sections_follow_the_scope_and_are_absent_without_their_work():
    store = Store()
    record(store, "full", "full", 0.9, 10.0, 100.0)
    assert build(store)["sections"] == []
    assert "<section id=" not in render_html(build(store))
    other = record(store, "big", "full", 0.95, 40.0, 400.0, pipeline="other")
    explain_run(store, "ex1", other, drift=False)
    assert [s["name"] for s in build(store)["sections"]] == ["explanations"]
    assert build(store, pipeline="demo")["sections"] == []
    [s] = build(store, pipeline="other")["sections"]
    assert s["takeaway"] == ("On big, occlusion is the most faithful of 2 methods: removing its top words lowers "
                             "the predicted class's probability by 0.312, 2.5× random words.")


def lm_eval(store: Store, stage: str, ppl: float, ref: float, parent_ref: float | None) -> None:
    f = {"reference": "wikitext2", "file": "wikitext2/test.txt", "perplexity": ref, "tokens": 4096, "window": 64,
         "stride": 32, "parent": "p" if parent_ref else None}
    if parent_ref:
        f |= {"parent_perplexity": parent_ref, "change_pct": 100 * (ref / parent_ref - 1)}
    record(store, stage, "full", 0.0, 1.0, 10.0, pipeline="lm", n=None,
           extra={"task": "text-generation", "perplexity": ppl, "forgetting": f,
                  "forgetting_pct": f.get("change_pct"),
                  "cost": {"generation": {"decode_ms_per_token": 2.0}, "peak_rss_mb": 30.0}})


def test_forgetting_section_names_the_variant_that_forgot_most(tmp_path):
    store = Store()
    lm_eval(store, "sft", 12.0, 20.44, 18.20)  # +12.31%
    lm_eval(store, "sft-int8", 12.5, 20.80, 20.44)  # +1.76%
    rep = build(store)
    [s] = rep["sections"]
    assert s["takeaway"] == ("Most forgetting: sft, whose perplexity on wikitext2 rose 12.3% over its parent's "
                             "(18.20 → 20.44); 2 variants compared.")
    assert s["rows"][0] == ["sft", "wikitext2", "4,096", "20.44", "18.20", "+12.31"]
    calm = Store(tmp_path / "calm")
    lm_eval(calm, "sft", 12.0, 18.11, 18.20)
    assert build(calm)["sections"][0]["takeaway"] == (
        "No variant got worse on wikitext2: the largest change is -0.5% (sft, 18.20 → 18.11).")
    lm_eval(calm, "sft-int8", 12.0, 18.1181, 18.11)  # +0.045%: shown as +0.0%, so not a rise
    assert build(calm)["sections"][0]["takeaway"] == (
        "No variant got worse on wikitext2: the largest change is +0.0% (sft-int8, 18.11 → 18.12).")


def test_ceiling_takeaway():
    m = {"metric": "accuracy", "split": "test", "now": {"dev": 0.85},
         "best": {"test": 0.8824, "split": "test"},
         "ceiling": {"accuracy": 0.9134, "ci": [0.8981, 0.9244]},
         "label_noise": {"max_accuracy": 0.9712}}
    assert ceiling_takeaway(m) == ("Best 88.2% test; ceiling 91.3% [89.8, 92.4]; label noise caps the test set at "
                                   "97.1%.")
    bare = {**m, "best": None, "ceiling": None, "label_noise": None}
    assert ceiling_takeaway(bare) == "Now 85.0% dev; ceiling not measured."
    lm = {"metric": "perplexity", "now": {"dev": 20.0}, "best": {"test": 18.456, "split": "test"},
          "ceiling": {"perplexity": 15.2, "ci": [14.1, 16.94]}}
    assert ceiling_takeaway(lm) == "Best 18.46 test perplexity; floor 15.20 [14.10, 16.94]."


def test_labels_takeaway_at_the_largest_budget_and_without_labels():
    def row(a, title, b, mean):
        return {"approach": a, "title": title, "budget": b, "mean": mean, "sd": None}

    m = {"n_train": 5000, "majority": {"label": "pos", "accuracy": 0.5},
         "summary": [row("zeroshot", "zero-shot", 0, 0.5004), row("setfit", "SetFit", 16, 0.70),
                     row("setfit", "SetFit", 64, 0.7821), row("full", "full fine-tune", 64, 0.6512)]}
    assert labels_takeaway(m) == ("With 64 labels SetFit leads (78.2%) over full fine-tune (65.1%); with no "
                                  "labels zero-shot is no better than the majority class (50.0%).")
    m["summary"][0]["mean"] = 0.6234
    assert labels_takeaway(m).endswith("with no labels zero-shot reaches 62.3%, 12.3 pt over the majority class.")


def test_curve_and_scale_takeaways():
    c = {"ceiling": {"accuracy": 0.9051, "ci": [0.88, 0.9312]}, "at_10x": {"accuracy": 0.8949}}
    assert curve_takeaway(c) == "Ceiling 90.5% [88.0, 93.1]; 10x the data gives 89.5%."
    s = {"fit": {"E": 1.23456}, "ci": {"E": [1.2, 1.3]}, "best_run": {"loss": 1.5, "gap_to_E": 0.26544}}
    assert scale_takeaway(s) == ("The loss approaches E = 1.235 nats/token [1.200, 1.300]; the best run (1.500) "
                                 "is 0.265 above it.")


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_a_store_with_only_explanations_still_gets_its_report(fmt):
    store = Store()
    store.add_artifact("a1", str(store.root / "artifacts/a1"), None, "text-classification", "tiny", "lora")
    explain_run(store, "ex1", "a1", drift=False)
    rep = build(store)
    text = render_html(rep) if fmt == "html" else markdown(rep)
    assert "On lora, occlusion is the most faithful of 2 methods" in text
