"""Lhotse manifests for the synthetic corpus, and manifest validation.

`read_synth_corpus` reads and checks a built corpus directory (every audio file is opened)
and `write_manifests` writes, per split, `recordings_<split>.jsonl.gz` (RecordingSet) and
`supervisions_<split>.jsonl.gz` (SupervisionSet). Each supervision carries `speaker`,
`gender`, `language` and, in `custom`, the cohort fields: accent, region, engine, lat, lon,
zip (+ the zip's census-like attributes), channel, noise, snr_db.

`validate_manifests` checks a manifest directory (audio present and readable, sample
rates, durations, non-empty texts, matching ids) and returns per-split statistics.
"""
from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asrtools.errors import DataError, describe
from asrtools.data.audio import wav_truncation
from asrtools.data.io import read_manifest, save_manifest

logger = logging.getLogger("asrtools")

COHORT_FIELDS = ("accent", "region", "engine", "lat", "lon", "zip", "channel")
ZIP_FIELDS = ("urbanicity", "income_band", "majority_language_share", "median_age")


def _read_jsonl(path: Path, required: Tuple[str, ...] = ()) -> List[Dict[str, Any]]:
    rows = []
    if not path.is_file():
        raise DataError(f"{path}: missing (is this a corpus made by `asrtools data synth`?)")
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{number}: not valid JSON") from None
            missing = [key for key in required if not isinstance(row, dict) or key not in row]
            if missing:
                raise DataError(f"{path}:{number}: no {missing[0]!r} field")
            rows.append(row)
    return rows


def _recording(wav: Path, utt_id: str) -> Recording:
    if not wav.is_file():
        raise DataError(f"utterance {utt_id}: audio file {wav} is missing")
    try:
        recording = Recording.from_file(wav, recording_id=utt_id)
    except Exception as err:  # soundfile/audioread raise many types for corrupt audio
        raise DataError(f"utterance {utt_id}: cannot read audio {wav} ({describe(err)})") from None
    truncated = wav_truncation(wav)
    if truncated:
        raise DataError(f"utterance {utt_id}: audio file {wav} is truncated ({truncated})")
    if recording.num_samples == 0:
        raise DataError(f"utterance {utt_id}: audio file {wav} holds no samples")
    return recording


def read_synth_corpus(corpus_dir: Path, sample_rate: int) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    """Read a built corpus into per-split recordings and supervisions, checking every item.

    Args:
      corpus_dir: a directory made by `asrtools data synth`.
      sample_rate: the required sample rate of every recording.

    Raises:
      DataError: naming the utterance and file for a missing, unreadable or wrongly sampled
        audio file, an empty transcript, an unknown speaker or a malformed corpus file.
    """
    corpus_dir = Path(corpus_dir).resolve()
    speakers = {row["id"]: row for row in _read_jsonl(corpus_dir / "speakers.jsonl", ("id", "gender", *COHORT_FIELDS))}
    zip_table = corpus_dir / "zipcodes.csv"
    if not zip_table.is_file():
        raise DataError(f"{zip_table}: missing (is this a corpus made by `asrtools data synth`?)")
    with open(zip_table) as f:
        zips = {row["zip"]: row for row in csv.DictReader(f)}
    by_split: Dict[str, Tuple[List[Recording], List[SupervisionSegment]]] = {}
    for utt in _read_jsonl(corpus_dir / "utterances.jsonl", ("id", "speaker", "text", "wav", "split", "noise")):
        speaker = speakers.get(utt["speaker"])
        if speaker is None:
            raise DataError(f"utterance {utt['id']}: speaker {utt['speaker']} is not in speakers.jsonl")
        if speaker["zip"] not in zips:
            raise DataError(f"speaker {speaker['id']}: zip {speaker['zip']} is not in {zip_table}")
        if not str(utt["text"]).strip():
            raise DataError(f"{corpus_dir / 'utterances.jsonl'}: utterance {utt['id']}: empty transcript")
        recording = _recording(corpus_dir / utt["wav"], utt["id"])
        if recording.sampling_rate != sample_rate:
            raise DataError(f"utterance {utt['id']}: {corpus_dir / utt['wav']} has sample rate "
                            f"{recording.sampling_rate} Hz, expected {sample_rate}")
        custom = {k: speaker[k] for k in COHORT_FIELDS}
        custom.update({k: _number(zips[speaker["zip"]][k]) for k in ZIP_FIELDS})
        custom.update(noise=utt["noise"], snr_db=utt["snr_db"] if utt["noise"] != "none" else None)
        supervision = SupervisionSegment(
            id=utt["id"], recording_id=utt["id"], start=0.0, duration=recording.duration, channel=0,
            text=utt["text"], language="en", speaker=utt["speaker"], gender=speaker["gender"], custom=custom,
        )
        recordings, supervisions = by_split.setdefault(utt["split"], ([], []))
        recordings.append(recording)
        supervisions.append(supervision)
    return {split: (RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions))
            for split, (recordings, supervisions) in sorted(by_split.items())}


