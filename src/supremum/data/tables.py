"""Read labeled text tables (CSV, TSV, JSONL, datasets directories) into DataFrames.

Every failure a user can cause names the file, the line where there is one, and the fix.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import re
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
    """The file's text. A UTF-8 byte-order mark (Windows editors, Excel's "CSV UTF-8") is dropped
    when reading UTF-8, so it never ends up in the first column name or the first record."""
    raw = path.read_bytes()
    _refuse_binary(path, BINARY_FORMATS.get(path.suffix.lower()))
    if is_utf8(encoding):
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise UserError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order mark)",
                            "pass --encoding utf-16, or save it as UTF-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        # magic bytes only once decoding failed: a text file may start with "PAR1" by chance
        _refuse_binary(path, next((name for magic, name in MAGIC.items() if raw.startswith(magic)), None))
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line} has bytes that are not valid {encoding}",
                        _encoding_hint(raw)) from None
    except LookupError:
        raise UserError(f"unknown encoding '{encoding}'", "use a Python codec name such as utf-8 "
                        "or cp1252") from None
    _check_c1_controls(path, raw, text, encoding)
    return text


#: binary formats users hand in for tables, by suffix and by magic bytes: named, with the way out,
#: instead of an encoding error about bytes that were never text
BINARY_FORMATS = {".parquet": "Parquet", ".xlsx": "Excel", ".xls": "Excel", ".feather": "Feather",
                  ".arrow": "Arrow", ".pkl": "pickle", ".pickle": "pickle", ".npy": "NumPy", ".zip": "zip",
                  ".gz": "gzip"}
MAGIC = {b"PAR1": "Parquet", b"PK\x03\x04": "zip or Excel", b"\xd0\xcf\x11\xe0": "Excel",
         b"ARROW1": "Arrow", b"\x1f\x8b": "gzip", b"\x93NUMPY": "NumPy"}
CONVERT = {"Parquet": "pandas.read_parquet(path).to_json('data.jsonl', orient='records', lines=True)",
           "Feather": "pandas.read_feather(path).to_json('data.jsonl', orient='records', lines=True)",
           "Arrow": "pandas.read_feather(path).to_json('data.jsonl', orient='records', lines=True)",
           "Excel": "save it from Excel as 'CSV UTF-8', or pandas.read_excel(path).to_csv('d.csv', index=False)",
           "pickle": "pickles are never loaded (they run code): save the table as CSV or JSON Lines"}


def _refuse_binary(path: Path, fmt: str | None) -> None:
    if fmt:
        raise UserError(f"{path}: a {fmt} file; supremum reads tables as CSV, TSV, JSON Lines or JSON",
                        CONVERT.get(fmt.split()[-1], "unpack or convert it to one of those"))


def _encoding_hint(raw: bytes) -> str:
    """Windows-1252 first: it is what Excel and Windows editors write in the West, and unlike
    latin-1 it reads bytes 0x80-0x9F as the curly quotes and dashes they are."""
    if not _decodes(raw, "cp1252"):
        return "pass --encoding with the file's encoding, e.g. --encoding cp1252 (Windows) or latin-1"
    return "it decodes as Windows-1252 (Excel's Western encoding): pass --encoding cp1252"


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _check_c1_controls(path: Path, raw: bytes, text: str, encoding: str) -> None:
    """latin-1 decodes every byte, so a Windows-1252 file read as latin-1 silently turns its
    quotes and dashes (bytes 0x80-0x9F) into invisible control characters."""
    if codecs.lookup(encoding).name != "iso8859-1" or not _decodes(raw, "cp1252"):
        return  # bytes Windows-1252 leaves undefined: not a Windows-1252 file, latin-1 stands
    at = next((i for i, ch in enumerate(text) if "\x80" <= ch <= "\x9f"), None)
    if at is not None:
        line = raw[:at].count(b"\n") + 1  # latin-1: one byte per character
        raise UserError(f"{path}: line {line} has byte 0x{raw[at]:02X}, which {encoding} reads as a control "
                        "character (Windows-1252 reads it as a quote, dash or similar)",
                        "pass --encoding cp1252")


def is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def read_table(path: Path, encoding: str = "utf-8", delimiter: str | None = None) -> pd.DataFrame:
    """One file to a DataFrame of strings (labels stay strings until the label map is built).

    The index holds each record's first line in the file (name "line"), so errors can point at
    it; `header(df)` gives the column names as written (a repeated name is kept repeated there,
    while the frame's own columns are made unique as pandas does: "label", "label.1").
    `delimiter` None: a .tsv's is a tab, a .csv's is detected from its header line. A separator
    that reads the header as one column where another common one splits every row evenly is
    refused, naming that one (a wrong --delimiter would otherwise read on as one column)."""
    if not path.exists():
        raise UserError(f"{path}: no such file", "check the --data path")
    text = decode(path, encoding)
    if not text.strip():
        raise UserError(f"{path}: the file is empty", "give a file with a header and rows")
    if path.suffix in (".jsonl", ".json"):
        df = _read_jsonl(path, text)
    else:
        sep = delimiter or ("\t" if path.suffix == ".tsv" else detect_delimiter(text))
        # a .tsv read with its tab is unquoted (TSV has no quoting); any other separator makes it a CSV
        quoted = not (path.suffix == ".tsv" and sep == "\t")
        requoted = not quoted and _quoted_tsv(text)
        quoted = quoted or requoted
        df = _read_delimited(path, text, sep, quoted=quoted, given=delimiter is not None,
                             how=_how_chosen(text, path, delimiter))
        if delimiter is None and path.suffix != ".tsv" and sep != ",":
            df.attrs["detected_delimiter"] = sep
        if requoted:
            df.attrs["quoted_tsv"] = True
    if len(df) == 0:
        raise UserError(f"{path}: the file has a header but no rows", "add examples")
    return df


def header(df: pd.DataFrame) -> list[str]:
    """Column names as the file writes them (repeats included)."""
    return list(df.attrs.get("header") or [str(c) for c in df.columns])


DELIMITERS = (",", ";", "\t", "|")


def detect_delimiter(text: str) -> str:
    """The separator of a CSV: of , ; tab |, the one that splits the header line (quotes
    respected) into the most columns; a comma on a tie. Excel writes `;` where the decimal mark is
    a comma (most of Europe), and a header holds no free text that could mislead the count."""
    line = next((x for x in text.splitlines() if x.strip()), "")
    width = {d: len(next(csv.reader([line], delimiter=d), [])) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: (width[d], d == ","))


def _quoted_tsv(text: str) -> bool:
    """A TSV written with CSV quoting (pandas' `to_csv(sep="\t")`, spreadsheets): texts that hold
    a line break, a tab or a quote are in quotes. TSV has no quoting, and read without it such a
    file falls apart into short rows (a text's second line read as a row of its own). It is taken
    as quoted only when that happens and reading it with quotes gives every row the header's
    width, so an unquoted TSV whose texts merely contain quotes (SST-2's) reads as before."""
    if '"' not in text:
        return False
    plain = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    if len(plain) < 2 or all(len(r) == len(plain[0]) for r in plain[1:]):
        return False
    try:
        quoted = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True) if r]
    except csv.Error:
        return False
    return len(quoted) > 1 and all(len(r) == len(quoted[0]) for r in quoted[1:])


def _how_chosen(text: str, path: Path, delimiter: str | None) -> str:
    """How read_table chose the separator, in words for an error that names it."""
    if delimiter is not None:
        return "given with --delimiter"
    if path.suffix == ".tsv":
        return "as for every .tsv file"
    line = next((x for x in text.splitlines() if x.strip()), "")
    if any(d in line for d in DELIMITERS):
        return "detected from the header line"
    return "the default: the header line holds none of , ; tab |"


def _read_delimited(path: Path, text: str, sep: str, quoted: bool = True, given: bool = False,
                    how: str = "") -> pd.DataFrame:
    """CSV (RFC 4180 quoting: fields may hold the separator, quotes and line breaks) or TSV (no
    quoting). Python's csv reader instead of pandas.read_csv because it tells on which file line
    each record starts, and keeps repeated column names visible. `given`: the separator is the
    user's (--delimiter), so a row too wide may mean it is the wrong one; `how` it was chosen,
    said with it when a row is too wide."""
    kind = "CSV" if quoted else "TSV"
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # the default 128 KiB cuts documents
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    rows, lines, start = [], [], 1
    try:
        for row in reader:
            if row:  # blank lines are skipped
                rows.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(f"{path}: line {start}: cannot parse as {kind} ({e})",
                        "check quoting and the number of fields per line") from None
    if quoted and rows:
        _check_closed_quote(path, text, lines[-1], sep)
    names, records = rows[0], rows[1:]
    width = len(names)
    if width == 1:
        _check_one_column(path, text, names[0], sep)
    for row, line in zip(records, lines[1:], strict=True):
        if len(row) > width:
            said = f"; the separator is {_shown(sep)}, {how}" if how else ""
            raise UserError(f"{path}: line {line} has {len(row)} fields, the header has {width}{said}",
                            _too_wide_hint(sep, quoted, given, width))
        row.extend([""] * (width - len(row)))  # a short row: the missing fields are empty
    df = pd.DataFrame(records, columns=_unique(names), index=pd.Index(lines[1:], name="line"),
                      dtype=str)
    df.attrs["header"] = names
    return df


def _check_one_column(path: Path, text: str, name: str, sep: str) -> None:
    """A separator (given, or a .tsv's tab) that leaves the header one column, on a file that
    another common separator splits into the same number of columns (two or more) on every row:
    the separator is wrong, and reading on would give one column named like the whole header.
    Each alternative is tried as --delimiter would read it: as a CSV, with quoting."""
    for alt in DELIMITERS:
        if alt == sep:
            continue
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=alt) if r]
        except csv.Error:
            continue
        width = len(rows[0])
        if width > 1 and all(len(r) == width for r in rows[1:]):
            raise UserError(f"{path}: the separator {_shown(sep)} reads the header as one column ({name!r}), "
                            f"while {_shown(alt)} splits it and every row into {width} columns "
                            f"({', '.join(rows[0])})", f"pass --delimiter '{_typed(alt)}'")


