"""Synthetic speakers: accents, regions, a synthetic zip-code table, and voice settings.

Each speaker is a TTS engine + accent + per-speaker timbre, pitch, rate and "microphone"
settings, with cohort metadata: gender, accent, region, lat/lon jittered around the
region's centre, and the nearest zip code of its region. Zip codes carry census-like
attributes; by design some correlate with region (majority-language share, urbanicity by
distance from the centre) and some do not (income band, median age).
"""
from __future__ import annotations

import dataclasses
import math
import random
from typing import Dict, List, Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Region:
    name: str
    lat: float
    lon: float
    zip_prefix: str
    majority_language_share: Tuple[float, float]  # range the zips draw from


# espeak-ng accent -> region (centre from the measured notes; shares chosen per region).
ESPEAK_ACCENTS: Dict[str, Region] = {
    "en-us": Region("us_general", 39.10, -94.58, "641", (0.88, 0.97)),
    "en-us-nyc": Region("us_nyc", 40.71, -74.01, "100", (0.55, 0.75)),
    "en-gb": Region("gb_south", 51.51, -0.13, "SW1", (0.70, 0.85)),
    "en-gb-x-rp": Region("gb_rp", 51.75, -1.26, "OX1", (0.85, 0.95)),
    "en-gb-x-gbclan": Region("gb_lancaster", 54.05, -2.80, "LA1", (0.92, 0.98)),
    "en-gb-x-gbcwmd": Region("gb_wmids", 52.49, -1.89, "B01", (0.70, 0.85)),
    "en-gb-scotland": Region("gb_scotland", 55.95, -3.19, "EH1", (0.90, 0.97)),
    "en-029": Region("caribbean", 17.99, -76.79, "JM1", (0.95, 0.99)),
}
# flite voices: a second engine, a deliberately rare minority cohort.
FLITE_VOICES: Dict[str, Tuple[str, str]] = {  # voice -> (accent label, region accent key)
    "slt": ("flite-us", "en-us"),
    "rms": ("flite-us", "en-us"),
    "kal16": ("flite-us", "en-us"),
    "awb": ("flite-scottish", "en-gb-scotland"),
}
FLITE_GENDER = {"slt": "female", "rms": "male", "kal16": "male", "awb": "male"}

LAT_SIGMA, LON_SIGMA = 0.6, 0.9
INCOME_BANDS = ("low", "middle", "high")


@dataclasses.dataclass
class ZipCode:
    zip: str
    region: str
    lat: float
    lon: float
    urbanicity: str  # urban | suburban | rural, by distance from the region centre
    income_band: str  # independent of region
    majority_language_share: float  # correlated with region
    median_age: int  # independent of region
    population: int


@dataclasses.dataclass
class Speaker:
    id: str
    split: str
    engine: str  # espeak-ng | flite
    voice: str  # espeak accent (e.g. en-gb-scotland) or flite voice name
    accent: str
    region: str
    gender: str
    lat: float
    lon: float
    zip: str
    rate_wpm: int
    pitch_base: int
    pitch_range: int
    formant_scale: float
    flutter: int
    roughness: int
    breath: int
    klatt: int  # 0 = default synthesiser, 1-4 = klatt variants
    mic_highpass: int
    mic_lowpass: int
    mic_eq_freq: int
    mic_eq_gain: float
    mic_bass: float
    mic_treble: float
    channel: str  # close | far | telephone
    reverberance: int


def make_zip_table(zips_per_region: int, seed: int) -> List[ZipCode]:
    """Synthetic zip codes around every region's centre, with census-like attributes."""
    rng = random.Random(seed)
    table = []
    regions = sorted({r.name: r for r in ESPEAK_ACCENTS.values()}.values(), key=lambda r: r.name)
    for region in regions:
        for i in range(zips_per_region):
            lat = region.lat + rng.gauss(0, LAT_SIGMA)
            lon = region.lon + rng.gauss(0, LON_SIGMA)
            dist = math.hypot((lat - region.lat) / LAT_SIGMA, (lon - region.lon) / LON_SIGMA)
            urbanicity = "urban" if dist < 0.7 else ("suburban" if dist < 1.4 else "rural")
            low, high = region.majority_language_share
            table.append(ZipCode(
                zip=f"{region.zip_prefix}{i:02d}",
                region=region.name,
                lat=round(lat, 4),
                lon=round(lon, 4),
                urbanicity=urbanicity,
                income_band=rng.choice(INCOME_BANDS),
                majority_language_share=round(rng.uniform(low, high), 3),
                median_age=rng.randint(28, 52),
                population=rng.randint(5_000, 60_000),
            ))
    return table


def nearest_zip(table: List[ZipCode], region: str, lat: float, lon: float) -> ZipCode:
    """The zip of `region` whose centroid is nearest to (lat, lon)."""
    candidates = [z for z in table if z.region == region]
    return min(candidates, key=lambda z: (z.lat - lat) ** 2 + (z.lon - lon) ** 2)


