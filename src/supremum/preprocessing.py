"""How an artifact's inputs are prepared, decided in one place.

A model must be run the way it was trained: the same max length, truncation side, text/label
columns and label names. `preprocessing_for(artifact, overrides)` reads them from the artifact;
eval, compression data (calibration, importance scores, recovery training), sensitivity, serve
and ensembles all take them from there, and only an explicit user override changes them.

The data side lives here too: whether a data path is the artifact's training source (same path,
or a byte-identical copy) decides whether splits are cut from it or it is scored whole.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from supremum.config import DataConfig
from supremum.errors import UserError

DEFAULT_MAX_LENGTH: int = DataConfig.model_fields["max_length"].default
OVERRIDABLE = ("max_length", "text_column", "label_column")
#: config keys that bound the positions a model can embed, in the order transformers' models use them
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
#: models whose position ids start after the padding index (fairseq heritage), so pad_id + 1 fewer fit
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod")
WHOLE = "all"
#: the splits a source is cut into (or has files for); `eval_split` also takes WHOLE
SPLITS = ("train", "dev", "test")


class Preprocessing(BaseModel):
    """What turns a text into the model's input ids. `position_limit`: the most tokens the model
    embeds (None: unknown); `overridden`: fields the user set instead of the artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_length: int
    truncation_side: Literal["left", "right"] = "right"
    text_column: str | None = None
    label_column: str | None = None
    label_names: list[str] = []
    position_limit: int | None = None
    overridden: list[str] = []

    def tokenize(self, tok, texts) -> list[list[int]]:
        """Token ids per text, cut to max_length on the trained side."""
        from supremum.data.batching import tokenize

        tok.truncation_side = self.truncation_side  # also used by the latency measurement's calls
        return tokenize(tok, texts, self.max_length)

    def check_fits(self, tokens: int, flag: str = "--max-length") -> None:
        check_max_length(tokens, self.position_limit, "the model", flag)


def preprocessing_for(art, overrides: Mapping[str, Any] | None = None) -> Preprocessing:
    """The artifact's preprocessing; `overrides` (max_length, text_column, label_column; None
    entries ignored) replace what the artifact records. Raises UserError when the max length
    exceeds the model's positions."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if unknown := set(given) - set(OVERRIDABLE):
        raise ValueError(f"not a preprocessing override: {sorted(unknown)}")
    trained = _trained_data(art)
    values = {k: trained.get(k) for k in OVERRIDABLE} | given
    prep = Preprocessing(max_length=values["max_length"] or DEFAULT_MAX_LENGTH,
                         truncation_side=_artifact_json(art, "tokenizer_config.json").get("truncation_side")
                         or "right",
                         text_column=values["text_column"], label_column=values["label_column"],
                         label_names=art.label_names, position_limit=artifact_position_limit(art),
                         overridden=sorted(given))
    check_max_length(prep.max_length, prep.position_limit, f"artifact {art.id}")
    return prep


def preprocessing_for_model(model, tok, name: str, max_length: int | None = None) -> Preprocessing:
    """A model without an artifact (fine-tuning's base, a base model measured as it is): the
    given max length (default 128), checked against the model's positions."""
    limit = position_limit(_config_dict(getattr(model, "config", None)), getattr(tok, "model_max_length", None))
    prep = Preprocessing(max_length=max_length or DEFAULT_MAX_LENGTH,
                         truncation_side=getattr(tok, "truncation_side", "right") or "right",
                         position_limit=limit)
    check_max_length(prep.max_length, limit, f"model {name}")
    return prep


# ---- the model's position limit ------------------------------------------------------------

def position_limit(config: Mapping[str, Any] | None, tokenizer_max: int | None = None) -> int | None:
    """The most tokens a model can embed: its config's position count (less the padding offset of
    RoBERTa-like models), or the tokenizer's model_max_length when that is smaller and set."""
    config = config or {}
    limit = next((config[k] for k in POSITION_KEYS if isinstance(config.get(k), int) and config[k] > 0), None)
    if limit is not None and config.get("model_type") in OFFSET_POSITIONS:
        limit -= (config.get("pad_token_id") or 0) + 1
    if isinstance(tokenizer_max, int) and 0 < tokenizer_max < 10**7:  # transformers' "unset" is 1e30
        limit = tokenizer_max if limit is None else min(limit, tokenizer_max)
    return limit


def artifact_position_limit(art) -> int | None:
    config = _artifact_json(art, "config.json")
    if not config and art.manifest.backend == "ensemble":  # members hold the configs
        config = _read_json(art.path / art.manifest.members[0].dir / "config.json")
    return position_limit(config, _artifact_json(art, "tokenizer_config.json").get("model_max_length"))


def check_max_length(tokens: int, limit: int | None, what: str, flag: str = "--max-length") -> None:
    if limit is not None and tokens > limit:
        raise UserError(f"{flag} {tokens} is more than {what} can take: it embeds at most {limit} "
                        "token positions", f"use {flag} {limit} or less")


def _config_dict(config) -> dict:
    if config is None:
        return {}
    return config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))


