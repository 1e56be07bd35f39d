"""Per-speaker error counts plus speaker attributes: the input of every cohort-discovery method.

A `SpeakerTable` sums a scored decode directory (recogs.jsonl, or a WER directory) per
speaker and attaches each speaker's row of the corpus speaker table (`speakers.csv`: id,
split, accent, region, lat, lon, zip, ...) and, when given, the census table of zip codes
(`zipcodes.csv`: zip, region, lat, lon, urbanicity, income_band, ...). Speaker embeddings
(for `auto`) are attached with `with_vectors`.

Every missing piece fails with a one-line `DataError` naming it: a scored speaker absent
from speakers.csv, a speaker without lat/lon or zip, a zip absent from zipcodes.csv, a
speaker without embedding.
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError

ZIP_KEY = "zip"
LAT_KEY, LON_KEY = "lat", "lon"


def read_csv_rows(path: Path, key: str, what: str) -> Dict[str, Dict[str, str]]:
    """`{row[key]: row}` of a CSV file with a header; one-line `DataError`s name file and line.

    Args:
      path: the CSV file.
      key: the column that identifies a row (e.g. `id`, `zip`); must be unique and non-empty.
      what: what a row is, for messages (e.g. "speaker").
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows: Dict[str, Dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or key not in reader.fieldnames:
            raise DataError(f"{path}: no '{key}' column (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            lineno = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise DataError(f"{path}:{lineno}: wrong number of fields")
            name = row[key].strip()
            if not name:
                raise DataError(f"{path}:{lineno}: empty {key}")
            if name in rows:
                raise DataError(f"{path}:{lineno}: duplicate {what} {name!r}")
            rows[name] = {k: v.strip() for k, v in row.items()}
    if not rows:
        raise DataError(f"{path}: no {what} rows")
    return rows


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_zipcodes(rows: Mapping[str, Mapping[str, str]]) -> Dict[str, Dict[str, Any]]:
    """The census table with every all-numeric column parsed to floats, `{zip: {column: value}}`."""
    columns = sorted({c for row in rows.values() for c in row if c != ZIP_KEY})
    numeric = {c for c in columns if all(_number(row.get(c)) is not None for row in rows.values())}
    return {z: {c: (float(row[c]) if c in numeric else row.get(c, "")) for c in columns if c in row}
            for z, row in rows.items()}


def coordinates_of(speaker: str, attributes: Mapping[str, Any]) -> Tuple[float, float]:
    """`(lat, lon)` of one speaker; `DataError` naming the speaker, and what to do, when missing.

    A speakers.csv from `asrtools data prepare` says why a speaker could not be placed
    (`place_detail`); the message repeats it.
    """
    values = []
    for key in (LAT_KEY, LON_KEY):
        value = _number(attributes.get(key))
        if value is None:
            why = f"; {attributes['place_detail']}" if attributes.get("place_detail") else ""
            raise DataError(f"speaker {speaker!r}: no numeric '{key}' (got {attributes.get(key)!r}{why}); the "
                            "geographic method needs lat/lon for every scored speaker: add them to the speaker "
                            "table, or a zip/city/region/state/country column that `asrtools data prepare` "
                            "geocodes, or leave unplaced speakers out with --set unplaced_speakers=exclude")
        values.append(value)
    return values[0], values[1]


def zip_of(speaker: str, attributes: Mapping[str, Any]) -> str:
    """The zip code of one speaker; `DataError` naming the speaker when it has none."""
    value = str(attributes.get(ZIP_KEY) or "").strip()
    if not value:
        raise DataError(f"speaker {speaker!r}: no '{ZIP_KEY}' (the geodemographic method needs a zip code for every "
                        "scored speaker in the speaker table, and --zipcodes with that zip's attributes; "
                        "--set unplaced_speakers=exclude leaves speakers without one out)")
    return value


@dataclasses.dataclass
class SpeakerTable:
    """Per-speaker counts and attributes, column-wise (speakers sorted by id).

    Attributes:
      speakers: speaker ids `(S,)`.
      errors: word errors per speaker `(S,)` float64.
      words: reference words per speaker `(S,)` float64.
      utterances: utterances per speaker `(S,)` float64.
      attributes: per speaker, its speakers.csv row (strings).
      zipcodes: the census table `{zip: {column: value}}` (numeric columns as floats); empty
        when none was given.
      vectors: speaker embeddings `(S, D)` float64, or None.
    """

    speakers: List[str]
    errors: np.ndarray
    words: np.ndarray
    utterances: np.ndarray
    attributes: List[Dict[str, Any]]
    zipcodes: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    vectors: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.speakers)

    def subset(self, index: Sequence[int]) -> "SpeakerTable":
        """The speakers at positions `index` (order kept)."""
        index = np.asarray(index, dtype=np.int64)
        return SpeakerTable(
            speakers=[self.speakers[i] for i in index],
            errors=self.errors[index],
            words=self.words[index],
            utterances=self.utterances[index],
            attributes=[self.attributes[i] for i in index],
            zipcodes=self.zipcodes,
            vectors=None if self.vectors is None else self.vectors[index],
        )

    def attribute_map(self) -> Dict[str, Dict[str, Any]]:
        """`{speaker: attributes}`."""
        return dict(zip(self.speakers, self.attributes))

    def vector_map(self) -> Dict[str, np.ndarray]:
        """`{speaker: embedding (D,)}`; `DataError` when the table has no embeddings."""
        if self.vectors is None:
            raise DataError("no speaker embeddings given (--embeddings)")
        return dict(zip(self.speakers, self.vectors))

    def coordinates(self) -> np.ndarray:
        """`(S, 2)` latitude, longitude; `DataError` naming the first speaker without them."""
        return np.asarray([coordinates_of(s, a) for s, a in zip(self.speakers, self.attributes)],
                          dtype=np.float64).reshape(len(self), 2)

    def zip_codes(self) -> List[str]:
        """Each speaker's zip code `(S,)`, all present in `zipcodes` (else `DataError` naming it)."""
        if not self.zipcodes:
            raise DataError("no zip-code table given (--zipcodes)")
        zips = [zip_of(s, a) for s, a in zip(self.speakers, self.attributes)]
        for speaker, code in zip(self.speakers, zips):
            if code not in self.zipcodes:
                raise DataError(f"speaker {speaker!r}: zip {code!r} is not in the zip-code table")
        return zips

    def with_vectors(self, vectors: Mapping[str, Any]) -> "SpeakerTable":
        """This table with embeddings attached, `vectors` = `{speaker: (D,)}` (extra speakers ignored)."""
        missing = [s for s in self.speakers if s not in vectors]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"speaker {missing[0]!r} has no embedding{more}")
        matrix = np.stack([np.asarray(vectors[s], dtype=np.float64).reshape(-1) for s in self.speakers])
        if not np.all(np.isfinite(matrix)):
            bad = self.speakers[int(np.flatnonzero(~np.all(np.isfinite(matrix), axis=1))[0])]
            raise DataError(f"speaker {bad!r}: embedding has NaN or inf values")
        return dataclasses.replace(self, vectors=matrix)


