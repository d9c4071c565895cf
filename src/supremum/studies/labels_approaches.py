"""Two approaches of `supremum labels` that use more than the budget's labelled rows, each one
registry entry (supremum.studies.labels):

- `active`: the budget's labels are chosen by an active-learning strategy instead of drawn at
  random. One simulated pool-based loop per seed (studies.simulate.run_strategy: the training
  split is the pool, its labels hidden in an `Oracle` that reveals a row's label only when the
  loop queries it) from a seeded random seed set up to the seed's largest budget, its batches cut
  short at every budget so each budget is a round that is scored (Settles 2009, sec. 6).
- `self-training`: plain fine-tuning on the budget's labels with self-training on (train.selftrain):
  the rest of the training split, its labels removed, is written as a file of texts and given as
  `data.unlabeled`; the last round's model is kept (dev labels choose nothing).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from supremum.config import identity
from supremum.studies.labels import Approach, Cell, FineTune, Study, register, split_digest
from supremum.studies.simulate import Oracle


class ActiveLearning(Approach):
    """Accuracy at each budget of a model trained on the labels an active-learning strategy chose
    (`LabelsConfig.active`). `oracle` makes the Oracle from the pool's labels (a test passes one
    that records what is read)."""

    name = "active"

    def __init__(self, oracle=Oracle) -> None:
        self.oracle = oracle

    def title(self, budget: int) -> str:
        return "active learning"

    @staticmethod
    def seed_size(study: Study) -> int:
        o = study.cfg.active
        return o.seed_size or o.batch_size

    def skip(self, study: Study, budget: int, seed: int) -> str | None:
        from supremum.studies.simulate import seed_set

        cap = study.cfg.max_labels.get(self.name)
        if cap is not None and budget > cap:
            return f"above max_labels.{self.name}={cap:,}"
        k = self.seed_size(study)
        if budget < k:
            return f"below the random seed set of {k:,} labels (active.seed_size)"
        # the loop reveals these labels first anyway; a learner needs two classes to choose a batch
        y = study.data.splits["train"]["label"].to_numpy()
        if len(set(y[seed_set(seed, study.n_train, k)])) < 2:
            return f"the random seed set of {k:,} labels holds one class only; a learner needs two"
        return None

    def stops(self, study: Study, seed: int) -> list[int]:
        """The seed's budgets the simulation is scored at (it runs to the largest)."""
        return [b for b in study.budgets if self.skip(study, b, seed) is None]

    def simulation(self, study: Study, seed: int):
        """The SimulateConfig of the seed's one simulation (a direct `simulate` of it, strategies
        [strategy], gives the same curve)."""
        from supremum.studies.simulate import SimulateConfig

        cfg, o = study.cfg, study.cfg.active
        stops = self.stops(study, seed)
        return SimulateConfig(data=cfg.data.model_dump(mode="json"), model=cfg.model.name, method=o.method,
                              train=cfg.train.model_dump(exclude_unset=True), strategies=[o.strategy],
                              batch_size=o.batch_size, seed_size=self.seed_size(study), budget=max(stops),
                              seeds=[seed], candidates=o.candidates, split=cfg.split, evaluate_at=stops)

    def seconds(self, study: Study, todo: list[Cell]) -> tuple[float | None, str]:
        if not todo:
            return 0.0, "every cell cached"
        seeds = sorted({c.seed for c in todo})
        rounds = sum(len(schedule(self.simulation(study, s))) for s in seeds)
        return None, f"not estimated: {len(seeds)} simulated loop(s), {rounds:,} trainings in all"

    def _key(self, study: Study, seed: int) -> str:
        from supremum.hashing import content_hash

        data = {s: split_digest(study.data, s)["sha256"] for s in ("train", study.cfg.split)}
        return content_hash({"approach": self.name, "strategy": study.cfg.active.strategy,
                             "simulation": identity(self.simulation(study, seed)), "data": data},
                            length=12)

    def _path(self, study: Study, key: str) -> Path:
        return study.store.root / "compare" / study.name / key / "result.json"

    def cells(self, study: Study, budget: int) -> list[Cell]:
        out = []
        for seed in study.cfg.seeds:
            if self.skip(study, budget, seed) is None:
                key = self._key(study, seed)
                out.append(Cell(self.name, budget, seed, key, self._path(study, key).exists()))
        return out

    def measure(self, study: Study, todo: list[Cell], say) -> list[dict]:
        runs: dict[str, dict] = {}
        learner: list = []
        out = []
        for c in todo:
            if c.key not in runs:
                runs[c.key] = self._run(study, c, learner, say)
            run = runs[c.key]
            p = next(p for p in run["curve"] if p["n_labels"] == c.budget)
            out.append({"accuracy": p["accuracy"], "cached": run["cached"], "label_counts": p["label_counts"],
                        "strategy": run["strategy"], "method": run["method"], "simulation": c.key,
                        "test_sha256": run["test"]["sha256"]})
        return out

    def _run(self, study: Study, c: Cell, learner: list, say) -> dict:
        """The seed's simulation, from its cache or run now (the learner built once per call)."""
        from supremum.fsutil import write_json
        from supremum.studies.learners import LearnerSpec, make_learner
        from supremum.studies.simulate import run_strategy

        path = self._path(study, c.key)
        if path.exists():
            return {**json.loads(path.read_text()), "cached": True}
        sim, data, split = self.simulation(study, c.seed), study.data, study.cfg.split
        strategy = study.cfg.active.strategy  # sim.strategies leaves random out (simulate runs it anyway)
        pool, ev = data.texts("train"), data.texts(split)
        if not learner:
            spec = LearnerSpec(sim.model, sim.method, sim.train, data.label_names, study.cfg.data.max_length)
            work = path.parent.parent / "active-rounds"
            learner.append(make_learner(spec, pool + ev, work, keep_artifacts=False))
        say(f"active learning ({strategy}, {sim.method['name']}) seed {c.seed}: up to {sim.budget:,} "
            f"labels, scored at {', '.join(f'{n:,}' for n in sim.evaluate_at)}")
        oracle, t0 = self.oracle(data.labels("train")), time.perf_counter()
        ev_rows = np.arange(len(pool), len(pool) + len(ev))
        ev_labels = np.array(data.labels(split))
        curve = run_strategy(strategy, c.seed, learner[0], oracle, ev_rows, ev_labels, sim)
        res = {"strategy": strategy, "method": sim.method["name"], "seed": c.seed, "curve": curve,
               "revealed": len(oracle.revealed), "seconds": round(time.perf_counter() - t0, 3),
               "test": split_digest(data, split)}
        write_json(path, res)
        return {**res, "cached": False}