def write_manifests(splits: Dict[str, Tuple[RecordingSet, SupervisionSet]], out_dir: Path) -> Dict[str, int]:
    """Write `recordings_<split>.jsonl.gz` and `supervisions_<split>.jsonl.gz`; return utterances per split."""
    counts = {}
    for split, (recordings, supervisions) in splits.items():
        save_manifest(recordings, Path(out_dir) / f"recordings_{split}.jsonl.gz")
        save_manifest(supervisions, Path(out_dir) / f"supervisions_{split}.jsonl.gz")
        counts[split] = len(recordings)
    return counts


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def validate_split(recordings_path: Path, supervisions_path: Path, sample_rate: int, check_audio: bool = True,
                   min_duration: float = 0.2, max_duration: float = 60.0) -> Dict[str, Any]:
    """Check one split's manifests; raise `DataError` naming the first bad item.

    Returns statistics: utterances, hours, speakers, and counts per cohort field.
    """
    recordings = read_manifest(recordings_path, RecordingSet, "recordings")
    supervisions = read_manifest(supervisions_path, SupervisionSet, "supervisions")
    for recording in recordings:
        if recording.sampling_rate != sample_rate:
            raise DataError(f"{recordings_path}: recording {recording.id} has sample rate "
                            f"{recording.sampling_rate} Hz, expected {sample_rate}")
        if not min_duration <= recording.duration <= max_duration:
            raise DataError(f"{recordings_path}: recording {recording.id} lasts {recording.duration:.2f} s "
                            f"(allowed {min_duration}–{max_duration} s)")
        for source in recording.sources:
            if source.type == "file" and not Path(source.source).is_file():
                raise DataError(f"{recordings_path}: recording {recording.id} points to missing file {source.source}")
            if check_audio and source.type == "file" and wav_truncation(Path(source.source)):
                raise DataError(f"{recordings_path}: recording {recording.id}: {source.source} is truncated "
                                f"({wav_truncation(Path(source.source))})")
        if check_audio:
            try:
                recording.load_audio(offset=0.0, duration=min(0.1, recording.duration))
            except Exception as err:
                raise DataError(f"{recordings_path}: recording {recording.id} audio is unreadable ({describe(err)})") from None
    for sup in supervisions:
        if sup.recording_id not in recordings:
            raise DataError(f"{supervisions_path}: supervision {sup.id} refers to unknown recording {sup.recording_id}")
        if not (sup.text or "").strip():
            raise DataError(f"{supervisions_path}: supervision {sup.id} has an empty transcript")
        if sup.speaker is None:
            raise DataError(f"{supervisions_path}: supervision {sup.id} has no speaker")
        if sup.end > recordings[sup.recording_id].duration + 1e-3:
            raise DataError(f"{supervisions_path}: supervision {sup.id} ends after its recording")
    return split_statistics(supervisions)


def split_statistics(supervisions: Iterable[SupervisionSegment]) -> Dict[str, Any]:
    """Utterances, hours, speakers and per-cohort speaker counts of a supervision set."""
    supervisions = list(supervisions)
    speakers: Dict[str, SupervisionSegment] = {}
    for sup in supervisions:
        speakers.setdefault(sup.speaker, sup)
    cohorts: Dict[str, Counter] = {"gender": Counter(s.gender for s in speakers.values())}
    for field in ("accent", "region", "engine", "channel"):
        values = [(s.custom or {}).get(field) for s in speakers.values()]
        if any(v is not None for v in values):
            cohorts[field] = Counter(values)
    return {
        "utterances": len(supervisions),
        "hours": round(sum(s.duration for s in supervisions) / 3600, 3),
        "speakers": len(speakers),
        "speakers_per_cohort": {k: dict(sorted(v.items(), key=lambda kv: str(kv[0]))) for k, v in cohorts.items()},
    }


def find_splits(manifest_dir: Path) -> List[str]:
    """Split names that have both a recordings and a supervisions manifest."""
    splits = sorted(p.name[len("recordings_"):-len(".jsonl.gz")] for p in Path(manifest_dir).glob("recordings_*.jsonl.gz"))
    for split in splits:
        if not (Path(manifest_dir) / f"supervisions_{split}.jsonl.gz").is_file():
            raise DataError(f"{manifest_dir}: recordings_{split}.jsonl.gz has no supervisions_{split}.jsonl.gz")
    if not splits:
        raise DataError(f"{manifest_dir}: no recordings_<split>.jsonl.gz manifests")
    return splits


def validate_manifest_dir(manifest_dir: Path, sample_rate: int, check_audio: bool = True) -> Dict[str, Dict[str, Any]]:
    """Validate every split of a manifest directory; return statistics per split.

    Also checks that splits are speaker-disjoint.
    """
    stats, owners = {}, {}
    for split in find_splits(manifest_dir):
        stats[split] = validate_split(Path(manifest_dir) / f"recordings_{split}.jsonl.gz",
                                      Path(manifest_dir) / f"supervisions_{split}.jsonl.gz", sample_rate, check_audio)
        for sup in read_manifest(Path(manifest_dir) / f"supervisions_{split}.jsonl.gz", SupervisionSet, "supervisions"):
            other = owners.setdefault(sup.speaker, split)
            if other != split:
                raise DataError(f"{manifest_dir}: speaker {sup.speaker} occurs in both {other} and {split}")
    return stats


def format_statistics(stats: Dict[str, Dict[str, Any]]) -> str:
    """A readable per-split summary table."""
    lines = ["split   utts   hours  speakers  speakers per cohort"]
    for split, s in stats.items():
        cohorts = "; ".join(f"{k}: " + ", ".join(f"{v}={n}" for v, n in c.items())
                            for k, c in s["speakers_per_cohort"].items())
        lines.append(f"{split:6s} {s['utterances']:6d} {s['hours']:7.2f} {s['speakers']:9d}  {cohorts}")
    return "\n".join(lines)
