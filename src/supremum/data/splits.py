"""Seeded stratified splits, duplicate and leakage reports."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from supremum.errors import UserError


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


MIN_ROWS_TO_SPLIT = 10


def stratified_split(df: pd.DataFrame, fraction: float, seed: int,
                     source: str = "data") -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Split off `fraction` of rows, stratified by label when every class has 2+ rows."""
    if len(df) < MIN_ROWS_TO_SPLIT:
        raise UserError(f"{source}: only {len(df)} rows, too few to split off dev/test",
                        f"give at least {MIN_ROWS_TO_SPLIT} rows, or separate dev/test files")
    counts = df["label"].value_counts()
    stratify = df["label"] if counts.min() >= 2 and len(counts) <= fraction * len(df) else None
    keep, held = train_test_split(df, test_size=fraction, random_state=seed, stratify=stratify)
    how = "stratified" if stratify is not None else "random (a class has too few rows to stratify)"
    return keep.reset_index(drop=True), held.reset_index(drop=True), how


def duplicate_report(splits: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Exact duplicates inside each split and train overlap with dev/test, after normalization."""
    norm = {name: df["text"].map(normalize) for name, df in splits.items()}
    report = {f"duplicates_in_{name}": int(s.duplicated().sum()) for name, s in norm.items()}
    train = set(norm["train"])
    for name in ("dev", "test"):
        if name in norm:
            report[f"train_overlap_{name}"] = int(norm[name].isin(train).sum())
    return report


def drop_duplicates(splits: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Deduplicate each split; remove from train what also occurs in dev or test.

    Train gives way (not dev/test) so that evaluation sets stay comparable with published numbers.
    """
    out = {}
    for name, df in splits.items():
        out[name] = df[~df["text"].map(normalize).duplicated()].reset_index(drop=True)
    held = set()
    for name in ("dev", "test"):
        if name in out:
            held |= set(out[name]["text"].map(normalize))
    train = out["train"]
    out["train"] = train[~train["text"].map(normalize).isin(held)].reset_index(drop=True)
    return out
