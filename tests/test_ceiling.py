"""How good can this model get: the learning-curve ceiling and its interval, label noise by
confident learning, and the noise between runs (test-set resolution, seed spread)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from supremum.errors import UserError
from supremum.limit.curve import analyze_curve
from supremum.limit.fit import curve_region

SIZES = [100, 200, 400, 800, 1600, 3200]


def _curve(rng, E=0.08, A=2.0, alpha=0.5, sizes=SIZES, seeds=3, sd=0.005):
    n = np.repeat(np.asarray(sizes, dtype=float), seeds)
    return n, E + A * n ** -alpha + rng.normal(0, sd, len(n))


@pytest.mark.parametrize("truth", [dict(E=0.08, A=2.0, alpha=0.5, seeds=3, sd=0.005),
                                   dict(E=0.05, A=5.0, alpha=0.7, sizes=[100, 300, 1000, 3000, 10000],
                                        seeds=2, sd=0.003)])
def test_floor_interval_covers_the_true_floor_at_about_the_nominal_rate(truth):
    hits, hits_10x, widths = 0, 0, []
    x = 10 * max(truth.get("sizes", SIZES))
    at_x = truth["E"] + truth["A"] * x ** -truth["alpha"]
    for s in range(100):
        n, y = _curve(np.random.default_rng(s), **truth)
        region = curve_region(n, y)
        lo, hi = region.floor_ci()
        hits += lo <= truth["E"] <= hi
        widths.append(hi - lo)
        lo, hi = region.range(lambda E, A, al: E + A * x ** -al)
        hits_10x += lo <= at_x <= hi
    # 95% nominal: 100 datasets show fewer than 85 hits with probability ~1e-4 if it holds.
    assert hits >= 85, f"the floor's interval covered the truth in {hits} of 100 datasets"
    assert hits_10x >= 85, f"the interval at 10x the data covered the truth in {hits_10x} of 100 datasets"
    assert min(widths) > 0  # never zero-width
    assert np.median(widths) < 0.05  # and informative when the runs pin the floor down


def test_identified_curve_reports_ceiling_predictions_and_target():
    n, y = _curve(np.random.default_rng(0), sd=0.002)
    pts = [(int(a), 1 - e, i % 3) for i, (a, e) in enumerate(zip(n, y, strict=True))]
    r = analyze_curve(pts, target=0.9, resamples=100, n_train=3200, split="dev")
    c = r["ceiling"]
    assert c["verdict"] == "identified" and c["identified"]
    assert c["ci"][0] <= 0.92 <= c["ci"][1] and c["ci"][1] - c["ci"][0] > 0
    assert abs(c["accuracy"] - 0.92) < 0.01
    for key, k in (("at_2x", 2), ("at_10x", 10)):
        truth = 1 - (0.08 + 2.0 / (k * 3200) ** 0.5)
        lo, hi = r[key]["ci"]
        assert r[key]["n"] == k * 3200 and lo <= r[key]["accuracy"] <= hi and 0 < hi - lo < 0.01
        assert abs(r[key]["accuracy"] - truth) < 0.005  # extrapolated 10x beyond the runs
    t = r["target"]
    need = (2.0 / (0.1 - 0.08)) ** 2  # the truth: 10,000 examples
    assert t["reachable"] and t["status"] == "reachable" and 0.7 * need < t["examples"] < 1.4 * need
    assert t["examples_ci"][0] <= need <= t["examples_ci"][1]
    assert t["share_of_resamples_reachable"] == 1.0 and t["resamples"] == 100
    above = analyze_curve(pts, target=0.95, resamples=50)["target"]
    assert not above["reachable"] and above["status"] == "beyond the ceiling" and above["examples"] is None
    assert above["share_of_resamples_reachable"] == 0.0


@pytest.mark.parametrize("case", ["flat", "noisy", "small range"])
def test_curves_that_cannot_identify_the_floor_say_so_with_a_wide_interval(case):
    verdicts = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        if case == "flat":
            n, y = _curve(rng, E=0.19, A=0.0, sizes=[2163, 4326, 8652, 17304], seeds=2, sd=0.004)
        elif case == "noisy":
            n, y = _curve(rng, E=0.10, A=1.0, alpha=0.3, sd=0.03)
        else:  # the SST-2 shape: 79% to 82% accuracy over an 8x range of sizes, floor at 12% error
            n, y = _curve(rng, E=0.12, A=0.257, alpha=0.195, sizes=[216, 432, 865, 1730], seeds=2, sd=0.004)
        pts = [(int(a), 1 - e, 0) for a, e in zip(n, y, strict=True)]
        r = analyze_curve(pts, target=0.9, resamples=20, eval_examples=872, n_train=40000, split="dev")
        c = r["ceiling"]
        lo, hi = c["ci"]
        assert c["verdict"] != "identified" and hi - lo >= 0.05, (seed, c)
        verdicts.append(c["verdict"])
        if c["verdict"] == "not identified":
            assert not c["identified"]
            # The interval reaches (nearly) 100% and spans most of the way from the measured accuracies.
            assert hi >= 0.98 and hi - lo >= 0.6 * (1 - c["best_measured"])
            assert c["sentence"].startswith("not identified: these runs allow any ceiling from")
            assert "runs on larger subsets (up to all 40,000 training examples)" in c["sentence"]
            if case == "small range":
                assert "the sizes span only 8x" in c["sentence"]
    assert verdicts.count("not identified") >= 8, verdicts


def test_predictions_at_asked_sizes_come_from_the_same_region():
    # fit on the first 3 sizes (up to 400), predict at 3200: the truth 8 x beyond the runs
    n, y = _curve(np.random.default_rng(1), sizes=[100, 200, 400], seeds=3, sd=0.002)
    pts = [(int(a), 1 - e, i % 3) for i, (a, e) in enumerate(zip(n, y, strict=True))]
    r = analyze_curve(pts, None, 0, eval_examples=2000, predict_at=[3200, 800])
    p, q = r["predictions"]
    assert p["n"] == 3200 and q["n"] == 800
    assert q == r["at_2x"]  # 2 x the largest size: the same number by the same rule
    truth = 1 - (0.08 + 2.0 / 3200 ** 0.5)
    assert p["ci"][0] <= p["accuracy"] <= p["ci"][1] and p["ci"][1] - p["ci"][0] > 0
    assert p["ci"][0] <= truth <= p["ci"][1]
    assert "predictions" not in analyze_curve(pts, None, 0)
    ppl = [(a, math.exp(1 - acc), s) for a, acc, s in pts]  # loss = 1 - accuracy: perplexity exp(loss)
    pp = analyze_curve(ppl, None, 0, metric="perplexity", predict_at=[800])["predictions"][0]
    assert pp["n"] == 800 and math.isclose(pp["perplexity"], math.exp(1 - q["accuracy"]), rel_tol=1e-6)
    sat = analyze_curve([(a, 1.0, s) for a, _, s in pts], None, 0, eval_examples=500, predict_at=[3200])
    assert sat["predictions"] == [{"n": 3200.0, "accuracy": 1.0, "ci": [1 + math.log(0.05) / 500, 1.0]}]


def test_backtest_predicts_the_largest_size_from_the_others():
    """A true power law: the refit without 3,200 predicts it inside its interval and close. A curve
    that bends down at the largest size (error falls faster than the power law through the others):
    outside, the gap's sign and size as built, and the sentence says the extrapolations run low."""
    n, y = _curve(np.random.default_rng(0), sd=0.002)
    pts = [(int(a), 1 - e, i % 3) for i, (a, e) in enumerate(zip(n, y, strict=True))]
    bt = analyze_curve(pts, None, 0, eval_examples=2000, backtest=True)["backtest"]
    measured = float(np.mean([a for a, (m, _, _) in zip(1 - y, pts, strict=True) if m == 3200]))
    assert bt["n"] == 3200 and bt["runs"] == 3 and bt["fitted_sizes"] == SIZES[:-1]
    assert bt["measured"] == pytest.approx(measured) and bt["inside"]
    assert bt["ci"][0] <= bt["predicted"] <= bt["ci"][1] and abs(bt["error"]) < 0.5
    assert bt["error"] == pytest.approx(100 * (bt["predicted"] - measured))
    assert "inside the interval" in bt["sentence"] and "too low" not in bt["sentence"]
    # the interval is the expected value's (the region's) widened by the 3-run mean's own noise
    from supremum.limit.curve import _at
    from supremum.limit.fit import curve_region

    keep = n < 3200
    expected = _at(curve_region(n[keep], y[keep], level=0.95, noise_var=(1 / 2000) ** 2 / 12), 3200)["ci"]
    assert bt["ci"][0] < expected[0] and bt["ci"][1] > expected[1]
    bent = [(a, acc + (0.03 if a == 3200 else 0.0), sd) for a, acc, sd in pts]
    bt = analyze_curve(bent, None, 0, eval_examples=2000, backtest=True)["backtest"]
    assert not bt["inside"] and -3.6 < bt["error"] < -2.4
    assert "was pessimistic" in bt["sentence"] and "likely too low (ceiling included)" in bt["sentence"]
    assert "backtest" not in analyze_curve(pts, None, 0)  # asked for only
    three = [p for p in pts if p[0] <= 400]  # 3 sizes: no backtest can be fitted on 2
    assert "backtest" not in analyze_curve(three, None, 0, backtest=True)
    ppl = [(a, math.exp(1 - acc), s) for a, acc, s in bent]
    lm = analyze_curve(ppl, None, 0, metric="perplexity", backtest=True)["backtest"]
    assert not lm["inside"] and lm["measured"] < lm["ci"][0]
    # the perplexity of the mean loss (the fit's units), not the mean of the perplexities
    assert lm["measured"] == pytest.approx(math.exp(np.mean([math.log(p) for a, p, _ in ppl if a == 3200])))
    assert "likely too high (floor included)" in lm["sentence"]