def _shown(sep: str) -> str:
    return "tab" if sep == "\t" else f"'{sep}'"


def _typed(sep: str) -> str:
    """As typed on a command line (a shell passes a tab as the two characters \\t)."""
    return "\\t" if sep == "\t" else sep


def _too_wide_hint(sep: str, quoted: bool, given: bool, width: int = 2) -> str:
    """What to do about a row with more fields than the header; a separator the user gave may be
    the wrong one, so passing --delimiter again is no advice. A one-column file (texts only) needs
    no separator at all: one that no text contains reads every line whole."""
    check = f"check the separator given with --delimiter ({sep!r})"
    if not quoted:  # TSV: no quoting
        return f"a text must not contain the separator, or {check}" if given else "a text must not contain a tab"
    if width == 1 and not given:
        return (f'a one-column file: quote each text that contains {_shown(sep)}, e.g. "good{sep} not great", '
                "or pass --delimiter with a separator no text contains, e.g. --delimiter tab")
    return f'quote fields that contain the separator, e.g. "good{sep} not great", or ' + (
        check if given else "pass --delimiter")


def _check_closed_quote(path: Path, text: str, last_start: int, sep: str = ",") -> None:
    """An unclosed quote makes the csv reader swallow the rest of the file into one field."""
    tail = text.split("\n", last_start - 1)[-1]
    try:
        list(csv.reader(io.StringIO(tail, newline=""), delimiter=sep, strict=True))
    except csv.Error as e:
        if "end of data" in str(e):
            raise UserError(f"{path}: line {last_start} opens a quote (\") that is never closed",
                            'close it, or double a quote inside a quoted field ("")') from None


