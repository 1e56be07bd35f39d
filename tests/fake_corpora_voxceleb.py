"""A tiny VoxCeleb1 in the real on-disk layout, for tests.

    VoxCeleb1/vox1_meta.csv                       tab-separated: VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set
    VoxCeleb1/wav/id1XXXX/<11-char video id>/NNNNN.wav   16 kHz mono 16-bit PCM (vox1_dev_wav.zip + vox1_test_wav.zip)
    VoxCeleb1/veri_test2.txt                      the cleaned official trial list (VoxCeleb1-O):
                                                  `label id10270/VIDEO/00001.wav id10270/VIDEO/00002.wav`

Speaker ids follow the real numbering (dev speakers from id10001, test speakers from id10270),
gender is "m"/"f" and nationality a country name, as in the real meta file. The speech is
espeak-ng TTS, one voice variant and pitch per speaker (so the speakers differ), a few seconds
per utterance.
"""
from __future__ import annotations

import dataclasses
import itertools
import subprocess
import tempfile
from math import gcd
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SENTENCES = [
    "I grew up in a small town by the sea and I still miss the sound of the waves.",
    "The first film I made was a disaster but we learned a great deal from it.",
    "Music has always been a part of my life since I was a child.",
    "We spent three months on the road and played almost every night.",
    "My grandmother taught me how to cook when I was very young.",
    "The hardest part of the job is the waiting between the scenes.",
    "I think the audience can always tell when you are not being honest.",
    "We trained every morning at six before the sun came up.",
    "Writing the book took much longer than I ever expected.",
    "The best advice I ever got was to listen more than I talk.",
    "We were lucky to have such a wonderful crew on that project.",
    "I love going back home to see my family during the holidays.",
]


def speech(text: str, voice: str, pitch: int, sample_rate: int = 16000, speed: int = 165) -> np.ndarray:
    """espeak-ng speaking `text` with `voice` at `pitch` (0-99), resampled to `sample_rate`: `(T,)` float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), text],
                       check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
    divisor = gcd(sample_rate, rate)
    audio = resample_poly(audio, sample_rate // divisor, rate // divisor).astype(np.float32)
    return np.clip(audio * 0.8, -1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class FakeCelebrity:
    """One speaker of the fake VoxCeleb1 (the meta file's values)."""

    id: str
    name: str
    gender: str        # "m" / "f" as in vox1_meta.csv
    nationality: str
    set: str           # "dev" / "test"
    voice: str         # espeak-ng voice
    pitch: int


SPEAKERS: List[FakeCelebrity] = [
    FakeCelebrity("id10001", "A.J._Buckley", "m", "Ireland", "dev", "en-gb+m1", 35),
    FakeCelebrity("id10002", "A.R._Rahman", "m", "India", "dev", "en-us+m3", 50),
    FakeCelebrity("id10003", "Aamir_Khan", "m", "India", "dev", "en-gb-scotland+m2", 60),
    FakeCelebrity("id10004", "Aaron_Tveit", "m", "USA", "dev", "en-us+m7", 40),
    FakeCelebrity("id10005", "Aaron_Yoo", "m", "USA", "dev", "en-029+m4", 55),
    FakeCelebrity("id10006", "Abbie_Cornish", "f", "Australia", "dev", "en-gb+f1", 60),
    FakeCelebrity("id10007", "Abigail_Breslin", "f", "USA", "dev", "en-us+f2", 70),
    FakeCelebrity("id10008", "Abigail_Spencer", "f", "USA", "dev", "en-gb-x-rp+f3", 55),
    FakeCelebrity("id10270", "Eartha_Kitt", "f", "USA", "test", "en-us+f4", 65),
    FakeCelebrity("id10271", "Ed_Westwick", "m", "UK", "test", "en-gb+m5", 45),
    FakeCelebrity("id10272", "Eddie_Izzard", "m", "UK", "test", "en-gb-x-gbclan+m6", 30),
    FakeCelebrity("id10273", "Edie_Falco", "f", "USA", "test", "en-us+f5", 75),
]

META_HEADER = "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"
TRIAL_LIST = "veri_test2.txt"


def video_id(speaker: str, number: int) -> str:
    """A YouTube-like 11-character video id (letters, digits, '-' and '_', as the real ones)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    seed = int(speaker[2:]) * 31 + number * 7
    rng = np.random.default_rng(seed)
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=11))


def write_fake_voxceleb1(root: Path, videos_per_speaker: int = 2, utts_per_video: int = 2,
                         speakers: Sequence[FakeCelebrity] = SPEAKERS, trial_list: bool = True) -> Path:
    """Write the corpus under `root/VoxCeleb1`; returns that directory.

    The trial list holds every target pair of the test speakers' utterances and, per pair of
    test speakers, two non-target trials, in the real format (paths relative to wav/).
    """
    corpus = Path(root) / "VoxCeleb1"
    (corpus / "wav").mkdir(parents=True)
    lines = [META_HEADER]
    test_utts: List[Tuple[str, str]] = []  # (speaker, path relative to wav/)
    sentence = itertools.cycle(SENTENCES)
    for spk in speakers:
        lines.append(f"{spk.id}\t{spk.name}\t{spk.gender}\t{spk.nationality}\t{spk.set}")
        for v in range(videos_per_speaker):
            video = video_id(spk.id, v)
            for u in range(utts_per_video):
                relative = f"{spk.id}/{video}/{u + 1:05d}.wav"
                path = corpus / "wav" / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, speech(next(sentence), spk.voice, spk.pitch), 16000, subtype="PCM_16")
                if spk.set == "test":
                    test_utts.append((spk.id, relative))
    (corpus / "vox1_meta.csv").write_text("\n".join(lines) + "\n")
    if trial_list:
        (corpus / TRIAL_LIST).write_text("".join(f"{label} {a} {b}\n" for label, a, b in official_trials(test_utts)))
    return corpus


def official_trials(utts: Sequence[Tuple[str, str]]) -> List[Tuple[int, str, str]]:
    """Every target pair, plus two non-target trials per pair of speakers (deterministic)."""
    trials = []
    for (spk_a, a), (spk_b, b) in itertools.combinations(utts, 2):
        if spk_a == spk_b:
            trials.append((1, a, b))
    by_speaker = {}
    for spk, path in utts:
        by_speaker.setdefault(spk, []).append(path)
    for spk_a, spk_b in itertools.combinations(sorted(by_speaker), 2):
        trials.append((0, by_speaker[spk_a][0], by_speaker[spk_b][-1]))
        trials.append((0, by_speaker[spk_a][-1], by_speaker[spk_b][0]))
    return trials
