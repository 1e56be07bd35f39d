"""A tiny English Common Voice release in the real on-disk layout, for tests.

    cv-corpus-17.0-2024-03-15/en/{train,dev,test,validated,invalidated,other,reported}.tsv
    cv-corpus-17.0-2024-03-15/en/clip_durations.tsv
    cv-corpus-17.0-2024-03-15/en/clips/common_voice_en_<N>.mp3     (48 kHz mono MP3)

The TSVs have the columns of current releases (client_id, path, sentence_id, sentence,
sentence_domain, up_votes, down_votes, age, gender, accents, variant, locale, segment), the
values in Common Voice's vocabulary (ages "twenties", genders "male_masculine", free-text
accents, several joined with "|"). The speech is espeak-ng TTS (`speech`), encoded to MP3 by
libsndfile (soundfile), the format real clips come in.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import subprocess
import tempfile
from math import gcd
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

RELEASE = "cv-corpus-17.0-2024-03-15"
COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
           "gender", "accents", "variant", "locale", "segment"]

# Short read sentences, distinct enough for a small BPE model.
SENTENCES = [
    "Please call Stella and ask her to bring these things.",
    "Six spoons of fresh snow peas for her brother.",
    "We also need a small plastic snake and a big toy frog.",
    "She can scoop these things into three red bags.",
    "The rainbow is a division of white light into many beautiful colors.",
    "These take the shape of a long round arch.",
    "The boat drifted slowly along the quiet river.",
    "A warm wind came over the hills before the rain.",
    "He found the old map hidden under the kitchen floor.",
    "Our train leaves the station at seven in the morning.",
    "The children played football in the park after school.",
    "Bright lamps lit the narrow street at night.",
    "My sister bakes bread every Sunday for the family.",
    "The museum opens its new gallery next week.",
    "A cold cup of tea sat forgotten on the desk.",
    "They painted the fence green before the summer.",
]


def speech(text: str, voice: str, sample_rate: int) -> np.ndarray:
    """espeak-ng speaking `text` with `voice` (e.g. "en-us+f3"), resampled to `sample_rate`: `(T,)` float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(wav), text], check=True,
                       capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
    divisor = gcd(sample_rate, rate)
    audio = resample_poly(audio, sample_rate // divisor, rate // divisor).astype(np.float32)
    return np.clip(audio * 0.8, -1.0, 1.0)


@dataclasses.dataclass
class FakeVoiceDonor:
    """One Common Voice contributor of the fake release (raw Common Voice values)."""

    split: str
    voice: str
    age: str
    gender: str
    accents: str

    @property
    def client_id(self) -> str:
        return hashlib.sha512(f"{self.split}{self.voice}{self.age}{self.accents}".encode()).hexdigest()


# Common Voice's own vocabulary: predefined accents (several joined with "|"), free text, empty.
DONORS: List[FakeVoiceDonor] = [
    FakeVoiceDonor("train", "en-us+m3", "twenties", "male_masculine", "United States English"),
    FakeVoiceDonor("train", "en-gb+f3", "thirties", "female_feminine", "England English"),
    FakeVoiceDonor("train", "en-gb-scotland+m1", "fourties", "male_masculine", "Scottish English"),
    FakeVoiceDonor("train", "en-029+f2", "fifties", "female_feminine",
                   "West Indies and Bermuda (Bahamas, Bermuda, Jamaica, Trinidad)"),
    FakeVoiceDonor("train", "en-us-nyc+m2", "teens", "", "United States English|Southern United States"),
    FakeVoiceDonor("train", "en-gb-x-rp+f4", "sixties", "female_feminine", ""),
    FakeVoiceDonor("dev", "en-us+f1", "twenties", "female_feminine", "Canadian English"),
    FakeVoiceDonor("dev", "en-gb-x-gbcwmd+m4", "thirties", "male_masculine", "England English"),
    FakeVoiceDonor("dev", "en-gb+m2", "", "do_not_wish_to_say", "a slight Midwestern twang"),
    FakeVoiceDonor("test", "en-gb-x-gbclan+f1", "seventies", "female_feminine", "Irish English"),
    FakeVoiceDonor("test", "en-us+m4", "twenties", "male_masculine",
                   "India and South Asia (India, Pakistan, Sri Lanka)"),
    FakeVoiceDonor("test", "en-gb-scotland+f2", "fourties", "female_feminine", "Australian English"),
]


def write_tsv(path: Path, rows: Sequence[Dict[str, str]], columns: Sequence[str] = COLUMNS) -> None:
    """A Common Voice TSV (tab-separated, header row, no quoting)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), delimiter="\t", quoting=csv.QUOTE_NONE,
                                lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_fake_commonvoice(root: Path, utts_per_speaker: int = 2, donors: Sequence[FakeVoiceDonor] = DONORS,
                           sample_rate: int = 48000) -> Path:
    """Write the release under `root`; returns the release directory (the one holding `en/`)."""
    lang_dir = Path(root) / RELEASE / "en"
    clips = lang_dir / "clips"
    clips.mkdir(parents=True)
    rows: Dict[str, List[Dict[str, str]]] = {"train": [], "dev": [], "test": []}
    durations = []
    clip_number = 38_000_000
    for d, donor in enumerate(donors):
        for u in range(utts_per_speaker):
            clip_number += 17
            sentence_index = (d * utts_per_speaker + u) % len(SENTENCES)
            sentence = SENTENCES[sentence_index]
            name = f"common_voice_en_{clip_number}.mp3"
            audio = speech(sentence, donor.voice, sample_rate)
            sf.write(clips / name, audio, sample_rate, format="MP3", subtype="MPEG_LAYER_III")
            durations.append({"clip": name, "duration[ms]": str(round(1000 * len(audio) / sample_rate))})
            rows[donor.split].append({
                "client_id": donor.client_id, "path": name,
                "sentence_id": hashlib.sha256(sentence.encode()).hexdigest(), "sentence": sentence,
                "sentence_domain": "", "up_votes": "2", "down_votes": "0", "age": donor.age,
                "gender": donor.gender, "accents": donor.accents, "variant": "", "locale": "en", "segment": ""})
    for split, split_rows in rows.items():
        write_tsv(lang_dir / f"{split}.tsv", split_rows)
    write_tsv(lang_dir / "validated.tsv", [r for split_rows in rows.values() for r in split_rows])
    for name in ("invalidated", "other"):
        write_tsv(lang_dir / f"{name}.tsv", [])
    write_tsv(lang_dir / "reported.tsv", [], ["sentence_id", "sentence", "locale", "reason"])
    write_tsv(lang_dir / "clip_durations.tsv", durations, ["clip", "duration[ms]"])
    return lang_dir.parent
