"""CSV/TSV tables (audio path, transcript, speaker, attributes) -> manifests + speaker table.

`asrtools data prepare csv --corpus-dir DIR`: DIR holds one table per split, `<split>.csv`
(comma-separated) or `<split>.tsv` (tab-separated), UTF-8 with a header row; `--parts` picks
some (default: every table in DIR). Columns, matched case-insensitively:

    audio      path | audio | audio_path | audio_filepath | wav | file     relative to DIR, or absolute
    text       text | transcript | transcription | sentence
    speaker    speaker | speaker_id | spk | client_id
    id         id | utt_id | utterance_id        optional; default: the audio file's name without suffix
    start, duration (or end)                    optional, seconds: a segment of a longer file
    anything else                               a speaker attribute (gender, age, accent, region, zip,
                                                lat, lon, ...): one value per speaker

`--option audio_column=NAME` (and `text_column`, `speaker_column`, `id_column`) names a
column the header convention does not; `--option utterance_columns=a,b` keeps columns that
vary per utterance (e.g. a noise condition) on the supervisions instead of the speaker table.

lhotse has no importer for a generic table, so the rows are read with Python's csv module;
the audio with lhotse's `Recording.from_file`.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asrtools.data.corpora.base import CorpusRecipe, PreparedCorpus, PrepareOptions, register_corpus
from asrtools.errors import ConfigError, DataError, describe

COLUMN_NAMES = {
    "audio": ("path", "audio", "audio_path", "audio_filepath", "wav", "file"),
    "text": ("text", "transcript", "transcription", "sentence"),
    "speaker": ("speaker", "speaker_id", "spk", "client_id"),
    "id": ("id", "utt_id", "utterance_id"),
}
SEGMENT_COLUMNS = ("start", "duration", "end")
SUFFIXES = (".csv", ".tsv")


def table_path(corpus_dir: Path, part: str) -> Optional[Path]:
    """`DIR/<part>.csv` or `DIR/<part>.tsv`, whichever exists (None if neither)."""
    for suffix in SUFFIXES:
        if (Path(corpus_dir) / f"{part}{suffix}").is_file():
            return Path(corpus_dir) / f"{part}{suffix}"
    return None


def read_table(path: Path) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
    """Header (stripped) and (line number, row) pairs; `DataError` naming a malformed line."""
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = [h.strip() for h in reader.fieldnames or []]
        if not header:
            raise DataError(f"{path}: empty file (expected a header row)")
        reader.fieldnames = header
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise DataError(f"{path}:{reader.line_num}: wrong number of fields (header has {len(header)})")
            rows.append((reader.line_num, {k: v.strip() for k, v in row.items()}))
    if not rows:
        raise DataError(f"{path}: no rows after the header")
    return header, rows


def find_column(header: Sequence[str], role: str, options: PrepareOptions, path: Path, required: bool = True) -> str:
    """The column playing `role` (audio/text/speaker/id): `--option <role>_column` or the convention."""
    chosen = options.get(f"{role}_column")
    lower = {h.lower(): h for h in header}
    if chosen:
        if chosen not in header:
            raise DataError(f"{path}: no column {chosen!r} (--option {role}_column; columns: {', '.join(header)})")
        return chosen
    for name in COLUMN_NAMES[role]:
        if name in lower:
            return lower[name]
    if required:
        raise DataError(f"{path}: no {role} column (one of {', '.join(COLUMN_NAMES[role])}; or name it with "
                        f"--option {role}_column=NAME; columns: {', '.join(header)})")
    return ""


def _seconds(row: Mapping[str, str], column: str, path: Path, line: int) -> Optional[float]:
    if not row.get(column):
        return None
    try:
        value = float(row[column])
    except ValueError:
        raise DataError(f"{path}:{line}: {column} {row[column]!r} is not a number of seconds") from None
    if value < 0:
        raise DataError(f"{path}:{line}: {column} {value} is negative")
    return value


@register_corpus
class CsvTable(CorpusRecipe):
    name = "csv"
    description = "one CSV/TSV table per split: audio path, transcript, speaker, attribute columns"
    default_parts = ()
    option_help = {
        "audio_column": "column with the audio file path",
        "text_column": "column with the transcript",
        "speaker_column": "column with the speaker id",
        "id_column": "column with the utterance id",
        "utterance_columns": "comma-separated columns that are per-utterance fields, not speaker attributes",
    }

    def resolve_parts(self, corpus_dir: Path, parts: Sequence[str]) -> Tuple[str, ...]:
        if parts:
            return tuple(parts)
        found = sorted({p.stem for p in Path(corpus_dir).iterdir() if p.is_file() and p.suffix in SUFFIXES})
        if not found:
            raise DataError(f"{corpus_dir}: no <split>.csv or <split>.tsv table")
        return tuple(found)

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        for part in parts:
            if table_path(corpus_dir, part) is None:
                raise DataError(f"{part}.csv (or {part}.tsv) not found under {corpus_dir}")

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        per_utterance = {c.strip() for c in options.get("utterance_columns").split(",") if c.strip()}
        splits: Dict[str, Tuple[RecordingSet, SupervisionSet]] = {}
        speakers: Dict[str, Dict[str, Any]] = {}
        origins: Dict[str, str] = {}  # speaker -> "table:line" of its first row, for messages
        for part in parts:
            path = table_path(corpus_dir, part)
            splits[part] = self._read_split(Path(corpus_dir), path, part, options, per_utterance, speakers, origins)
        return PreparedCorpus(splits, list(speakers.values()))

    def _read_split(self, corpus_dir: Path, path: Path, split: str, options: PrepareOptions,
                    per_utterance: set, speakers: Dict[str, Dict[str, Any]],
                    origins: Dict[str, str]) -> Tuple[RecordingSet, SupervisionSet]:
        header, rows = read_table(path)
        roles = {role: find_column(header, role, options, path, required=role != "id") for role in COLUMN_NAMES}
        unknown = sorted(per_utterance - set(header))
        if unknown:
            raise ConfigError(f"--option utterance_columns: {path} has no column {unknown[0]!r}")
        reserved = set(roles.values()) | {h for h in header if h.lower() in SEGMENT_COLUMNS}
        attributes = [h for h in header if h not in reserved and h not in per_utterance]
        lower = {h.lower(): h for h in header}
        segmented = "start" in lower or "duration" in lower or "end" in lower
        recordings: Dict[str, Recording] = {}
        supervisions: List[SupervisionSegment] = []
        seen: Dict[str, int] = {}
        for line, row in rows:
            audio = row[roles["audio"]]
            if not audio:
                raise DataError(f"{path}:{line}: empty {roles['audio']}")
            audio_path = Path(audio) if Path(audio).is_absolute() else corpus_dir / audio
            utt_id = row[roles["id"]] if roles["id"] else audio_path.stem
            if not utt_id:
                raise DataError(f"{path}:{line}: empty {roles['id']}")
            if utt_id in seen:
                raise DataError(f"{path}:{line}: utterance id {utt_id!r} also on line {seen[utt_id]}"
                                + ("" if roles["id"] else " (give an id column)"))
            seen[utt_id] = line
            speaker = row[roles["speaker"]]
            if not speaker:
                raise DataError(f"{path}:{line}: utterance {utt_id}: empty {roles['speaker']}")
            if not row[roles["text"]]:
                raise DataError(f"{path}:{line}: utterance {utt_id}: empty transcript")
            rec_id = str(Path(audio).with_suffix("")).replace("/", "_") if segmented else utt_id
            recording = recordings.get(rec_id) or self._recording(audio_path, rec_id, path, line, utt_id)
            recordings[rec_id] = recording
            start = _seconds(row, lower.get("start", ""), path, line) or 0.0
            duration = _seconds(row, lower.get("duration", ""), path, line)
            end = _seconds(row, lower.get("end", ""), path, line)
            if duration is None:
                duration = (end if end is not None else recording.duration) - start
            if duration <= 0 or start + duration > recording.duration + 1e-3:
                raise DataError(f"{path}:{line}: utterance {utt_id}: segment {start:.3f}+{duration:.3f} s is outside "
                                f"its {recording.duration:.3f} s audio {audio}")
            custom = {c: row[c] for c in sorted(per_utterance) if row[c]}
            supervisions.append(SupervisionSegment(
                id=utt_id, recording_id=rec_id, start=start, duration=duration, channel=0,
                text=row[roles["text"]], speaker=speaker, custom=custom or None))
            self._add_speaker(speakers, origins, speaker, split, {a: row[a] for a in attributes}, path, line)
        return RecordingSet.from_recordings(recordings.values()), SupervisionSet.from_segments(supervisions)

    @staticmethod
    def _recording(audio_path: Path, rec_id: str, path: Path, line: int, utt_id: str) -> Recording:
        if not audio_path.is_file():
            raise DataError(f"{path}:{line}: utterance {utt_id}: audio file {audio_path} not found")
        try:
            return Recording.from_file(audio_path.resolve(), recording_id=rec_id)
        except Exception as err:  # noqa: BLE001 - audio backends raise many types for a corrupt file
            raise DataError(f"{path}:{line}: utterance {utt_id}: cannot read audio {audio_path} "
                            f"({describe(err)})") from None

    @staticmethod
    def _add_speaker(speakers: Dict[str, Dict[str, Any]], origins: Dict[str, str], speaker: str, split: str,
                     values: Dict[str, str], path: Path, line: int) -> None:
        if speaker not in speakers:
            speakers[speaker] = {"id": speaker, "split": split, **values}
            origins[speaker] = f"{path.name}:{line}"
            return
        row = speakers[speaker]
        if row["split"] != split:
            raise DataError(f"{path}:{line}: speaker {speaker} is also in split {row['split']} "
                            f"({origins[speaker]}); splits must not share speakers")
        for key, value in values.items():
            if row.get(key, "") != value:
                raise DataError(f"{path}:{line}: speaker {speaker}: {key} {value!r} differs from {row.get(key)!r} "
                                f"on {origins[speaker]} (a speaker attribute has one value per speaker; "
                                f"per-utterance columns go in --option utterance_columns={key})")
