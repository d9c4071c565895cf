"""When to stop labelling: two rules, each reported by name when it fires.

- "stable predictions" (Bloodgood & Vijay-Shanker 2009, "A Method for Stopping Active Learning
  Based on Stabilizing Predictions and the Need for User-Adjustable Stopping", CoNLL): the share
  of pool texts whose predicted class changed between consecutive rounds stayed below
  `max_changed` for `patience` rounds in a row (they use Cohen's kappa > 0.99 over 3 rounds on a
  stop set; the share of changed predictions is the same test read without chance correction).
- "learning curve": the power-law fit of accuracy against labels (supremum.limit.curve,
  error(n) = E + B n^-beta) predicts that the next batch raises accuracy by less than
  `min_gain_pt` points. It needs measured accuracies (labelled evaluation data) at 3 or more
  label counts and 4 or more rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

STABLE = "stable predictions"
CURVE = "learning curve"
FIT_COUNTS = 3  #: the learning-curve fit needs accuracies at this many distinct label counts
FIT_ROUNDS = 4  #: ... and from this many rounds


class StopRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_changed: float = Field(0.01, ge=0, le=1, description="stable predictions: largest share of pool "
                               "predictions that may change between rounds")
    patience: int = Field(2, ge=1, description="stable predictions: rounds in a row below max_changed")
    min_gain_pt: float = Field(0.5, ge=0, description="learning curve: stop when the next batch is predicted "
                               "to add fewer accuracy points than this")


class StopDecision(BaseModel):
    rule: str | None = Field(description="the rule that fired (stable predictions, learning curve) or None")
    reason: str = Field(description="one sentence: the numbers behind the decision")
    changed: float | None = None
    gain_pt: float | None = None


def changed_share(before: np.ndarray, after: np.ndarray) -> float:
    """Share of rows whose predicted class id differs between two (n,) arrays."""
    return float(np.mean(np.asarray(before) != np.asarray(after)))


def next_batch_gain(points: Sequence[tuple[int, float]], next_n: int) -> float | None:
    """Accuracy points the fitted learning curve adds from the largest measured label count to
    `next_n` (fitted accuracy at next_n minus fitted accuracy there); None when the points cannot
    support a fit (fewer than 3 label counts or 4 rounds). points: (labels, accuracy in [0, 1])."""
    from supremum.limit.curve import analyze_curve

    if fit_missing(points):
        return None
    last = max(n for n, _ in points)
    fit = analyze_curve([(n, a, 0) for n, a in points], None, 0, predict_at=[last, next_n])
    now, then = (p["accuracy"] for p in fit["predictions"])
    return 100 * (then - now)


def fit_missing(points: Sequence[tuple[int, float]]) -> list[str]:
    """What the learning-curve fit still lacks, in words ("1 more round", "accuracies at 2 more
    label counts"); empty when `points` (labels, accuracy) support a fit."""
    rounds, counts = len(points), len({n for n, _ in points})
    missing = []
    if rounds < FIT_ROUNDS:
        more = FIT_ROUNDS - rounds
        missing.append(f"{more} more round{'s' if more > 1 else ''}")
    if counts < FIT_COUNTS:
        more = FIT_COUNTS - counts
        missing.append(f"accuracies at {more} more label count{'s' if more > 1 else ''}")
    return missing


def stable(changes: Sequence[float], rule: StopRule) -> bool:
    """The stable-predictions rule: the last `patience` shares of changed predictions all below
    `max_changed`."""
    recent = list(changes)[-rule.patience:]
    return len(recent) == rule.patience and max(recent) < rule.max_changed


def first_stops(curve: Sequence[dict], rule: StopRule, batch: int) -> dict[str, int | None]:
    """For a finished run, the label count at which each rule would first have stopped it (None:
    never within the run). curve: per round {n_labels, accuracy, changed (None in round 1)}."""
    out: dict[str, int | None] = {STABLE: None, CURVE: None}
    for i, p in enumerate(curve):
        seen = curve[: i + 1]
        if out[STABLE] is None and stable([c["changed"] for c in seen if c["changed"] is not None], rule):
            out[STABLE] = p["n_labels"]
        if out[CURVE] is None:
            gain = next_batch_gain([(c["n_labels"], c["accuracy"]) for c in seen], p["n_labels"] + batch)
            out[CURVE] = p["n_labels"] if gain is not None and gain < rule.min_gain_pt else None
    return out


def decide(changes: Sequence[float], points: Sequence[tuple[int, float]], next_n: int,
           rule: StopRule) -> StopDecision:
    """Whether to stop after the latest round. changes: share of changed pool predictions after
    each round (from the second on); points: (labels, accuracy) per round when evaluated."""
    recent = list(changes)[-rule.patience:]
    last = recent[-1] if recent else None
    if stable(changes, rule):
        return StopDecision(rule=STABLE, changed=last, reason=(
            f"{STABLE}: under {100 * rule.max_changed:g}% of pool predictions changed in each of the last "
            f"{rule.patience} round(s) ({', '.join(f'{100 * c:.2f}%' for c in recent)})"))
    gain = next_batch_gain(points, next_n)
    if gain is not None and gain < rule.min_gain_pt:
        return StopDecision(rule=CURVE, changed=last, gain_pt=gain, reason=(
            f"{CURVE}: the fit predicts +{gain:.2f} pt from the next batch (to {next_n} labels), "
            f"under {rule.min_gain_pt:g} pt"))
    said = [f"{100 * last:.2f}% of pool predictions changed" if last is not None else "first model",
            f"next batch predicted +{gain:.2f} pt" if gain is not None else
            f"{CURVE}: needs {' and '.join(fit_missing(points))} (a fit needs {FIT_ROUNDS} rounds, accuracies "
            f"at {FIT_COUNTS} label counts)" if points else
            f"{CURVE}: off without --eval-data (no accuracies to fit)"]
    return StopDecision(rule=None, changed=last, gain_pt=gain, reason="continue: " + "; ".join(said))
