"""Lhotse manifests for the synthetic corpus (or a corpus in its layout), and manifest validation.

`read_synth_corpus` reads and checks a corpus directory in the layout `asrtools data synth`
writes (every audio file is opened) and `write_manifests` writes, per split,
`recordings_<split>.jsonl.gz` (RecordingSet) and `supervisions_<split>.jsonl.gz`
(SupervisionSet). Each supervision carries `speaker`, `gender`, `language` and, in `custom`,
the cohort fields the corpus gives: accent, region, engine, lat, lon, zip (+ the zip's
census-like attributes from zipcodes.csv), channel, noise, snr_db. Only utterance id,
speaker, text, wav, split and speaker id are required; the other fields (which the synthetic
corpus always has) are optional for a corpus written by hand, and zipcodes.csv is read when
present. Audio at another sample rate is refused, or resampled on request (lhotse
`Recording.resample`: the manifest records the transform, features read resampled audio).

`check_split` / `validate_manifests` check manifests (audio present and readable, sample
rates, durations, non-empty texts, matching ids) and return per-split statistics; the
`asrtools data prepare` stage (`asrtools.data.corpora`) runs the same checks on a real
corpus before writing anything.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

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


def read_synth_corpus(corpus_dir: Path, sample_rate: int,
                      resample: bool = False) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    """Read a corpus directory into per-split recordings and supervisions, checking every item.

    Args:
      corpus_dir: a directory made by `asrtools data synth` (or written in its layout:
        speakers.jsonl, utterances.jsonl, the wav files, optionally zipcodes.csv).
      sample_rate: the required sample rate of every recording.
      resample: resample a recording at another rate to `sample_rate` instead of refusing it.

    Raises:
      DataError: naming the utterance and file for a missing, unreadable or wrongly sampled
        audio file, an empty transcript, an unknown speaker or a malformed corpus file.
    """
    corpus_dir = Path(corpus_dir).resolve()
    speakers = {row["id"]: row for row in _read_jsonl(corpus_dir / "speakers.jsonl", ("id",))}
    zip_table = corpus_dir / "zipcodes.csv"
    zips: Dict[str, Dict[str, str]] = {}
    if zip_table.is_file():
        with open(zip_table) as f:
            zips = {row["zip"]: row for row in csv.DictReader(f)}
    by_split: Dict[str, Tuple[List[Recording], List[SupervisionSegment]]] = {}
    for utt in _read_jsonl(corpus_dir / "utterances.jsonl", ("id", "speaker", "text", "wav", "split")):
        speaker = speakers.get(utt["speaker"])
        if speaker is None:
            raise DataError(f"utterance {utt['id']}: speaker {utt['speaker']} is not in speakers.jsonl")
        if zips and speaker.get("zip") is not None and speaker["zip"] not in zips:
            raise DataError(f"speaker {speaker['id']}: zip {speaker['zip']} is not in {zip_table}")
        if not str(utt["text"]).strip():
            raise DataError(f"{corpus_dir / 'utterances.jsonl'}: utterance {utt['id']}: empty transcript")
        recording = _recording(corpus_dir / utt["wav"], utt["id"])
        if recording.sampling_rate != sample_rate:
            if not resample:
                raise DataError(f"utterance {utt['id']}: {corpus_dir / utt['wav']} has sample rate "
                                f"{recording.sampling_rate} Hz, expected {sample_rate} (--resample {sample_rate} "
                                "resamples it)")
            recording = recording.resample(sample_rate)
        supervision = SupervisionSegment(
            id=utt["id"], recording_id=utt["id"], start=0.0, duration=recording.duration, channel=0,
            text=utt["text"], language="en", speaker=utt["speaker"], gender=speaker.get("gender"),
            custom=_cohort_fields(speaker, utt, zips),
        )
        recordings, supervisions = by_split.setdefault(utt["split"], ([], []))
        recordings.append(recording)
        supervisions.append(supervision)
    return {split: (RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions))
            for split, (recordings, supervisions) in sorted(by_split.items())}


def _cohort_fields(speaker: Dict[str, Any], utt: Dict[str, Any], zips: Dict[str, Dict[str, str]]) -> Dict[str, Any]:
    """The supervision's `custom`: the cohort fields present (all of them, in this order, for synth)."""
    custom = {k: speaker[k] for k in COHORT_FIELDS if k in speaker}
    if zips and speaker.get("zip") is not None:
        custom.update({k: _number(zips[speaker["zip"]][k]) for k in ZIP_FIELDS if k in zips[speaker["zip"]]})
    if "noise" in utt:
        custom.update(noise=utt["noise"], snr_db=utt.get("snr_db") if utt["noise"] != "none" else None)
    return custom