def split_unplaced(table: SpeakerTable, method: str) -> Tuple[SpeakerTable, List[str]]:
    """The speakers `method` can place, and the ids of those it cannot.

    Args:
      table: the scored speakers.
      method: `geo` (needs numeric lat/lon) or `geodemographic` (needs a zip in the zip table);
        any other method places every speaker.

    Returns:
      (the table of the placed speakers, the unplaced speakers' ids in table order).
    """
    def placed(speaker: str, attributes: Mapping[str, Any]) -> bool:
        try:
            if method == "geo":
                coordinates_of(speaker, attributes)
            elif method == "geodemographic":
                return zip_of(speaker, attributes) in table.zipcodes
        except DataError:
            return False
        return True

    is_placed = [placed(s, a) for s, a in zip(table.speakers, table.attributes)]
    unplaced = [s for s, ok in zip(table.speakers, is_placed) if not ok]
    return (table.subset(np.flatnonzero(is_placed)) if unplaced else table), unplaced


def table_from_counts(speakers: Sequence[str], errors: Sequence[float], words: Sequence[float],
                      utterances: Sequence[float], speaker_rows: Mapping[str, Mapping[str, Any]],
                      zipcodes: Optional[Mapping[str, Mapping[str, Any]]] = None,
                      source: str = "speakers.csv") -> SpeakerTable:
    """A table from per-speaker counts and the speaker rows; `DataError` naming a speaker without a row.

    Args:
      speakers: speaker ids `(S,)` (unique).
      errors, words, utterances: per-speaker sums `(S,)`.
      speaker_rows: `{speaker: attributes}` (a speakers.csv read with `read_csv_rows`).
      zipcodes: the parsed census table (`parse_zipcodes`), if any.
      source: the speaker table's name for messages.
    """
    order = np.argsort(np.asarray(speakers, dtype=object), kind="stable")
    names = [str(speakers[i]) for i in order]
    if len(set(names)) != len(names):
        raise DataError("duplicate speaker ids in the per-speaker counts")
    for name in names:
        if name not in speaker_rows:
            raise DataError(f"speaker {name!r} is not in {source}")
    return SpeakerTable(
        speakers=names,
        errors=np.asarray(errors, dtype=np.float64)[order],
        words=np.asarray(words, dtype=np.float64)[order],
        utterances=np.asarray(utterances, dtype=np.float64)[order],
        attributes=[dict(speaker_rows[n]) for n in names],
        zipcodes=dict(zipcodes or {}),
    )


def load_speaker_table(recogs: Path, speakers_csv: Path, zipcodes_csv: Optional[Path] = None) -> SpeakerTable:
    """Score a decode dir / recogs.jsonl / WER dir and join it with speakers.csv (+ zipcodes.csv).

    Args:
      recogs: what `asrtools score cohorts --recogs` takes (scored with levenshtein, no normalisation).
      speakers_csv: the corpus speaker table (column `id`).
      zipcodes_csv: the census table (column `zip`), optional.
    """
    from asrtools.scoring.cohorts import per_speaker_sums
    from asrtools.scoring.report import load_report

    report = load_report(Path(recogs))
    counts = report.counts_array()  # (U, 4) corr, sub, del, ins
    columns = np.stack([counts[:, 1:].sum(axis=1), counts[:, :3].sum(axis=1), np.ones(len(counts))], axis=1)
    speakers, sums = per_speaker_sums([u.speaker for u in report.utterances], columns.astype(np.float64))
    rows = read_csv_rows(Path(speakers_csv), "id", "speaker")
    zipcodes = parse_zipcodes(read_csv_rows(Path(zipcodes_csv), ZIP_KEY, "zip code")) if zipcodes_csv else None
    return table_from_counts(speakers, sums[:, 0], sums[:, 1], sums[:, 2], rows, zipcodes, str(speakers_csv))
