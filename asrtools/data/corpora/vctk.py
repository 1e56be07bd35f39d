"""CSTR VCTK -> toolkit manifests + a geocodable speaker table, with speaker-disjoint splits.

Two releases, told apart by their audio folder (lhotse's `prepare_vctk` reads both):

    VCTK-Corpus-0.92/  (Edinburgh DataShare)  txt/p225/p225_001.txt
                       wav48_silence_trimmed/p225/p225_001_mic{1,2}.flac   speaker-info.txt (ids p225)
    VCTK-Corpus/       (release 0.80)         txt/p225/p225_001.txt
                       wav48/p225/p225_001.wav                             speaker-info.txt (ids 225)

`--option mic=mic1|mic2` picks 0.92's microphone (lhotse's default mic2; lhotse skips p280,
whose mic2 files the release lacks, and p362's missing files). lhotse indexes a transcript's
audio without checking it exists, so `prepare` names the first transcript without audio
before calling it.

VCTK has no official split. Speakers are split speaker-disjointly and deterministically:
sorted by accent, then by a hash of `split_seed` and the id, and dealt to train/dev/test in the
proportions `train_fraction`/`dev_fraction`/`test_fraction` (systematic sampling, so every
accent with enough speakers lands in every split). `--parts` picks which of the three splits
are written: with a model trained elsewhere, `--parts "dev test"` and `--option
train_fraction=0` make every speaker an evaluation speaker.

Speaker table: `gender` (F/M), `age` (years) and `age_group` (its decade in Common Voice's
words: "teens", "twenties", ...), `accent` (VCTK's one word: English, Scottish,
NorthernIrish, ...), `region` (VCTK's free text, a trailing parenthesised comment moved to
`comment`), and `country`, the country or UK nation the accent names (English -> England,
American -> United States; Indian -> India), which the stage's geocoder uses to pick among
cities of the same name ("Hamilton" of a Canadian speaker is Hamilton, Ontario) and to place
a speaker whose region is no place it knows ("Southern England") at the country's population
centre; `placed` in speakers.csv says which.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Set, Tuple

from lhotse import RecordingSet, SupervisionSet

from asrtools.data.corpora.base import (
    CorpusRecipe,
    PreparedCorpus,
    PrepareOptions,
    register_corpus,
    require_dir,
    require_file,
)
from asrtools.data.corpora.commonvoice import unreadable_audio
from asrtools.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")
NEW_AUDIO, OLD_AUDIO = "wav48_silence_trimmed", "wav48"
# The country or UK nation each of VCTK's accent words names (speaker-info.txt's ACCENTS column).
ACCENT_COUNTRY = {
    "english": "England", "scottish": "Scotland", "welsh": "Wales", "northernirish": "Northern Ireland",
    "irish": "Ireland", "american": "United States", "canadian": "Canada", "australian": "Australia",
    "newzealand": "New Zealand", "southafrican": "South Africa", "indian": "India",
}
AGE_GROUPS = ((20, "teens"), (30, "twenties"), (40, "thirties"), (50, "forties"), (60, "fifties"),
              (70, "sixties"), (80, "seventies"), (90, "eighties"))


def age_group(age: str) -> str:
    """The decade of an age in years, in Common Voice's words ("23" -> "twenties"); "" when not a number."""
    try:
        years = int(age)
    except (TypeError, ValueError):
        return ""
    for upper, label in AGE_GROUPS:
        if years < upper:
            return label
    return "nineties"


def split_region(region: str) -> Tuple[str, str]:
    """`(region, comment)`: "Paris (mic2 files unavailable)" -> ("Paris", "mic2 files unavailable")."""
    match = re.fullmatch(r"(.*?)\s*\((.*)\)\s*", region or "")
    if match:
        return match.group(1).strip(), match.group(2).strip()
    return (region or "").strip(), ""


