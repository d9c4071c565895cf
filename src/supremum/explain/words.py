"""Words and the tokens in them: what an explanation is shown and measured on.

A word is a maximal run of non-whitespace characters of the text, so every model explains the
same words whatever its tokenizer; a token belongs to the word holding its first non-space
character (by the fast tokenizer's offsets). Special tokens ([CLS], padding-free [SEP], BOS)
belong to no word and are never removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from supremum.errors import UserError


@dataclass(frozen=True)
class Encoded:
    """One text as the model sees it. `ids`, `tokens`, `token_word` (word index or None) have one
    entry per token; `words` holds the words the (possibly truncated) input still contains;
    `truncated_words`: words cut off by the max length."""

    text: str
    ids: list[int]
    tokens: list[str]
    token_word: list[int | None]
    words: list[str]
    truncated_words: int

    @property
    def special(self) -> list[bool]:
        return [w is None for w in self.token_word]

    def without(self, drop: set[int]) -> list[int]:
        """Token ids with the tokens of the words in `drop` deleted (ERASER's removal)."""
        return [t for t, w in zip(self.ids, self.token_word, strict=True) if w is None or w not in drop]


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the whitespace-separated words of `text`."""
    return [m.span() for m in re.finditer(r"\S+", text)]


def token_words(offsets: list[tuple[int, int]], special: list[int], text: str,
                spans: list[tuple[int, int]]) -> list[int | None]:
    """The word index of each token: the word holding its first non-space character; None for
    special tokens and tokens of whitespace only."""
    starts = np.array([s for s, _ in spans])
    out: list[int | None] = []
    for (a, b), sp in zip(offsets, special, strict=True):
        first = next((i for i in range(a, b) if not text[i].isspace()), None)
        if sp or first is None:
            out.append(None)
            continue
        out.append(int(np.searchsorted(starts, first, side="right") - 1))
    return out


def encode(tok, text: str, max_length: int) -> Encoded:
    """Tokenize `text` as the artifact was trained (truncation side set on `tok` by the caller).
    UserError for a tokenizer without offsets (a slow tokenizer) or a text without words."""
    if not getattr(tok, "is_fast", False):
        raise UserError("explanations need a fast tokenizer (character offsets) and this artifact's is "
                        f"{type(tok).__name__}", "save the artifact with a tokenizers-backed tokenizer")
    spans = word_spans(text)
    if not spans:
        raise UserError(f"nothing to explain in {text!r}: it has no words", "give a text with words")
    enc = tok(text, truncation=True, max_length=max_length, return_offsets_mapping=True,
              return_special_tokens_mask=True)
    tw = token_words(enc["offset_mapping"], enc["special_tokens_mask"], text, spans)
    present = sorted({w for w in tw if w is not None})
    renumber = {w: i for i, w in enumerate(present)}  # words lost to truncation leave no gap
    return Encoded(text=text, ids=list(enc["input_ids"]), tokens=tok.convert_ids_to_tokens(enc["input_ids"]),
                   token_word=[None if w is None else renumber[w] for w in tw],
                   words=[text[slice(*spans[w])] for w in present],
                   truncated_words=len(spans) - len(present))


def merge(token_scores: np.ndarray, token_word: list[int | None], n_words: int) -> np.ndarray:
    """Word scores: the sum of the scores of each word's tokens (attributions are additive, so
    Integrated Gradients' completeness carries over to words). Special tokens are left out."""
    out = np.zeros(n_words, dtype=np.float64)
    for s, w in zip(np.asarray(token_scores, dtype=np.float64), token_word, strict=True):
        if w is not None:
            out[w] += s
    return out
