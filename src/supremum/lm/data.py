"""Language-model data: plain text corpora packed into blocks, and instruction data with the loss
masked on prompt tokens.

Splits are contiguous ranges (train first, then dev, then test), never a shuffle: neighbouring
lines of a corpus share content, so a random split would leak text into the held-out part.
Packing and masking are written here because the transformers helpers (group_texts in the
examples, DataCollatorForCompletionOnlyLM in TRL) are scripts or pull in a trainer stack; the
loop only needs token ids and per-token labels (-100 = not predicted).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from supremum.config import DataConfig
from supremum.data import tell
from supremum.data.batching import Split
from supremum.data.tables import SPLIT_NAMES, decode, is_utf8, json_records
from supremum.errors import UserError

IGNORE = -100
TEXT_SUFFIXES = (".txt", ".md", ".text")
#: (prompt, response) field pairs recognized in instruction JSONL
PAIRS = (("prompt", "response"), ("prompt", "completion"), ("question", "answer"), ("input", "output"))
#: the record shapes read as instruction data or text, for the error on any other shape
SHAPES = ('{"messages": [{"role", "content"}, ...]} (OpenAI)',
          '{"conversations": [{"from", "value"}, ...]} (ShareGPT; from: human, gpt, system)',
          '{"instruction", "input", "output"} (Alpaca; input optional)',
          '{"prompt", "response"} (or prompt/completion, question/answer, input/output)',
          '{"text"} (plain text)')
#: ShareGPT speakers as chat roles
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "system": "system"}
SPLITS = ("train", "dev", "test")


@dataclass
class LMData:
    """Per split: documents (kind "text") or examples (kind "instruction": {"messages": [...]})."""

    kind: str
    records: dict[str, list]
    info: dict = field(default_factory=dict)

    @property
    def splits(self) -> dict[str, list]:  # what finetune reports as split sizes
        return self.records

    def split(self, name: str) -> list:
        if not self.records.get(name):
            have = ", ".join(k for k, v in self.records.items() if v)
            raise UserError(f"no split '{name}' in the data; splits are: {have}", "pass --split with one of them")
        return self.records[name]


# ---- what kind of data is this -----------------------------------------------------------

def split_files(path: Path) -> dict[str, Path]:
    """{split: file} of a language-model corpus: a file is the train split; in a directory, the
    train/dev/test files by their usual names with a text, .jsonl or .json suffix, and a directory
    holding one text file alone (a corpus such as tinyshakespeare/input.txt) as train."""
    if path.is_file():
        return {"train": path}
    found: dict[str, Path] = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            for suffix in (*TEXT_SUFFIXES, ".jsonl", ".json"):
                if (path / f"{name}{suffix}").exists() and split not in found:
                    found[split] = path / f"{name}{suffix}"
    if "train" not in found and path.is_dir():
        texts = sorted(p for p in path.iterdir() if p.suffix in TEXT_SUFFIXES)
        if len(texts) == 1:  # a corpus directory such as tinyshakespeare/input.txt
            found["train"] = texts[0]
    return found


def _first_record(path: Path, encoding: str) -> dict | None:
    # utf-8-sig: a byte-order mark before the first record must not make it unreadable
    with open(path, encoding="utf-8-sig" if is_utf8(encoding) else encoding, errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return row if isinstance(row, dict) else None
    return None


def record_format(keys, text_column: str | None = None) -> str | None:
    """The shape of a JSON record: openai, sharegpt, alpaca, "prompt/response" (any of PAIRS),
    text; None for a shape that is none of these."""
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    for p, r in PAIRS:
        if p in keys and r in keys:
            return f"{p}/{r}"
    return "text" if (text_column or "text") in keys else None


def is_lm_data(cfg: DataConfig) -> bool:
    """Text files, or JSONL records with messages, a prompt/response pair, or text but no label."""
    from supremum.data.tables import LABEL_CANDIDATES

    path = Path(cfg.path)
    if not path.exists():
        return False
    train = split_files(path).get("train")
    if train is None:
        return False
    if train.suffix in TEXT_SUFFIXES:
        return True
    if train.suffix not in (".jsonl", ".json"):
        return False
    row = _first_record(train, cfg.encoding)
    if row is None:
        return False
    keys = set(row)
    if record_format(keys) not in (None, "text"):
        return True
    has_label = (cfg.label_column in keys) if cfg.label_column else bool(keys & set(LABEL_CANDIDATES))
    return not has_label and (cfg.text_column or "text") in keys


# ---- reading -----------------------------------------------------------------------------

def load_lm_data(cfg: DataConfig, whole: bool = False) -> LMData:
    """Text (.txt, or JSON records with a text field) or instruction data in any of SHAPES, as
    documents or {"messages": [...]} examples per split. `info["format"]` names the record shape;
    records with an empty text or answer are refused, or with drop_empty dropped and reported.
    `whole`: none cut, every file's records in the one split "all" (train, dev, test order)."""
    if cfg.cv_folds is not None:  # ignoring them would train on the fold meant to be held out
        raise UserError("data.cv_folds/cv_fold apply to classification data only",
                        "remove them for a language-model corpus")
    path = Path(cfg.path)
    files = split_files(path)
    if "train" not in files:
        raise UserError(f"{path}: no text corpus (train.txt, a single .txt file, or train.jsonl)",
                        "pass a .txt file, a JSONL file, or a directory with train/dev/test files")
    read = {split: read_file(p, cfg) for split, p in files.items()}
    kinds = {r.kind for r in read.values()}
    if len(kinds) > 1:
        raise UserError(f"{path}: the split files mix plain text and instruction data",
                        "give every split the same kind of records")
    kind = kinds.pop()
    records = {s: r.records for s, r in read.items()}
    info = {"source": cfg.path, "files": {k: str(v) for k, v in files.items()}, "kind": kind,
            "format": read["train"].format}
    dropped = {s: r.dropped for s, r in read.items() if r.dropped}
    if dropped:
        info["dropped_empty"] = {s: {"rows": len(d), "where": [f"line {x}" for x in d]}
                                 for s, d in dropped.items()}
        for s, d in dropped.items():
            tell(f"dropped {len(d)} record{'s' * (len(d) > 1)} with an empty text from {files[s]} "
                 f"(line{'s' * (len(d) > 1)} {', '.join(map(str, d[:10]))}{', ...' if len(d) > 10 else ''})")
    if whole:
        records = {"all": [r for s in SPLITS for r in records.get(s, [])]}
    elif set(records) != set(SPLITS):
        records, info["splits_made"] = _contiguous_splits(records, kind, cfg)
    info["sizes"] = {k: len(v) for k, v in records.items()}
    info["characters"] = {k: sum(len(_text_of(r)) for r in v) for k, v in records.items()}
    return LMData(kind, records if whole else {s: records.get(s, []) for s in SPLITS}, info)