def read_speaker_info(path: Path) -> Dict[str, Dict[str, str]]:
    """speaker-info.txt checked the way lhotse reads it: `{id as in the file: {age, gender, accent, region}}`.

    Raises:
      DataError: naming the line lhotse would fail on (a header without ID AGE GENDER
        ACCENTS REGION, a row with fewer than four fields or a non-numeric age).
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not {"ID", "AGE", "GENDER", "ACCENTS", "REGION"} <= set(lines[0].split()):
        raise DataError(f"{path}:1: header must name ID AGE GENDER ACCENTS REGION")
    rows = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) < 4:
            raise DataError(f"{path}:{number}: expected ID AGE GENDER ACCENTS [REGION], got {line.strip()!r}")
        if not fields[1].isdigit():
            raise DataError(f"{path}:{number}: age {fields[1]!r} of speaker {fields[0]} is not a number")
        rows[fields[0]] = {"age": fields[1], "gender": fields[2], "accent": fields[3], "region": " ".join(fields[4:])}
    return rows


def assign_splits(accents: Mapping[str, str], fractions: Mapping[str, float], seed: str) -> Dict[str, str]:
    """Speaker -> split: accent-sorted, hash-shuffled within an accent, dealt by running quota.

    Speaker i (0-based) of that order goes to the split whose quota `fraction * (i + 1)` is most
    ahead of its count, so each accent's speakers are spread over the splits in proportion.
    """
    order = sorted(accents, key=lambda s: (accents[s], hashlib.sha1(f"{seed}:{s}".encode()).hexdigest()))
    counts = {split: 0 for split in fractions}
    assignment = {}
    for i, speaker in enumerate(order):
        split = max(fractions, key=lambda k: (fractions[k] * (i + 1) - counts[k], -list(fractions).index(k)))
        counts[split] += 1
        assignment[speaker] = split
    return assignment


def _fraction(options: PrepareOptions, key: str, default: str) -> float:
    text = options.get(key, default)
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--option {key}={text}: not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--option {key}={text}: must be between 0 and 1")
    return value


@register_corpus
class Vctk(CorpusRecipe):
    """VCTK 0.92 or 0.80 through lhotse's `prepare_vctk`; speaker-disjoint train/dev/test."""

    name = "vctk"
    description = "CSTR VCTK 0.92 (wav48_silence_trimmed/*.flac) or 0.80 (wav48/*.wav) + txt/ + speaker-info.txt"
    default_parts = SPLITS
    option_help: Mapping[str, str] = {
        "mic": "0.92's microphone, mic1 or mic2 (default mic2, as lhotse)",
        "train_fraction": "share of the speakers in train (default: 1 - dev_fraction - test_fraction)",
        "dev_fraction": "share of the speakers in dev (default 0.2)",
        "test_fraction": "share of the speakers in test (default 0.2)",
        "split_seed": "seed of the speaker split (default 0)",
    }

    @staticmethod
    def edinburgh(corpus_dir: Path) -> bool:
        """True for the 0.92 layout (wav48_silence_trimmed/), False for 0.80 (wav48/)."""
        if (Path(corpus_dir) / NEW_AUDIO).is_dir():
            return True
        if (Path(corpus_dir) / OLD_AUDIO).is_dir():
            return False
        raise DataError(f"{NEW_AUDIO}/ (release 0.92) or {OLD_AUDIO}/ (release 0.80) not found under {corpus_dir}")

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        unknown = [p for p in parts if p not in SPLITS]
        if unknown:
            raise ConfigError(f"--parts {unknown[0]}: VCTK's splits are made here: {', '.join(SPLITS)}")
        require_file(corpus_dir, "speaker-info.txt")
        require_dir(corpus_dir, "txt")
        self.edinburgh(corpus_dir)
        read_speaker_info(Path(corpus_dir) / "speaker-info.txt")

    def fractions(self, options: PrepareOptions) -> Dict[str, float]:
        """`{train, dev, test: share of speakers}` from the options; `ConfigError` unless they sum to 1."""
        dev, test = _fraction(options, "dev_fraction", "0.2"), _fraction(options, "test_fraction", "0.2")
        train = _fraction(options, "train_fraction", str(max(0.0, 1.0 - dev - test)))
        if abs(train + dev + test - 1.0) > 1e-6:
            raise ConfigError(f"--option train/dev/test_fraction: {train} + {dev} + {test} must sum to 1")
        return {"train": train, "dev": dev, "test": test}

    def check_transcripts_have_audio(self, corpus_dir: Path, edinburgh: bool, mic: str) -> None:
        """`DataError` naming the first transcript whose audio is missing (lhotse would fail with a KeyError)."""
        for txt in sorted((Path(corpus_dir) / "txt").rglob("*.txt")):
            speaker = txt.name.split("_")[0]
            if edinburgh:
                if speaker == "p280" and mic == "mic2":
                    continue  # lhotse skips p280 with mic2: the release has no mic2 files for p280
                audio = Path(corpus_dir) / NEW_AUDIO / txt.parent.name / f"{txt.stem}_{mic}.flac"
            else:
                audio = Path(corpus_dir) / OLD_AUDIO / txt.parent.name / f"{txt.stem}.wav"
            if speaker != "p362" and not audio.is_file():  # lhotse skips p362's missing files
                raise DataError(f"{txt.relative_to(corpus_dir)}: no audio {audio.relative_to(corpus_dir)} "
                                f"under {corpus_dir}")

    def parse(self, corpus_dir: Path, options: PrepareOptions) -> Tuple[RecordingSet, SupervisionSet, bool, str]:
        """lhotse's `prepare_vctk` on the checked corpus: `(recordings, supervisions, is 0.92, mic)`."""
        from lhotse.audio.utils import AudioLoadingError
        from lhotse.recipes import prepare_vctk

        mic = options.get("mic", "mic2")
        if mic not in ("mic1", "mic2"):
            raise ConfigError(f"--option mic={mic}: must be mic1 or mic2")
        edinburgh = self.edinburgh(corpus_dir)
        if not edinburgh and "mic" in options.extra:
            raise ConfigError(f"--option mic: {corpus_dir} is release 0.80 (wav48/), which has one microphone")
        self.check_transcripts_have_audio(corpus_dir, edinburgh, mic)
        try:
            manifests = prepare_vctk(corpus_dir, output_dir=None, use_edinburgh_vctk_url=edinburgh, mic_id=mic)
        except AudioLoadingError as err:
            raise unreadable_audio(err) from None
        return manifests["recordings"], manifests["supervisions"], edinburgh, mic

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        fractions = self.fractions(options)
        recordings, supervisions, edinburgh, mic = self.parse(corpus_dir, options)
        info = read_speaker_info(Path(corpus_dir) / "speaker-info.txt")
        by_speaker: Dict[str, Dict[str, str]] = {}
        for sup in supervisions:
            by_speaker.setdefault(sup.speaker, info.get(sup.speaker if edinburgh else sup.speaker[1:], {}))
        assignment = assign_splits({s: meta.get("accent", "") for s, meta in by_speaker.items()}, fractions,
                                   options.get("split_seed", "0"))
        splits = {part: split_manifests(recordings, supervisions, {s for s, p in assignment.items() if p == part},
                                        part, fractions) for part in parts}
        rows = [speaker_row(speaker, assignment[speaker], meta) for speaker, meta in sorted(by_speaker.items())]
        rows = [row for row in rows if row["split"] in parts]
        return PreparedCorpus(splits=splits, speakers=rows, notes=_notes(info, by_speaker, edinburgh, mic, assignment))


