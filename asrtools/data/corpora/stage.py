"""The `asrtools data prepare` stage: a corpus on disk -> manifests + speakers.csv, for any adapter.

`prepare_corpus(config, corpus_dir, out_dir)` runs through `run_stage`. Everything that can
fail on the user's data happens before any output is written: the corpus directory and the
adapter's layout are checked before `out_dir` is even created; then, at the stage's door
(the stage lock held, nothing else touched), lhotse's `prepare_*` parses the corpus, the
speaker table is normalised and geocoded, audio at another sample rate is resampled (when
asked) and every split is checked like `asrtools data validate` does (audio present and
readable, sample rate, durations, transcripts, speaker-disjoint splits). Then the body writes
the files `asrtools data manifests` writes for the synthetic corpus, so that every later stage
reads them unchanged:

    recordings_<split>.jsonl.gz, supervisions_<split>.jsonl.gz   lhotse manifests per split
    stats.json        utterances, hours, speakers and speakers per cohort field, per split
    speakers.csv      the speaker table (id, split, attributes, lat/lon, placed, place_detail)
    notes.txt         what the user should know (attributes some speakers lack, unplaced speakers)

The corpus is fingerprinted by a listing of its files (relative path, size, modification
time), not their bytes: a 960-hour corpus would otherwise be read in full on every run.
Audio a Kaldi `wav.scp` or a CSV table points to outside `--corpus-dir` is not in the listing:
after changing such audio in place, rerun with `--force`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from lhotse import RecordingSet, SupervisionSet

from asrtools.config import to_dict
from asrtools.data.corpora.base import CorpusRecipe, PrepareOptions, get_corpus
from asrtools.data.corpora.speaker_table import (
    attach_speaker_fields,
    build_speaker_table,
    missing_notes,
    speakers_csv_text,
)
from asrtools.data.manifests import check_speaker_disjoint, check_split, format_statistics, write_manifests
from asrtools.errors import ConfigError, DataError
from asrtools.pipeline import atomic_write_json, run_stage
from asrtools.pipeline.atomic import atomic_write_text

STAGE_NAME = "data prepare"


@dataclasses.dataclass
class PrepareConfig:
    """Options of `asrtools data prepare`.

    Attributes:
      corpus: the adapter (`asrtools.data.corpora.CORPORA`), e.g. "librispeech", "kaldi", "csv".
      parts: the corpus parts to prepare; empty: the adapter's default.
      sample_rate: the sample rate every recording must have (after resampling).
      resample: resample recordings at another rate to `sample_rate` instead of refusing them.
      check_audio: read the start of every audio file before writing anything.
      geocode: place speakers whose attributes name a place (`asrtools.data.geocode`).
      min_duration, max_duration: allowed utterance length in seconds.
      num_jobs: threads for lhotse's `prepare_*`.
      options: adapter-specific settings (`--option KEY=VALUE`).
    """

    corpus: str
    parts: List[str] = dataclasses.field(default_factory=list)
    sample_rate: int = 16000
    resample: bool = False
    check_audio: bool = True
    geocode: bool = True
    min_duration: float = 0.2
    max_duration: float = 60.0
    num_jobs: int = 1
    options: Dict[str, str] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate {self.sample_rate}: must be positive")
        if not 0 <= self.min_duration < self.max_duration:
            raise ConfigError(f"durations: need 0 <= min_duration < max_duration "
                              f"(got {self.min_duration}, {self.max_duration})")
        if self.num_jobs < 1:
            raise ConfigError(f"num_jobs {self.num_jobs}: must be >= 1")


@dataclasses.dataclass
class PreparedSplits:
    """What the door check hands the stage body: checked manifests, speaker table, stats, notes."""

    splits: Dict[str, Tuple[RecordingSet, SupervisionSet]]
    speakers: List[Dict[str, str]]
    stats: Dict[str, Dict[str, Any]]
    notes: List[str]


def corpus_listing_digest(corpus_dir: Path) -> str:
    """SHA-256 of every file's relative path, size and modification time under `corpus_dir`."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(corpus_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                stat = path.stat()
                entry = f"{stat.st_size}\t{stat.st_mtime_ns}"
            except OSError:  # a dangling symlink: its name still counts
                entry = "unreadable"
            digest.update(f"{path.relative_to(corpus_dir)}\t{entry}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass
class CheckedCorpus:
    """A corpus whose options and on-disk layout passed the adapter's checks."""

    recipe: CorpusRecipe
    parts: Tuple[str, ...]
    options: PrepareOptions


def check_corpus(config: PrepareConfig, corpus_dir: Path) -> CheckedCorpus:
    """Config, adapter options, parts and layout (cheap: no audio is decoded); `DataError`/`ConfigError`."""
    config.validate()
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: corpus directory not found")
    recipe = get_corpus(config.corpus)
    options = PrepareOptions(num_jobs=config.num_jobs, extra=dict(config.options))
    recipe.check_options(options)
    parts = recipe.resolve_parts(corpus_dir, config.parts)
    recipe.check_layout(corpus_dir, parts)
    return CheckedCorpus(recipe, parts, options)


def load_corpus(config: PrepareConfig, corpus_dir: Path, checked: Optional[CheckedCorpus] = None) -> PreparedSplits:
    """Parse, normalise, resample and check a corpus in memory; `DataError` naming the first bad item.

    Nothing is written. This is the stage's door check and the library entry point for
    using a corpus without writing manifests.

    Args:
      checked: the result of `check_corpus` when the caller has already run it.
    """
    corpus_dir = Path(corpus_dir)
    checked = checked or check_corpus(config, corpus_dir)
    recipe, parts = checked.recipe, checked.parts
    prepared = recipe.prepare(corpus_dir, parts, checked.options)
    if not prepared.splits:
        raise DataError(f"{corpus_dir}: no utterances found for parts {', '.join(parts) or '(all)'}")
    speakers = build_speaker_table(prepared.speakers, geocode=config.geocode)
    by_id = {row["id"]: row for row in speakers}
    splits, stats = {}, {}
    for split, (recordings, supervisions) in prepared.splits.items():
        if config.resample:
            recordings = RecordingSet.from_recordings(
                r if r.sampling_rate == config.sample_rate else r.resample(config.sample_rate) for r in recordings)
        where = f"{corpus_dir} ({split})"
        supervisions = attach_speaker_fields(supervisions, by_id, where)
        try:
            stats[split] = check_split(recordings, supervisions, config.sample_rate, config.check_audio,
                                       config.min_duration, config.max_duration, where, where)
        except DataError as err:
            hint = f" (--resample {config.sample_rate} resamples it)" if "sample rate" in str(err) else ""
            raise DataError(f"{err}{hint}") from None
        splits[split] = (recordings, supervisions)
    check_speaker_disjoint({s: sups for s, (_, sups) in splits.items()}, str(corpus_dir))
    return PreparedSplits(splits, speakers, stats, list(prepared.notes) + missing_notes(speakers))


def prepare_corpus(config: PrepareConfig, corpus_dir: Path, out_dir: Path, force: bool = False) -> bool:
    """Run the `data prepare` stage: write manifests, stats.json, speakers.csv, notes.txt into `out_dir`.

    Args:
      config: the corpus adapter and options.
      corpus_dir: the corpus as the user has it on disk (never written to).
      out_dir: the stage directory.
      force: rerun even if up to date.

    Returns:
      True if the stage ran, False if it was up to date.

    Raises:
      DataError / ConfigError: one line naming the missing or bad item; `out_dir` untouched.
    """
    corpus_dir = Path(corpus_dir).resolve()
    checked = check_corpus(config, corpus_dir)  # before the stage directory (and its lock) exists
    loaded: Dict[str, PreparedSplits] = {}

    def door() -> None:
        loaded["corpus"] = load_corpus(config, corpus_dir, checked)

    def body(ctx) -> None:
        corpus = loaded["corpus"]
        write_manifests(corpus.splits, ctx.out_dir)
        atomic_write_text(ctx.out_dir / "speakers.csv", speakers_csv_text(corpus.speakers))
        atomic_write_text(ctx.out_dir / "notes.txt", "".join(note + "\n" for note in corpus.notes))
        atomic_write_json(ctx.out_dir / "stats.json", corpus.stats)
        ctx.log.info("manifests:\n%s", format_statistics(corpus.stats))
        for note in corpus.notes:
            ctx.log.warning("note: %s", note)

    params = {**to_dict(config), "corpus_dir": str(corpus_dir), "corpus_files": corpus_listing_digest(corpus_dir)}
    return run_stage(out_dir, STAGE_NAME, params, {}, body, force=force, validate=door)