def write_manifests(splits: Dict[str, Tuple[RecordingSet, SupervisionSet]], out_dir: Path) -> Dict[str, int]:
    """Write `recordings_<split>.jsonl.gz` and `supervisions_<split>.jsonl.gz`; return utterances per split."""
    counts = {}
    for split, (recordings, supervisions) in splits.items():
        save_manifest(recordings, Path(out_dir) / f"recordings_{split}.jsonl.gz")
        save_manifest(supervisions, Path(out_dir) / f"supervisions_{split}.jsonl.gz")
        counts[split] = len(recordings)
    return counts


@dataclasses.dataclass
class ManifestsConfig:
    """Options of `asrtools data manifests`.

    Attributes:
      sample_rate: the sample rate every recording must have (after resampling).
      resample: resample audio at another rate to `sample_rate` instead of refusing it.
    """

    sample_rate: int = 16000
    resample: bool = False


def make_manifests(config: ManifestsConfig, corpus_dir: Path, out_dir: Path, force: bool = False) -> bool:
    """The `data manifests` stage: read and check the corpus at the door, write and validate manifests.

    Writes `recordings_<split>.jsonl.gz`, `supervisions_<split>.jsonl.gz` and `stats.json`
    into `out_dir`; returns True if the stage ran, False if it was up to date.
    """
    from asrtools.pipeline import atomic_write_json, run_stage

    loaded = {}

    def load() -> None:
        loaded["splits"] = read_synth_corpus(corpus_dir, config.sample_rate, config.resample)

    def body(ctx) -> None:
        write_manifests(loaded["splits"], ctx.out_dir)
        stats = validate_manifest_dir(ctx.out_dir, config.sample_rate, check_audio=False)
        atomic_write_json(ctx.out_dir / "stats.json", stats)
        ctx.log.info("manifests:\n%s", format_statistics(stats))

    # `resample` enters the fingerprint only when set, so the synthetic recipe's finished
    # manifests stages stay up to date across this option's introduction.
    params: Dict[str, Any] = {"sample_rate": config.sample_rate}
    if config.resample:
        params["resample"] = True
    return run_stage(out_dir, "data manifests", params, {"corpus": corpus_dir}, body, force=force, validate=load)


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def validate_split(recordings_path: Path, supervisions_path: Path, sample_rate: int, check_audio: bool = True,
                   min_duration: float = 0.2, max_duration: float = 60.0) -> Dict[str, Any]:
    """Check one split's manifest files; raise `DataError` naming the first bad item.

    Returns statistics: utterances, hours, speakers, and counts per cohort field.
    """
    recordings = read_manifest(recordings_path, RecordingSet, "recordings")
    supervisions = read_manifest(supervisions_path, SupervisionSet, "supervisions")
    return check_split(recordings, supervisions, sample_rate, check_audio, min_duration, max_duration,
                       str(recordings_path), str(supervisions_path))


