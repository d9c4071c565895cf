"""Labeled text data: load, pick columns, map labels, split, report leakage."""

from __future__ import annotations

import contextvars
import math
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from supremum.config import DataConfig
from supremum.data.splits import drop_duplicates, duplicate_report, stratified_split
from supremum.data.tables import (
    find_split_files,
    header,
    is_datasets_dir,
    pick_column,
    read_datasets_dir,
    read_hub_dataset,
    read_table,
)
from supremum.errors import UserError


@dataclass
class TaskData:
    """Train/dev/test frames with columns `text` and `label` (an integer id)."""

    splits: dict[str, pd.DataFrame]
    label_names: list[str]
    info: dict = field(default_factory=dict)

    def texts(self, split: str) -> list[str]:
        return self.split(split)["text"].tolist()

    def labels(self, split: str) -> list[int]:
        return self.split(split)["label"].tolist()

    def column(self, split: str, name: str) -> list[str]:
        """The values of a column kept with `load_data(keep=...)`, one per row of the split."""
        return self.split(split)[KEPT + name].tolist()

    def split(self, name: str) -> pd.DataFrame:
        if name not in self.splits:
            raise UserError(f"no split '{name}' in the data; splits are: {', '.join(self.splits)}",
                            "pass --split with one of them")
        return self.splits[name]


#: prefix of the frame columns holding columns kept with `load_data(keep=...)` (never "text"/"label")
KEPT = "kept:"


def load_data(cfg: DataConfig, label_names: list[str] | None = None, whole: bool = False,
              keep: tuple[str, ...] = ()) -> TaskData:
    """Load, split and label-map a dataset. `label_names` fixes the map (evaluation of an artifact).
    `whole`: no splits are cut; every labeled row of every file forms the one split "all".
    `keep`: further columns (names or positions from 1) carried with each row, read back with
    `TaskData.column`; UserError naming the file's columns when a file lacks one.

    What the loader changed or skipped (dropped empty texts, unlabeled splits, unified label
    spellings, single-class splits) is kept in `info["notes"]` and said on stderr."""
    raw, sources = _read_sources(cfg)
    info: dict = {"source": cfg.path, "files": sources}
    frames = _select_columns(raw, cfg, sources, info, keep)
    _strip_labels(frames, label_names, info)
    _unify_numeric_labels(frames, label_names, info)
    _unify_label_case(frames, label_names, info)
    frames = _drop_unlabeled_eval_splits(frames, info)
    if whole:
        frames = {"all": pd.concat(list(frames.values()), ignore_index=True)}
        sources = {**sources, "all": cfg.path}
    else:
        frames = _make_missing_splits(frames, cfg, info, sources["train"])
    if cfg.dedup and not whole:
        frames = drop_duplicates(frames)
        info["dedup"] = {k: len(v) for k, v in frames.items()}
    names = label_names if label_names is not None else _label_names(frames, sources)
    _check_labels(frames, names, sources, fixed=label_names is not None)
    index = {n: i for i, n in enumerate(names)}
    for df in frames.values():
        df["label"] = df["label"].map(index).astype("int64")
    # With a fixed label map (scoring an artifact) the training rows are limited only where the
    # folds need them: a fold's held-out rows must be the ones its model did not train on.
    cv = cfg.cv_folds is not None and not whole
    if cfg.train_limit is not None and (label_names is None or cv) and not whole:
        frames["train"] = _limit_train(frames["train"], cfg, info)
    if not whole:  # over the rows used: after --dedup and train_limit (duplicates beyond it are not trained on)
        info["duplicates"] = duplicate_report(frames)
    if cv:
        frames["train"], frames[CV_HELDOUT] = cv_split(frames["train"], cfg, info)
    info["sizes"] = {k: len(v) for k, v in frames.items()}
    _warn_single_class(frames, names, info)
    return TaskData(frames, names, info)


#: messages already said inside `say_once()` (None outside it: every load says its notes)
_TOLD: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("supremum_data_told", default=None)


@contextmanager
def say_once() -> Iterator[None]:
    """Within this block each distinct data note is said once: a search or a ceiling loads the
    same file for every trial and stage, and the user needs to read what was done to it once.
    The notes stay in every load's `info["notes"]`."""
    token = _TOLD.set(set())
    try:
        yield
    finally:
        _TOLD.reset(token)


