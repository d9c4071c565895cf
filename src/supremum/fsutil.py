"""Atomic writes: a file or directory is either complete or absent, never half-written.

The temporaries come from tempfile.mkstemp/mkdtemp, which create them private (0600/0700)
whatever the umask; before the rename each gets the mode an ordinary open/mkdir would have
given it (0666/0777 less the umask), so what is written is as readable as any other file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask() -> int:
    """The process's umask (read by setting and restoring it: there is no other portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


def public_modes(root: Path) -> None:
    """Give `root` and everything under it the modes the umask allows (files keep no exec bit:
    artifacts are data), including files moved in from private temporary directories."""
    fmode, dmode = file_mode(), dir_mode()
    for p in root.rglob("*"):
        if not p.is_symlink():
            p.chmod(dmode if p.is_dir() else fmode)
    root.chmod(dmode)


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` in one rename.

    An existing `path` is moved aside first and removed only after the new one is in place,
    so a crash at any moment leaves either the old or the new directory (plus a stray
    temporary, which the next write of the same path removes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        public_modes(tmp)
        fsync_tree(tmp)
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_dir(path: str | Path) -> Path:
    """If a crash hit between the two renames of `atomic_dir`, put the old copy back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        os.replace(old, path)
    return path


def dir_size(path: str | Path, exclude: tuple[str, ...] = ()) -> int:
    """Bytes of every file below `path`, less the top-level files named in `exclude`."""
    path = Path(path)
    skip = {path / name for name in exclude}
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p not in skip)


def discard_dir(path: str | Path | None) -> None:
    """Remove a directory and its `-adapter` sibling (where an artifact keeps its adapter-only
    copy): each is renamed first, so a crash never leaves a half-deleted directory under its own
    name. A missing path, or None, is nothing to do."""
    if not path:
        return
    path = Path(path)
    for p in (path, path.with_name(path.name + "-adapter")):
        if p.exists():
            trash = p.with_name(f".{p.name}.deleting")
            p.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