def check_split(recordings: RecordingSet, supervisions: SupervisionSet, sample_rate: int, check_audio: bool = True,
                min_duration: float = 0.2, max_duration: float = 60.0, recordings_name: str = "recordings",
                supervisions_name: str = "supervisions", segment_durations: Optional[bool] = None) -> Dict[str, Any]:
    """Check one split's recordings and supervisions; raise `DataError` naming the first bad item.

    Args:
      recordings, supervisions: the split's manifests.
      sample_rate: the required sample rate (after any resampling transform).
      check_audio: read the first 0.1 s of every recording (and check wav files for truncation).
      min_duration, max_duration: allowed length in seconds of each recording, or of each
        supervision when `segment_durations` (a corpus whose recordings hold several
        segments, e.g. a Kaldi data dir with `segments`). None: supervisions when any
        supervision does not span its whole recording, else recordings.
      recordings_name, supervisions_name: how messages name the manifests (their files).

    Returns statistics: utterances, hours, speakers, and counts per cohort field.
    """
    recordings_path, supervisions_path = recordings_name, supervisions_name
    if segment_durations is None:
        segment_durations = any(sup.recording_id in recordings and (
            sup.start > 1e-3 or abs(sup.duration - recordings[sup.recording_id].duration) > 1e-3) for sup in supervisions)
    for recording in recordings:
        if recording.sampling_rate != sample_rate:
            raise DataError(f"{recordings_path}: recording {recording.id} has sample rate "
                            f"{recording.sampling_rate} Hz, expected {sample_rate}")
        if not segment_durations and not min_duration <= recording.duration <= max_duration:
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
    # A split whose supervisions all lack a text (None: speaker-verification data such as VoxCeleb)
    # has no transcripts to check; once one supervision has a text, every one needs one.
    transcribed = any(sup.text is not None for sup in supervisions)
    for sup in supervisions:
        if sup.recording_id not in recordings:
            raise DataError(f"{supervisions_path}: supervision {sup.id} refers to unknown recording {sup.recording_id}")
        if transcribed and not (sup.text or "").strip():
            raise DataError(f"{supervisions_path}: supervision {sup.id} has an empty transcript")
        if sup.speaker is None:
            raise DataError(f"{supervisions_path}: supervision {sup.id} has no speaker")
        if sup.end > recordings[sup.recording_id].duration + 1e-3:
            raise DataError(f"{supervisions_path}: supervision {sup.id} ends after its recording")
        if segment_durations and not min_duration <= sup.duration <= max_duration:
            raise DataError(f"{supervisions_path}: supervision {sup.id} lasts {sup.duration:.2f} s "
                            f"(allowed {min_duration}–{max_duration} s)")
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
        # a speaker without the attribute (real corpora) counts as "(missing)": JSON keys must sort
        "speakers_per_cohort": {k: {("(missing)" if kk is None else kk): n
                                    for kk, n in sorted(v.items(), key=lambda kv: str(kv[0]))}
                                for k, v in cohorts.items()},
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
    stats, supervisions = {}, {}
    for split in find_splits(manifest_dir):
        stats[split] = validate_split(Path(manifest_dir) / f"recordings_{split}.jsonl.gz",
                                      Path(manifest_dir) / f"supervisions_{split}.jsonl.gz", sample_rate, check_audio)
        supervisions[split] = read_manifest(Path(manifest_dir) / f"supervisions_{split}.jsonl.gz", SupervisionSet,
                                            "supervisions")
    check_speaker_disjoint(supervisions, str(manifest_dir))
    return stats


def check_speaker_disjoint(supervisions: Dict[str, Iterable[SupervisionSegment]], where: str) -> None:
    """`DataError` naming the first speaker found in two splits (`where` names the corpus)."""
    owners: Dict[str, str] = {}
    for split, sups in supervisions.items():
        for sup in sups:
            other = owners.setdefault(sup.speaker, split)
            if other != split:
                raise DataError(f"{where}: speaker {sup.speaker} occurs in both {other} and {split}")


def format_statistics(stats: Dict[str, Dict[str, Any]]) -> str:
    """A readable per-split summary table."""
    lines = ["split   utts   hours  speakers  speakers per cohort"]
    for split, s in stats.items():
        cohorts = "; ".join(f"{k}: " + ", ".join(f"{v}={n}" for v, n in c.items())
                            for k, c in s["speakers_per_cohort"].items())
        lines.append(f"{split:6s} {s['utterances']:6d} {s['hours']:7.2f} {s['speakers']:9d}  {cohorts}")
    return "\n".join(lines)