def tell(message: str) -> None:
    """A note on the console (stderr) about what the loader did to the data."""
    told = _TOLD.get()
    if told is not None:
        if message in told:
            return
        told.add(message)
    sys.stderr.write(f"data: {message}\n")
    sys.stderr.flush()


def _note(info: dict, message: str) -> None:
    info.setdefault("notes", []).append(message)
    tell(message)


def _limit_train(df: pd.DataFrame, cfg: DataConfig, info: dict) -> pd.DataFrame:
    """The first train_limit rows of a seeded permutation: nested subsets for learning curves
    (the label map is taken from the full training set before this, so it never changes)."""
    if cfg.train_limit > len(df):
        raise UserError(f"train_limit={cfg.train_limit} exceeds the {len(df)} training examples",
                        f"use at most {len(df)}")
    if cfg.train_limit_stratify:
        order = stratified_order(df["label"].to_numpy(), cfg.train_limit_seed)[: cfg.train_limit]
    else:
        order = np.random.default_rng(cfg.train_limit_seed).permutation(len(df))[: cfg.train_limit]
    info["train_limit"] = {"kept": cfg.train_limit, "of": len(df), "seed": cfg.train_limit_seed,
                           **({"stratified": True} if cfg.train_limit_stratify else {})}
    return df.iloc[np.sort(order)].reset_index(drop=True)


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order of the rows whose every prefix is class-stratified, so the first n rows nest
    in the first n + 1: the first example of each class (classes in a seeded order), then the
    others by their class's quantile (j + 0.5) / n_c, j their place in a seeded shuffle of the class,
    so a prefix of n holds each class's share of n to within one example. Shape (len(labels),)."""
    rng = np.random.default_rng(seed)
    key = np.empty(len(labels))
    tie = rng.permutation(len(labels))  # breaks equal quantiles in a seeded order
    for rank, c in enumerate(rng.permutation(np.unique(labels))):
        rows = rng.permutation(np.flatnonzero(labels == c))
        key[rows] = (np.arange(len(rows)) + 0.5) / len(rows)
        key[rows[0]] = -1.0 + rank / len(labels)
    return np.lexsort((tie, key))


CV_HELDOUT = "cv_heldout"  #: the split of a cross-validation fold's held-out training rows
TRAIN_ROW = "train_row"  #: its column: each row's position in the training split without the folds


