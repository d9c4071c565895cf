"""Active learning with a human annotator, one round per call (`supremum label OUT`).

Pool-based (Settles 2009, "Active Learning Literature Survey", sec. 2.3): the first call draws a
seeded random seed batch from the unlabelled pool and writes it as CSV; each later call ingests
the filled-in CSV, trains on every labelled row (supremum.studies.learners), scores the pool,
checks the stopping rules (supremum.studies.stopping) and, unless one fired, writes the next
batch chosen by the query strategy (supremum.studies.query). Everything the next call needs is
in OUT/state.json (config, pool digest, labelled rows, pending batch, rounds), written
atomically after the batch file, so a call killed at any point leaves the previous state.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from supremum.config import Delimiter, LocalPath
from supremum.errors import UserError
from supremum.fsutil import write_json
from supremum.studies.batches import read_batch, write_batch
from supremum.studies.learners import CheckedMethod, CheckedTrain
from supremum.studies.query import CheckedStrategy, select
from supremum.studies.stopping import StopDecision, StopRule, changed_share, decide

STATE = "state.json"
LABELLED = "labelled.csv"  #: every labelled row so far (row_id, text, label): data for `supremum finetune`


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: LocalPath = Field(description="unlabelled texts: CSV/TSV/JSONL with a text column, or .txt with one "
                            "per line")
    text_column: str | None = Field(None, description="column of the pool holding the text (auto-detected)")
    delimiter: Delimiter | None = Field(None, description="separator of the pool's columns, as data.delimiter "
                                        "(detected when unset)")
    labels: list[str] = Field(min_length=2, description="the label set annotators choose from")
    drop_empty: bool = Field(False, description="leave out pool texts that are empty or whitespace (the "
                             "others keep their row ids) and drop empty rows of eval_data, as data.drop_empty "
                             "(default: refuse them)")

    @field_validator("labels")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        v = [x.strip() for x in v]  # " pos" from "neg, pos" would be a label no annotator can type
        if "" in v:
            raise ValueError("a label is empty; give each label a name")
        if twice := sorted({x for x in v if v.count(x) > 1}):
            raise ValueError(f"label {twice[0]!r} is given twice; give each label once")
        return v
    model: str = Field("minilm-l6", description="model alias or path")
    method: CheckedMethod = Field(default_factory=lambda: {"name": "linear-probe"},
                         description="fine-tuning method config, e.g. {name: setfit}")
    train: CheckedTrain = Field(default_factory=dict, description="train.* overrides for every round")
    strategy: CheckedStrategy = Field("margin+kcenter", description="query strategy (supremum.studies.query)")
    batch_size: int = Field(50, ge=1, description="texts per batch")
    seed_size: int | None = Field(None, ge=2, description="random texts in the first batch (default: batch_size)")
    candidates: int = Field(10, ge=1, description="uncertainty+diversity: the diversity step picks among "
                            "this many times batch_size most uncertain texts")
    seed: int = Field(0, description="seed of the seed batch, of random picks and of training")
    max_length: int = Field(128, ge=8, description="truncate texts to this many tokens")
    eval_data: LocalPath | None = Field(None, description="labelled data scored after every round (accuracy; the "
                                  "learning-curve stopping rule needs it)")
    eval_text_column: str | None = Field(None, description="column of eval_data holding the text, as "
                                         "data.text_column (auto-detected)")
    eval_label_column: str | None = Field(None, description="column of eval_data holding the label, as "
                                          "data.label_column (auto-detected)")
    stop: StopRule = Field(default_factory=StopRule)



class RoundRecord(BaseModel):
    round: int
    labelled: int = Field(description="labelled rows the round's model trained on")
    changed: float | None = Field(None, description="share of pool predictions changed since the last round")
    eval_accuracy: float | None = None
    artifact: str | None = None
    batch_file: str | None = Field(None, description="the batch written after this round (None: stopped)")
    decision: StopDecision


class LabelState(BaseModel):
    config: LabelConfig
    pool_digest: str
    pool_size: int
    labelled: dict[int, str] = Field(default_factory=dict, description="position among the pool's texts "
                                     "kept (Pool.texts; the row id unless drop_empty left rows out) -> label")
    pending: list[int] = Field(default_factory=list, description="positions (as in labelled) of the batch "
                               "out for labelling")
    pending_file: str | None = None
    predictions: list[int] | None = Field(None, description="the last round's predicted class id per pool row")
    rounds: list[RoundRecord] = Field(default_factory=list)
    stopped: StopDecision | None = None


@dataclass(frozen=True)
class Pool:
    """The pool's texts in file order and each one's row id: its position among the file's rows
    (from 0), also when drop_empty left out empty rows before it. The loop works on positions in
    `texts`; the files annotators see (batches, labelled.csv) name rows by `ids`."""

    texts: list[str]
    ids: list[int]

    @functools.cached_property
    def by_id(self) -> dict[int, str]:
        return dict(zip(self.ids, self.texts, strict=True))

    @functools.cached_property
    def position(self) -> dict[int, int]:
        return {rid: i for i, rid in enumerate(self.ids)}


def read_pool(cfg: LabelConfig) -> Pool:
    """The pool's texts in file order with their row ids, without the empty ones with drop_empty
    (said on stderr with their count and lines, as every data reader says it).
    UserError for an empty text otherwise."""
    from supremum.data import dropped_note, tell
    from supremum.data.tables import pick_column, read_table

    path = Path(cfg.pool).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such pool file", "pass --pool with a CSV/TSV/JSONL or .txt file of texts")
    if path.suffix == ".txt":
        texts = path.read_text(encoding="utf-8").splitlines()
        lines = list(range(1, len(texts) + 1))
    else:
        df = read_table(path, delimiter=cfg.delimiter)
        col, auto = pick_column(df, cfg.text_column, "text", str(path))
        _refuse_a_text_read_as_header(df, col, auto, path)
        texts, lines = df[col].fillna("").astype(str).tolist(), list(df.index)
    if cfg.drop_empty:
        if where := [f"line {line}" for t, line in zip(texts, lines, strict=True) if not t.strip()]:
            tell(dropped_note(where, "text", str(path)))
        kept = [i for i, t in enumerate(texts) if t.strip()]
        return Pool([texts[i] for i in kept], kept)
    for t, line in zip(texts, lines, strict=True):
        if not t.strip():
            raise UserError(f"{path}, line {line}: empty text in the pool",
                            "remove the line or write its text, or pass --drop-empty to leave such texts out")
    return Pool(texts, list(range(len(texts))))


def _refuse_a_text_read_as_header(df, col: str, auto: str | None, path: Path) -> None:
    """A headerless pool whose first text holds the separator reads as a header of several columns,
    and every later text is cut at the separator without a word. Its sign: no column is named as
    texts are (the text column was guessed as the longest) and rows lack fields the header has.
    UserError then, naming the first such row; --text-column (a choice made) skips the check."""
    if auto != "longest" or len(df.columns) < 2:
        return
    others = df.drop(columns=[col])
    short = (others.isna() | (others.astype(str).apply(lambda c: c.str.strip()) == "")).any(axis=1)
    if short.any():
        line = int(short.idxmax())
        names = ", ".join(repr(str(c)) for c in df.columns)
        raise UserError(f"{path}: no column is named as texts are ({names}) and line {line} lacks fields the "
                        "first line has: is the first line a text, not a header?",
                        "add a header line 'text' (quote texts that hold the separator) or save one text per "
                        "line as .txt; if the first line is a header, pass --text-column NAME")


def digest(texts: list[str]) -> str:
    return hashlib.sha256("\n\0".join(texts).encode()).hexdigest()[:16]


def step(out: Path, cfg: LabelConfig | None = None, ingest: Path | None = None,
         on_event: Callable[[str], None] | None = None) -> LabelState:
    """One call of the loop in directory `out`: start it (writing the seed batch) when out has no
    state (then `cfg` is required), else ingest the pending batch (from `ingest`, default the
    exported file), train, score, decide and write the next batch. Returns the saved state.
    UserError: no config for a new loop, a config that differs from the running loop's, a pool
    that changed, a loop that already stopped, or a bad batch file (supremum.studies.batches)."""
    from supremum.data import say_once

    say = on_event or (lambda m: None)
    with say_once():  # a new loop reads its pool twice: its notes are said once
        state = _load_or_start(Path(out), cfg)
        pool = read_pool(state.config)
    texts = pool.texts
    if digest(texts) != state.pool_digest:
        raise UserError(f"{state.config.pool}: the pool changed since the loop started",
                        "restore the original pool file, or start a new loop in another directory")
    if not state.rounds and not state.labelled and not state.pending:
        return _first_batch(Path(out), state, pool, say)
    if state.stopped is not None:
        raise UserError(f"{out}: the loop stopped ({state.stopped.reason})",
                        "start a new loop in another directory to label more")
    batch = Path(ingest or state.pending_file)
    answers = read_batch(batch, [pool.ids[r] for r in state.pending], pool.by_id, state.config.labels)
    state.labelled.update({pool.position[rid]: lab for rid, lab in answers.items()})
    write_labelled(Path(out) / LABELLED, state.labelled, pool)
    say(f"ingested {len(state.pending)} labels from {batch} ({len(state.labelled)} labelled, all in "
        f"{Path(out) / LABELLED})")
    state.pending, state.pending_file = [], None
    return _round(Path(out), state, pool, say)


def write_labelled(path: Path, labelled: dict[int, str], pool: Pool) -> Path:
    """The labelled rows (`labelled`: position in the pool -> label) as CSV (row_id, text, label),
    atomically, in row-id order."""
    import csv
    import io

    from supremum.fsutil import write_bytes

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row_id", "text", "label"])
    w.writerows([pool.ids[r], pool.texts[r], labelled[r]] for r in sorted(labelled))
    write_bytes(path, buf.getvalue().encode("utf-8"))
    return path


def _load_or_start(out: Path, cfg: LabelConfig | None) -> LabelState:
    path = out / STATE
    if path.exists():
        state = LabelState.model_validate_json(path.read_text())
        if cfg is not None and cfg != state.config:
            raise UserError(f"{out}: a loop with another configuration runs there",
                            f"run `supremum label {out}` without loop options to continue it, or use a new "
                            "output directory")
        return state
    if cfg is None:
        raise UserError(f"{out}: no labelling loop there yet", "start one with --pool FILE --labels A,B")
    texts = read_pool(cfg).texts
    _eval_data(cfg)  # a bad eval file is refused now, not after the first batch is labelled
    return LabelState(config=cfg, pool_digest=digest(texts), pool_size=len(texts))


def _first_batch(out: Path, state: LabelState, pool: Pool, say) -> LabelState:
    cfg = state.config
    asked = cfg.seed_size or cfg.batch_size
    n = min(asked, len(pool.texts))
    if n == len(pool.texts):
        say(f"note: the first batch asks for {asked} texts and the pool holds "
            f"{n:,}: it is the whole pool, so no later round has texts left to choose from")
    rows = sorted(int(i) for i in np.random.default_rng(cfg.seed).choice(len(pool.texts), size=n, replace=False))
    return _send(out, state, rows, pool, 1, say)


def _send(out: Path, state: LabelState, rows: list[int], pool: Pool, number: int, say) -> LabelState:
    """Write batch `number` (`rows`: positions in the pool, written as their row ids) and the state
    that waits for it (batch first: the state never names a file that is not there)."""
    path = write_batch(out / f"batch-{number:03d}.csv", [pool.ids[r] for r in rows], pool.by_id)
    state.pending, state.pending_file = rows, str(path)
    write_json(out / STATE, state.model_dump(mode="json"))
    say(f"wrote {path} ({len(rows)} texts): fill in its label column ({', '.join(state.config.labels)}), "
        f"then run `supremum label {out}` again")
    return state


def _round(out: Path, state: LabelState, pool: Pool, say) -> LabelState:
    from supremum.studies.learners import LearnerSpec, make_learner

    cfg, texts = state.config, pool.texts
    ev_texts, ev_labels = _eval_data(cfg)
    spec = LearnerSpec(cfg.model, cfg.method, cfg.train, cfg.labels, cfg.max_length)
    rows = sorted(state.labelled)
    scored = make_learner(spec, texts + ev_texts, out / "rounds").fit(
        rows, [cfg.labels.index(state.labelled[r]) for r in rows], cfg.seed)
    pred = scored.probs[: len(texts)].argmax(axis=1)
    changed = changed_share(np.array(state.predictions), pred) if state.predictions is not None else None
    acc = float(np.mean(scored.probs[len(texts):].argmax(axis=1) == ev_labels)) if ev_texts else None
    record = RoundRecord(round=len(state.rounds) + 1, labelled=len(rows), changed=changed, eval_accuracy=acc,
                         artifact=scored.artifact, decision=StopDecision(rule=None, reason=""))
    changes = [r.changed for r in [*state.rounds, record] if r.changed is not None]
    points = [(r.labelled, r.eval_accuracy) for r in [*state.rounds, record] if r.eval_accuracy is not None]
    record.decision = decide(changes, points, len(rows) + cfg.batch_size, cfg.stop)
    state.rounds.append(record)
    state.predictions = [int(p) for p in pred]
    say(f"round {record.round}: {len(rows)} labels" + (f", eval accuracy {acc:.4f}" if acc is not None else "")
        + f"; {record.decision.reason}")
    unlabelled = np.setdiff1d(np.arange(len(texts)), rows)
    if record.decision.rule is not None or not len(unlabelled):
        state.stopped = record.decision if record.decision.rule else StopDecision(
            rule="pool exhausted", reason="pool exhausted: every text is labelled")
        write_json(out / STATE, state.model_dump(mode="json"))
        say(f"stopped: {state.stopped.reason}")
        return state
    new = select(cfg.strategy, cfg.batch_size, unlabelled, np.array(rows), scored.probs, scored.emb,
                 np.random.default_rng([cfg.seed, record.round]), cfg.candidates)
    record.batch_file = str(out / f"batch-{record.round + 1:03d}.csv")
    return _send(out, state, new, pool, record.round + 1, say)


def _eval_data(cfg: LabelConfig) -> tuple[list[str], np.ndarray]:
    """The evaluation texts and class ids (in the order of cfg.labels); empty without eval_data.
    UserError for data that cannot be read, its hint naming the eval flags (--eval-label-column,
    not the --label-column of other commands)."""
    if cfg.eval_data is None:
        return [], np.array([], dtype=int)
    from supremum.config import DataConfig
    from supremum.data import load_data

    try:
        data = load_data(DataConfig(path=cfg.eval_data, text_column=cfg.eval_text_column,
                                    label_column=cfg.eval_label_column, drop_empty=cfg.drop_empty),
                         label_names=cfg.labels, whole=True)
    except UserError as e:
        raise UserError(e.message, _eval_flags(e.hint)) from None
    return data.texts("all"), np.array(data.labels("all"))


def _eval_flags(hint: str | None) -> str | None:
    """A data reader's hint said of the loop's eval data: --text-column, --label-column and
    --data become --eval-text-column, --eval-label-column and --eval-data."""
    if hint is None:
        return None
    hint = re.sub(r"(?<![\w-])--(text|label)-column\b", r"--eval-\1-column", hint)
    return re.sub(r"(?<![\w-])--data(?![\w-])", "--eval-data", hint)