def _text_of(record) -> str:
    return record if isinstance(record, str) else "".join(m["content"] for m in record["messages"])


@dataclass
class _Read:
    kind: str
    records: list
    format: str
    dropped: list[int] = field(default_factory=list)  # file lines of records with an empty text


def read_file(path: Path, cfg: DataConfig) -> _Read:
    """One language-model data file read whole: its records (documents or conversations), its
    format, and the file lines of records dropped for an empty text."""
    if not path.exists():
        raise UserError(f"{path}: no such file", "check the --data path")
    text = decode(path, cfg.encoding)
    if not text.strip():
        raise UserError(f"{path}: the file is empty", "give a file with text")
    if path.suffix in TEXT_SUFFIXES:
        return _Read("text", [text], "text")
    rows, lines = json_records(path, text, '{"text": ...}')
    fmt = record_format(rows[0], cfg.text_column)
    if fmt is None:
        raise UserError(f"{path}: line {lines[0]} has fields {', '.join(map(repr, rows[0]))}, which is no "
                        f"record shape read here; accepted: {'; '.join(SHAPES)}",
                        "rename the fields, or pass --text-column for plain text")
    out = _Read("text" if fmt == "text" else "instruction", [], fmt)
    for row, line in zip(rows, lines, strict=True):
        got = _convert(row, fmt, cfg.text_column or "text", path, line)
        if got is not None:
            out.records.append(got)
        elif cfg.drop_empty:
            out.dropped.append(line)
        else:
            what = "text" if fmt == "text" else "answer"
            raise UserError(f"{path}: line {line} has an empty {what}",
                            "remove or fill in that record, or pass --drop-empty (recipe: "
                            "data.drop_empty: true) to drop such records")
    if not out.records:
        raise UserError(f"{path}: every record has an empty text", "give records with text")
    return out


def _convert(row: dict, fmt: str, col: str, path: Path, line: int):
    """One record as a document (text) or {"messages": [...]}; None when its text or every
    answer is empty; UserError (naming the file line and the expected shape) when malformed."""
    if fmt == "text":
        if not isinstance(row.get(col), str):
            raise UserError(f"{path}: line {line} has no text in field '{col}'",
                            "give every record a text (or pass --text-column)")
        return row[col] if row[col].strip() else None
    if fmt == "openai":
        msgs = _openai(row, path, line)
    elif fmt == "sharegpt":
        msgs = _sharegpt(row, path, line)
    elif fmt == "alpaca":
        msgs = _alpaca(row, path, line)
    else:
        msgs = _pair(row, *fmt.split("/"), path, line)
    if not any(m["role"] == "assistant" for m in msgs):
        raise UserError(f"{path}: line {line} has no assistant turn", "give every example an answer")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
        return None
    return {"messages": msgs}