def cv_split(df: pd.DataFrame, cfg: DataConfig, info: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows without fold cfg.cv_fold, that fold's rows) of a stratified k-fold split
    (sklearn StratifiedKFold, shuffled with split_seed): the k held-out folds partition the rows.
    The held-out frame has column `train_row`, each row's index in `df`. UserError when there are
    fewer rows than folds."""
    from sklearn.model_selection import StratifiedKFold

    k = cfg.cv_folds
    if len(df) < k:
        raise UserError(f"cv_folds={k} needs at least {k} training examples; there are {len(df)}",
                        "use fewer folds")
    counts = np.bincount(df["label"], minlength=1)
    if counts.max() < k:
        raise UserError(f"cv_folds={k} needs a class with at least {k} training examples; the largest has "
                        f"{int(counts.max())}", "use fewer folds")
    if (small := int(counts[counts > 0].min())) < k:
        _note(info, f"a class has {small} training examples, fewer than the {k} folds: some folds hold none of it")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.split_seed)
    with warnings.catch_warnings():  # the rare-class case, said above in words
        warnings.simplefilter("ignore", UserWarning)
        train_idx, held_idx = list(folds.split(np.zeros(len(df)), df["label"].to_numpy()))[cfg.cv_fold]
    held = df.iloc[held_idx].copy()
    held[TRAIN_ROW] = held_idx
    info["cv"] = {"folds": k, "fold": cfg.cv_fold, "seed": cfg.split_seed, "heldout": len(held_idx),
                  "of": len(df)}
    return df.iloc[train_idx].reset_index(drop=True), held.reset_index(drop=True)


def _read_sources(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    path = Path(cfg.path)
    if "$" in cfg.path and not path.exists():
        raise UserError(f"{path}: the path has an unset environment variable",
                        "export it first, e.g. export SUPREMUM_DATA=/path/to/data")
    if path.is_file():
        return {"train": read_table(path, cfg.encoding, cfg.delimiter)}, {"train": str(path)}
    if path.is_dir():
        if is_datasets_dir(path):
            frames = read_datasets_dir(path)
            return frames, {k: f"{path}[{k}]" for k in frames}
        files = find_split_files(path)
        if "train" not in files:
            raise UserError(f"{path}: no train file (looked for train.csv/.tsv/.jsonl/.json)",
                            "name the files train/dev/test or pass a single file")
        return {k: read_table(p, cfg.encoding, cfg.delimiter) for k, p in files.items()}, {
            k: str(p) for k, p in files.items()}
    if path.suffix in (".csv", ".tsv", ".jsonl", ".json") or "/" not in cfg.path:
        raise UserError(f"{path}: no such file or directory", "check the --data path")
    frames = read_hub_dataset(cfg.path)
    return frames, {k: f"hub:{cfg.path}[{k}]" for k in frames}


def _select_columns(raw, cfg: DataConfig, sources, info, keep: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    train = raw["train"]
    text_col, text_auto = pick_column(train, cfg.text_column, "text", sources["train"])
    try:
        label_col, label_auto = pick_column(train, cfg.label_column, "label", sources["train"])
    except UserError as e:
        raise _plain_text_hint(e, sources["train"]) from None
    if text_col == label_col:
        raise UserError(f"{sources['train']}: text and label are the same column '{text_col}'",
                        "pass --text-column and --label-column")
    written = header(train)
    names = dict(zip(train.columns, written, strict=True))
    shown = {c: f"{n} (column {i + 1})" if written.count(n) > 1 else n for i, (c, n) in enumerate(names.items())}
    info["columns"] = {"text": shown[text_col], "label": shown[label_col],
                       "auto_detected": [r for r, a in (("text", text_auto), ("label", label_auto)) if a]}
    if text_auto == "longest":  # no usual name matched: the longest column is a guess, said as one
        info["columns"]["guessed"] = ["text"]
    frames = {}
    for split, df in raw.items():
        if sep := df.attrs.get("detected_delimiter"):
            _note(info, f"{sources[split]}: the header is {_SEPARATORS[sep]}-separated, read as such")
        if df.attrs.get("quoted_tsv"):
            _note(info, f"{sources[split]}: a tab-separated file with quoted fields (texts holding line breaks, "
                  "tabs or quotes), read with its quotes")
        # Other files are matched by what the user gave (a name or a position), else by the name
        # found in train: their column order may differ.
        text = pick_column(df, cfg.text_column or names[text_col], "text", sources[split])[0]
        label = pick_column(df, cfg.label_column or names[label_col], "label", sources[split])[0]
        frame = pd.DataFrame({"text": df[text].astype(str), "label": df[label].astype(str)})
        for name in keep:
            found = pick_column(df, name, "slice", sources[split])[0]
            frame[KEPT + name] = df[found].astype(str)
            info.setdefault("kept_columns", {})[name] = str(found)  # a position given: its header
        frame = _empty_rows(frame, "text", sources[split], split, cfg.drop_empty, info)
        if not (split in ("dev", "test") and _unlabeled(frame)):  # dropped whole below
            frame = _empty_rows(frame, "label", sources[split], split, cfg.drop_empty, info)
        frames[split] = frame.reset_index(drop=True)
    return frames


_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _plain_text_hint(e: UserError, source: str) -> UserError:
    """A .txt file read as a table has no label column because it is plain text (one document
    per line): say that, rather than asking which of its "columns" (the first line) is the label."""
    if not source.endswith(".txt"):
        return e
    return UserError(f"{source}: plain text has no labels; this command needs labelled examples",
                     "give a CSV/TSV/JSONL with a text and a label column; plain text serves causal-LM "
                     "fine-tuning")


def _unlabeled(df: pd.DataFrame) -> bool:
    return bool(df["label"].map(lambda v: v.strip() == "" or _number(v) == -1).all())


def _empty_rows(df: pd.DataFrame, column: str, source: str, split: str, drop: bool, info: dict) -> pd.DataFrame:
    """Refuse rows whose text (or label: missing, null, blank) is empty or whitespace, or
    (drop_empty) drop and report them. The index holds each record's file line where the reader
    knows it (CSV, TSV, JSON); it is kept, for the next check."""
    empty = (df[column].str.strip() == "").to_numpy()
    where = [f"line {int(i)}" if df.index.name == "line" else f"row {k + 1}"
             for k, i in enumerate(df.index) if empty[k]]
    if not where:
        return df
    listed = _listed(where)
    if not drop:
        raise UserError(f"{source}: {where[0]} has an empty {column}" if len(where) == 1 else
                        f"{source}: {len(where)} rows have an empty {column} ({listed})",
                        "remove those rows or fill them in, or pass --drop-empty (recipe: "
                        "data.drop_empty: true) to drop them")
    key = "dropped_empty" if column == "text" else "dropped_empty_label"
    info.setdefault(key, {})[split] = {"rows": len(where), "where": where}
    _note(info, dropped_note(where, column, source))
    return df[~empty]


def dropped_note(where: list[str], column: str, source: str) -> str:
    """What drop_empty did, in every reader's words: 'dropped 2 rows with an empty text from
    pool.csv (lines 3, 5)'. `where`: 'line N' (or 'row N') of each dropped row."""
    rows = f"{len(where)} row{'s' * (len(where) > 1)}"
    return f"dropped {rows} with an empty {column} from {source} ({_listed(where)})"


def _listed(where: list[str], most: int = 10) -> str:
    """'line 24' or 'lines 24, 37, ...' (the first `most`)."""
    if len(where) == 1:
        return where[0]
    unit = where[0].split()[0]
    more = f", ... ({len(where) - most} more)" if len(where) > most else ""
    return f"{unit}s " + ", ".join(w.split()[1] for w in where[:most]) + more


def _number(label: str) -> float | None:
    try:
        x = float(label)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _strip_labels(frames: dict[str, pd.DataFrame], fixed: list[str] | None, info: dict) -> None:
    """Labels that differ only by surrounding whitespace ("pos " and "pos": a stray space in a
    spreadsheet cell) are one label, the stripped one; against a model's labels (`fixed`), the
    model's spelling of it. What was read as what is said."""
    model = {n.strip(): n for n in fixed} if fixed is not None else {}
    rename: dict[str, str] = {}
    for spelling in {v for df in frames.values() for v in df["label"]}:
        target = model.get(spelling.strip(), spelling.strip())
        if spelling != target and not (fixed is not None and spelling in fixed):
            rename[spelling] = target
    if not rename:
        return
    for df in frames.values():
        df["label"] = df["label"].replace(rename)
    info["labels_stripped"] = rename
    read = ", ".join(f"'{a}' as '{b}'" for a, b in sorted(rename.items()) if b)
    if read:
        _note(info, f"labels that differ only by surrounding whitespace are one label: read {read}")


def _unify_numeric_labels(frames: dict[str, pd.DataFrame], fixed: list[str] | None, info: dict) -> None:
    """Labels that are one number written differently ("1" and "1.0": pandas writes an integer
    column with gaps as floats) are one label. In training data each number takes its most
    frequent spelling; against a model's labels (`fixed`), the model's spelling. Labels written
    one way throughout stay as written."""
    counts = Counter(v for df in frames.values() for v in df["label"])
    by_number: dict[float, list[str]] = {}
    for spelling in counts:
        x = _number(spelling)
        if x is not None:
            by_number.setdefault(x, []).append(spelling)
    rename: dict[str, str] = {}
    if fixed is not None:
        model = {x: n for n in fixed if (x := _number(n)) is not None}
        rename = {s: model[x] for x, group in by_number.items() if x in model for s in group if s not in fixed}
    else:
        for group in by_number.values():
            keep = max(group, key=lambda s: (counts[s], -len(s), s))
            rename.update({s: keep for s in group if s != keep})
    _rename_labels(frames, info, "labels_unified", rename,
                   "labels that are the same number are one label: read {}")


def _rename_labels(frames: dict[str, pd.DataFrame], info: dict, key: str, rename: dict[str, str],
                   said: str) -> None:
    """Apply `rename` to every split's labels, record it under `info[key]`, and say `said` with
    the renames ('A' as 'a', ...) in place of {}."""
    if not rename:
        return
    for df in frames.values():
        df["label"] = df["label"].replace(rename)
    info[key] = rename
    _note(info, said.format(", ".join(f"'{a}' as '{b}'" for a, b in sorted(rename.items()))))


def _unify_label_case(frames: dict[str, pd.DataFrame], fixed: list[str] | None, info: dict) -> None:
    """Labels that differ only in case ("Positive", "positive", "POSITIVE": hand-typed or merged
    sheets) are one label: trained as separate classes they split one class into several. In
    training data each takes its most frequent spelling; against a model's labels (`fixed`), the
    model's spelling, unless the model itself has labels that differ only in case."""
    counts = Counter(v for df in frames.values() for v in df["label"])
    groups: dict[str, list[str]] = {}
    for spelling in counts:
        groups.setdefault(spelling.casefold(), []).append(spelling)
    rename: dict[str, str] = {}
    if fixed is not None:
        model: dict[str, list[str]] = {}
        for n in fixed:
            model.setdefault(n.casefold(), []).append(n)
        rename = {s: model[k][0] for k, group in groups.items() if len(model.get(k, [])) == 1
                  for s in group if s not in fixed}
    else:
        for group in groups.values():
            keep = max(group, key=lambda s: (counts[s], s))
            rename.update({s: keep for s in group if s != keep})
    _rename_labels(frames, info, "labels_case_unified", rename, "labels that differ only in case are one label: "
                   "read {} (if they are different classes, give them different names in the file)")


def _drop_unlabeled_eval_splits(frames, info) -> dict[str, pd.DataFrame]:
    # GLUE-style test sets ship without labels (-1 or empty); they cannot be evaluated.
    for split in ("dev", "test"):
        if split in frames and _unlabeled(frames[split]):
            del frames[split]
            _note(info, f"{split} split has no labels (all empty or -1): not evaluated; "
                  "a split is made from train instead")
    return frames


def _warn_single_class(frames: dict[str, pd.DataFrame], names: list[str], info: dict) -> None:
    for split in ("dev", "test", "all"):
        present = frames[split]["label"].unique() if split in frames else []
        if len(present) == 1:
            what = "the scored file" if split == "all" else f"the {split} split"
            _note(info, f"{what} holds a single class ('{names[present[0]]}'): macro-F1 and "
                  "MCC are degenerate there (accuracy is the share of that class predicted)")


def _make_missing_splits(frames, cfg: DataConfig, info, source: str) -> dict[str, pd.DataFrame]:
    made, remaining = {}, 1.0
    for split, frac in (("test", cfg.test_fraction), ("dev", cfg.dev_fraction)):
        if split not in frames:
            # Fractions are of the original file, so dev is taken relative to what test left.
            frames["train"], frames[split], how = stratified_split(
                frames["train"], frac / remaining, cfg.split_seed, source)
            remaining -= frac
            made[split] = f"{frac:.0%} of the training file, {how}, seed {cfg.split_seed}"
    info["splits_made"] = made
    return {k: frames[k] for k in ("train", "dev", "test")}


def _label_names(frames, sources) -> list[str]:
    values = sorted(set(frames["train" if "train" in frames else "all"]["label"]))
    if "" in values:
        raise UserError(f"{sources['train']}: some rows have an empty label", "fill or remove them")
    try:
        return sorted(values, key=lambda v: float(v))
    except ValueError:
        return values


def _check_labels(frames, names, sources, fixed: bool) -> None:
    known = set(names)
    for split, df in frames.items():
        unseen = sorted(set(df["label"]) - known)
        if unseen:
            n = int(df["label"].isin(unseen).sum())
            where = "the model's labels" if fixed else "train"
            raise UserError(
                f"{sources.get(split, split)}: label '{unseen[0]}' occurs in {split} ({n} rows) but "
                f"never in {where} ({', '.join(names[:10])})",
                "fix the label, or add training examples of that class")
    if not fixed and len(names) < 2:
        raise UserError(f"{sources['train']}: only one label ('{names[0]}') in train",
                        "a classifier needs at least two classes")