def _draw_voice(rng: random.Random, gender: str) -> Dict[str, object]:
    male = gender == "male"
    pitch_base = rng.randint(62, 125) if male else rng.randint(140, 215)
    return dict(
        rate_wpm=rng.randint(140, 195),
        pitch_base=pitch_base,
        pitch_range=rng.randint(20, 80),
        formant_scale=round(rng.uniform(0.90, 1.02) if male else rng.uniform(1.03, 1.12), 3),
        flutter=rng.randint(0, 20),
        roughness=rng.randint(0, 3),
        breath=rng.randint(0, 2),
        klatt=rng.randint(1, 4) if rng.random() < 0.25 else 0,
        mic_highpass=rng.randint(60, 200),
        mic_lowpass=rng.randint(5500, 7900),
        mic_eq_freq=rng.randint(300, 3000),
        mic_eq_gain=round(rng.uniform(-6, 6), 1),
        mic_bass=round(rng.uniform(-4, 4), 1),
        mic_treble=round(rng.uniform(-4, 4), 1),
    )


def _draw_channel(rng: random.Random, probs: Dict[str, float]) -> str:
    names = sorted(probs)
    return rng.choices(names, weights=[probs[n] for n in names])[0]


def make_speakers(
    counts: Dict[str, Dict[str, int]],
    flite_counts: Dict[str, int],
    female_fraction: float,
    channel_probs: Dict[str, float],
    zip_table: List[ZipCode],
    seed: int,
    id_prefix: str = "s",
) -> List[Speaker]:
    """Draw every speaker of every split.

    Args:
      counts: split -> espeak accent -> number of speakers.
      flite_counts: split -> number of flite speakers (voices cycled).
      female_fraction: share of female espeak speakers, stratified per (split, accent).
      channel_probs: probability of each recording channel (close | far | telephone).
      zip_table: the zip codes (see `make_zip_table`).
      seed: random seed.
      id_prefix: speaker ids are `<id_prefix>0001`, `<id_prefix>0002`, ...
    """
    rng = random.Random(seed)
    speakers: List[Speaker] = []

    def add(split: str, engine: str, voice: str, accent: str, region_key: str, gender: str) -> None:
        region = ESPEAK_ACCENTS[region_key]
        lat = region.lat + rng.gauss(0, LAT_SIGMA)
        lon = region.lon + rng.gauss(0, LON_SIGMA)
        zipcode = nearest_zip(zip_table, region.name, lat, lon)
        channel = _draw_channel(rng, channel_probs)
        speakers.append(Speaker(
            id=f"{id_prefix}{len(speakers) + 1:04d}", split=split, engine=engine, voice=voice,
            accent=accent, region=region.name, gender=gender,
            lat=round(lat, 4), lon=round(lon, 4), zip=zipcode.zip,
            channel=channel, reverberance=rng.randint(20, 70), **_draw_voice(rng, gender),
        ))

    for split in counts:
        total = females = 0
        for accent in sorted(counts[split]):
            n = counts[split][accent]
            # stratified: keep the split's running share of women as close to the target as possible
            total += n
            n_female = min(n, max(0, round(total * female_fraction + 1e-9) - females))
            females += n_female
            genders = ["female"] * n_female + ["male"] * (n - n_female)
            rng.shuffle(genders)
            for gender in genders:
                add(split, "espeak-ng", accent, accent, accent, gender)
        flite_voices = sorted(FLITE_VOICES)
        for i in range(flite_counts.get(split, 0)):
            voice = flite_voices[i % len(flite_voices)]
            accent, region_key = FLITE_VOICES[voice]
            add(split, "flite", voice, accent, region_key, FLITE_GENDER[voice])
    return speakers


def espeak_variant(speaker: Speaker) -> str:
    """The espeak-ng voice-variant file text for `speaker`."""
    scale = speaker.formant_scale
    lines = [
        "language variant",
        f"name {speaker.id}",
        f"gender {speaker.gender}",
        f"pitch {speaker.pitch_base} {speaker.pitch_base + speaker.pitch_range}",
        f"flutter {speaker.flutter}",
        f"roughness {speaker.roughness}",
        f"breath {speaker.breath} {speaker.breath}",
    ]
    for formant in range(0, 6):
        freq = round(100 * scale) if formant > 0 else 100
        lines.append(f"formant {formant} {freq} 100 100")
    if speaker.klatt:
        lines.append(f"klatt {speaker.klatt}")
    return "\n".join(lines) + "\n"


def mean_f0_for_flite(speaker: Speaker) -> int:
    """flite's int_f0_target_mean for a speaker (its pitch base, kept within the voice)."""
    return int(np.clip(speaker.pitch_base + speaker.pitch_range // 2, 70, 240))
