"""Error analysis of a classifier evaluation: the confusion matrix, the most confident errors, and
accuracy by slice (length, negation, out-of-vocabulary share, a column of the user's data), each
slice with its 95% Wilson interval; and the per-example predictions as JSONL beside the run.

Definitions (the report and the docs state them):
- words: maximal runs of non-whitespace characters (as `supremum explain` shows them);
- length buckets: the word count cut at its quartiles over the evaluated split (cut points taken
  with numpy's "higher" quantile, so they are word counts that occur; equal cut points merge);
- negation: the lower-cased text holds a word of `NEGATIONS` or a word ending in "n't" (also
  with a typographic apostrophe);
- out-of-vocabulary share: of the text's words made of letters or digits (runs of `\\w`, so
  punctuation does not count), the share the tokenizer, tokenizing the whole text, splits into more
  than one token or maps to its unknown token; bucketed as 0, (0, 10%], (10%, 25%], above 25%.
  Texts without such words are left out of this slice. Needs a fast tokenizer (character offsets).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

#: negation cues (Councill et al. 2010's lexicon, shortened to single words) besides any "n't"
NEGATIONS = ("not", "no", "never", "nothing", "none", "nobody", "nowhere", "nor", "neither", "without",
             "hardly", "barely", "scarcely", "cannot")
_NEGATION = re.compile(r"\b(?:" + "|".join(NEGATIONS) + r")\b|n['’]t\b")
_WORD = re.compile(r"\w+")
#: upper edges of the out-of-vocabulary share buckets (the last is open)
OOV_EDGES = (0.0, 0.10, 0.25)
OOV_NAMES = ("0%", "0-10%", "10-25%", ">25%")
#: most confident errors kept by default
TOP = 5


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of k successes in n > 0 trials (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def has_negation(text: str) -> bool:
    return _NEGATION.search(text.lower()) is not None


def word_count(text: str) -> int:
    return len(text.split())


def length_buckets(counts: list[int]) -> list[str]:
    """Each text's length bucket name ("3-7 words"): word counts cut at their quartiles."""
    c = np.asarray(counts)
    cuts = np.unique(np.quantile(c, (0.25, 0.5, 0.75), method="higher"))
    which = np.searchsorted(cuts, c, side="left")  # bucket b: cuts[b-1] < n <= cuts[b]
    names = {}
    for b in np.unique(which):
        member = c[which == b]
        lo, hi = int(member.min()), int(member.max())
        names[int(b)] = f"{lo} words" if lo == hi else f"{lo}-{hi} words"
    return [names[int(b)] for b in which]


def oov_share(tok, text: str) -> float | None:
    """Share of the text's `\\w+` words split into several tokens or mapped to the unknown token
    (None for a text without such words). The whole text is tokenized, without truncation, and a
    token belongs to the word holding its first non-space character (by character offsets)."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return None
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = np.array([s for s, _ in spans])
    tokens = np.zeros(len(spans), dtype=int)
    unknown = np.zeros(len(spans), dtype=bool)
    for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        first = next((i for i in range(a, b) if not text[i].isspace()), None)
        if first is None:
            continue
        w = int(np.searchsorted(starts, first, side="right") - 1)
        if w < 0 or first >= spans[w][1]:
            continue  # punctuation between words
        tokens[w] += 1
        unknown[w] |= tok.unk_token_id is not None and tid == tok.unk_token_id
    return float(((tokens > 1) | unknown).mean())


def oov_bucket(share: float) -> str:
    return OOV_NAMES[int(np.searchsorted(OOV_EDGES, share, side="left"))]


def slice_rows(name: str, keys: list, correct: np.ndarray, order: list) -> list[dict]:
    """One row per distinct key (None keys left out), in the order of `order` (keys not in it
    last): slice, value, examples, correct, accuracy, ci (95% Wilson). `correct` (n,) 0/1."""
    rank = {v: i for i, v in enumerate(order)}
    rows = []
    for value in sorted(dict.fromkeys(k for k in keys if k is not None), key=lambda v: rank.get(v, len(rank))):
        idx = np.array([k == value for k in keys])
        n, k = int(idx.sum()), int(correct[idx].sum())
        rows.append({"slice": name, "value": value, "examples": n, "correct": k, "accuracy": k / n,
                     "ci": list(wilson(k, n))})
    return rows


def slices(texts: list[str], correct: np.ndarray, tok=None,
           column: tuple[str, list[str]] | None = None) -> list[dict]:
    """Accuracy by slice: length bucket, negation, out-of-vocabulary share (when `tok` is a fast
    tokenizer), and the user's column (`(name, one value per text)`; blank values "(empty)")."""
    lengths = length_buckets([word_count(t) for t in texts])
    out = slice_rows("length", lengths, correct, sorted(set(lengths), key=lambda s: int(re.match(r"\d+", s)[0])))
    neg = ["has negation" if has_negation(t) else "no negation" for t in texts]
    out += slice_rows("negation", neg, correct, ["has negation", "no negation"])
    if tok is not None and getattr(tok, "is_fast", False):
        shares = [oov_share(tok, t) for t in texts]
        out += slice_rows("out-of-vocabulary share", [None if s is None else oov_bucket(s) for s in shares],
                          correct, list(OOV_NAMES))
    if column is not None:
        name, values = column
        values = [v if v.strip() else "(empty)" for v in values]
        out += slice_rows(name, values, correct, sorted(set(values)))
    return out


