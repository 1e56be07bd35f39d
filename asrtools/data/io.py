"""Reading and deterministic, atomic saving of Lhotse manifests.

lhotse's gzip writer stores the current time in the gzip header, so two identical runs
give different bytes; `save_manifest` writes `.jsonl.gz` with a zero timestamp (and no
file name in the header) so identical manifests are byte-identical, and writes atomically.
`read_manifest` loads one and turns lhotse's many exception types for a malformed file into
one line naming the file and the malformed line.
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any, Optional, Tuple

from asrtools.errors import DataError, describe
from asrtools.pipeline.atomic import atomic_path


def save_manifest(manifest: Any, path: Path) -> None:
    """Write a lhotse manifest (RecordingSet, SupervisionSet, CutSet, ...) to `path` atomically.

    Args:
      manifest: any lhotse manifest with `to_file`.
      path: output path; `.jsonl.gz` is gzip-compressed deterministically, other suffixes
        are written by lhotse as they are.
    """
    path = Path(path)
    if not path.name.endswith(".jsonl.gz"):
        with atomic_path(path) as tmp:
            manifest.to_file(tmp)
        return
    with atomic_path(path) as tmp:
        plain = tmp.with_name(tmp.name[: -len(".gz")])
        try:
            manifest.to_file(plain)
            with open(plain, "rb") as src, open(tmp, "wb") as raw:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as dst:
                    shutil.copyfileobj(src, dst)
        finally:
            plain.unlink(missing_ok=True)


def malformed_line(path: Path) -> Optional[Tuple[int, str]]:
    """(line number, reason) of the first line of a (gzipped) JSON-lines file that is not a JSON object."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as err:
                    return number, f"not valid JSON ({getattr(err, 'msg', err)})"
                if not isinstance(record, dict):
                    return number, "not a JSON object"
    except (OSError, EOFError, UnicodeDecodeError) as err:
        return 0, describe(err)
    return None


def read_manifest(path: Path, kind: type, what: str = "manifest") -> Any:
    """Load a lhotse manifest that must be of type `kind` (e.g. `SupervisionSet`).

    Args:
      path: the manifest file (`.jsonl`, `.jsonl.gz`, ...).
      kind: the lhotse manifest class it must hold.
      what: what the file is, for messages (e.g. "--supervisions").

    Raises:
      DataError: one line naming the file, and for a JSON-lines file the first malformed
        line (lhotse's own message gives the position within that line only).
    """
    from lhotse import load_manifest

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: {path} does not exist")
    try:
        manifest = load_manifest(path)
    except Exception as err:  # lhotse raises JSON, Key, Value and Type errors for malformed files
        bad = malformed_line(path) if ".jsonl" in path.name else None
        if bad is not None:
            where = f"{path}:{bad[0]}" if bad[0] else str(path)
            raise DataError(f"{what}: {where}: {bad[1]}") from None
        raise DataError(f"{what}: {path}: malformed manifest ({describe(err)})") from None
    if not isinstance(manifest, kind):
        raise DataError(f"{what}: {path} holds a {type(manifest).__name__}, expected a {kind.__name__}")
    return manifest
