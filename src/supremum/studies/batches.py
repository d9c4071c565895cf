"""The CSV files annotators fill in: `row_id,text,label` with the label column empty on export.

Export writes a temporary name and renames it (no half-written batch). Ingest checks every row
against the batch it answers: each of the batch's row ids exactly once, the text unchanged, a
label from the label set; any fault is one UserError naming the file, the line and the fix.
The files are read with `utf-8-sig` (a spreadsheet's byte-order mark is not part of the header)
and the delimiter of the header line (a spreadsheet in some locales saves `;`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from supremum.errors import UserError
from supremum.fsutil import write_bytes

COLUMNS = ("row_id", "text", "label")


def write_batch(path: Path, rows: Sequence[int], texts: Sequence[str]) -> Path:
    """Write `rows` (pool row ids) with their texts and an empty label column, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows([r, texts[r], ""] for r in rows)
    write_bytes(path, buf.getvalue().encode("utf-8"))
    return path


def read_batch(path: Path, rows: Sequence[int], texts: Sequence[str],
               label_names: Sequence[str]) -> dict[int, str]:
    """{row id: label} of a filled-in batch answering `rows`. UserError (file and line) for a
    missing column, an unknown row id, a row id given twice, a changed text, an empty label, a
    label outside `label_names`, or a row of the batch that is missing."""
    if not path.exists():
        raise UserError(f"{path}: no such batch file", "pass the CSV written by the last round")
    wanted, got, lines = set(rows), {}, {}
    reader = _reader(path)
    _check_header(path, reader.fieldnames)
    start = 2
    for rec in reader:
        line, start = start, reader.line_num + 1  # a quoted text may span lines: report where it starts
        rid = _row_id(path, line, rec.get("row_id"), wanted)
        if rid in got:
            raise UserError(f"{path}, line {line}: row id {rid} is given twice (first on line {lines[rid]})",
                            "keep one row per row id")
        if (rec.get("text") or "") != texts[rid]:
            raise UserError(f"{path}, line {line}: the text of row id {rid} differs from the pool's",
                            "do not edit the text or row_id columns; label in the label column only")
        got[rid], lines[rid] = _label(path, line, rid, rec.get("label"), label_names), line
    missing = sorted(wanted - set(got))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise UserError(f"{path}: {len(missing)} row(s) of the batch are missing (row ids {shown})",
                        "restore them from the exported batch and label them")
    return got


def _reader(path: Path) -> csv.DictReader:
    text = path.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    return csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)


def _check_header(path: Path, fields: Sequence[str] | None) -> None:
    missing = [c for c in COLUMNS if c not in (fields or [])]
    if missing:
        raise UserError(f"{path}, line 1: no column {', '.join(missing)} (header: {', '.join(fields or [])})",
                        f"keep the header {','.join(COLUMNS)} of the exported batch")


def _row_id(path: Path, line: int, value: str | None, wanted: set[int]) -> int:
    try:
        rid = int((value or "").strip())
    except ValueError:
        raise UserError(f"{path}, line {line}: row id '{value}' is not a number",
                        "do not edit the row_id column") from None
    if rid not in wanted:
        raise UserError(f"{path}, line {line}: row id {rid} is not in this batch",
                        "label only the rows of the exported batch; do not edit the row_id column")
    return rid


def _label(path: Path, line: int, rid: int, value: str | None, names: Sequence[str]) -> str:
    label = (value or "").strip()
    if not label:
        raise UserError(f"{path}, line {line}: row id {rid} has an empty label",
                        f"fill in one of: {', '.join(names)}")
    if label not in names:
        # "Positive" for "positive": the one label it matches but for case, as training data reads it
        same = [n for n in names if n.casefold() == label.casefold()]
        if len(same) == 1:
            return same[0]
        raise UserError(f"{path}, line {line}: label '{label}' of row id {rid} is not in the label set",
                        f"use one of: {', '.join(names)}")
    return label