def _pair(row: dict, p: str, r: str, path: Path, line: int) -> list[dict]:
    if not isinstance(row.get(p), str) or not isinstance(row.get(r), str):
        raise UserError(f"{path}: line {line} needs text fields '{p}' and '{r}'", "fix or remove that record")
    return [{"role": "user", "content": row[p]}, {"role": "assistant", "content": row[r]}]


def _alpaca(row: dict, path: Path, line: int) -> list[dict]:
    """Alpaca: the input, when there is one, follows the instruction as the rest of the prompt."""
    fields = [row.get(k) for k in ("instruction", "input", "output")]
    if not all(isinstance(x, str) for x in (fields[0], fields[2])) or not isinstance(fields[1], str | None):
        raise UserError(f"{path}: line {line} needs text fields 'instruction', 'output' (and 'input' "
                        "when present)", "fix or remove that record")
    instruction, extra, output = fields
    prompt = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    system = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) \
        and row["system"].strip() else []
    return [*system, {"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def _sharegpt(row: dict, path: Path, line: int) -> list[dict]:
    turns = row["conversations"]
    ok = isinstance(turns, list) and turns and all(
        isinstance(t, dict) and t.get("from") in SHAREGPT_ROLES and isinstance(t.get("value"), str) for t in turns)
    if not ok:
        raise UserError(f"{path}: line {line}: 'conversations' must be a list of {{from, value}} with from one "
                        f"of {', '.join(SHAREGPT_ROLES)}", "fix or remove that record")
    return [{"role": SHAREGPT_ROLES[t["from"]], "content": t["value"]} for t in turns]


def _openai(row: dict, path: Path, line: int) -> list[dict]:
    msgs = row["messages"]
    ok = isinstance(msgs, list) and msgs and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and _content(m.get("content")) is not None
        for m in msgs)
    if not ok:
        raise UserError(f"{path}: line {line}: 'messages' must be a list of {{role, content}} (content a "
                        "string or a list of text parts)", "fix or remove that record")
    return [{"role": m["role"], "content": _content(m["content"])} for m in msgs]


def _content(content) -> str | None:
    """OpenAI content: a string, or a list of {"type": "text", "text": ...} parts (joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
            isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str) for c in content):
        return "".join(c["text"] for c in content)
    return None


def _contiguous_splits(records: dict[str, list], kind: str, cfg: DataConfig) -> tuple[dict, dict]:
    """Missing dev/test cut from the end of train: train | dev | test, in file order."""
    train = records["train"]
    want = {s: f for s, f in (("dev", cfg.dev_fraction), ("test", cfg.test_fraction)) if s not in records}
    if kind == "text" and len(train) == 1:
        pieces, how = _cut_text(train[0], want), "characters, cut at line breaks"
    else:
        pieces, how = _cut_list(train, want), "records"
    made = {s: f"last {f:.0%} of the training file's {how} (contiguous)" if s == "test" or "test" not in want
            else f"{f:.0%} of the training file's {how} just before test (contiguous)" for s, f in want.items()}
    out = {**records, **pieces}
    if not out["train"]:
        raise UserError(f"{cfg.path}: too little text to split off dev/test", "give more text or dev/test files")
    return out, made


def _bounds(n: int, want: dict[str, float]) -> dict[str, tuple[int, int]]:
    test = round(n * want.get("test", 0))
    dev = round(n * want.get("dev", 0))
    return {"train": (0, n - dev - test), "dev": (n - dev - test, n - test), "test": (n - test, n)}


def _cut_text(text: str, want: dict[str, float]) -> dict[str, list[str]]:
    cuts = _bounds(len(text), want)

    def at_line(i: int) -> int:  # the next line break after i, so no line is cut in two
        if i in (0, len(text)):
            return i
        j = text.find("\n", i)
        return len(text) if j < 0 else j + 1

    out = {}
    for s in ("train", *want):
        a, b = (at_line(x) for x in cuts[s])
        out[s] = [text[a:b]] if text[a:b].strip() else []
    return out


def _cut_list(items: list, want: dict[str, float]) -> dict[str, list]:
    cuts = _bounds(len(items), want)
    return {s: items[a:b] for s, (a, b) in cuts.items() if s == "train" or s in want}


# ---- tokens ------------------------------------------------------------------------------

def stream(tok, docs: list[str]) -> list[int]:
    """The token stream of documents, each followed by the end-of-sequence token."""
    enc = tok(docs, add_special_tokens=False, verbose=False)["input_ids"]
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    return [t for ids in enc for t in (*ids, *eos)]


def pack(ids: list[int], block: int) -> Split:
    """Non-overlapping blocks of `block` tokens; the remainder shorter than a block is dropped."""
    blocks = [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]
    return Split(blocks, [list(b) for b in blocks])


def encode_instruction(tok, record: dict, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole conversation and labels that keep only the assistant turns
    (each assistant turn's tokens and its end marker); truncated to max_length."""
    msgs = record["messages"]
    ids, labels = [], []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before = render(tok, msgs[:i], generation_prompt=True)
        upto = render(tok, msgs[: i + 1], generation_prompt=False)
        if upto[: len(before)] != before or before[: len(ids)] != ids:
            raise UserError("the tokenizer's chat template does not render a conversation as a "
                            "prefix of its continuation", "use plain text data or a standard template")
        labels += [IGNORE] * (len(before) - len(ids)) + upto[len(before):]
        ids = upto
    return ids[:max_length], labels[:max_length]


def prompt_template(tok) -> str:
    """How `render` lays out a conversation for this tokenizer (recorded in the artifact)."""
    return "chat template" if getattr(tok, "chat_template", None) else "role lines"


def render_prompt(tok, prompt: str) -> list[int]:
    """A plain prompt as the first user turn, ready for the answer: what an artifact fine-tuned
    on instruction data saw before each answer in training."""
    return render(tok, [{"role": "user", "content": prompt}], generation_prompt=True)


#: `render`'s role lines as a Jinja chat template, for tools that render the conversation
#: themselves (llama.cpp from a GGUF, Ollama): the same text, tokenized whole
ROLE_LINES_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
                       "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}"
                       "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


def render(tok, msgs: list[dict], generation_prompt: bool) -> list[int]:
    if getattr(tok, "chat_template", None):
        if not msgs:
            return []
        out = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=generation_prompt)
        return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
    # No chat template (base models, tiny-llama): "role: content" lines, an assistant turn ends
    # with end-of-sequence. Pieces are tokenized apart, so a prefix renders as a token prefix.
    piece = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    ids: list[int] = []
    for m in msgs:
        end = [tok.eos_token_id] if m["role"] == "assistant" and tok.eos_token_id is not None else piece("\n")
        ids += piece(f"{m['role']}: ") + piece(m["content"]) + end
    return ids + (piece("assistant: ") if generation_prompt else [])


