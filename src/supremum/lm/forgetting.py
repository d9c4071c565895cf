"""Forgetting: perplexity on general reference text (e.g. WikiText-2) of a model and of the model
it came from (its parent artifact, or the base model of a fine-tune), scored the same way in
the same run. A rise in reference perplexity after a fine-tune or a compression is what it made
the model forget (Luo et al. 2023 measure catastrophic forgetting of LLM fine-tuning the same way)."""

from __future__ import annotations

from pathlib import Path

from supremum.config import DataConfig
from supremum.errors import UserError
from supremum.lm.data import read_file, render, split_files, stream
from supremum.lm.metrics import perplexity

#: which file of a directory is read: scoring takes the test file, replay (training) never does,
#: so wikitext2/ is scored on test.txt and replayed from valid.txt
SCORED, REPLAYED = ("test", "train", "dev"), ("train", "dev")


def reference_file(path: str, order: tuple[str, ...] = SCORED) -> Path:
    """The file read: the path itself, or a directory's first split file in `order`."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise UserError(f"{path}: no such file or directory", "check the path of the reference text")
    files = split_files(p) if p.is_dir() else {}
    found = next((files[s] for s in order if s in files), None)
    if found is None:
        names = "/".join(order)
        raise UserError(f"{path}: no {names} text file there",
                        f"give a .txt file or a directory with {names} files (e.g. $SUPREMUM_DATA/wikitext2)")
    return found


def reference_ids(tok, path: str, max_tokens: int, order: tuple[str, ...] = SCORED) -> list[int]:
    """The first `max_tokens` tokens of the reference text (documents or rendered conversations,
    each ended by end-of-sequence)."""
    read = read_file(reference_file(path, order), DataConfig(path=path))
    if read.kind == "text":
        ids = stream(tok, read.records)
    else:
        ids = [t for r in read.records for t in render(tok, r["messages"], generation_prompt=False)]
    if len(ids) < 2:
        raise UserError(f"{path} has fewer than 2 tokens", "give more text")
    return ids[:max_tokens]


def reference_perplexity(model, tok, path: str, max_tokens: int, window: int, stride: int) -> dict:
    """Perplexity of `model` on the reference text; the strided sliding window of lm.metrics."""
    ppl = perplexity(model, reference_ids(tok, path, max_tokens), window, stride, 8)
    return {"perplexity": ppl["perplexity"], "tokens": ppl["tokens"], "window": ppl["window"],
            "stride": ppl["stride"]}


def forgetting(mine: dict, theirs: dict | None, parent: str | None, path: str) -> dict:
    """The block recorded with an evaluation: both perplexities and the change in % (positive:
    the model got worse on general text than the model it came from)."""
    out = {"reference": path, "file": str(reference_file(path)), "perplexity": mine["perplexity"],
           "tokens": mine["tokens"], "window": mine["window"], "stride": mine["stride"], "parent": parent,
           "method": ("perplexity on the first tokens of the reference text for this model and the model it "
                      "came from (parent artifact, or the base model of a fine-tune), same tokens, window "
                      "and stride, in the same run; change_pct = 100 * (ppl / parent ppl - 1)")}
    if theirs is not None:
        out["parent_perplexity"] = theirs["perplexity"]
        out["change_pct"] = 100 * (mine["perplexity"] / theirs["perplexity"] - 1)
    return out
