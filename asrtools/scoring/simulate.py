"""Simulated scored test sets with a known cohort gap, for checking the disparity statistics.

The design of issue 11: cohorts of speakers whose true error rates are drawn from one
Beta distribution (the null: cohorts do not differ), optionally with a planted gap (one
cohort's speakers get `planted_gap` added to their error rate, capped at 1); each utterance
has a uniform number of reference words and binomial word errors. tests/test_disparity.py
uses it through the library, scripts/simulate_disparity.py through `asrtools score cohorts`.
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