def test_a_loose_region_never_predicts_an_accuracy_outside_0_to_1():
    # 4 erratic runs on 30 examples (a tiny model's): the region allows curves that leave [0, 1] far out
    pts = [(30, 1.0, 0), (60, 29 / 30, 0), (90, 16 / 30, 0), (120, 16 / 30, 0)]
    r = analyze_curve(pts, None, 0, eval_examples=30, predict_at=[239, 5000])
    for p in [*r["predictions"], r["at_2x"], r["at_10x"]]:
        assert 0 <= p["ci"][0] <= p["ci"][1] <= 1, p
    assert r["predictions"][0]["ci"][0] == 0  # the region reaches 100% error: the bound, not beyond it
    assert all(0 <= lo <= hi <= 1 for lo, hi in r["band"])


def test_curve_input_errors():
    with pytest.raises(UserError, match="at least 3 training-set sizes"):
        analyze_curve([(10, 0.5, 0), (20, 0.6, 0), (10, 0.5, 1), (20, 0.6, 1)], None, 0)
    with pytest.raises(UserError, match="at least 4 runs"):
        analyze_curve([(10, 0.5, 0), (20, 0.6, 0), (40, 0.7, 0)], None, 0)


def test_an_exact_fit_still_gets_a_nonzero_interval():
    n = np.repeat(np.asarray(SIZES, dtype=float), 2)
    pts = [(int(a), 1 - (0.08 + 2.0 * a ** -0.5), 0) for a in n]
    r = analyze_curve(pts, None, 0, eval_examples=1000)
    lo, hi = r["ceiling"]["ci"]
    assert lo < 0.92 < hi and math.isclose(r["ceiling"]["accuracy"], 0.92, abs_tol=1e-6)


