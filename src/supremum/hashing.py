"""The one content hash that names cached work: fine-tune checkpoints, compare and curve cells,
scale-sweep runs, pipeline stages and resumable compressions.

Canonical form: `json.dumps(obj, sort_keys=True, default=str)` with json's default separators
(", " and ": ") and ASCII escapes; the hash is the first `length` hex digits of its SHA-256.
None stays a JSON null, so it is part of the identity. A key added to a config later must be
dropped by the caller when it holds its default (or None), so configs that leave it unset keep
the hash their runs were cached under; `drop_unset` does that. Values JSON cannot hold (a Path)
are hashed as their str().
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def content_hash(obj: Any, length: int = 16) -> str:
    """The first `length` hex digits of SHA-256 over `canonical_json(obj)`."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def drop_unset(d: dict, unset: dict[str, Any]) -> dict:
    """`d` without each key of `unset` whose value in `d` equals the one given (its default when it
    was added): the hash of a config that leaves a later key at its default stays as it was."""
    return {k: v for k, v in d.items() if not (k in unset and v == unset[k])}
