"""Simulated active learning on a labelled set (`supremum label --simulate`): the training split's
labels are hidden in an `Oracle` that reveals one only when it is queried, so the loop can read
no label it did not pay for; each strategy starts from the same seeded random seed set as random
sampling, adds batches up to the label budget, and is scored after every round on the same
evaluation split (the learning-curve protocol of Settles 2009, sec. 6; Schroeder et al. 2022,
"Revisiting Uncertainty-based Query Strategies for Active Learning with Transformers", ACL
Findings: each strategy against random sampling, several seeds, mean and s.d. per label count).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.config import Seeds
from supremum.fsutil import write_json
from supremum.studies.learners import CheckedMethod, CheckedTrain
from supremum.studies.query import parse_strategy, select
from supremum.studies.stopping import StopRule, changed_share, first_stops


class Oracle:
    """The hidden labels of the pool: `label(rows)` reveals the class ids of those rows and
    records them in `revealed`; nothing else reads them."""

    def __init__(self, labels: Sequence[int]) -> None:
        self.__labels = labels  # kept as given, not copied: a copy would read every label
        self.revealed: list[int] = []

    def __len__(self) -> int:
        return len(self.__labels)

    def label(self, rows: Sequence[int]) -> list[int]:
        self.revealed.extend(int(r) for r in rows)
        return [int(self.__labels[r]) for r in rows]


class SimulateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: dict = Field(description="labelled data config (supremum DataConfig keys, at least path); its "
                       "train split is the pool, `split` the evaluation split")
    model: str = "minilm-l6"
    method: CheckedMethod = Field(default_factory=lambda: {"name": "linear-probe"})
    train: CheckedTrain = Field(default_factory=dict)
    strategies: list[str] = Field(default_factory=lambda: ["margin", "margin+kcenter", "badge"],
                                  description="strategies run against random sampling")
    batch_size: int = Field(50, ge=1)
    seed_size: int | None = Field(None, ge=2, description="random seed set (default: batch_size)")
    budget: int = Field(500, ge=2, description="labels at the last round")
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2])
    candidates: int = Field(10, ge=1)
    split: str = Field("test", description="evaluation split, the same for every round")
    evaluate_at: list[int] = Field(default_factory=list, description="label counts that end a round (a "
                                   "batch is cut short to end there), so each is scored; e.g. the budgets of "
                                   "`supremum labels`")
    stop: StopRule = Field(default_factory=StopRule, description="the stopping rules whose firing point is "
                           "reported per run (the simulation itself runs to the budget)")

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: list[str]) -> list[str]:
        for s in v:
            parse_strategy(s)
        return [s for s in v if s != "random"]



def run_strategy(strategy: str, seed: int, learner, oracle: Oracle, eval_rows: np.ndarray, eval_labels: np.ndarray,
                 cfg: SimulateConfig) -> list[dict]:
    """[{n_labels, accuracy, changed, label_counts}] after each round of one strategy and seed
    (changed: share of pool predictions that differ from the round before, None in the first;
    label_counts: labelled rows per class id). Rounds add cfg.batch_size rows, a batch cut short
    where it would pass a count of cfg.evaluate_at. The pool is rows 0..len(oracle)-1 of the
    learner's texts, the evaluation rows come after it; labels of pool rows come from the oracle
    only."""
    rng = np.random.default_rng(seed)
    n_pool, budget = len(oracle), min(cfg.budget, len(oracle))
    stops = sorted({n for n in cfg.evaluate_at if n < budget} | {budget})
    classes = len(learner.spec.label_names)
    rows = seed_set(rng, n_pool, min(cfg.seed_size or cfg.batch_size, budget))
    labels = oracle.label(rows)
    curve, before = [], None
    while True:
        s = learner.fit(rows, labels, seed)
        acc = float(np.mean(s.probs[eval_rows].argmax(axis=1) == eval_labels))
        pred = s.probs[:n_pool].argmax(axis=1)
        curve.append({"n_labels": len(rows), "accuracy": acc,
                      "changed": None if before is None else changed_share(before, pred),
                      "label_counts": np.bincount(labels, minlength=classes).tolist()})
        before = pred
        if len(rows) >= budget:
            return curve
        unlabelled = np.setdiff1d(np.arange(n_pool), rows)
        end = next(n for n in stops if n > len(rows))
        new = select(strategy, min(cfg.batch_size, end - len(rows)), unlabelled, np.array(rows), s.probs,
                     s.emb, rng, cfg.candidates)
        rows += new
        labels += oracle.label(new)


def seed_set(seed, n_pool: int, size: int) -> list[int]:
    """The random seed set of a run: `size` distinct pool rows drawn by `seed` (an int, or the
    run's Generator, which it advances)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return [int(r) for r in rng.choice(n_pool, size=size, replace=False)]


def simulate(cfg: SimulateConfig, out: Path, on_event: Callable[[str], None] | None = None,
             oracle: Callable[[Sequence[int]], Oracle] = Oracle) -> dict:
    """Every strategy and random sampling, each seed; writes out/simulation.json and
    out/simulation.png and returns the JSON (`oracle` makes each run's Oracle from the pool's
    labels; a test passes one that records what is read): {"config", "runs": [{strategy, seed, curve,
    seconds, revealed, would_stop_at: {rule: the label count at which it would have stopped the
    run, or None}}], "summary": {strategy: [{n_labels, mean, std, n}]}, "match": see
    `labels_to_match`, "eval_examples", "pool"}. Accuracies are fractions in [0, 1]."""
    from supremum.config import DataConfig
    from supremum.data import load_data
    from supremum.studies.learners import LearnerSpec, make_learner

    say = on_event or (lambda m: None)
    data = load_data(DataConfig(**cfg.data))
    pool = data.texts("train")
    ev_texts, ev_labels = data.texts(cfg.split), np.array(data.labels(cfg.split))
    spec = LearnerSpec(cfg.model, cfg.method, cfg.train, data.label_names, DataConfig(**cfg.data).max_length)
    learner = make_learner(spec, pool + ev_texts, Path(out) / "rounds", keep_artifacts=False)
    eval_rows = np.arange(len(pool), len(pool) + len(ev_texts))
    notes = budget_notes(cfg.budget, len(pool))
    for n in notes:
        say(n)
    runs = []
    for seed in cfg.seeds:
        for strategy in ["random", *cfg.strategies]:
            hidden, t0 = oracle(data.labels("train")), time.perf_counter()
            curve = run_strategy(strategy, seed, learner, hidden, eval_rows, ev_labels, cfg)
            runs.append({"strategy": strategy, "seed": seed, "curve": curve,
                         "seconds": round(time.perf_counter() - t0, 3), "revealed": len(hidden.revealed),
                         "would_stop_at": first_stops(curve, cfg.stop, cfg.batch_size)})
            say(f"{strategy} seed {seed}: " + ", ".join(f"{p['n_labels']}: {p['accuracy']:.3f}" for p in curve))
    summary = summarize(runs)
    res = {"config": cfg.model_dump(mode="json"), "pool": len(pool), "eval_examples": len(ev_texts),
           "runs": runs, "summary": summary, "match": labels_to_match(summary), "notes": notes}
    write_json(Path(out) / "simulation.json", res)
    plot(res, Path(out) / "simulation.png")
    return res


def budget_notes(budget: int, pool: int) -> list[str]:
    """What the simulation will not do as asked: a budget beyond the pool ends at the pool."""
    if budget <= pool:
        return []
    return [f"the budget of {budget} labels is more than the pool's {pool} training texts: the simulation "
            f"ends at {pool} (every text labelled)"]


def summarize(runs: list[dict]) -> dict[str, list[dict]]:
    """strategy -> [{n_labels, mean, std (None for one seed), n}] over seeds, by label count."""
    acc: dict[str, dict[int, list[float]]] = {}
    for r in runs:
        for p in r["curve"]:
            acc.setdefault(r["strategy"], {}).setdefault(p["n_labels"], []).append(p["accuracy"])
    return {s: [{"n_labels": n, "mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None,
                 "n": len(v)} for n, v in sorted(by_n.items())] for s, by_n in acc.items()}


def labels_to_match(summary: dict[str, list[dict]]) -> dict:
    """Random sampling's mean accuracy at its largest label count (the reference), and for each
    strategy the fewest labels from which its mean accuracy stays at or above it at every later
    label count (None: not within the budget) and that count as a share of the reference's
    labels. "Stays": a strategy that touches the reference early (the shared seed set, one lucky
    round) and falls below it later has not matched it."""
    ref = summary["random"][-1]
    out = {"reference": {"strategy": "random", "n_labels": ref["n_labels"], "mean": ref["mean"]}, "strategies": {}}
    for s, pts in summary.items():
        if s == "random":
            continue
        hit = None
        for p in reversed(pts):  # the start of the last run of points at or above the reference
            if p["mean"] < ref["mean"]:
                break
            hit = p["n_labels"]
        out["strategies"][s] = {"n_labels": hit, "share": None if hit is None else hit / ref["n_labels"]}
    return out


def points(result: dict) -> list[tuple[str, int, int, float]]:
    """(approach, n_labels, seed, accuracy) for every round of every run: the records of the
    accuracy-against-labels curve (`supremum labels`). approach: "random (METHOD)" or
    "active STRATEGY (METHOD)"."""
    method = result["config"]["method"]["name"]
    return [(f"random ({method})" if r["strategy"] == "random" else f"active {r['strategy']} ({method})",
             p["n_labels"], r["seed"], p["accuracy"]) for r in result["runs"] for p in r["curve"]]


def plot(result: dict, path: Path) -> Path:
    """Accuracy against labels: mean over seeds per strategy with a band of +-1 s.d."""
    from supremum.limit.plots import pyplot, save_png

    fig, ax = pyplot().subplots(figsize=(6.0, 4.0))
    for i, (s, pts) in enumerate(result["summary"].items()):
        n = np.array([p["n_labels"] for p in pts])
        m = np.array([p["mean"] for p in pts])
        sd = np.array([p["std"] or 0.0 for p in pts])
        ax.plot(n, m, color=f"C{i}", marker="o", ms=3, label=s)
        ax.fill_between(n, m - sd, m + sd, color=f"C{i}", alpha=0.15)
    seeds = len(result["config"]["seeds"])
    ax.set(xlabel="labelled examples", ylabel=f"accuracy ({result['eval_examples']:,} evaluation texts)",
           title=f"Active learning vs random sampling ({result['config']['method']['name']}, "
                 f"mean ± s.d. of {seeds} seed(s))")
    ax.legend(fontsize=8)
    return save_png(fig, path)
