"""Exports: an artifact rewritten in the layout another tool loads (transformers, PEFT, ONNX
Runtime, llama.cpp, Ollama), with a model card.

One module per format registers its writer with `@register(name, ...)`, as compressors and
fine-tuning methods register; `export(art, cfg)` checks the format applies, writes the files
and the card (`README.md`) into a temporary directory and renames it into place, so an export
is complete or absent. Whether a format applies is decided from the manifest before anything
is loaded (`refuses`); what only the loaded weights can tell (pruned shapes that vary by layer,
modules transformers lacks) raises `Refusal` from the writer. Both become one UserError naming
the formats that do apply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from supremum.artifact import Artifact
from supremum.compress.configs import QUANTS
from supremum.errors import UserError
from supremum.fsutil import atomic_dir

#: the modules that register formats, imported on first use (they import torch lazily)
MODULES = ("supremum.export.hf", "supremum.export.peft", "supremum.export.onnx", "supremum.export.gguf")


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field(description="hf, peft, onnx, gguf or ollama")
    output: str | None = Field(None, description="directory to write [default: <artifact>-<format>]")
    quant: Literal[QUANTS] = Field("q8_0", description="llama.cpp weight type when gguf/ollama export "
                                   "PyTorch weights (an artifact already GGUF is copied as it is)")


class Refusal(Exception):
    """The format does not apply to this artifact; the message says why (found while writing)."""


#: (artifact) -> why the format does not apply, from the manifest alone; None when it applies
Refuses = Callable[[Artifact], "str | None"]
#: (artifact, temporary output directory, config) -> what the card records about the export
Write = Callable[[Artifact, Path, ExportConfig], dict]


@dataclass(frozen=True)
class Format:
    name: str
    summary: str
    #: the card's `library_name`: what loads the result
    library: str
    refuses: Refuses
    write: Write


FORMATS: dict[str, Format] = {}


def register(name: str, summary: str, library: str, refuses: Refuses) -> Callable[[Write], Write]:
    def deco(fn: Write) -> Write:
        FORMATS[name] = Format(name, summary, library, refuses, fn)
        return fn

    return deco


def formats() -> dict[str, Format]:
    for module in MODULES:
        importlib.import_module(module)  # registers on import
    return FORMATS


@dataclass
class Exported:
    path: Path
    format: str
    files: list[str]
    info: dict


def export(art: Artifact, cfg: ExportConfig) -> Exported:
    """Write `art` in `cfg.format` to `cfg.output` (default `<artifact dir>-<format>`) with a
    model card. UserError: unknown format, a format that does not apply to the artifact (the
    message names those that do), or an output directory that exists and is not empty."""
    from supremum.export.card import write_card

    fmt = _format(cfg.format)
    reason = fmt.refuses(art)
    if reason:
        raise not_applicable(art, fmt.name, reason)
    out = Path(cfg.output) if cfg.output else art.path.with_name(f"{art.path.name}-{fmt.name}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--output {out} exists and is not empty",
                        "give a new or empty directory; an export never overwrites files")
    try:
        with atomic_dir(out) as tmp:
            info = fmt.write(art, tmp, cfg)
            write_card(art, tmp, fmt, info)
    except Refusal as e:
        raise not_applicable(art, fmt.name, str(e)) from None
    return Exported(out, fmt.name, sorted(p.name for p in out.iterdir()), info)


def _format(name: str) -> Format:
    known = formats()
    if name not in known:
        raise UserError(f"unknown export format '{name}'", f"use one of: {', '.join(known)}")
    return known[name]


def applicable(art: Artifact) -> list[str]:
    """The formats whose manifest check accepts `art`."""
    return [name for name, f in formats().items() if f.refuses(art) is None]


def not_applicable(art: Artifact, name: str, reason: str) -> UserError:
    """The one-line refusal; its hint names the formats that apply (`applicable`, the one source:
    reasons say why, never which formats)."""
    from supremum.export.source import instead

    others = [f for f in applicable(art) if f != name]
    hint = (f"formats that apply to it: {', '.join(others)}" if others
            else f"no export format applies to it; {instead(art)}")
    return UserError(f"--format {name} does not apply to artifact {art.id}: {reason}", hint)
