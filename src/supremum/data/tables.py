"""Read labeled text tables (CSV, TSV, JSONL, datasets directories) into DataFrames.

Every failure a user can cause names the file, the line where there is one, and the fix.
"""

from __future__ import annotations

import difflib
import io
import json
from pathlib import Path

import pandas as pd

from supremum.errors import UserError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
SPLIT_NAMES = {
    "train": ("train",),
    "dev": ("dev", "validation", "valid", "val"),
    "test": ("test",),
}
TEXT_CANDIDATES = ("text", "sentence", "review", "content", "document", "body", "comment", "utterance")
LABEL_CANDIDATES = ("label", "labels", "class", "target", "sentiment", "category", "stars", "y")


def decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(
            f"{path}: line {line} has bytes that are not valid {encoding}",
            "pass --encoding with the file's encoding, e.g. --encoding latin-1",
        ) from None
    except LookupError:
        raise UserError(f"unknown encoding '{encoding}'", "use a Python codec name such as utf-8 "
                        "or latin-1") from None


def read_table(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """One file to a DataFrame of strings (labels stay strings until the label map is built)."""
    if not path.exists():
        raise UserError(f"{path}: no such file", "check the --data path")
    text = decode(path, encoding)
    if not text.strip():
        raise UserError(f"{path}: the file is empty", "give a file with a header and rows")
    if path.suffix in (".jsonl", ".json"):
        df = _read_jsonl(path, text)
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                             quoting=3 if sep == "\t" else 0)
        except pd.errors.ParserError as e:
            raise UserError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {e}",
                            "check quoting and the number of fields per line") from None
    if len(df) == 0:
        raise UserError(f"{path}: the file has a header but no rows", "add examples")
    return df


def json_records(path: Path, text: str, example: str) -> list[dict]:
    """The objects of a JSON-lines file (or a .json array); `example` shows one in the error."""
    stripped = text.lstrip()
    if path.suffix == ".json" and stripped.startswith("["):
        rows = json.loads(stripped)
    else:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {i} is not valid JSON ({e.msg})",
                                "write one JSON object per line") from None
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {i} is not a JSON object", f"write {example} per line")
    return rows


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    df = pd.DataFrame(json_records(path, text, '{"text": ..., "label": ...}'))
    return df.map(lambda v: "" if v is None else str(v))


def pick_column(df: pd.DataFrame, wanted: str | None, role: str, source: str) -> tuple[str, bool]:
    """Return (column, was_auto_detected)."""
    cols = [str(c) for c in df.columns]
    if wanted is not None:
        if wanted in cols:
            return wanted, False
        close = difflib.get_close_matches(wanted, cols, n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"{source}: no {role} column '{wanted}'; columns are: {', '.join(cols)}",
                        f"{guess}pass --{role}-column with one of them")
    candidates = TEXT_CANDIDATES if role == "text" else LABEL_CANDIDATES
    lower = {c.lower(): c for c in cols}
    for name in candidates:
        if name in lower:
            return lower[name], True
    if role == "text":
        lengths = {c: df[c].astype(str).str.len().mean() for c in cols}
        return max(lengths, key=lengths.get), True
    raise UserError(f"{source}: cannot tell which column holds the label; columns are: "
                    f"{', '.join(cols)}", "pass --label-column")


def find_split_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            for suffix in TABLE_SUFFIXES:
                p = directory / f"{name}{suffix}"
                if p.exists() and split not in found:
                    found[split] = p
    return found


def is_datasets_dir(directory: Path) -> bool:
    return (directory / "dataset_dict.json").exists() or (directory / "state.json").exists()


def read_datasets_dir(directory: Path) -> dict[str, pd.DataFrame]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(directory))
    except Exception as e:  # datasets raises many types for a damaged directory
        raise UserError(f"{directory}: not a readable datasets directory ({e})",
                        "re-create it with Dataset.save_to_disk") from None
    if isinstance(ds, datasets.Dataset):
        return {"train": _hf_to_frame(ds)}
    return _canonical_splits({k: _hf_to_frame(v) for k, v in ds.items()})


def read_hub_dataset(name: str) -> dict[str, pd.DataFrame]:
    import datasets

    try:
        ds = datasets.load_dataset(name)
    except Exception as e:  # offline, unknown name, or gated: all mean "not reachable"
        raise UserError(f"data '{name}' is neither a file, a directory, nor a reachable hub "
                        f"dataset ({type(e).__name__})", "check the --data path") from None
    return _canonical_splits({k: _hf_to_frame(v) for k, v in ds.items()})


def _hf_to_frame(ds) -> pd.DataFrame:
    df = ds.to_pandas()
    for col in df.columns:
        feat = ds.features.get(col)
        if getattr(feat, "names", None):  # ClassLabel: keep the names, not the ids
            df[col] = [feat.names[i] if i >= 0 else "" for i in df[col]]
    return df.map(lambda v: "" if v is None else str(v))


def _canonical_splits(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if name in frames and split not in out:
                out[split] = frames[name]
    return out