def schedule(sim) -> list[int]:
    """The label counts at the end of each round of a simulation (SimulateConfig), as run_strategy
    runs them: the seed set, then batches cut short at every evaluate_at count, up to the budget."""
    stops = sorted({n for n in sim.evaluate_at if n < sim.budget} | {sim.budget})
    out = [min(sim.seed_size or sim.batch_size, sim.budget)]
    while out[-1] < sim.budget:
        out.append(min(out[-1] + sim.batch_size, next(n for n in stops if n > out[-1])))
    return out


def unlabeled_file(texts: list[str], data) -> tuple[bytes, str]:
    """(bytes, suffix) of a file `read_unlabeled` reads back as exactly `texts`, in the data's
    encoding: one text per line (.txt), or JSON lines in the data's text column when a text
    spans lines or is blank (data: DataConfig)."""
    if all(t.strip() and t.splitlines() == [t] for t in texts):
        return "".join(f"{t}\n" for t in texts).encode(data.encoding), ".txt"
    col, pad = data.text_column or "text", {}
    if col.strip().isdigit():  # a column given by position: the text goes there
        pad, col = {f"_{i}": "" for i in range(1, int(col))}, "text"
    return "".join(json.dumps({**pad, col: t}, ensure_ascii=False) + "\n" for t in texts).encode(data.encoding), \
        ".jsonl"


