"""Configuration of the synthetic corpus and its size presets (tiny, default, large)."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List

from asrtools.data.synth.speakers import ESPEAK_ACCENTS

SPLITS = ("train", "dev", "test")


@dataclasses.dataclass
class SynthConfig:
    """Everything that determines the corpus; with the same values it is byte-identical.

    The training split is imbalanced on purpose (rare accents, a small second-engine
    group) so cohort WER gaps appear; dev and test have the same number of speakers per
    accent so every cohort can be measured.
    """

    seed: int = 0
    speaker_id_prefix: str = "s"  # ids are <prefix>0001...; a distinct prefix keeps two corpora's ids apart
    utts_per_speaker: int = 40
    train_speakers: Dict[str, int] = dataclasses.field(default_factory=dict)  # accent -> count
    dev_speakers_per_accent: int = 4
    test_speakers_per_accent: int = 6
    flite_speakers: Dict[str, int] = dataclasses.field(default_factory=dict)  # split -> count
    female_fraction: float = 0.5
    vocab_size: int = 2000
    min_words: int = 5
    max_words: int = 16
    sentence_split: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"train": 0.8, "dev": 0.1, "test": 0.1})
    channel_probs: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"close": 0.6, "far": 0.25, "telephone": 0.15})
    noise_probs: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {"none": 0.5, "white": 0.08, "pink": 0.12, "brown": 0.1, "babble": 0.2})
    snr_db: List[float] = dataclasses.field(default_factory=lambda: [5.0, 25.0])
    level_db: List[float] = dataclasses.field(default_factory=lambda: [-12.0, -1.0])
    rate_jitter: float = 0.05
    zips_per_region: int = 6
    sample_rate: int = 16000
    babble_talkers: int = 6
    babble_seconds: float = 30.0
    min_seconds_per_word: float = 0.12
    max_seconds_per_word: float = 1.2

    def validate(self) -> None:
        unknown = sorted(set(self.train_speakers) - set(ESPEAK_ACCENTS))
        if unknown:
            raise ValueError(f"train_speakers: unknown accent {unknown[0]!r} "
                             f"(known: {', '.join(sorted(ESPEAK_ACCENTS))})")
        if sorted(self.sentence_split) != sorted(SPLITS):
            raise ValueError(f"sentence_split: needs exactly the keys {', '.join(SPLITS)}")
        if set(self.flite_speakers) - set(SPLITS):
            raise ValueError(f"flite_speakers: keys must be among {', '.join(SPLITS)}")
        if set(self.channel_probs) - {"close", "far", "telephone"}:
            raise ValueError("channel_probs: keys must be among close, far, telephone")
        if set(self.noise_probs) - {"none", "white", "pink", "brown", "babble"}:
            raise ValueError("noise_probs: keys must be among none, white, pink, brown, babble")
        if len(self.snr_db) != 2 or len(self.level_db) != 2:
            raise ValueError("snr_db and level_db take [low, high]")
        if not re.fullmatch(r"[a-z]+", self.speaker_id_prefix):
            raise ValueError(f"speaker_id_prefix: lower-case letters only, got {self.speaker_id_prefix!r}")
        if self.utts_per_speaker < 1 or not 0 <= self.female_fraction <= 1:
            raise ValueError("utts_per_speaker must be >= 1 and female_fraction in [0, 1]")

    def speaker_counts(self) -> Dict[str, Dict[str, int]]:
        """split -> accent -> number of espeak-ng speakers."""
        accents = sorted(ESPEAK_ACCENTS)
        return {
            "train": {a: self.train_speakers.get(a, 0) for a in accents if self.train_speakers.get(a, 0)},
            "dev": {a: self.dev_speakers_per_accent for a in accents if self.dev_speakers_per_accent},
            "test": {a: self.test_speakers_per_accent for a in accents if self.test_speakers_per_accent},
        }


PRESETS: Dict[str, Dict[str, Any]] = {
    # Seconds to build; for tests. Every accent in every split, 2 utterances each.
    "tiny": dict(
        utts_per_speaker=3,
        train_speakers={a: 1 for a in ESPEAK_ACCENTS} | {"en-us": 2},
        dev_speakers_per_accent=0,
        test_speakers_per_accent=1,
        flite_speakers={"train": 1, "dev": 1, "test": 1},
        vocab_size=300,
        babble_seconds=12.0,
        babble_talkers=3,
    ),
    # The README run: 260 speakers, 12,480 utterances, ~8 h.
    "default": dict(
        utts_per_speaker=48,
        train_speakers={
            "en-us": 48, "en-gb": 36, "en-gb-x-rp": 28, "en-us-nyc": 20,
            "en-gb-x-gbcwmd": 14, "en-gb-x-gbclan": 10, "en-gb-scotland": 8, "en-029": 4,
        },
        dev_speakers_per_accent=4,
        test_speakers_per_accent=6,
        flite_speakers={"train": 4, "dev": 2, "test": 6},
    ),
    # Speaker verification (egs/synth/sv): the default training speakers with half the
    # utterances each, and many more evaluation speakers so that per-gender and per-region
    # EERs have usable speaker-bootstrap intervals (test: 14 per accent + 8 flite = 120
    # speakers, 14-20 per region, ~60 per gender). 326 speakers, 7,824 utterances, 5.0 h
    # (train 2.68 h, dev 0.51 h, test 1.84 h), 742 MB of wav + Fbank; measured on 2 shared
    # cores: synthesis 371 s, manifests 27 s, features 64 s.
    "sv": dict(
        utts_per_speaker=24,
        train_speakers={
            "en-us": 48, "en-gb": 36, "en-gb-x-rp": 28, "en-us-nyc": 20,
            "en-gb-x-gbcwmd": 14, "en-gb-x-gbclan": 10, "en-gb-scotland": 8, "en-029": 4,
        },
        dev_speakers_per_accent=4,
        test_speakers_per_accent=14,
        flite_speakers={"train": 4, "dev": 2, "test": 8},
    ),
    # Cohort discovery and fairness (egs/synth/fairness): evaluation speakers only, many per
    # accent, so that discovery and measurement can use disjoint speakers (K-fold
    # cross-fitting) with >= 150 test speakers: test 18 per accent + 10 flite = 154, dev 6 per
    # accent + 4 flite = 52. The same seed and sentence split as the default corpus, so no
    # evaluation sentence occurs in the default corpus's training split; ids start with "f" so
    # they never collide with the default corpus's speakers. Cost: see egs/synth/fairness/README.
    "fairness": dict(
        speaker_id_prefix="f",
        utts_per_speaker=32,
        train_speakers={},
        dev_speakers_per_accent=6,
        test_speakers_per_accent=18,
        flite_speakers={"dev": 4, "test": 10},
    ),
    # ~34 h for GPU-scale runs.
    "large": dict(
        utts_per_speaker=100,
        train_speakers={
            "en-us": 80, "en-gb": 60, "en-gb-x-rp": 46, "en-us-nyc": 34,
            "en-gb-x-gbcwmd": 24, "en-gb-x-gbclan": 16, "en-gb-scotland": 12, "en-029": 6,
        },
        dev_speakers_per_accent=6,
        test_speakers_per_accent=10,
        flite_speakers={"train": 6, "dev": 4, "test": 10},
        vocab_size=3000,
    ),
}