def confident_errors(probs: np.ndarray, labels: np.ndarray, top: int = TOP) -> list[int]:
    """Indices of the `top` wrong predictions with the highest top-class probability, most
    confident first (ties in index order)."""
    pred = probs.argmax(-1)
    wrong = np.flatnonzero(pred != labels)
    order = np.argsort(-probs[wrong].max(-1), kind="stable")
    return [int(i) for i in wrong[order][:top]]


def analysis(texts: list[str], labels, probs: np.ndarray, names: list[str], tok=None,
             column: tuple[str, list[str]] | None = None, top: int = TOP) -> dict:
    """The error analysis of one evaluation: `probs` (n, k) class probabilities, `labels` (n,)
    true class ids, `names` the k class names. confusion: rows true, columns predicted (counts);
    slices: see `slices`; confident_errors: index, text, label, predicted, confidence."""
    from sklearn.metrics import confusion_matrix

    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(-1)
    correct = (pred == labels).astype(np.float64)
    matrix = confusion_matrix(labels, pred, labels=list(range(len(names)))).tolist()
    errors = [{"index": i, "text": texts[i], "label": names[labels[i]], "predicted": names[pred[i]],
               "confidence": float(probs[i].max())} for i in confident_errors(probs, labels, top)]
    return {"confusion": {"labels": list(names), "matrix": matrix, "rows": "true", "columns": "predicted"},
            "slices": slices(texts, correct, tok, column), "confident_errors": errors,
            "errors": int(len(labels) - correct.sum()), "examples": int(len(labels)),
            "method": "accuracy per slice with a 95% Wilson interval; length: word-count quartile buckets; "
                      "negation: a word of " + ", ".join(NEGATIONS) + " or one ending in n't; out-of-"
                      "vocabulary share: share of a text's \\w+ words the tokenizer splits into several "
                      "tokens or maps to its unknown token"}


def write_predictions(path: str | Path, texts: list[str], labels, probs: np.ndarray, names: list[str],
                      column: tuple[str, list[str]] | None = None) -> Path:
    """One JSON line per example (index, text, label, predicted, probabilities by class name, and
    the slice column's value when given), written whole under a temporary name, then renamed."""
    from supremum.fsutil import write_bytes

    lines = []
    for i, (text, y, p) in enumerate(zip(texts, labels, np.asarray(probs, dtype=np.float64), strict=True)):
        rec = {"index": i, "text": text, "label": names[int(y)], "predicted": names[int(p.argmax())],
               "probabilities": {n: float(v) for n, v in zip(names, p, strict=True)}}
        if column is not None:
            rec[column[0]] = column[1][i]
        lines.append(json.dumps(rec, ensure_ascii=False))
    write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return Path(path)
