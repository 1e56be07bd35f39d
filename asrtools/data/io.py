"""Deterministic, atomic saving of Lhotse manifests.

lhotse's gzip writer stores the current time in the gzip header, so two identical runs
give different bytes; `save_manifest` writes `.jsonl.gz` with a zero timestamp (and no
file name in the header) so identical manifests are byte-identical, and writes atomically.
"""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

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
