"""Calibration: ECE, adaptive ECE, Brier, NLL and accuracy-coverage against hand computations;
temperature scaling (`supremum calibrate`) on a tiny model: predictions unchanged, dev NLL lower,
the temperature applied by a fresh process, ONNX Runtime, ensembles and the server; bad input."""

import json
import math

import numpy as np
import pytest
from conftest import run_cli, write_csv

from supremum.evaluate.calibration import brier, calibration_metrics, equal_mass, equal_width, nll, selective

# Six examples, two classes; confidences chosen off the 15-bin edges (multiples of 1/15).
PROBS = np.array([[0.10, 0.90], [0.92, 0.08], [0.30, 0.70], [0.72, 0.28], [0.45, 0.55], [0.03, 0.97]])
LABELS = np.array([1, 1, 1, 0, 0, 1])
# confidence / correct: .90 right, .92 wrong, .70 right, .72 right, .55 wrong, .97 right


def test_ece_equals_hand_computation():
    m = calibration_metrics(np.log(PROBS), LABELS)
    # bins (13/15, 14/15]: {.90 right, .92 wrong}: |0.5 - 0.91| = 0.41, weight 2/6
    #      (10/15, 11/15]: {.70, .72 right}: |1 - 0.71| = 0.29, weight 2/6
    #      (8/15, 9/15]: {.55 wrong}: 0.55; (14/15, 1]: {.97 right}: 0.03, weight 1/6 each
    assert m["ece"] == pytest.approx((2 * 0.41 + 2 * 0.29 + 0.55 + 0.03) / 6, abs=1e-12)  # 0.33
    rel = {r["lower"]: r for r in m["reliability"] if r["count"]}
    assert sorted(r["count"] for r in rel.values()) == [1, 1, 2, 2]
    b = next(r for r in m["reliability"] if r["count"] == 2 and r["accuracy"] == 0.5)
    assert b["confidence"] == pytest.approx(0.91) and b["lower"] == pytest.approx(13 / 15)
    assert len(m["reliability"]) == 15 and sum(r["count"] for r in m["reliability"]) == 6
    # 15 equal-mass bins over 6 examples: one example each, mean |correct - confidence|
    assert m["adaptive_ece"] == pytest.approx((0.10 + 0.92 + 0.30 + 0.28 + 0.55 + 0.03) / 6, abs=1e-12)


def test_adaptive_ece_equals_hand_computation():
    conf, correct = PROBS.max(1), (PROBS.argmax(1) == LABELS).astype(float)
    # sorted: .55 w, .70 r | .72 r, .90 r | .92 w, .97 r  ->  |.5-.625|, |1-.81|, |.5-.945|, 2/6 each
    ece, rows = equal_mass(conf, correct, bins=3)
    assert ece == pytest.approx(2 / 6 * (0.125 + 0.19 + 0.445), abs=1e-12)
    assert [r["count"] for r in rows] == [2, 2, 2] and rows[2]["confidence"] == pytest.approx(0.945)
    assert equal_width(conf, correct, bins=2)[0] == pytest.approx(abs(4 / 6 - conf.mean()))  # one bin (.5, 1]


def test_brier_and_nll_equal_hand_values():
    # sum over classes of (p - onehot)^2: .02, 1.6928, .18, .1568, .605, .0018
    assert brier(PROBS, LABELS) == pytest.approx(2.6564 / 6, abs=1e-12)
    want = -(math.log(0.9) + math.log(0.08) + math.log(0.7) + math.log(0.72) + math.log(0.45) + math.log(0.97)) / 6
    assert nll(np.log(PROBS), LABELS) == pytest.approx(want, abs=1e-12)
    m = calibration_metrics(np.log(PROBS), LABELS)
    assert m["nll"] == pytest.approx(want, abs=1e-12) and m["brier"] == pytest.approx(2.6564 / 6, abs=1e-12)


def test_accuracy_coverage_equals_hand_values():
    s = calibration_metrics(np.log(PROBS), LABELS)["selective"]
    at = {a["threshold"]: a for a in s["at"]}
    assert at[0.6]["coverage"] == pytest.approx(5 / 6) and at[0.6]["accuracy"] == pytest.approx(4 / 5)
    assert at[0.8]["coverage"] == pytest.approx(3 / 6) and at[0.8]["accuracy"] == pytest.approx(2 / 3)
    assert at[0.95]["coverage"] == pytest.approx(1 / 6) and at[0.95]["accuracy"] == 1.0
    assert at[0.99] == {"threshold": 0.99, "coverage": 0.0, "accuracy": None}
    # most confident first: .97 r, .92 w, .90 r, .72 r, .70 r, .55 w -> 1, 1/2, 2/3, 3/4, 4/5, 4/6
    assert s["area"] == pytest.approx((1 + 1 / 2 + 2 / 3 + 3 / 4 + 4 / 5 + 4 / 6) / 6, abs=1e-12)
    # equal confidences enter together, so their order does not matter
    a = selective(np.array([0.9, 0.9, 0.6]), np.array([1.0, 0.0, 1.0]))["area"]
    b = selective(np.array([0.9, 0.9, 0.6]), np.array([0.0, 1.0, 1.0]))["area"]
    assert a == b == pytest.approx(2 / 3 * 0.5 + 1 / 3 * 2 / 3)


