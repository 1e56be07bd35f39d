"""Simulated scored test sets with a known cohort gap, for checking the disparity statistics.

The design of issue 11: cohorts of speakers whose true error rates are drawn from one
Beta distribution (the null: cohorts do not differ), optionally with a planted gap (one
cohort's speakers get `planted_gap` added to their error rate, capped at 1); each utterance
has a uniform number of reference words and binomial word errors. tests/test_disparity.py
uses it through the library, scripts/simulate_disparity.py through `asrtools score cohorts`.

`GeoDesign` / `simulate_geo_table` (issue 28): speakers spread over the contiguous US with a
planted rectangle of elevated error rates, for checking geographic cohort discovery
(scripts/simulate_discovery.py, tests/test_fairness_discovery.py).
"""
from __future__ import annotations

import dataclasses
import json
from typing import List, Tuple

import numpy as np
from scipy import stats

PLANTED_COHORT = "c0"


@dataclasses.dataclass(frozen=True)
class SimulationDesign:
    """One simulated test set's shape.

    Attributes:
      n_cohorts: number of cohorts (`c0`, `c1`, ...).
      speakers_per_cohort: speakers in each cohort.
      utterances_per_speaker: utterances of each speaker.
      beta_a, beta_b: speaker error rates ~ Beta(beta_a, beta_b).
      planted_gap: added to the error rate of every speaker of cohort `c0` (0: the null).
      min_words, max_words: reference words per utterance, uniform in this range.
    """

    n_cohorts: int = 8
    speakers_per_cohort: int = 7
    utterances_per_speaker: int = 20
    beta_a: float = 4.0
    beta_b: float = 6.0
    planted_gap: float = 0.0
    min_words: int = 5
    max_words: int = 15

    def true_gap(self) -> Tuple[float, float]:
        """The population gap `(absolute, relative)` between the best and worst cohort's WER.

        Words are independent of the error rate, so a cohort's expected pooled WER is the
        mean of its speakers' error rates: `E[p]`, and `E[min(p + planted_gap, 1)]` for `c0`.
        """
        base = stats.beta(self.beta_a, self.beta_b)
        mean = float(base.mean())
        if self.planted_gap == 0.0:
            return 0.0, 0.0
        planted = float(base.expect(lambda p: min(p + self.planted_gap, 1.0)))
        gap = abs(planted - mean)
        return gap, gap / min(planted, mean)


@dataclasses.dataclass
class SimulatedSet:
    """Per-utterance counts of one simulated test set (all arrays `(U,)`)."""

    utterance_ids: List[str]
    speakers: List[str]
    cohorts: List[str]
    words: np.ndarray
    errors: np.ndarray

    def speaker_cohorts(self) -> List[Tuple[str, str]]:
        """`(speaker, cohort)` pairs in first-appearance order (a `--cohort-map`)."""
        return list(dict(zip(self.speakers, self.cohorts)).items())

    def recogs_lines(self) -> List[str]:
        """recogs.jsonl lines whose alignment has exactly the simulated counts.

        The reference is `w0 w1 ...`; the hypothesis replaces the first `errors` words by
        `x` tokens, so both aligners count exactly `errors` substitutions.
        """
        lines = []
        for utt, speaker, words, errors in zip(self.utterance_ids, self.speakers, self.words, self.errors):
            ref = [f"w{i}" for i in range(int(words))]
            hyp = ["x"] * int(errors) + ref[int(errors):]
            lines.append(json.dumps({"id": utt, "speaker": speaker, "ref": " ".join(ref), "hyp": " ".join(hyp)}))
        return lines


def simulate_set(design: SimulationDesign, rng: np.random.Generator) -> SimulatedSet:
    """Draw one test set of `design` with `rng`."""
    K, S, U = design.n_cohorts, design.speakers_per_cohort, design.utterances_per_speaker
    rates = rng.beta(design.beta_a, design.beta_b, size=(K, S))
    rates[0] = np.minimum(rates[0] + design.planted_gap, 1.0)
    words = rng.integers(design.min_words, design.max_words + 1, size=(K, S, U))
    errors = rng.binomial(words, rates[:, :, None])
    ids, speakers, cohorts = [], [], []
    for k in range(K):
        for s in range(S):
            speaker = f"c{k}-spk{s}"
            for u in range(U):
                ids.append(f"{speaker}-{u:03d}")
                speakers.append(speaker)
                cohorts.append(f"c{k}")
    return SimulatedSet(ids, speakers, cohorts, words.reshape(-1), errors.reshape(-1))


# ------------------------------------------------------------------ geographic speaker tables

# The contiguous US's bounding box (degrees): speakers are drawn uniformly inside it.
US_LAT = (25.0, 49.0)
US_LON = (-124.0, -67.0)
REGION_PLACES = ("corner", "edge", "centre")