def split_manifests(recordings: RecordingSet, supervisions: SupervisionSet, members: Set[str], part: str,
                    fractions: Mapping[str, float]) -> Tuple[RecordingSet, SupervisionSet]:
    """The manifests of one split's speakers `members`; `ConfigError` when the split has none.

    lhotse's per-utterance gender/accent/age/region are dropped: the stage attaches the speaker's
    normalised row (region without its comment, age as text, the country, ...).
    """
    sups = supervisions.filter(lambda s: s.speaker in members).to_eager()
    if len(sups) == 0:
        raise ConfigError(f"split {part}: no speakers (fractions {dict(fractions)}); change "
                          f"--option {part}_fraction or leave {part} out of --parts")
    recording_ids = {s.recording_id for s in sups}
    sups = SupervisionSet.from_segments(dataclasses.replace(s, gender=None, custom=None) for s in sups)
    return recordings.filter(lambda r: r.id in recording_ids).to_eager(), sups


def speaker_row(speaker: str, split: str, meta: Mapping[str, str]) -> Dict[str, str]:
    """One speakers.csv row from a speaker-info.txt row (empty attributes when the file lacks the speaker)."""
    region, comment = split_region(meta.get("region", ""))
    accent = meta.get("accent", "")
    row = {"id": speaker, "split": split, "gender": meta.get("gender", ""), "age": meta.get("age", ""),
           "age_group": age_group(meta.get("age", "")), "accent": accent, "region": region,
           "country": ACCENT_COUNTRY.get(accent.lower(), "")}
    if comment:
        row["comment"] = comment
    return row


def _notes(info: Mapping[str, Mapping[str, str]], by_speaker: Mapping[str, Mapping[str, str]], edinburgh: bool,
           mic: str, assignment: Mapping[str, str]) -> List[str]:
    notes = []
    listed = {(k if edinburgh else f"p{k}") for k in info}
    without_audio = sorted(listed - set(by_speaker))
    if without_audio:
        notes.append(f"{len(without_audio)} speakers of speaker-info.txt have no utterances"
                     f"{' with ' + mic if edinburgh else ''} (no transcripts or no audio): {', '.join(without_audio)}")
    unlisted = sorted(set(by_speaker) - listed)
    if unlisted:
        notes.append(f"{len(unlisted)} speakers are not in speaker-info.txt (no attributes): {', '.join(unlisted)}")
    sizes = Counter(assignment.values())
    notes.append("speaker split: " + ", ".join(f"{split} {sizes.get(split, 0)}" for split in SPLITS))
    return notes