def _unique(names: list[str]) -> list[str]:
    """pandas' names for repeated columns: label, label.1, label.2."""
    out: list[str] = []
    for name in names:
        new, k = name, 0
        while new in out:
            k += 1
            new = f"{name}.{k}"
        out.append(new)
    return out


class _Record(dict):
    """A JSON object that remembers the keys its text repeats (json keeps only the last)."""

    repeated: tuple[str, ...] = ()


def _record(pairs: list[tuple[str, object]]) -> _Record:
    obj = _Record(pairs)
    if len(obj) < len(pairs):
        keys = [k for k, _ in pairs]
        obj.repeated = tuple(sorted({k for k in keys if keys.count(k) > 1}))
    return obj


def json_records(path: Path, text: str, example: str) -> tuple[list[dict], list[int]]:
    """The objects of a JSON-lines file (or a .json array) and the file line each starts on;
    `example` shows one record in the error."""
    stripped = text.lstrip()
    if path.suffix == ".json" and stripped.startswith("["):
        rows, lines = _json_array(path, text)
    else:
        rows, lines = [], []
        # split on "\n" only: str.splitlines also splits at U+2028, U+0085 and other characters
        # that JSON strings may hold unescaped; a CRLF line keeps a "\r" that JSON reads as space
        for i, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line, object_pairs_hook=_record))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {i} is not valid JSON ({e.msg})",
                                "write one JSON object per line") from None
            lines.append(i)
    for row, line in zip(rows, lines, strict=True):
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {line} is not a JSON object", f"write {example} per line")
        if getattr(row, "repeated", ()):
            keys = ", ".join(f"'{k}'" for k in row.repeated)
            raise UserError(f"{path}: line {line} repeats the key {keys} in one record",
                            "keep one (JSON readers silently keep only the last)")
    return rows, lines


