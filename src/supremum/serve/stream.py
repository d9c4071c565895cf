"""Text pieces of a sequence as it decodes, for streamed answers: the pieces concatenate to the
finished answer (`Sequence.text()`), whatever the tokenizer and the stop strings."""

from __future__ import annotations

from supremum.serve.engine import Sequence


class Deltas:
    """`next()` returns the text decoded since the last call. Held back while unsafe to send: an
    incomplete UTF-8 character at the end (decoded as U+FFFD), and the last len(stop) - 1
    characters, which may be the start of a stop string that is cut from the answer."""

    def __init__(self, seq: Sequence) -> None:
        self.seq, self.sent = seq, ""
        self.hold = max((len(s) for s in seq.sampling.stop), default=1) - 1

    def next(self) -> str:
        text, finished = self.seq.snapshot()
        if not finished:
            text = text.rstrip("\ufffd")
            text = text[: len(text) - self.hold] if self.hold else text
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        piece, self.sent = text[len(self.sent):], text
        return piece
