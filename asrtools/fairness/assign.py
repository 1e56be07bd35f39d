"""Apply a fitted discovery (discovery.json) to other speakers: `asrtools cohorts assign`.

The speakers are the rows of a speakers.csv (optionally one `split`), placed by what the
method needs: lat/lon (geo), zip (geodemographic: the zip-to-side map is in discovery.json)
or an embedding (auto). The result has the assignments.json form with mode `applied`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

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


def apply_discovery(discovery_path: Path, speakers_csv: Path, split: Optional[str] = None,
                    vectors: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The assignments document (mode `applied`) of the speakers of `speakers_csv` under a discovery.

    Args:
      discovery_path: a discovery.json written by `asrtools cohorts geo|geodemographic|auto`.
      speakers_csv: the speakers to label.
      split: only the rows with this `split` value.
      vectors: `{speaker: embedding}` (needed by an `auto` discovery; each selected speaker must have one).
    """
    discovery = discovery_from_dict(read_json(Path(discovery_path)), str(discovery_path))
    rows = select_speakers(speakers_csv, split)
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
