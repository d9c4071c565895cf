"""Seeded text perturbations: training-set augmentation (word deletion, swap, masking) and the
robustness probes of `eval --perturb` (typos, word drops, case). One place for both, so what
training augments and what evaluation perturbs are the same operations.

Written here because the maintained augmentation libraries (nlpaug, textattack) pull large
dependency trees (and, for the model-based ones, downloads) for what are a few lines of
seeded string edits.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field, model_validator

from supremum.errors import UserError


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delete: float = Field(0.0, ge=0, lt=1, description="share of words deleted")
    swap: float = Field(0.0, ge=0, lt=1, description="share of words swapped with a neighbour")
    mask: float = Field(0.0, ge=0, lt=1, description="share of words replaced by the mask token")
    copies: int = Field(1, ge=1, le=16, description="augmented copies added per training example")
    seed: int = Field(0, description="seed of the edits")

    @model_validator(mode="after")
    def _something(self):
        if not (self.delete or self.swap or self.mask):
            raise ValueError("augment needs at least one of delete, swap, mask > 0")
        return self


def delete_words(words: list[str], p: float, rng: random.Random) -> list[str]:
    kept = [w for w in words if rng.random() >= p]
    return kept or [rng.choice(words)] if words else words


def swap_words(words: list[str], p: float, rng: random.Random) -> list[str]:
    words = list(words)
    for i in range(len(words) - 1):
        if rng.random() < p:
            words[i], words[i + 1] = words[i + 1], words[i]
    return words


def mask_words(words: list[str], p: float, rng: random.Random, token: str) -> list[str]:
    return [token if rng.random() < p else w for w in words]


def typos(text: str, p: float, rng: random.Random) -> str:
    """Each letter, with probability p: deleted, doubled, swapped with the next, or replaced."""
    out, chars, i = [], list(text), 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < p:
            op = rng.randrange(4)
            if op == 1:
                out += [c, c]
            elif op == 2 and i + 1 < len(chars):
                out += [chars[i + 1], c]
                i += 1
            elif op == 3:
                out.append(rng.choice("abcdefghijklmnopqrstuvwxyz"))
            # op 0 (or a swap at the end): the letter is deleted
        else:
            out.append(c)
        i += 1
    return "".join(out)


def augment(texts: list[str], labels: list[int], cfg: AugmentConfig, mask_token: str
            ) -> tuple[list[str], list[int]]:
    """The originals followed by `copies` edited versions of each; the same seed gives the same set."""
    rng = random.Random(cfg.seed)
    new_t, new_l = list(texts), list(labels)
    for _ in range(cfg.copies):
        for t, y in zip(texts, labels, strict=True):
            w = t.split()
            if cfg.delete:
                w = delete_words(w, cfg.delete, rng)
            if cfg.swap:
                w = swap_words(w, cfg.swap, rng)
            if cfg.mask:
                w = mask_words(w, cfg.mask, rng, mask_token)
            new_t.append(" ".join(w))
            new_l.append(y)
    return new_t, new_l


PERTURBATIONS = {"typo": 0.05, "drop": 0.1, "swap": 0.1, "case": 1.0}


def perturb_key(name: str, rate: float) -> str:
    """The name an evaluation's robustness result carries for one perturbation, e.g. "typo:0.05"."""
    return f"{name}:{rate:g}"


def parse_perturb(spec: str) -> list[tuple[str, float]]:
    """'typo:0.05,drop:0.1,case' -> [("typo", 0.05), ("drop", 0.1), ("case", 1.0)]."""
    out = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        name, _, value = item.partition(":")
        if name not in PERTURBATIONS:
            raise UserError(f"unknown perturbation '{name}'", f"use {', '.join(PERTURBATIONS)} "
                            "with an optional :rate, e.g. typo:0.05,drop:0.1,case")
        try:
            rate = float(value) if value else PERTURBATIONS[name]
        except ValueError:
            raise UserError(f"perturbation '{item}': rate '{value}' is not a number", "e.g. typo:0.05") from None
        if not 0 < rate <= 1:
            raise UserError(f"perturbation '{item}': rate must be in (0, 1]", "e.g. drop:0.1")
        out.append((name, rate))
    if not out:
        raise UserError("--perturb is empty", "e.g. --perturb typo:0.05,drop:0.1,case")
    return out


def perturb(texts: list[str], name: str, rate: float, seed: int) -> list[str]:
    """Each text edited with its own generator (seed, index), so a text's perturbation does not
    depend on the others in the set."""
    out = []
    for i, t in enumerate(texts):
        rng = random.Random(f"{seed}:{name}:{i}")
        if name == "typo":
            out.append(typos(t, rate, rng))
        elif name == "drop":
            out.append(" ".join(delete_words(t.split(), rate, rng)))
        elif name == "swap":
            out.append(" ".join(swap_words(t.split(), rate, rng)))
        else:  # case: words upper-cased with probability rate
            out.append(" ".join(w.upper() if rng.random() < rate else w for w in t.split()))
    return out
