"""Atomic file writes: write to a temporary name in the same directory, then rename.

A reader (or a resumed run) therefore sees either no file or a complete one, never a
partial file, even if the writer is killed with SIGKILL. Temporary names keep the final
suffix (`.tmp-<pid>-name.jsonl.gz`) so libraries that infer the format from the suffix
(lhotse's `to_file`) still work, and start with `.tmp-` so cleanup can find leftovers.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Union

TMP_PREFIX = ".tmp-"

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    If the block raises, the temporary file is removed and `path` is untouched.

    Args:
      path: the final file.
      durable: fsync the written file before the rename and the directory after it, so
        the new file survives a power loss or kernel crash right after this returns
        (checkpoints); plain atomic writes only survive the writer's own death.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}-{path.name}"
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write of {path}: nothing was written to {tmp}")
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write `obj` as pretty, key-sorted JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def remove_stale_tmp(directory: PathLike) -> int:
    """Delete leftover temporary files (from killed writers) under `directory`; return count."""
    count = 0
    for tmp in Path(directory).rglob(f"{TMP_PREFIX}*"):
        if tmp.is_file():
            tmp.unlink()
            count += 1
    return count