def _json_array(path: Path, text: str) -> tuple[list, list[int]]:
    """The items of a JSON array and their first lines."""
    try:
        json.loads(text, object_pairs_hook=_record)  # the error position of a broken file
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno} is not valid JSON ({e.msg})",
                        "write a JSON array of objects, or JSON lines") from None
    decoder = json.JSONDecoder(object_pairs_hook=_record)
    ws = re.compile(r"[\s,]*")
    rows, lines, line, counted = [], [], 1, 0
    i = ws.match(text, text.index("[") + 1).end()
    while text[i] != "]":
        row, end = decoder.raw_decode(text, i)
        line += text.count("\n", counted, i)
        rows.append(row)
        lines.append(line)
        counted, i = i, ws.match(text, end).end()
    return rows, lines


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    rows, lines = json_records(path, text, '{"text": ..., "label": ...}')
    # Each value becomes a string before pandas sees it: a column mixing 1 and 1.0, or ints and
    # nulls, would be cast to float first (1 -> "1.0"), and a missing key becomes "", not "nan".
    cells = [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
    return pd.DataFrame(cells, index=pd.Index(lines, name="line"), dtype=str).fillna("")


def pick_column(df: pd.DataFrame, wanted: str | None, role: str, source: str) -> tuple[str, str | None]:
    """Return (column, how it was detected): None when `wanted` named it, "named" when its name is a
    usual one (text, sentence, label, ...), "longest" when no name matched and the text column is
    the one with the longest mean length (a guess the user should see as such). `wanted` is a
    name, or a position counted from 1 (for a header that repeats a name); a repeated name is
    refused rather than one copy picked."""
    cols = [str(c) for c in df.columns]
    names = header(df)
    if wanted is not None:
        if wanted in names:
            return cols[_only(names, [i for i, n in enumerate(names) if n == wanted], role, source)], None
        if wanted in cols:  # pandas' name for a repeated column, e.g. label.1
            return wanted, None
        padded = [i for i, n in enumerate(names) if n.strip() == wanted.strip()]
        if len(padded) == 1:  # spaces around a header name (Excel exports keep them) are not a name
            return cols[padded[0]], None
        if wanted.strip().isdigit():
            pos = int(wanted)
            if 1 <= pos <= len(cols):
                return cols[pos - 1], None
            raise UserError(f"{source}: no column {pos}; the file has {len(cols)} columns "
                            f"({', '.join(names)})", f"pass --{role}-column 1 to {len(cols)}, or a name")
        close = difflib.get_close_matches(wanted, names, n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"{source}: no {role} column '{wanted}'; columns are: {', '.join(names)}",
                        f"{guess}pass --{role}-column with one of them")
    candidates = TEXT_CANDIDATES if role == "text" else LABEL_CANDIDATES
    for name in candidates:
        found = [i for i, n in enumerate(names) if n.strip().lower() == name]
        if found:
            return cols[_only(names, found, role, source)], "named"
    if role == "text":
        lengths = {c: df[c].astype(str).str.len().mean() for c in cols}
        best = max(lengths, key=lengths.get)
        i = cols.index(best)
        return cols[_only(names, [j for j, n in enumerate(names) if n == names[i]], role, source)], "longest"
    raise UserError(f"{source}: cannot tell which column holds the label; columns are: "
                    f"{', '.join(names)}", "pass --label-column")


def _only(names: list[str], found: list[int], role: str, source: str) -> int:
    """The one column of `found`; several columns of one name are refused, naming positions."""
    if len(found) == 1:
        return found[0]
    where = " and ".join(str(i + 1) for i in found)
    raise UserError(f"{source}: the header has {len(found)} columns named '{names[found[0]]}' "
                    f"(columns {where}), so the {role} column is ambiguous",
                    f"choose one by position counted from 1, e.g. --{role}-column {found[-1] + 1}, "
                    "or rename the columns")


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
