"""Calibration of classifier probabilities: values against hand computations."""

import math

import numpy as np
import pytest

from supremum.evaluate.calibration import calibration

# confidences .95 (right), .94 (wrong), .72 (right), .62 (right)
PROBS = np.array([[0.95, 0.05], [0.94, 0.06], [0.28, 0.72], [0.38, 0.62]])
LABELS = [0, 1, 1, 1]


def test_ece_brier_nll_by_hand():
    c = calibration(PROBS, LABELS)
    # 15 bins: .95 and .94 share (14/15, 1] (accuracy .5, confidence .945); .72 and .62 alone
    assert c["ece"] == pytest.approx(0.5 * 0.445 + 0.25 * 0.28 + 0.25 * 0.38)
    assert c["brier"] == pytest.approx((0.005 + 2 * 0.94**2 + 2 * 0.28**2 + 2 * 0.38**2) / 4)
    assert c["nll"] == pytest.approx(-(math.log(0.95) + math.log(0.06) + math.log(0.72) + math.log(0.62)) / 4)
    full = [b for b in c["reliability"] if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in full] == [(1, 1.0), (1, 1.0), (2, 0.5)]
    assert full[-1]["confidence"] == pytest.approx(0.945) and full[-1]["lo"] == pytest.approx(14 / 15)


def test_adaptive_bins_hold_equal_mass():
    c = calibration(PROBS, LABELS, bins=2)
    assert c["ece"] == pytest.approx(abs(0.75 - (0.95 + 0.94 + 0.72 + 0.62) / 4))  # one full bin (.5, 1]
    assert c["adaptive_ece"] == pytest.approx(0.5 * abs(1 - 0.67) + 0.5 * abs(0.5 - 0.945))


def test_perfect_and_empty():
    c = calibration(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1])
    assert c["ece"] == 0.0 and c["adaptive_ece"] == 0.0 and c["brier"] == 0.0 and c["nll"] < 1e-12
    with pytest.raises(ValueError, match="no examples"):
        calibration(np.zeros((0, 2)), [])