def test_fit_temperature_recovers_overconfidence():
    from supremum.evaluate.calibrate import fit_temperature

    rng = np.random.default_rng(0)
    true = rng.normal(0, 1.5, size=(20000, 3))
    p = np.exp(true) / np.exp(true).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in p])
    t = fit_temperature(4 * true, labels)  # logits 4x too sharp: the best T is about 4
    assert t == pytest.approx(4, rel=0.05)
    assert nll(4 * true / t, labels) < nll(4 * true, labels)
    assert fit_temperature(true, labels) == pytest.approx(1, rel=0.05)


def test_a_temperature_on_the_search_bound_is_said():
    from supremum.evaluate.calibrate import T_BOUNDS, at_bound, fit_temperature

    # labels that ignore the logits: NLL falls as T grows, all the way to the bound
    logits = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 3.0]])
    t = fit_temperature(logits, np.array([1, 0, 0, 1]))
    assert t == pytest.approx(T_BOUNDS[1], rel=1e-3)
    assert at_bound(t).startswith("T reached the upper search bound 20")
    assert at_bound(1.3) is None and at_bound(T_BOUNDS[0]).startswith("T reached the lower search bound 0.05")


# ---- temperature scaling of a tiny fine-tuned classifier --------------------------------

@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tiny-bert fine-tune (few steps: still miscalibrated), its data, and its calibrated child."""
    import os

    from conftest import sentiment_rows

    from supremum import api

    d = tmp_path_factory.mktemp("calib")
    data = write_csv(d / "reviews.csv", sentiment_rows(240))
    old = os.environ.get("SUPREMUM_HOME")
    os.environ["SUPREMUM_HOME"] = str(d / "home")
    try:
        run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "6", "--lr", "3e-3",
                "--output", str(d / "parent"), "--no-progress", check=True)
        child = api.calibrate(str(d / "parent"), output=d / "child")
    finally:
        os.environ.pop("SUPREMUM_HOME") if old is None else os.environ.__setitem__("SUPREMUM_HOME", old)
    return d, data, child


def _dev(art, data):
    from supremum.evaluate.calibrate import dev_logits
    from supremum.evaluate.stage import data_config_for

    return dev_logits(art, data_config_for(art, str(data)))


def test_calibrate_keeps_argmax_and_lowers_dev_nll(tuned):
    from supremum.artifact import open_artifact

    d, data, child = tuned
    parent = open_artifact(d / "parent")
    t = child.manifest.temperature
    assert t is not None and t > 0 and abs(t - 1) > 1e-3
    raw, labels = _dev(parent, data)
    import supremum.backends as backends
    from supremum.evaluate.calibrate import dev_split
    from supremum.infer import predict_logits
    from supremum.preprocessing import preprocessing_for

    model, tok = backends.load(child)  # calibrated
    got = predict_logits(model, preprocessing_for(child).tokenize(tok, dev_split(child, _cfg(child, data))[0]),
                         tok.pad_token_id)
    np.testing.assert_allclose(got, raw / t, rtol=1e-5, atol=1e-6)
    assert (got.argmax(1) == raw.argmax(1)).all()
    rec = child.manifest.calibration
    assert rec["before"]["nll"] == pytest.approx(nll(raw, labels), abs=1e-9)
    assert rec["after"]["nll"] == pytest.approx(nll(raw / t, labels), abs=1e-9)
    assert rec["after"]["nll"] < rec["before"]["nll"] and rec["examples"] == len(labels)
    assert child.manifest.parents == [parent.id] and child.lineage == "full>temperature"
    assert child.manifest.files == parent.manifest.files  # the weights are the parent's, unchanged


def test_calibrating_twice_refits_and_keeps_one_step(tuned, tmp_path, monkeypatch):
    from supremum import api

    d, data, child = tuned
    monkeypatch.setenv("SUPREMUM_HOME", str(d / "home"))
    again = api.calibrate(str(child.path), output=tmp_path / "again")
    # fitted on the uncalibrated logits again: the same T, one temperature step in the lineage
    assert again.manifest.temperature == pytest.approx(child.manifest.temperature, rel=1e-6)
    assert again.lineage == "full>temperature" and again.manifest.parents == [child.id]
    assert again.manifest.calibration["replaces_temperature"] == child.manifest.temperature


def _cfg(art, data):
    from supremum.evaluate.stage import data_config_for

    return data_config_for(art, str(data))


def test_calibrated_artifact_in_a_fresh_process_and_eval_vs_parent(tuned, monkeypatch):
    from supremum import api
    from supremum.artifact import open_artifact

    d, data, child = tuned
    monkeypatch.setenv("SUPREMUM_HOME", str(d / "home"))
    parent_m = api.evaluate(str(d / "parent"), config={"speed": False})
    here = api.evaluate(child, config={"speed": False})
    proc = run_cli("eval", str(child.path), "--no-speed", "--json", check=True)
    there = json.loads(proc.stdout)
    for k in ("nll", "ece", "adaptive_ece", "brier"):
        assert there["calibration"][k] == pytest.approx(here["calibration"][k], abs=1e-7), k
    assert there["calibration"]["temperature"] == child.manifest.temperature
    assert here["accuracy"] == parent_m["accuracy"]  # argmax unchanged on dev
    vs = here["calibration"]["vs_parent"]
    assert vs["parent"] == open_artifact(d / "parent").id
    assert vs["ece_delta_pt"] == pytest.approx(100 * (here["calibration"]["ece"] - parent_m["calibration"]["ece"]))
    assert vs["accuracy_delta_pt"] == 0.0
    # the frontier lists ECE for each variant
    front = api.frontier(metric="ece", cost="size")
    rows = {r["artifact"]: r for r in front["frontier"] + front["dominated"]}
    assert rows[child.id]["metrics"]["ece"] == pytest.approx(here["calibration"]["ece"])


def test_onnx_ensemble_and_server_apply_the_temperature(tuned, monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from supremum import api
    from supremum.artifact import open_artifact
    from supremum.ensemble import make_ensemble
    from supremum.evaluate.quality import softmax
    from supremum.serve import ServeConfig
    from supremum.serve.app import create_app

    d, data, child = tuned
    monkeypatch.setenv("SUPREMUM_HOME", str(d / "home"))
    parent = open_artifact(d / "parent")
    raw, _ = _dev(parent, data)
    calibrated = softmax(raw / child.manifest.temperature)
    # exported after calibration: the ONNX child keeps T and ONNX Runtime applies it
    onnx = api.compress(child, "onnx", output=tmp_path / "onnx")
    assert onnx.manifest.backend == "onnxruntime" and onnx.manifest.temperature == child.manifest.temperature
    import supremum.backends as backends
    from supremum.evaluate.calibrate import dev_split
    from supremum.infer import predict_logits
    from supremum.preprocessing import preprocessing_for

    texts = dev_split(child, _cfg(child, data))[0]
    model, tok = backends.load(onnx)
    ort = softmax(predict_logits(model, preprocessing_for(onnx).tokenize(tok, texts), tok.pad_token_id))
    np.testing.assert_allclose(ort, calibrated, atol=1e-4)
    # an ONNX artifact calibrated on its own fits the same T as the PyTorch one
    onnx_raw = api.compress(parent, "onnx", output=tmp_path / "onnx-raw")
    onnx_cal = api.calibrate(onnx_raw, output=tmp_path / "onnx-cal")
    assert onnx_cal.manifest.temperature == pytest.approx(child.manifest.temperature, rel=1e-3)
    # an ensemble averages its members' calibrated probabilities
    ens = make_ensemble([parent, child], tmp_path / "ens")
    model, tok = backends.load(ens)
    got = softmax(predict_logits(model, preprocessing_for(ens).tokenize(tok, texts), tok.pad_token_id))
    np.testing.assert_allclose(got, (softmax(raw) + calibrated) / 2, atol=1e-5)
    # the server returns calibrated probabilities
    with TestClient(create_app(child, ServeConfig())) as client:
        r = client.post("/v1/classify", json={"texts": texts[:3]})
    assert r.status_code == 200
    served = [list(p["probabilities"].values()) for p in r.json()["predictions"]]
    np.testing.assert_allclose(served, calibrated[:3], atol=1e-5)


def test_bad_input_is_one_line_exit_2(tuned, tmp_path):
    from conftest import sentiment_rows

    from supremum.artifact import save_artifact
    from supremum.models import load_model

    d, data, child = tuned
    model, tok = load_model("tiny-llama", "causal-lm")
    save_artifact(model, tok, tmp_path / "lm", task="text-generation", label_names=None, base_model="tiny-llama",
                  config={}, artifact_id="tinyllama-lm")
    env = {"SUPREMUM_HOME": str(d / "home")}
    p = run_cli("calibrate", str(tmp_path / "lm"), env=env)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[0] == (
        "error: artifact tinyllama-lm is a text-generation model; temperature scaling calibrates class "
        "probabilities (calibrate a classifier artifact)"), p.stderr
    other = write_csv(tmp_path / "other.csv", sentiment_rows(30, 5))
    p = run_cli("calibrate", str(d / "parent"), "--data", str(other), env=env)
    assert p.returncode == 2 and p.stderr.strip() == (
        f"error: {other} has no labelled dev split to fit the temperature on (pass the artifact's training "
        "data (its dev split), or a directory with a labelled dev file)"), p.stderr
    splits = tmp_path / "splits"
    splits.mkdir()
    write_csv(splits / "train.csv", sentiment_rows(30, 6))
    (splits / "dev.csv").write_text("text\nfine good\nawful bad\n")  # a dev file without labels
    p = run_cli("calibrate", str(d / "parent"), "--data", str(splits), env=env)
    assert p.returncode == 2 and p.stderr.strip() == (
        f"error: {splits / 'dev.csv'}: no label column 'label'; columns are: text (pass --label-column with "
        "one of them)"), p.stderr