def training_split(tok, data: LMData, split: str, max_length: int) -> Split:
    """Packed blocks (text) or masked conversations (instruction) of one split."""
    if data.kind == "text":
        return pack(stream(tok, data.split(split)), max_length)
    whole = [encode_instruction(tok, r, sys.maxsize) for r in data.split(split)]
    long = sum(len(i) > max_length for i, _ in whole)
    pairs = [(i[:max_length], lab[:max_length]) for i, lab in whole]
    pairs = [(i, lab) for i, lab in pairs if any(x != IGNORE for x in lab)]
    if not pairs:
        raise UserError(f"every {split} example's answer lies beyond max_length={max_length} tokens",
                        "raise --max-length")
    if long:  # said, not silent: a dropped example or a cut answer changes what is learned
        dropped = len(whole) - len(pairs)
        tell(f"{split}: {long} of {len(whole)} conversations are longer than max_length={max_length} tokens: "
             f"{dropped} dropped (no answer token within it), {long - dropped} cut (raise --max-length to keep "
             "them whole)")
    return Split([p[0] for p in pairs], [p[1] for p in pairs])


def limit_blocks(split: Split, cfg: DataConfig, info: dict) -> Split:
    """data.train_limit for a language model: the first N training blocks (or instruction
    examples) of a seeded permutation, so smaller subsets nest in larger ones (learning curves)."""
    if cfg.train_limit is None:
        return split
    if cfg.train_limit_stratify:
        raise UserError("data.train_limit_stratify keeps class shares, and a language model's text has no classes",
                        "leave out train_limit_stratify")
    import numpy as np

    n = len(split.ids)
    if cfg.train_limit > n:
        raise UserError(f"train_limit={cfg.train_limit} exceeds the {n} training blocks of {cfg.max_length} "
                        "tokens", f"use at most {n}")
    keep = np.sort(np.random.default_rng(cfg.train_limit_seed).permutation(n)[: cfg.train_limit])
    info["train_limit"] = {"kept": cfg.train_limit, "of": n, "seed": cfg.train_limit_seed, "unit": "blocks"}
    return Split([split.ids[i] for i in keep], [split.labels[i] for i in keep])