def test_curve_plot_names_the_split(tmp_path):
    from supremum.limit.plots import curve_figure

    n, y = _curve(np.random.default_rng(1))
    r = analyze_curve([(int(a), 1 - e, 0) for a, e in zip(n, y, strict=True)], None, 0, split="dev")
    ax = curve_figure(r).axes[0]
    assert ax.get_ylabel() == "dev error (1 - accuracy)"
    assert any(t.get_text() == "runs (dev error)" for t in ax.get_legend().get_texts())


# --- label noise ------------------------------------------------------------------------------

def _noisy_blobs(share: float, seed: int, n: int = 1000):
    """Three well-separated Gaussian classes (Bayes error ~0.1%), a seeded share of labels flipped to
    another class, and out-of-fold probabilities of a logistic model (5-fold cross_val_predict)."""
    from sklearn.datasets import make_blobs
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, y = make_blobs(n_samples=n, centers=[(0, 0), (6, 0), (0, 6)], cluster_std=1.0, random_state=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(n, int(round(share * n)), replace=False)
    given = y.copy()
    given[flipped] = (y[flipped] + rng.integers(1, 3, len(flipped))) % 3
    p = cross_val_predict(LogisticRegression(), x, given, cv=5, method="predict_proba")
    return given, p, flipped, y


@pytest.mark.parametrize("share", [0.05, 0.10, 0.20])
def test_label_noise_finds_planted_flips(share, tmp_path):
    from supremum.limit.label_noise import estimate_label_noise, flag_quality, write_suspects

    given, p, flipped, truth = _noisy_blobs(share, seed=int(share * 100))
    r = estimate_label_noise(given, p, resamples=80)
    assert abs(r["rate"] - share) <= 0.03, r["rate"]
    assert r["ci"][0] <= share <= r["ci"][1] and r["ci"][1] - r["ci"][0] > 0
    assert math.isclose(r["max_accuracy"], 1 - r["rate"])
    assert r["max_accuracy_ci"] == [1 - r["ci"][1], 1 - r["ci"][0]]
    q = flag_quality(r["suspects"], flipped, len(given))
    assert q["precision"] >= 0.8 and q["recall"] >= 0.8, q
    # The suggested label of a flagged flip is its true label.
    sug = dict(zip(r["suspects"], r["suggested"], strict=True))
    hits = [i for i in flipped if i in sug]
    assert np.mean([sug[i] == truth[i] for i in hits]) >= 0.95
    path = write_suspects(tmp_path / "suspects.csv", r, [f"text {i}" for i in range(len(given))], given,
                          ["a", "b", "c"])
    import pandas as pd

    df = pd.read_csv(path)
    assert list(df.columns) == ["row", "text", "given_label", "suggested_label", "confidence",
                                "given_label_confidence"]
    first = r["suspects"][0]
    assert len(df) == len(r["suspects"]) and df.loc[0, "row"] == first and df.loc[0, "text"] == f"text {first}"
    assert df.loc[0, "given_label"] == "abc"[given[first]]
    assert df.loc[0, "suggested_label"] == "abc"[r["suggested"][0]]
    assert df["given_label_confidence"].is_monotonic_increasing  # most suspicious first
    assert [x.name for x in tmp_path.iterdir()] == ["suspects.csv"]  # no temporary left behind


def test_label_noise_clean_labels_and_bad_input():
    from supremum.limit.label_noise import accuracy_without_suspects, estimate_label_noise

    given, p, _, _ = _noisy_blobs(0.0, seed=3)
    r = estimate_label_noise(given, p, resamples=40)
    assert r["rate"] <= 0.01 and r["ci"][0] <= r["rate"] <= r["ci"][1] <= 0.02
    acc = accuracy_without_suspects([0, 1, 1, 2], [0, 1, 2, 2], suspects=[2])
    assert acc == {"accuracy": 0.75, "accuracy_without_suspects": 1.0, "rows_kept": 3}
    with pytest.raises(UserError, match="probability matrix"):
        estimate_label_noise([0, 1], np.ones((3, 2)) / 2)
    with pytest.raises(UserError, match="sum to 1"):
        estimate_label_noise([0, 1, 0, 1], np.ones((4, 2)))
    with pytest.raises(UserError, match="class ids in 0..1"):
        estimate_label_noise([0, 1, 2, 1], np.full((4, 2), 0.5))


# --- noise between runs -----------------------------------------------------------------------

def test_resolution_against_hand_computed_values():
    from supremum.limit.resolution import resolution

    # 872 dev examples at 90%: d = 2 * 0.9 * 0.1 = 0.18; 1.959964 * sqrt(0.18 / 872) = 0.028160.
    assert math.isclose(resolution(872, 0.9), 0.028160, abs_tol=2e-6)
    # A known discordant share: 1.959964 * sqrt(0.05 / 1821) = 0.010270.
    assert math.isclose(resolution(1821, discordant=0.05), 0.010270, abs_tol=2e-6)
    # 99%: 2.575829 * sqrt(0.18 / 872) = 0.037008.
    assert math.isclose(resolution(872, 0.9, level=0.99), 0.037008, abs_tol=2e-6)
    with pytest.raises(UserError, match="accuracy in"):
        resolution(100)


def test_mcnemar_and_paired_bootstrap():
    from supremum.limit.resolution import mcnemar, paired_bootstrap

    # 8 examples only A gets right, 2 only B, 90 both: p = 2 * (1 + 10 + 45) / 1024 = 0.109375.
    a = np.r_[np.ones(8), np.zeros(2), np.ones(90)].astype(bool)
    b = np.r_[np.zeros(8), np.ones(2), np.ones(90)].astype(bool)
    m = mcnemar(a, b)
    assert (m["only_a"], m["only_b"], m["n"]) == (8, 2, 100) and math.isclose(m["p_value"], 0.109375)
    assert math.isclose(m["difference"], 0.06) and math.isclose(m["discordant"], 0.10)
    r = paired_bootstrap(a, b, resamples=4000, seed=1)
    assert math.isclose(r["difference"], 0.06)
    # Wald: 0.06 +- 1.96 * sqrt((0.10 - 0.06^2) / 100) = 0.06 +- 0.0608; the bootstrap agrees to ~10%.
    half = (r["ci"][1] - r["ci"][0]) / 2
    assert abs(half - 0.0608) < 0.008 and r["ci"][0] < 0.06 < r["ci"][1]
    assert math.isclose(r["resolution"], 1.959964 * math.sqrt(0.10 / 100), rel_tol=1e-5)
    with pytest.raises(UserError, match="one length"):
        mcnemar([True], [True, False])


def test_seed_spread_against_hand_computed_values():
    from supremum.limit.resolution import seed_spread

    # mean 0.82, s = 0.02, t(0.975, 2) = 4.302653: half-width 4.302653 * 0.02 / sqrt(3) = 0.049683.
    s = seed_spread([0.80, 0.82, 0.84])
    assert math.isclose(s["mean"], 0.82) and math.isclose(s["std"], 0.02) and s["seeds"] == 3
    assert np.allclose(s["ci"], [0.770317, 0.869683], atol=2e-6)
    with pytest.raises(UserError, match="at least 2 seeds"):
        seed_spread([0.8])


def test_curve_summary_words_the_verdict_and_reads_old_results():
    from supremum.limit.summary import curve_summary

    n, y = _curve(np.random.default_rng(2), E=0.12, A=0.257, alpha=0.195, sizes=[216, 432, 865, 1730], seeds=2,
                  sd=0.004)
    r = analyze_curve([(int(a), 1 - e, 0) for a, e in zip(n, y, strict=True)], 0.9, 20, eval_examples=872,
                      n_train=6920, split="dev")
    r["name"] = "sst2"
    lines, tables, _ = curve_summary(r)
    assert lines[0].startswith("dev accuracy ceiling ") and lines[0].count("not identified") == 1
    assert lines[1] == r["ceiling"]["sentence"] and lines[2].startswith("with 2x the data (3,460 examples)")
    assert tables[0][1][2] == "dev accuracy (mean)"
    old = {"points": r["points"], "fit": {"E": 0.1, "B": 1.0, "beta": 0.3}, "method": "m",
           "ceiling": {"accuracy": 0.9, "ci": [0.9, 0.9]}, "at_10x": {"n": 1e4, "accuracy": 0.9, "ci": [0.9, 0.9]}}
    assert "re-run `supremum curve`" in curve_summary(old)[0][1]