@dataclasses.dataclass(frozen=True)
class GeoDesign:
    """A simulated table of speakers with coordinates and a planted region (issue 28).

    Attributes:
      n_speakers: speakers, uniform over the contiguous US's bounding box.
      utterances_per_speaker: utterances of each speaker.
      mean_wer, sd_wer: speaker error rates ~ Beta with this mean and SD (SD about 10 points
        makes speaker WERs as spread out as real ones).
      planted_gap: added to the error rate of every speaker inside the region (0: the null).
      place: where the region sits: `corner` (north-west), `edge` (middle of the south edge)
        or `centre`.
      region_share: the region's share of the map's area (so about that share of the speakers).
      min_words, max_words: reference words per utterance, uniform in this range.
    """

    n_speakers: int = 160
    utterances_per_speaker: int = 20
    mean_wer: float = 0.25
    sd_wer: float = 0.10
    planted_gap: float = 0.0
    place: str = "centre"
    region_share: float = 0.17
    min_words: int = 5
    max_words: int = 15

    def region(self) -> Tuple[Tuple[float, float], Tuple[float, float]]:
        """The planted rectangle `((lat_lo, lat_hi), (lon_lo, lon_hi))`, sides sqrt(share) of the map's."""
        if self.place not in REGION_PLACES:
            raise ValueError(f"place must be one of {', '.join(REGION_PLACES)}, got {self.place!r}")
        side = float(np.sqrt(self.region_share))
        (lat0, lat1), (lon0, lon1) = US_LAT, US_LON
        height, width = side * (lat1 - lat0), side * (lon1 - lon0)
        if self.place == "corner":
            return (lat1 - height, lat1), (lon0, lon0 + width)
        mid_lon = (lon0 + lon1) / 2.0
        if self.place == "edge":
            return (lat0, lat0 + height), (mid_lon - width / 2, mid_lon + width / 2)
        mid_lat = (lat0 + lat1) / 2.0
        return (mid_lat - height / 2, mid_lat + height / 2), (mid_lon - width / 2, mid_lon + width / 2)

    def beta(self) -> Tuple[float, float]:
        """Beta parameters with mean `mean_wer` and SD `sd_wer`."""
        m, v = self.mean_wer, self.sd_wer ** 2
        total = m * (1.0 - m) / v - 1.0
        return m * total, (1.0 - m) * total


@dataclasses.dataclass
class GeoTable:
    """One simulated geographic table: speakers with coordinates and per-utterance counts.

    Attributes:
      speakers: speaker ids `(S,)`; lat, lon: `(S,)`; inside: `(S,)` bool, in the planted region.
      utterance_speaker: `(U,)` index into `speakers`; words, errors: `(U,)`.
    """

    speakers: List[str]
    lat: np.ndarray
    lon: np.ndarray
    inside: np.ndarray
    utterance_speaker: np.ndarray
    words: np.ndarray
    errors: np.ndarray

    def speaker_sums(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-speaker `(errors, words, utterances)`, each `(S,)`."""
        n = len(self.speakers)
        return (np.bincount(self.utterance_speaker, weights=self.errors, minlength=n),
                np.bincount(self.utterance_speaker, weights=self.words, minlength=n),
                np.bincount(self.utterance_speaker, minlength=n).astype(np.float64))

    def speakers_csv(self) -> str:
        """A speakers.csv (`id,split,lat,lon`) of the table."""
        rows = [f"{s},test,{a:.5f},{b:.5f}" for s, a, b in zip(self.speakers, self.lat, self.lon)]
        return "\n".join(["id,split,lat,lon", *rows]) + "\n"

    def recogs_lines(self) -> List[str]:
        """recogs.jsonl lines with exactly the simulated counts (first `errors` words substituted)."""
        lines = []
        counter = np.zeros(len(self.speakers), dtype=np.int64)
        for s, words, errors in zip(self.utterance_speaker, self.words, self.errors):
            ref = [f"w{i}" for i in range(int(words))]
            hyp = ["x"] * int(errors) + ref[int(errors):]
            speaker = self.speakers[s]
            lines.append(json.dumps({"id": f"{speaker}-{counter[s]:03d}", "speaker": speaker, "ref": " ".join(ref),
                                     "hyp": " ".join(hyp)}))
            counter[s] += 1
        return lines


def simulate_geo_table(design: GeoDesign, rng: np.random.Generator) -> GeoTable:
    """Draw one table of `design` with `rng` (speaker rates ~ Beta, + planted_gap inside, binomial errors)."""
    S, U = design.n_speakers, design.utterances_per_speaker
    lat, lon = rng.uniform(*US_LAT, size=S), rng.uniform(*US_LON, size=S)
    (lat0, lat1), (lon0, lon1) = design.region()
    inside = (lat > lat0) & (lat <= lat1) & (lon > lon0) & (lon <= lon1)
    rates = np.minimum(rng.beta(*design.beta(), size=S) + design.planted_gap * inside, 1.0)
    words = rng.integers(design.min_words, design.max_words + 1, size=(S, U))
    errors = rng.binomial(words, rates[:, None])
    width = len(str(S - 1))
    return GeoTable([f"spk{i:0{width}d}" for i in range(S)], lat, lon, inside, np.repeat(np.arange(S), U),
                    words.reshape(-1).astype(np.float64), errors.reshape(-1).astype(np.float64))