def _artifact_json(art, name: str) -> dict:
    return _read_json(art.path / name)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _trained_data(art) -> dict:
    return art.manifest.trained_data or {}


# ---- is this the training data? -------------------------------------------------------------

def source_digest(path: str) -> dict:
    """What identifies a single-file training source besides its path (the manifest's
    data.sha256): a renamed copy is then known as the same data. Directories: nothing."""
    p = Path(path)
    if not p.is_file():
        return {}
    st = p.stat()
    return {"sha256": _sha256(str(p.resolve()), st.st_mtime_ns, st.st_size)}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, _mtime_ns: int, _size: int) -> str:
    """Cached per (path, mtime, size): one eval asks several times about the same file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_training_source(art, path: str) -> bool:
    """True for the artifact's training data: the recorded path, or a file with the recorded
    content (artifacts moved between machines, a renamed copy)."""
    trained = art.manifest.trained_data_path
    if trained is None:
        return False
    if _same(path, trained):
        return True
    digest = art.manifest.data_sha256
    return digest is not None and source_digest(path).get("sha256") == digest


def changed_training_source(art, path: str) -> bool:
    """True when `path` is the artifact's training file by path but its content no longer has the
    recorded sha256 (rows appended or edited): splits cut from it now are not the held-out ones.
    Artifacts that record no sha256 (older ones, directories): False."""
    trained, digest = art.manifest.trained_data_path, art.manifest.data_sha256
    if trained is None or digest is None or not _same(path, trained):
        return False
    return source_digest(path).get("sha256") not in (None, digest)


def has_own_splits(path: str) -> bool:
    """A source that names its dev or test split itself (split files, a datasets directory, a
    hub dataset), as opposed to a single file that splits would be cut out of."""
    p = Path(path)
    if not p.exists():
        return True  # a hub dataset: its splits are its own
    if p.is_file():
        return False
    from supremum.data.tables import find_split_files, is_datasets_dir
    from supremum.lm.data import split_files as lm_files

    return is_datasets_dir(p) or bool({"dev", "test"} & (set(find_split_files(p)) | set(lm_files(p))))


def data_config_for(art, path: str | None, *, encoding: str | None = None,
                    text_column: str | None = None, label_column: str | None = None,
                    max_length: int | None = None, drop_empty: bool | None = None,
                    delimiter: str | None = None) -> DataConfig:
    """How to read `path` (default: the training data) for this artifact. The training source
    keeps its training settings (columns, split fractions and seed: the held-out split is the one
    made at training time); any other data gets the artifact's columns and max length."""
    trained = _trained_data(art)
    prep = preprocessing_for(art, {"text_column": text_column, "label_column": label_column,
                                   "max_length": max_length})
    mapped = {"text_column": prep.text_column, "label_column": prep.label_column, "max_length": prep.max_length}
    if delimiter is not None:
        mapped["delimiter"] = delimiter
    if trained and (path is None or is_training_source(art, path)):
        # the training source keeps its own drop_empty unless asked to drop (its splits were cut after it)
        return DataConfig(**{**trained, **mapped, "path": path or art.manifest.trained_data_path,
                             **({"drop_empty": True} if drop_empty else {}),
                             **({"encoding": encoding} if encoding else {})})
    if path is None:
        raise UserError("no --data given and the artifact does not record its data", "pass --data")
    # other files are read as the training data was (--drop-empty) unless told otherwise
    keep = trained.get("drop_empty") if drop_empty is None else drop_empty
    if keep is not None:  # unset stays unset (config hashes)
        mapped["drop_empty"] = keep
    return DataConfig(path=path, encoding=encoding or "utf-8", **mapped)


def eval_split(art, data_cfg: DataConfig, requested: str | None) -> str:
    """The split to score. Splits apply to the artifact's training source and to sources with
    split files; any other file is scored whole ("all"). `art` None: a base model, whose file may
    be the one it will be fine-tuned on, so an explicit split is cut as fine-tuning would cut it."""
    if requested == WHOLE:
        return WHOLE
    if requested is not None and requested not in SPLITS:
        raise UserError(f"--split '{requested}' is not a split", "use train, dev, test, or all (the whole file)")
    if art is not None and changed_training_source(art, data_cfg.path):
        raise UserError(f"{data_cfg.path} has changed since artifact {art.id} was trained on it (sha256 "
                        "differs), so its dev/test split would not be the held-out one",
                        "restore the file, or score it whole with --split all")
    if has_own_splits(data_cfg.path) or (art is not None and is_training_source(art, data_cfg.path)):
        return requested or "dev"
    if requested is None or art is None:
        return requested or WHOLE
    raise UserError(f"{data_cfg.path} is not the data artifact {art.id} was trained on, so it has no "
                    f"'{requested}' split", "it is scored whole: drop --split (or pass --split all); "
                    "dev/test are cut only from the training data")


def scored(n: int, unit: str, path: str, split: str) -> str:
    """What an evaluation scored, in words: "1,204 rows of new.csv (the whole file)"."""
    where = "the whole file" if split == WHOLE else f"its {split} split"
    return f"{n:,} {unit} of {Path(path).name} ({where})"


def _same(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve() if Path(a).exists() else a == b
