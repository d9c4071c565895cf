"""Unlabelled texts (self-training, domain-adaptive pretraining), read with the data readers.

A .txt/.text/.md file holds one text per line; a CSV/TSV/JSONL file holds them in its text column
(data.text_column, else auto-detected as for labelled data). Encoding and delimiter are the data's,
and every fault a user can cause (missing, a directory, unreadable, undecodable, empty) is one
line naming the file.
"""

from __future__ import annotations

from pathlib import Path

from supremum.config import DataConfig
from supremum.data.tables import TABLE_SUFFIXES, decode, pick_column, read_table
from supremum.errors import UserError

TEXT_SUFFIXES = (".txt", ".text", ".md")


def read_unlabeled(cfg: DataConfig) -> tuple[list[str], dict]:
    """(texts, info) from `cfg.unlabeled`; blank texts are skipped and counted in info
    (`{"source", "texts", "skipped_blank", "column"?}`). UserError for a path that is not a
    readable, non-empty text or table file."""
    path = Path(cfg.unlabeled).expanduser()
    _check_file(path)
    if path.suffix in TABLE_SUFFIXES:
        df = read_table(path, cfg.encoding, cfg.delimiter)
        column, _ = pick_column(df, cfg.text_column, "text", str(path))
        raw, extra = df[column].astype(str).tolist(), {"column": column}
    else:
        raw, extra = decode(path, cfg.encoding).splitlines(), {}
    texts = [t for t in raw if t.strip()]
    if not texts:
        raise UserError(f"{path}: no unlabelled texts (the file is empty or blank)",
                        "give a file with one text per line, or a table with a text column")
    return texts, {"source": str(path), "texts": len(texts), "skipped_blank": len(raw) - len(texts), **extra}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file (the unlabelled texts)", "check the --unlabeled path")
    if not path.is_file():
        raise UserError(f"{path}: not a file (the unlabelled texts)",
                        "give a .txt file (one text per line) or a CSV/TSV/JSONL file")
    if path.suffix not in TABLE_SUFFIXES + TEXT_SUFFIXES:
        raise UserError(f"{path}: unknown kind of file for unlabelled texts",
                        "use .txt (one text per line), .csv, .tsv or .jsonl")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise UserError(f"{path}: cannot read the unlabelled texts ({e.strerror})",
                        "check the file's permissions") from None
