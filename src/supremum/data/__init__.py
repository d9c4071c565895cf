"""Labeled text data: load, pick columns, map labels, split, report leakage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from supremum.config import DataConfig
from supremum.data.splits import drop_duplicates, duplicate_report, stratified_split
from supremum.data.tables import (
    find_split_files,
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

    def split(self, name: str) -> pd.DataFrame:
        if name not in self.splits:
            raise UserError(f"no split '{name}' in the data; splits are: {', '.join(self.splits)}",
                            "pass --split with one of them")
        return self.splits[name]


def load_data(cfg: DataConfig, label_names: list[str] | None = None, whole: bool = False) -> TaskData:
    """Load, split and label-map a dataset. `label_names` fixes the map (evaluation of an artifact).
    `whole`: no splits are cut; every labeled row of every file forms the one split "all"."""
    raw, sources = _read_sources(cfg)
    info: dict = {"source": cfg.path, "files": sources}
    frames = _select_columns(raw, cfg, sources, info)
    frames = _drop_unlabeled_eval_splits(frames, info)
    if whole:
        frames = {"all": pd.concat(list(frames.values()), ignore_index=True)}
        sources = {**sources, "all": cfg.path}
    else:
        frames = _make_missing_splits(frames, cfg, info, sources["train"])
        info["duplicates"] = duplicate_report(frames)
    if cfg.dedup and not whole:
        frames = drop_duplicates(frames)
        info["dedup"] = {k: len(v) for k, v in frames.items()}
    names = label_names if label_names is not None else _label_names(frames, sources)
    _check_labels(frames, names, sources, fixed=label_names is not None)
    index = {n: i for i, n in enumerate(names)}
    for df in frames.values():
        df["label"] = df["label"].map(index).astype("int64")
    if cfg.train_limit is not None and label_names is None and not whole:
        frames["train"] = _limit_train(frames["train"], cfg, info)
    info["sizes"] = {k: len(v) for k, v in frames.items()}
    return TaskData(frames, names, info)


def _limit_train(df: pd.DataFrame, cfg: DataConfig, info: dict) -> pd.DataFrame:
    """The first train_limit rows of a seeded permutation: nested subsets for learning curves
    (the label map is taken from the full training set before this, so it never changes)."""
    if cfg.train_limit > len(df):
        raise UserError(f"train_limit={cfg.train_limit} exceeds the {len(df)} training examples",
                        f"use at most {len(df)}")
    order = np.random.default_rng(cfg.train_limit_seed).permutation(len(df))[: cfg.train_limit]
    info["train_limit"] = {"kept": cfg.train_limit, "of": len(df), "seed": cfg.train_limit_seed}
    return df.iloc[np.sort(order)].reset_index(drop=True)


def _read_sources(cfg: DataConfig) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    path = Path(cfg.path)
    if "$" in cfg.path and not path.exists():
        raise UserError(f"{path}: the path has an unset environment variable",
                        "export it first, e.g. export SUPREMUM_DATA=/path/to/data")
    if path.is_file():
        return {"train": read_table(path, cfg.encoding)}, {"train": str(path)}
    if path.is_dir():
        if is_datasets_dir(path):
            frames = read_datasets_dir(path)
            return frames, {k: f"{path}[{k}]" for k in frames}
        files = find_split_files(path)
        if "train" not in files:
            raise UserError(f"{path}: no train file (looked for train.csv/.tsv/.jsonl/.json)",
                            "name the files train/dev/test or pass a single file")
        return {k: read_table(p, cfg.encoding) for k, p in files.items()}, {
            k: str(p) for k, p in files.items()}
    if path.suffix in (".csv", ".tsv", ".jsonl", ".json") or "/" not in cfg.path:
        raise UserError(f"{path}: no such file or directory", "check the --data path")
    frames = read_hub_dataset(cfg.path)
    return frames, {k: f"hub:{cfg.path}[{k}]" for k in frames}


def _select_columns(raw, cfg: DataConfig, sources, info) -> dict[str, pd.DataFrame]:
    train = raw["train"]
    text_col, text_auto = pick_column(train, cfg.text_column, "text", sources["train"])
    label_col, label_auto = pick_column(train, cfg.label_column, "label", sources["train"])
    if text_col == label_col:
        raise UserError(f"{sources['train']}: text and label are the same column '{text_col}'",
                        "pass --text-column and --label-column")
    info["columns"] = {"text": text_col, "label": label_col,
                       "auto_detected": [r for r, a in (("text", text_auto), ("label", label_auto)) if a]}
    frames = {}
    for split, df in raw.items():
        for col, role in ((text_col, "text"), (label_col, "label")):
            pick_column(df, col, role, sources[split])
        frames[split] = pd.DataFrame({"text": df[text_col].astype(str), "label": df[label_col].astype(str)})
        _check_empty_text(frames[split], sources[split])
    return frames


def _check_empty_text(df: pd.DataFrame, source: str) -> None:
    empty = df.index[df["text"].str.strip() == ""]
    if len(empty):
        line = int(empty[0]) + (1 if source.endswith(".jsonl") else 2)  # +header for CSV/TSV
        raise UserError(f"{source}: line {line} has an empty text ({len(empty)} such rows)",
                        "remove those rows or fill them in")


def _drop_unlabeled_eval_splits(frames, info) -> dict[str, pd.DataFrame]:
    # GLUE-style test sets ship without labels (-1 or empty); they cannot be evaluated.
    for split in ("dev", "test"):
        if split in frames and frames[split]["label"].isin(["", "-1"]).all():
            del frames[split]
            info.setdefault("notes", []).append(f"{split} split has no labels; ignored")
    return frames


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
