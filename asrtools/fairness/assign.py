"""Apply a fitted discovery (discovery.json) to other speakers: `asrtools cohorts assign`.

The speakers are the rows of one or more speakers.csv files (each optionally one `split`), placed by what the
method needs: lat/lon (geo), zip (geodemographic: the zip-to-side map is in discovery.json)
or an embedding (auto). The result has the assignments.json form with mode `applied`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from asrtools.errors import DataError
from asrtools.fairness.discovery import discovery_from_dict
from asrtools.fairness.report import assignments_json
from asrtools.fairness.speakers import read_csv_rows
from asrtools.scoring.report import read_json


def select_speakers(speakers_csv: Path, split: Optional[str]) -> Dict[str, Dict[str, str]]:
    """`{speaker: row}` of speakers.csv, only those of `split` when given (`DataError` if none)."""
    rows = read_csv_rows(Path(speakers_csv), "id", "speaker")
    if split is None:
        return rows
    if not any("split" in row for row in rows.values()):
        raise DataError(f"{speakers_csv}: no 'split' column (--split {split})")
    chosen = {s: row for s, row in rows.items() if row.get("split") == split}
    if not chosen:
        known = sorted({row.get("split", "") for row in rows.values()})
        raise DataError(f"{speakers_csv}: no speaker of split {split!r} (splits: {', '.join(known)})")
    return chosen


def union_of_disjoint(parts: Sequence[Tuple[Path, Mapping[str, Any]]], what: str) -> Dict[str, Any]:
    """`{speaker: value}` of several files; a speaker in two of them is a `DataError` naming it.

    Args:
      parts: `(file, {speaker: value})` in the order given.
      what: the option the files came from, for the message (e.g. "--speakers table").
    """
    merged: Dict[str, Any] = {}
    for path, part in parts:
        shared = sorted(set(part) & set(merged))
        if shared:
            raise DataError(f"{path}: speaker {shared[0]!r} is also in an earlier {what}")
        merged.update(part)
    return merged


def select_speaker_sources(sources: Sequence[Tuple[Path, Optional[str]]]) -> Dict[str, Dict[str, str]]:
    """`{speaker: row}` of several speakers.csv files, each restricted to its split when given
    (two corpora must not share speaker ids)."""
    return union_of_disjoint([(path, select_speakers(path, split)) for path, split in sources], "--speakers table")


def apply_discovery(discovery_path: Path, sources: Sequence[Tuple[Path, Optional[str]]],
                    vectors: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The assignments document (mode `applied`) of the speakers of some speakers.csv files under a discovery.

    Args:
      discovery_path: a discovery.json written by `asrtools cohorts geo|geodemographic|auto`.
      sources: `(speakers.csv, split or None)` pairs: the speakers to label (e.g. the ASR training
        speakers and the evaluation corpus's dev speakers).
      vectors: `{speaker: embedding}` (needed by an `auto` discovery; each selected speaker must have one).
    """
    discovery = discovery_from_dict(read_json(Path(discovery_path)), str(discovery_path))
    rows = select_speaker_sources(sources)
    if discovery.method == "auto":
        if vectors is None:
            raise DataError(f"{discovery_path}: an auto discovery needs speaker embeddings (--embeddings)")
        missing = [s for s in rows if s not in vectors]
        if missing:
            raise DataError(f"speaker {missing[0]!r} has no embedding ({len(missing)} of {len(rows)} missing)")
        inputs: Mapping[str, Any] = {s: vectors[s] for s in rows}
    else:
        inputs = rows
    return assignments_json(discovery.method, "applied", discovery.assign(inputs), discovery.ranking)