class SelfTraining(FineTune):
    """Plain fine-tuning of the budget's labels with self-training (`LabelsConfig.self_training`):
    the unlabelled texts are the training split's other rows, written without their labels."""

    def __init__(self) -> None:
        super().__init__("self-training", "full", "self-training (plain fine-tuning)")

    def skip(self, study: Study, budget: int, seed: int) -> str | None:
        why = super().skip(study, budget, seed)
        if why is None and budget >= study.n_train:
            return f"all {study.n_train:,} training labels leave no unlabelled text to pseudo-label"
        return why

    def unlabeled(self, study: Study, budget: int, seed: int) -> tuple[Path, bytes, int]:
        """(path, contents, texts) of the (budget, seed) cell's unlabelled file: the training texts
        outside the budget, in split order. Its name is its content's digest, and it lies with
        the study's cells (the path is part of each cell's hash, so it must not move)."""
        texts = study.data.texts("train")
        rest = np.setdiff1d(np.arange(study.n_train), study.rows(budget, seed))
        body, suffix = unlabeled_file([texts[i] for i in rest], study.cfg.data)
        name = f"unlabeled-{hashlib.sha256(body).hexdigest()[:16]}{suffix}"
        return study.store.root / "compare" / study.name / "unlabeled" / name, body, len(rest)

    def compare_config(self, study: Study, budget: int, seed: int):
        cc = super().compare_config(study, budget, seed)
        v = cc.methods[0]
        path = self.unlabeled(study, budget, seed)[0]
        st = study.cfg.self_training
        # The study fixes max_steps at the labelled budget's size; a pseudo-label round holds thousands
        # of rows, so unless the user chose otherwise it trains its own epochs (round_steps "epochs").
        rule = st.round_steps if "round_steps" in st.model_fields_set else "epochs"
        rounds = {**st.model_dump(), "round_steps": rule}
        cc.methods[0] = v.model_copy(update={"data": {**v.data, "unlabeled": str(path)},
                                             "finetune": {"self_training": rounds}})
        return cc

    def measure(self, study: Study, todo: list[Cell], say) -> list[dict]:
        from supremum.fsutil import write_bytes

        files = []
        for c in todo:
            path, body, n = self.unlabeled(study, c.budget, c.seed)
            if not path.exists():  # written under a temporary name, then renamed
                write_bytes(path, body)
            files.append({"file": str(path), "texts": n, "sha256": hashlib.sha256(body).hexdigest()})
        return [{**r, "unlabeled": f, "pseudo_labelled": self.pseudo_labelled(study, r["artifact"])}
                for r, f in zip(super().measure(study, todo, say), files, strict=True)]

    def pseudo_labelled(self, study: Study, artifact_id: str) -> int | None:
        """Pseudo-labels the rounds of a cell's artifact added in all (0: no round found a text to
        add, and the point is plain fine-tuning's); None when the artifact is gone."""
        from supremum.artifact import open_artifact

        row = study.store.get_artifact(artifact_id)
        path = Path(row["path"]) if row else None
        if path is None or not (path / "manifest.json").exists():
            return None
        rec = open_artifact(path, verify=False).manifest.model_extra.get("self_training") or {}
        return sum(r["pseudo_labelled"] for r in rec.get("rounds_run", []))

    def config_examples(self, study: Study, cc) -> int:
        """The first training's examples plus each round's, counted at most: every unlabelled text
        pseudo-labelled (the round then trains on all study.n_train rows)."""
        from supremum.config import TrainConfig
        from supremum.train.selftrain import round_train

        train = TrainConfig(**{**study.cfg.train.model_dump(), **cc.methods[0].train})
        rule = cc.methods[0].finetune["self_training"]["round_steps"]
        per_round = round_train(train, rule, study.n_train).max_steps * train.batch_size * train.grad_accum
        return super().config_examples(study, cc) + study.cfg.self_training.rounds * per_round

    def beyond_training(self, study: Study, todo: list[Cell], rate: float) -> tuple[float, str]:
        """Each round's scoring of the cell's unlabelled texts at SCORING_SPEEDUP x the training
        `rate` (inference is a forward pass, about a third of a training step's compute: backward
        costs about twice forward); the training examples count each round at most."""
        texts = study.cfg.self_training.rounds * sum(study.n_train - c.budget for c in todo)
        return texts / (SCORING_SPEEDUP * rate), (
            f"; self-training rounds counted at most (every unlabelled text pseudo-labelled); scoring "
            f"{texts:,} unlabelled texts at {SCORING_SPEEDUP}x that rate (a forward pass, not measured here)")


#: inference examples per training example's time (forward only vs forward + backward)
SCORING_SPEEDUP = 3


register(ActiveLearning())
register(SelfTraining())
