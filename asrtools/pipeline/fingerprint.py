"""Content fingerprints for stage parameters, input files and stage output directories.

A fingerprint is a hex SHA-256. Stage directories (those holding a done-marker) are
fingerprinted by the digest of their outputs recorded in the marker, so a downstream stage
reruns only when its upstream's *outputs* changed, not merely because it reran.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterable

DONE_MARKER = ".done.json"
CONTROL_PREFIX = "."  # files and dirs starting with "." are stage control files, not outputs

_CHUNK = 1 << 20


def hash_json(obj: Any) -> str:
    """SHA-256 of the canonical JSON form of `obj` (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def hash_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def list_outputs(directory: Path) -> Iterable[Path]:
    """Output files of a stage directory, sorted, skipping control files (dot-names)."""
    directory = Path(directory)
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part.startswith(CONTROL_PREFIX) for part in rel.parts):
            continue
        if path.is_file():
            yield path


def output_manifest(directory: Path) -> Dict[str, Dict[str, Any]]:
    """`{relative path: {"size", "mtime_ns", "sha256"}}` for every output file."""
    manifest = {}
    for path in list_outputs(directory):
        stat = path.stat()
        manifest[str(path.relative_to(directory))] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": hash_file(path),
        }
    return manifest


def outputs_digest(manifest: Dict[str, Dict[str, Any]]) -> str:
    """One digest for a whole output manifest (paths + content hashes, not times)."""
    return hash_json({rel: entry["sha256"] for rel, entry in manifest.items()})


def read_marker(directory: Path) -> Dict[str, Any]:
    """The done-marker of a stage directory, or `{}` if missing or unreadable."""
    marker = Path(directory) / DONE_MARKER
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def fingerprint_input(path: Path) -> str:
    """Fingerprint of one stage input: a stage dir, a plain file or a plain directory."""
    path = Path(path)
    if path.is_dir():
        marker = read_marker(path)
        if marker.get("outputs_digest"):
            return marker["outputs_digest"]
        return outputs_digest(output_manifest(path))
    if path.is_file():
        return hash_file(path)
    return "missing"
