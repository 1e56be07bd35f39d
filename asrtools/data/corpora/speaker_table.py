"""The corpus speaker table: attribute normalisation, geocoding, speakers.csv, and supervision fields.

Every corpus adapter returns raw speaker rows (`id`, `split`, then whatever the corpus gives).
Here they become the one table every later stage reads (`cohorts geo/auto/geodemographic
--speakers OUT/speakers.csv`, `score cohorts`):

- values are stripped strings, "" when unknown; `gender` follows the synthetic corpus and
  `sv` reports ("female" / "male"; other values are kept, lower-cased);
- each speaker is placed (`asrtools.data.geocode.place_speaker`): `lat`, `lon` (5 decimals,
  about 1 m), `placed` (how: corpus / zip / city / state / country / unplaced) and
  `place_detail` (what matched, or why nothing did) — only when the corpus names a place;
- every attribute goes onto the speaker's supervisions like the synthetic manifests do
  (`gender` field; the rest in `custom`, lat/lon as numbers, unknown values left out);
- `missing_notes` says, per attribute, which speakers lack it, so that a cohort table's
  "(missing)" row is never a surprise.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any, Dict, Iterable, List, Mapping, Sequence

from lhotse import SupervisionSet

from asrtools.data.geocode import PLACE_FIELDS, place_speaker
from asrtools.errors import DataError

# Column order of speakers.csv: these first (when present), the others alphabetically after.
LEADING_COLUMNS = ("id", "split", "gender", "age", "accent", "native_language", "nationality", "region", "city",
                   "state", "country", "zip", "lat", "lon", "placed", "place_detail")
_GENDERS = {"f": "female", "female": "female", "woman": "female", "w": "female",
            "m": "male", "male": "male", "man": "male"}
# Fields that are not cohort attributes on a supervision (the speaker id and split are the
# supervision's own; how a speaker was placed is for people reading speakers.csv).
_NOT_ON_SUPERVISIONS = ("id", "split", "gender", "placed", "place_detail")


# Spellings of "not known", which become "" so that notes.txt reports the speaker as lacking
# the attribute instead of a cohort named "unknown" pooling them silently.
_UNKNOWN = {"u", "unknown", "n/a", "na", "none", "?", "-"}


def normalise_gender(value: Any) -> str:
    """"female" / "male" for the usual spellings (f, F, female, woman, ...); "" for unknown; others lower-cased."""
    text = str(value or "").strip().lower()
    return "" if text in _UNKNOWN else _GENDERS.get(text, text)


def normalise_row(row: Mapping[str, Any]) -> Dict[str, str]:
    """Stripped string values ("" for None); `gender` normalised; `id` required."""
    out = {str(k).strip(): ("" if v is None else str(v).strip()) for k, v in row.items()}
    if not out.get("id"):
        raise DataError(f"speaker row without an id: {dict(row)}")
    if "gender" in out:
        out["gender"] = normalise_gender(out["gender"])
    return out


def build_speaker_table(rows: Iterable[Mapping[str, Any]], geocode: bool = True) -> List[Dict[str, str]]:
    """Normalised rows, sorted by id, with lat/lon/placed/place_detail when a place is given.

    Args:
      rows: the adapter's raw speaker rows (one per speaker).
      geocode: place speakers whose row names a place (see module docstring).

    Raises:
      DataError: naming a speaker listed twice.
    """
    table: Dict[str, Dict[str, str]] = {}
    for raw in rows:
        row = normalise_row(raw)
        if row["id"] in table:
            raise DataError(f"speaker {row['id']} is listed twice in the speaker table")
        table[row["id"]] = row
    names_place = any(row.get(f) for row in table.values() for f in (*PLACE_FIELDS, "lat", "lon"))
    if geocode and names_place:
        for row in table.values():
            placement = place_speaker(row)
            row["lat"] = "" if placement.lat is None else f"{placement.lat:.5f}"
            row["lon"] = "" if placement.lon is None else f"{placement.lon:.5f}"
            row["placed"], row["place_detail"] = placement.how, placement.detail
    return [table[name] for name in sorted(table)]


def table_columns(table: Sequence[Mapping[str, str]]) -> List[str]:
    """speakers.csv columns: `LEADING_COLUMNS` present in any row, then the others sorted."""
    present = {key for row in table for key in row}
    return [c for c in LEADING_COLUMNS if c in present or c in ("id", "split")] + \
        sorted(present - set(LEADING_COLUMNS))


def speakers_csv_text(table: Sequence[Mapping[str, str]]) -> str:
    """speakers.csv as text: a header row, one row per speaker, "" for an unknown value."""
    columns = table_columns(table)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def supervision_fields(row: Mapping[str, str]) -> Dict[str, Any]:
    """`{"gender": ..., "custom": {...}}` to set on a speaker's supervisions (unknown values left out)."""
    custom: Dict[str, Any] = {}
    for key, value in row.items():
        if key in _NOT_ON_SUPERVISIONS or value == "":
            continue
        custom[key] = float(value) if key in ("lat", "lon") else value
    return {"gender": row.get("gender") or None, "custom": custom}


def attach_speaker_fields(supervisions: SupervisionSet, table: Mapping[str, Mapping[str, str]],
                          where: str) -> SupervisionSet:
    """The supervisions with their speaker's gender and attributes (merged into existing `custom`).

    Raises:
      DataError: naming a supervision whose speaker is not in the table.
    """
    out = []
    for sup in supervisions:
        row = table.get(sup.speaker)
        if row is None:
            raise DataError(f"{where}: supervision {sup.id}: speaker {sup.speaker!r} is not in the speaker table")
        fields = supervision_fields(row)
        custom = {**(sup.custom or {}), **fields["custom"]}
        out.append(dataclasses.replace(sup, gender=fields["gender"] or sup.gender, custom=custom or None))
    return SupervisionSet.from_segments(out)


def missing_notes(table: Sequence[Mapping[str, str]]) -> List[str]:
    """One note per attribute that some speakers have and others lack, naming (up to 5 of) the latter."""
    notes = []
    skip = {"id", "split", "place_detail"} | ({"lat", "lon", "placed"} if any("placed" in r for r in table) else set())
    columns = [c for c in table_columns(table) if c not in skip]
    for column in columns:
        lacking = [row["id"] for row in table if not row.get(column)]
        if lacking and len(lacking) < len(table):
            shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
            notes.append(f"{column}: {len(lacking)} of {len(table)} speakers have none ({shown})")
    unplaced = [row["id"] for row in table if row.get("placed") == "unplaced"]
    if unplaced:
        shown = ", ".join(unplaced[:5]) + (f" and {len(unplaced) - 5} more" if len(unplaced) > 5 else "")
        notes.append(f"{len(unplaced)} of {len(table)} speakers could not be placed ({shown}); "
                     "see place_detail in speakers.csv")
    return notes
