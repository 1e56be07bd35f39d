"""LibriSpeech (and Mini LibriSpeech) as the user downloaded it from openslr.org/12 (/31).

Layout (the `LibriSpeech/` folder the tarballs unpack to is `--corpus-dir`):

    LibriSpeech/SPEAKERS.TXT                                   in every tarball
    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac

Parsing is lhotse's `prepare_librispeech`. Parts map to toolkit splits: every `train-*` part
(train-clean-100, train-clean-360, train-other-500; train-clean-5 of Mini LibriSpeech) goes
into `train`, dev-clean / test-clean (dev-clean-2) are `dev` / `test`, dev-other / test-other
are `dev_other` / `test_other`. `--parts train-960` stands for the three training parts
(960 hours). Transcripts stay as LibriSpeech writes them (upper case, as icefall trains).

Speaker sex: lhotse's LibriSpeech recipe leaves `gender` empty, so it is read here from the
corpus's own SPEAKERS.TXT (required); a speaker missing from it is reported in notes.txt.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from lhotse import RecordingSet, SupervisionSet

from asrtools.data.corpora.base import (
    CorpusRecipe,
    PreparedCorpus,
    PrepareOptions,
    call_lhotse,
    register_corpus,
    require_dir,
    require_file,
)
from asrtools.errors import ConfigError, DataError

TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
PARTS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
         "test-other", "train-clean-5", "dev-clean-2")
SPLIT_OF_PART = {"dev-clean": "dev", "test-clean": "test", "dev-other": "dev_other", "test-other": "test_other",
                 "dev-clean-2": "dev"}


def split_of(part: str) -> str:
    """The toolkit split a LibriSpeech part goes into."""
    return "train" if part.startswith("train-") else SPLIT_OF_PART[part]


def read_speakers_txt(path: Path) -> Dict[str, Dict[str, str]]:
    """SPEAKERS.TXT -> `{speaker: {"gender": "F"/"M", "subset": ..., "minutes": ...}}`.

    lhotse's LibriSpeech recipe does not read this file (its LibriTTS recipe parses the same
    format inline, so there is no function to call). Lines are `ID | SEX | SUBSET | MINUTES |
    NAME`; `;` starts a comment; a reader's name may itself contain `|` (speaker 60), hence
    the split into at most five fields.
    """
    speakers = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|", 4)]
        if len(fields) < 4 or not fields[0]:
            raise DataError(f"{path}:{number}: expected 'ID | SEX | SUBSET | MINUTES | NAME', got {line.strip()!r}")
        speakers[fields[0]] = {"gender": fields[1], "subset": fields[2], "minutes": fields[3]}
    return speakers


def transcript_ids(trans_path: Path) -> List[Tuple[int, str]]:
    """(line number, utterance id) of a `*.trans.txt` (just the ids, to check the audio exists)."""
    ids = []
    for number, line in enumerate(trans_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            ids.append((number, line.split(maxsplit=1)[0]))
    return ids


@register_corpus
class LibriSpeech(CorpusRecipe):
    name = "librispeech"
    description = "LibriSpeech / Mini LibriSpeech: PART/SPK/CHAP/*.flac + *.trans.txt + SPEAKERS.TXT"
    default_parts = ("train-clean-100", "dev-clean", "test-clean")

    def resolve_parts(self, corpus_dir: Path, parts: Sequence[str]) -> Tuple[str, ...]:
        resolved: List[str] = []
        for part in parts or self.default_parts:
            for name in (TRAIN_960 if part == "train-960" else (part,)):
                if name not in PARTS:
                    raise ConfigError(f"--parts {name}: not a LibriSpeech part (known: {', '.join(PARTS)}, train-960)")
                if name not in resolved:
                    resolved.append(name)
        return tuple(resolved)

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        """Every part directory, SPEAKERS.TXT, and the flac of every transcript line exist."""
        require_file(corpus_dir, "SPEAKERS.TXT")
        for part in parts:
            part_dir = require_dir(corpus_dir, part)
            transcripts = sorted(part_dir.rglob("*.trans.txt"))
            if not transcripts:
                raise DataError(f"{part}/ under {corpus_dir} holds no SPK/CHAP/*.trans.txt transcripts")
            for trans_path in transcripts:
                for number, utt_id in transcript_ids(trans_path):
                    audio = trans_path.parent / f"{utt_id}.flac"
                    if not audio.is_file():
                        raise DataError(f"{trans_path}:{number}: utterance {utt_id}: audio file {audio.name} "
                                        f"not found in {trans_path.parent}")

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        from lhotse.recipes import prepare_librispeech

        manifests = call_lhotse(prepare_librispeech, corpus_dir, corpus_dir, dataset_parts=list(parts),
                                num_jobs=options.num_jobs)
        by_split: Dict[str, Tuple[list, list]] = {}
        for part in parts:
            recordings, supervisions = by_split.setdefault(split_of(part), ([], []))
            recordings.extend(manifests[part]["recordings"])
            supervisions.extend(manifests[part]["supervisions"])
        splits = {split: (RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups))
                  for split, (recs, sups) in by_split.items()}
        sex = read_speakers_txt(corpus_dir / "SPEAKERS.TXT")
        rows, notes, absent = [], [], []
        for split, (_, supervisions) in splits.items():
            for speaker in sorted({s.speaker for s in supervisions}):
                if speaker not in sex:
                    absent.append(speaker)
                rows.append({"id": speaker, "split": split, "gender": sex.get(speaker, {}).get("gender", "")})
        if absent:
            notes.append(f"SPEAKERS.TXT lists no sex for {len(absent)} speaker(s): {', '.join(absent[:10])}")
        return PreparedCorpus(splits, rows, notes)
