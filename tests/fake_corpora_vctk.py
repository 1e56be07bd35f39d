"""A tiny CSTR VCTK corpus in either real on-disk layout, for tests.

Edinburgh DataShare release 0.92 (`VCTK-Corpus-0.92/`, what the corpus's site serves today):

    speaker-info.txt                         ID  AGE  GENDER  ACCENTS  REGION COMMENTS / p225 ...
    txt/p225/p225_001.txt                    one sentence per file
    wav48_silence_trimmed/p225/p225_001_mic1.flac, ..._mic2.flac   (48 kHz FLAC, two microphones)

The older release 0.80 (`VCTK-Corpus/`): `speaker-info.txt` with bare numeric ids (225),
`txt/p225/p225_001.txt`, `wav48/p225/p225_001.wav` (48 kHz WAV).

Speaker rows are real VCTK rows (id, age, gender, accent, region as the corpus lists them,
including a speaker with no region, one whose region carries a comment, and speaker p315,
whose transcripts the corpus lacks). The speech is espeak-ng TTS
(`fake_corpora_commonvoice.speech`) with an espeak-ng accent close to the speaker's.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Sequence

import soundfile as sf

from fake_corpora_commonvoice import SENTENCES, speech


@dataclasses.dataclass
class FakeVctkSpeaker:
    """One speaker-info.txt row (as the corpus writes it) and the TTS voice that reads for it."""

    id: str           # p225
    age: int
    gender: str       # F | M
    accent: str       # one word: English, Scottish, NorthernIrish, ...
    region: str       # free text, possibly empty or with a comment
    voice: str        # espeak-ng voice
    has_text: bool = True


SPEAKERS: List[FakeVctkSpeaker] = [
    FakeVctkSpeaker("p225", 23, "F", "English", "Southern  England", "en-gb+f3"),
    FakeVctkSpeaker("p226", 22, "M", "English", "Surrey", "en-gb-x-rp+m3"),
    FakeVctkSpeaker("p227", 38, "M", "English", "Cumbria", "en-gb-x-gbclan+m1"),
    FakeVctkSpeaker("p229", 23, "F", "English", "Southern  England", "en-gb+f2"),
    FakeVctkSpeaker("p234", 22, "F", "Scottish", "West  Dumfries", "en-gb-scotland+f1"),
    FakeVctkSpeaker("p237", 22, "M", "Scottish", "Fife", "en-gb-scotland+m2"),
    FakeVctkSpeaker("p238", 22, "F", "NorthernIrish", "Belfast", "en-gb-x-gbcwmd+f4"),
    FakeVctkSpeaker("p245", 25, "M", "Irish", "Dublin", "en-gb-x-gbcwmd+m4"),
    FakeVctkSpeaker("p248", 23, "F", "Indian", "", "en-us+f1"),
    FakeVctkSpeaker("p253", 22, "F", "Welsh", "Cardiff", "en-gb-x-rp+f2"),
    FakeVctkSpeaker("p294", 33, "F", "American", "San  Francisco", "en-us+f3"),
    FakeVctkSpeaker("p301", 23, "F", "American", "North  Carolina", "en-us-nyc+f2"),
    FakeVctkSpeaker("p314", 26, "F", "SouthAfrican", "Cape  Town", "en-029+f4"),
    FakeVctkSpeaker("p317", 23, "F", "Canadian", "Hamilton", "en-us+f4"),
    FakeVctkSpeaker("p326", 26, "M", "Australian", "English  Sydney", "en-gb+m4"),
    FakeVctkSpeaker("p345", 22, "M", "American", "Florida", "en-us+m2"),
    FakeVctkSpeaker("p315", 18, "M", "American", "Connecticut  (Text unavailable)", "en-us+m3", has_text=False),
]


def speaker_info(speakers: Sequence[FakeVctkSpeaker], release: str) -> str:
    """speaker-info.txt as the release writes it (0.92: `p225` ids and a COMMENTS column; 0.80: `225`)."""
    header = "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n" if release == "0.92" else "ID  AGE  GENDER  ACCENTS  REGION\n"
    lines = []
    for s in speakers:
        ident = s.id if release == "0.92" else s.id[1:]
        lines.append(f"{ident}  {s.age}  {s.gender}    {s.accent}    {s.region}".rstrip() + "\n")
    return header + "".join(lines)


def write_fake_vctk(root: Path, release: str = "0.92", utts_per_speaker: int = 2,
                    speakers: Sequence[FakeVctkSpeaker] = SPEAKERS, sample_rate: int = 48000) -> Path:
    """Write the corpus under `root`; returns its directory (`VCTK-Corpus-0.92` or `VCTK-Corpus`)."""
    if release not in ("0.92", "0.80"):
        raise ValueError(f"release must be 0.92 or 0.80, got {release!r}")
    corpus = Path(root) / ("VCTK-Corpus-0.92" if release == "0.92" else "VCTK-Corpus")
    corpus.mkdir(parents=True)
    (corpus / "speaker-info.txt").write_text(speaker_info(speakers, release))
    (corpus / ("README.txt" if release == "0.92" else "README")).write_text("CSTR VCTK Corpus (fake, for tests)\n")
    for s_index, speaker in enumerate(speakers):
        for u in range(utts_per_speaker):
            utt = f"{speaker.id}_{u + 1:03d}"
            sentence = SENTENCES[(s_index * utts_per_speaker + u) % len(SENTENCES)]
            if speaker.has_text:
                text_dir = corpus / "txt" / speaker.id
                text_dir.mkdir(parents=True, exist_ok=True)
                (text_dir / f"{utt}.txt").write_text(sentence + "\n")
            audio = speech(sentence, speaker.voice, sample_rate)
            if release == "0.92":
                audio_dir = corpus / "wav48_silence_trimmed" / speaker.id
                audio_dir.mkdir(parents=True, exist_ok=True)
                for mic, gain in (("mic1", 1.0), ("mic2", 0.7)):
                    sf.write(audio_dir / f"{utt}_{mic}.flac", audio * gain, sample_rate, subtype="PCM_16")
            else:
                audio_dir = corpus / "wav48" / speaker.id
                audio_dir.mkdir(parents=True, exist_ok=True)
                sf.write(audio_dir / f"{utt}.wav", audio, sample_rate, subtype="PCM_16")
    return corpus
