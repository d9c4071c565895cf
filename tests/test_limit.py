"""Is there a limit? Sources with known entropy, the scaling-law fitter, sweeps and learning curves."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from supremum.errors import UserError
from supremum.limit.fit import bootstrap, compute_optimal, envelope, fit_power, interval
from supremum.limit.sources import MarkovSource, RegimeSource, parse_source


@pytest.mark.parametrize("order,vocab,support", [(1, 4, None), (2, 8, None), (3, 6, 3)])
def test_markov_entropy_rate_matches_monte_carlo(order, vocab, support):
    src = MarkovSource(order=order, vocab=vocab, seed=3, support=support)
    stream = src.sample(200_000, seed=11)
    losses = src.token_losses(stream)
    se = losses.std() / math.sqrt(len(losses))
    # Correlation along the chain inflates the plain standard error a little: 5 of them is generous
    # yet far tighter than any mistake in the stationary law would allow.
    assert abs(losses.mean() - src.entropy_rate()) < 5 * se + 1e-3
    # The empirical k-gram frequencies of the stream match the stationary law.
    ctx = np.zeros(len(stream) - order + 1, dtype=np.int64)
    for i in range(order):
        ctx = ctx * vocab + stream[i:len(stream) - order + 1 + i]
    freq = np.bincount(ctx, minlength=vocab ** order) / len(ctx)
    assert np.abs(freq - src.pi).max() < 0.01


def test_markov_entropy_rate_of_a_hand_made_chain():
    src = MarkovSource(order=1, vocab=2, seed=0)
    src.table = np.array([[0.9, 0.1], [0.5, 0.5]])
    pi = np.array([5 / 6, 1 / 6])  # solves pi = pi P
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    from supremum.limit.sources import _stationary

    src.pi = _stationary(np.array([[0, 1], [0, 1]]), src.table, "hand")
    assert np.allclose(src.pi, pi, atol=1e-10)
    assert math.isclose(src.entropy_rate(), 5 / 6 * h([0.9, 0.1]) + 1 / 6 * h([0.5, 0.5]), rel_tol=1e-9)


def test_regime_source_entropy_rate_and_window_bayes_loss():
    src = RegimeSource(regimes=3, vocab=6, switch=0.05, seed=1)
    stream = src.sample(150_000, seed=5)
    assert stream[0] >= src.vocab  # starts with a marker: the regime is known from the start
    losses = src.token_losses(stream)
    assert abs(losses.mean() - src.entropy_rate()) < 5 * losses.std() / math.sqrt(len(losses)) + 1e-3
    # Short windows hide the regime until their first marker: their optimal loss is higher.
    windows = np.concatenate([src.token_losses(stream[i:i + 17]) for i in range(1, 150_000 - 17, 17)])
    assert windows.mean() > losses.mean()


def test_source_errors():
    with pytest.raises(UserError, match="closed classes"):
        MarkovSource(order=1, vocab=6, support=1, seed=0)
    for bad in ["markov:order=2,colour=3", "nosuch:x=1", "markov:order=two", "text:level=char"]:
        with pytest.raises(UserError):
            parse_source(bad)
    assert parse_source("markov:order=2,vocab=8,seed=4").vocab == 8


def _surface(rng, noise: float):
    n = np.repeat([3e3, 1e4, 3e4, 1e5, 3e5, 1e6], 5)
    d = np.tile([3e4, 1e5, 3e5, 1e6, 3e6], 6)
    loss = 1.8 + 40 / n ** 0.4 + 300 / d ** 0.35
    return n, d, loss * np.exp(rng.normal(0, noise, len(loss))) if noise else loss


def test_fit_recovers_noiseless_parameters():
    n, d, loss = _surface(None, 0)
    f = fit_power([n, d], loss)
    assert math.isclose(f.E, 1.8, rel_tol=1e-4)
    assert np.allclose(f.A, [40, 300], rtol=1e-3) and np.allclose(f.alpha, [0.4, 0.35], rtol=1e-4)
    assert f.agree >= 2  # several starts reached the same optimum
    opt = compute_optimal(f, 1e15)
    assert math.isclose(opt["a"] + opt["b"], 1.0) and math.isclose(6 * opt["N"] * opt["D"], 1e15, rel_tol=1e-9)
    # The allocation is optimal: moving N either way under the same compute loses.
    for k in (0.8, 1.25):
        assert f.predict(opt["N"] * k, opt["D"] / k) > opt["loss"]


def test_fit_intervals_cover_the_truth_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    hits, trials = 0, 12
    for _ in range(trials):
        n, d, loss = _surface(rng, 0.005)
        f = fit_power([n, d], loss, starts=6)
        lo, hi = interval([b.E for b in bootstrap([n, d], loss, f, n=60, seed=int(rng.integers(1e9)))])
        hits += lo <= 1.8 <= hi
    # Nominal 95%: 12 trials would show 9 or fewer hits with probability < 3% if that held.
    assert hits >= 10, f"E's interval covered the truth in only {hits} of {trials} trials"


def test_envelope_is_the_loss_compute_frontier():
    c = np.array([1, 2, 3, 4, 5.0])
    loss = np.array([3.0, 3.5, 2.0, 2.5, 1.0])
    assert envelope(c, loss).tolist() == [0, 2, 4]


def test_learning_curve_fit_and_target():
    from supremum.limit.curve import analyze_curve

    rng = np.random.default_rng(0)
    pts = [(n, 1 - (0.08 + 2.0 / n ** 0.5) * math.exp(rng.normal(0, 0.01)), s)
           for n in [100, 200, 400, 800, 1600, 3200] for s in range(3)]
    r = analyze_curve(pts, target=0.9, resamples=60)
    assert abs(r["fit"]["E"] - 0.08) < 0.015
    assert r["ceiling"]["ci"][0] <= 0.92 <= r["ceiling"]["ci"][1]
    need = (2.0 / (0.1 - 0.08)) ** 2  # the truth: 10,000 examples
    assert r["target"]["reachable"] and 0.5 * need < r["target"]["examples"] < 2 * need
    beyond = analyze_curve(pts, target=0.95, resamples=0)
    assert beyond["target"]["reachable"] is False
    json.dumps(beyond, allow_nan=False)  # no Infinity in the JSON (an interval end is None instead)


def test_a_saturated_curve_with_a_target_says_it_is_reached():
    from supremum.limit.curve import analyze_curve
    from supremum.limit.summary import curve_summary

    pts = [(n, 1.0, s) for n in (50, 100, 200) for s in (0, 1)]
    r = analyze_curve(pts, target=0.9, resamples=10, eval_examples=300, split="dev")
    assert r["ceiling"]["verdict"] == "saturated"
    assert r["ceiling"]["ci"][0] == pytest.approx(1 - math.log(20) / 300)
    lines = curve_summary(r)[0]  # it raised TypeError formatting the interval's missing lower end
    assert "target 90.0% is reached at every measured size (the smallest: 50 examples)" in lines
    json.dumps(r, allow_nan=False)


def test_train_limit_nests_subsets_and_keeps_the_label_map(tmp_path):
    from supremum.config import DataConfig
    from supremum.data import load_data

    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(40)))
    small = load_data(DataConfig(path=str(tmp_path / "train.csv"), train_limit=8))
    big = load_data(DataConfig(path=str(tmp_path / "train.csv"), train_limit=16))
    assert len(small.splits["train"]) == 8
    assert set(small.splits["train"]["text"]) <= set(big.splits["train"]["text"])
    assert small.label_names == big.label_names == ["a", "b"]
    with pytest.raises(UserError, match="exceeds"):
        load_data(DataConfig(path=str(tmp_path / "train.csv"), train_limit=1000))


TINY_SWEEP = ["scale", "--source", "markov:order=1,vocab=6,seed=2", "--sizes", "d8L1,d16L1,d16L2",
              "--tokens", "4096,8192,16384", "--ctx", "16", "--batch-tokens", "128", "--eval-tokens", "2048",
              "--bootstrap", "20", "--jobs", "2", "--name", "tiny", "--plateau", "0"]


def _cli(args, home, timeout=600):
    env = {**os.environ, "SUPREMUM_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "supremum", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_tiny_sweep_end_to_end_and_resume(tmp_path):
    from supremum.store import Store

    p = _cli([*TINY_SWEEP, "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)
    assert len(a["runs"]) == 9 and {r["shape"] for r in a["runs"]} == {"d8L1", "d16L1", "d16L2"}
    for r in a["runs"]:
        assert r["flops"] == 6 * r["N"] * r["D"] and r["loss"] > 0
    t = a["truth"]
    assert t["entropy_rate"] == pytest.approx(MarkovSource(order=1, vocab=6, seed=2).entropy_rate())
    # The best any model can do on the held-out targets is the source's own loss there.
    assert min(r["loss"] for r in a["runs"]) > t["bayes_heldout"]["mean"] - 4 * t["bayes_heldout"]["se"]
    for key in ("E", "alpha", "beta", "a", "b"):
        assert len(a["ci"][key]) == 2
    assert [p["label"] for p in a["predictions"]] == ["10x largest run", "100x largest run"]
    assert a["holdout"]["held_out"] == 2 and len(a["holdout"]["rows"]) == 2
    for plot in a["plots"]:
        assert open(plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    runs = Store(tmp_path).runs()
    assert sum(r["kind"] == "scale-run" and r["status"] == "finished" for r in runs) == 9
    assert sum(r["kind"] == "scale" for r in runs) == 1
    # A re-run trains nothing and reaches the same fit.
    again = _cli(TINY_SWEEP, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "9 of 9 runs already done; running 0" in again.stderr
    assert f"limit E = {a['fit']['E']:.4f}" in again.stdout
    assert sum(r["kind"] == "scale-run" for r in Store(tmp_path).runs()) == 9
    # The report of a store holding only a sweep: its limit section with the three plots.
    rep = _cli(["report", "--output", str(tmp_path / "r.html")], tmp_path)
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Is there a limit? markov source" in html and html.count("<svg") == 3 and "What the limit means" in html
    md = _cli(["report", "--format", "md", "--output", str(tmp_path / "r.md")], tmp_path)
    assert md.returncode == 0 and f"limit E = {a['fit']['E']:.4f}" in (tmp_path / "r.md").read_text()


def test_scale_dry_run_and_bad_input(tmp_path):
    p = _cli([*TINY_SWEEP, "--dry-run", "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert len(plan["runs"]) == 9 and {r["status"] for r in plan["runs"]} == {"to run"}
    for args, needle in [(["--source", "markov:order=2,vocab=16", "--sizes", "d7L1", "--tokens", "1,2,3"], "d7L1"),
                         (["--source", "markov:order=2,vocab=16"], "--budget-minutes"),
                         (["--source", "markov:vocab=6,support=1"], "closed classes"),
                         (["--source", "nosuch.txt", "--budget-minutes", "1"], "nosuch.txt"),
                         (["--budget-minutes", "1"], "needs a source")]:
        p = _cli(["scale", *args], tmp_path)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1


def test_plateau_runs_are_listed_but_not_fitted():
    from supremum.limit.analysis import analyze
    from supremum.limit.sweep import ScaleConfig

    rng = np.random.default_rng(1)
    n, d, loss = _surface(rng, 0.002)
    runs = [{"N": a, "D": b, "loss": c, "shape": "x", "seed": 0} for a, b, c in zip(n, d, loss, strict=True)]
    runs += [{"N": 1e6, "D": 1e3, "loss": 19.5, "shape": "x", "seed": 0}]  # has not started learning
    cfg = ScaleConfig(source="markov:order=1,vocab=4", bootstrap=20, holdout=0.2)
    a = analyze(runs, {"source": {"kind": "markov"}, "unigram_entropy": 20.0}, cfg)
    assert a["plateau"]["excluded"] == 1 and [r["fitted"] for r in a["runs"]].count(False) == 1
    assert abs(a["fit"]["E"] - 1.8) < 0.05
    info = {"source": {"kind": "markov"}, "unigram_entropy": 20.0}
    kept = analyze(runs, info, cfg.model_copy(update={"plateau": 0}))
    assert kept["plateau"]["excluded"] == 0


def test_budget_planner_fits_the_budget():
    from supremum.limit.sweep import ScaleConfig, plan

    cfg = ScaleConfig(source="markov:order=1,vocab=4", budget_minutes=3, batch_tokens=256, ctx=16,
                      sizes=["d8L1", "d16L1", "d24L1", "d32L2"])
    shapes, levels, est = plan(cfg, vocab=4, jobs=2, threads=1)
    assert est <= 180 and len(shapes) == 4 and len(levels) >= 3
    assert levels == [64 * 256 * 2 ** i for i in range(len(levels))]


def test_learning_curve_cli_on_a_tiny_model(tmp_path):
    rows = "".join(f"{'good' if i % 2 else 'bad'} film {i},{i % 2}\n" for i in range(80))
    (tmp_path / "train.csv").write_text("text,label\n" + rows)
    p = _cli(["curve", "--model", "tiny-bert", "--data", str(tmp_path / "train.csv"), "--method", "full",
              "--fractions", "1/8,1/4,1/2,1", "--seeds", "0", "--epochs", "1", "--split", "dev",
              "--bootstrap", "10", "--target", "0.9", "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert sorted(pt["n"] for pt in r["points"]) == [8, 16, 32, 64]  # shares of 64 training rows (80 - dev - test)
    c = r["ceiling"]
    assert 0 <= r["ceiling"]["accuracy"] <= 1 and c["ci"][0] < c["ci"][1] and "target" in r
    assert c["verdict"] in ("identified", "loosely identified", "not identified") and c["sentence"]
    assert r["split"] == "dev" and open(r["plots"][0], "rb").read(4) == b"\x89PNG"
    few = _cli(["curve", "--model", "tiny-bert", "--data", str(tmp_path / "train.csv"), "--fractions", "1/4,1/2,1",
                "--seeds", "0"], tmp_path)
    assert few.returncode == 2 and "needs at least 4 runs" in few.stderr and "Traceback" not in few.stderr


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("recipes/scale/*.yaml")) +
                         sorted(Path(__file__).parent.parent.glob("recipes/curve/*.yaml")))
def test_limit_recipes_validate(path, monkeypatch):
    from supremum.limit.curve import CurveConfig
    from supremum.limit.sweep import ScaleConfig
    from supremum.recipe import build, load_yaml

    monkeypatch.setenv("SUPREMUM_DATA", "/data")
    raw, lines = load_yaml(path)
    cfg = build(ScaleConfig if path.parent.name == "scale" else CurveConfig, raw, str(path), lines)
    assert cfg is not None


def test_sweep_and_comparison_on_a_local_ray_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'supremum[ray]')")
    from supremum.compare import CompareConfig, run
    from supremum.limit.sweep import ScaleConfig, run_sweep
    from supremum.store import Store

    monkeypatch.setenv("SUPREMUM_HOME", str(tmp_path))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = ScaleConfig(source="markov:order=1,vocab=6,seed=2", sizes=["d8L1", "d16L1"],
                          tokens=[4096, 8192, 16384], ctx=16, batch_tokens=128, eval_tokens=2048, bootstrap=10,
                          executor="ray", name="ray", plateau=0)
        a = run_sweep(cfg, Store(tmp_path))
        assert a["plan"]["jobs"] == 2 and len(a["runs"]) == 6
        local = run_sweep(cfg.model_copy(update={"executor": "local"}), Store(tmp_path))
        assert local["fit"]["E"] == a["fit"]["E"]  # the same cached runs: Ray wrote the same results
        rows = "".join(f"w{i} {'ab'[i % 2]},{i % 2}\n" for i in range(40))
        (tmp_path / "d.csv").write_text("text,label\n" + rows)
        cmp = CompareConfig(name="ray", model={"name": "tiny-bert"}, data={"path": str(tmp_path / "d.csv")},
                            train={"max_steps": 2, "batch_size": 8}, methods=["full", "bitfit"], seeds=[0],
                            evaluate={"splits": ["dev"]}, executor="ray", jobs=2)
        s = run(cmp, Store(tmp_path))
        assert {r["variant"] for r in s["rows"]} == {"full", "bitfit"} and s["cached_cells"] == 0
    finally:
        ray.shutdown()


@pytest.mark.parametrize("n_train, accum, want", [
    (100, 1, [12, 12, 12]),      # the whole set trains 12 steps: no subset trains more (10 < batch too)
    (1000, 1, [77, 62, 96]),     # min_steps (60) binds the subsets, up to their last epoch's partial batch
    (8000, 4, [68, 62, 189]),    # optimizer steps, counting gradient accumulation (not 60 / 4)
])
def test_curve_subsets_train_min_steps_but_never_more_than_the_whole_set(n_train, accum, want):
    from supremum.limit.curve import CurveConfig, compare_config
    from supremum.train.config import TrainConfig
    from supremum.train.loop import plan_steps

    cfg = CurveConfig.model_validate({"model": "tiny-bert", "data": {"path": "x.csv"},
                                      "fractions": [0.1, 0.25, 1.0], "train": {"grad_accum": accum}})
    steps = [plan_steps(v.data.get("train_limit", n_train),
                        TrainConfig(**{**cfg.train.model_dump(), **v.train}))[1]
             for v in compare_config(cfg, n_train).methods]
    assert steps == want


def test_fractions_that_give_one_size_twice_are_one_line():
    from supremum.limit.curve import CurveConfig, compare_config

    cfg = CurveConfig.model_validate({"model": "tiny-bert", "data": {"path": "x.csv"},
                                      "fractions": [0.125, 0.25, 0.5, 1.0]})
    with pytest.raises(UserError) as e:
        compare_config(cfg, 10)  # 1/8 and 1/4 of 10 both round to 2
    assert e.value.message == ("the training set's 10 examples are too few for the fractions 0.125, 0.25, 0.5, 1: "
                               "they give the sizes 2, 2, 5, 10, some twice")
    assert e.value.hint.startswith("give fewer, larger fractions")
