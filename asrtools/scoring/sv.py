"""Speaker-verification metrics: EER (ROC convex hull), minDCF, per-group EERs, speaker bootstrap.

Conventions. A trial is accepted when its score is >= the threshold. P_miss is the
(weighted) share of target trials rejected, P_fa the share of non-target trials accepted.
The ROC is the set of (P_fa, P_miss) operating points at every distinct score (plus
"accept all" and "reject all").

- **EER** is the ROC convex hull EER (ROCCH-EER, as NIST/BOSARIS report it): where the
  convex hull of the ROC points crosses P_miss = P_fa. It is computed as
  `max over priors p of min over operating points (p * P_miss + (1 - p) * P_fa)`, which
  equals the hull's crossing (every supporting line of the hull lies below its crossing
  point, and the one through it attains it); the maximum of that concave function of p
  is found by golden-section search to 1e-15 in p, for many bootstrap replicates at once.
- **minDCF** is normalised: `min over thresholds of (C_miss P_tar P_miss + C_fa (1-P_tar) P_fa)
  / min(C_miss P_tar, C_fa (1-P_tar))`.
- **Per-group EER**: on the trials whose two speakers are both in the group (within-group
  trials); gender gap = |EER_male - EER_female|; region spread = the population standard
  deviation of the per-region EERs.
- **Speaker bootstrap**: a replicate draws the trial list's speakers with replacement
  (counts m_s) and keeps the trials among the drawn speakers, a target trial of speaker a
  with weight m_a and a non-target trial (a, b) with weight m_a * m_b (copies of a speaker
  count as different speakers, as if they had been recorded separately). Every metric of a
  replicate, of every group and of every system scored on the same trials, uses the same
  draws, so differences (a gap, system B - system A) are paired.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.scoring.bootstrap import percentile_ci

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_SEARCH_ITERATIONS = 80  # golden-section steps: the prior interval shrinks to 0.618^80 ~ 2e-17
_CHUNK_ELEMENTS = 1 << 22  # (replicates x trials) weights handled at once


@dataclasses.dataclass(frozen=True)
class Trial:
    """One verification trial: `label` 1 (target) or 0, enrolment and test utterance ids."""

    label: int
    enroll: str
    test: str

    def line(self) -> str:
        return f"{self.label} {self.enroll} {self.test}"


@dataclasses.dataclass(frozen=True)
class DcfParams:
    """A detection cost function: target prior and the two error costs."""

    p_target: float
    c_miss: float = 1.0
    c_fa: float = 1.0

    def key(self) -> str:
        """`mindcf_0.01` (with `_cmiss2_cfa1` when the costs are not 1)."""
        costs = "" if self.c_miss == 1 and self.c_fa == 1 else f"_cmiss{self.c_miss:g}_cfa{self.c_fa:g}"
        return f"mindcf_{self.p_target:g}{costs}"


@dataclasses.dataclass
class SortedTrials:
    """Trials sorted by score, with the boundaries of tied scores.

    Attributes:
      order: (n,) permutation sorting the trials by ascending score.
      is_target: (n,) bool in sorted order.
      group_ends: (K,) index of the last trial of each run of equal scores (sorted order).
    """

    order: np.ndarray
    is_target: np.ndarray
    group_ends: np.ndarray

    @classmethod
    def build(cls, scores: np.ndarray, labels: np.ndarray) -> "SortedTrials":
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=bool)
        if scores.shape != labels.shape or scores.ndim != 1:
            raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes")
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores must be finite")
        order = np.argsort(scores, kind="stable")
        ordered = scores[order]
        ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
        return cls(order, labels[order], ends)


def roc_points(sorted_trials: SortedTrials, weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(P_miss, P_fa) at every threshold, one row per weight vector.

    Args:
      sorted_trials: from `SortedTrials.build`.
      weights: (B, n) or (n,) trial weights in the *original* trial order; None = all 1.

    Returns:
      `(p_miss, p_fa)`, each (B, K + 1): column 0 accepts every trial, column k > 0 rejects
      the k lowest distinct scores. Rows whose targets or non-targets weigh 0 are NaN.
    """
    n = len(sorted_trials.order)
    w = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    w = w[:, sorted_trials.order]
    tar = np.where(sorted_trials.is_target, w, 0.0)
    non = w - tar
    cum_tar = np.cumsum(tar, axis=1)[:, sorted_trials.group_ends]
    cum_non = np.cumsum(non, axis=1)[:, sorted_trials.group_ends]
    total_tar, total_non = cum_tar[:, -1:], cum_non[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_miss = np.concatenate([np.zeros_like(total_tar), cum_tar / total_tar], axis=1)
        p_fa = np.concatenate([np.ones_like(total_non), 1.0 - cum_non / total_non], axis=1)
    bad = ((total_tar <= 0) | (total_non <= 0))[:, 0]
    p_miss[bad] = np.nan
    p_fa[bad] = np.nan
    return p_miss, p_fa


def eer_from_roc(p_miss: np.ndarray, p_fa: np.ndarray) -> np.ndarray:
    """ROC-convex-hull EER of each row of (B, K) operating points (see the module docstring)."""
    p_miss = np.atleast_2d(p_miss)
    p_fa = np.atleast_2d(p_fa)

    def bayes_error(prior: np.ndarray) -> np.ndarray:
        return np.min(prior[:, None] * p_miss + (1.0 - prior[:, None]) * p_fa, axis=1)

    low = np.zeros(len(p_miss))
    high = np.ones(len(p_miss))
    x1 = high - GOLDEN * (high - low)
    x2 = low + GOLDEN * (high - low)
    f1, f2 = bayes_error(x1), bayes_error(x2)
    for _ in range(_SEARCH_ITERATIONS):
        left = f1 < f2  # the maximum lies right of x1
        low = np.where(left, x1, low)
        high = np.where(left, high, x2)
        new_x1 = np.where(left, x2, high - GOLDEN * (high - low))
        new_x2 = np.where(left, low + GOLDEN * (high - low), x1)
        new_f = bayes_error(np.where(left, new_x2, new_x1))
        f1, f2 = np.where(left, f2, new_f), np.where(left, new_f, f1)
        x1, x2 = new_x1, new_x2
    best = np.maximum(np.maximum(f1, f2), np.maximum(bayes_error(low), bayes_error(high)))
    return np.where(np.isnan(p_miss).any(axis=1), np.nan, best)


def min_dcf_from_roc(p_miss: np.ndarray, p_fa: np.ndarray, dcf: DcfParams) -> np.ndarray:
    """Normalised minimum DCF of each row of (B, K) operating points."""
    cost = dcf.c_miss * dcf.p_target * np.atleast_2d(p_miss) + dcf.c_fa * (1 - dcf.p_target) * np.atleast_2d(p_fa)
    norm = min(dcf.c_miss * dcf.p_target, dcf.c_fa * (1 - dcf.p_target))
    return np.min(cost, axis=1) / norm


def eer(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """ROC-convex-hull EER (a fraction) of one trial list."""
    p_miss, p_fa = roc_points(SortedTrials.build(np.asarray(scores), np.asarray(labels)))
    return float(eer_from_roc(p_miss, p_fa)[0])


def min_dcf(scores: Sequence[float], labels: Sequence[bool], p_target: float, c_miss: float = 1.0,
            c_fa: float = 1.0) -> float:
    """Normalised minDCF of one trial list."""
    p_miss, p_fa = roc_points(SortedTrials.build(np.asarray(scores), np.asarray(labels)))
    return float(min_dcf_from_roc(p_miss, p_fa, DcfParams(p_target, c_miss, c_fa))[0])


# ---------------------------------------------------------------------------------- trials


@dataclasses.dataclass
class TrialSet:
    """Scored trials with their speakers (indices into `speakers`).

    Attributes:
      scores: (n,) float64.
      labels: (n,) bool, True for target trials.
      enroll_speaker: (n,) int, index of the enrolment utterance's speaker.
      test_speaker: (n,) int, index of the test utterance's speaker.
      speakers: speaker ids.
    """

    scores: np.ndarray
    labels: np.ndarray
    enroll_speaker: np.ndarray
    test_speaker: np.ndarray
    speakers: List[str]

    def subset(self, keep: np.ndarray) -> "TrialSet":
        return TrialSet(self.scores[keep], self.labels[keep], self.enroll_speaker[keep], self.test_speaker[keep],
                        self.speakers)


def within_group_mask(trials: TrialSet, speaker_group: Sequence[Optional[str]], group: str) -> np.ndarray:
    """(n,) bool: trials whose two speakers both belong to `group`.

    Args:
      trials: the trials.
      speaker_group: the group of each speaker (index-aligned with `trials.speakers`; None = none).
      group: the group value.
    """
    member = np.array([g == group for g in speaker_group], dtype=bool)
    return member[trials.enroll_speaker] & member[trials.test_speaker]


def replicate_weights(trials: TrialSet, counts: np.ndarray) -> np.ndarray:
    """(B, n) trial weights of speaker-bootstrap replicates with speaker draw counts (B, S)."""
    enroll = counts[:, trials.enroll_speaker]
    test = counts[:, trials.test_speaker]
    return np.where(trials.labels[None, :], enroll, enroll * test).astype(np.float64)


def speaker_draws(num_speakers: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, S) counts of each speaker in `n_boot` draws of S speakers with replacement."""
    counts = np.zeros((n_boot, num_speakers), dtype=np.int64)
    for b in range(n_boot):
        counts[b] = np.bincount(rng.integers(0, num_speakers, num_speakers), minlength=num_speakers)
    return counts


def metric_replicates(trials: TrialSet, counts: Optional[np.ndarray], dcfs: Sequence[DcfParams] = ()
                      ) -> Dict[str, np.ndarray]:
    """EER and minDCFs of `trials`, point estimate (counts None) or one per replicate row.

    Returns:
      `{"eer": (B,), "<dcf key>": (B,), ...}` with B = 1 for the point estimate.
    """
    sorted_trials = SortedTrials.build(trials.scores, trials.labels)
    if counts is None:
        p_miss, p_fa = roc_points(sorted_trials)
        out = {"eer": eer_from_roc(p_miss, p_fa)}
        out.update({d.key(): min_dcf_from_roc(p_miss, p_fa, d) for d in dcfs})
        return out
    n = max(len(trials.scores), 1)
    step = max(1, _CHUNK_ELEMENTS // n)
    parts: Dict[str, List[np.ndarray]] = {}
    for start in range(0, len(counts), step):
        p_miss, p_fa = roc_points(sorted_trials, replicate_weights(trials, counts[start:start + step]))
        parts.setdefault("eer", []).append(eer_from_roc(p_miss, p_fa))
        for d in dcfs:
            parts.setdefault(d.key(), []).append(min_dcf_from_roc(p_miss, p_fa, d))
    return {k: np.concatenate(v) for k, v in parts.items()}


def interval(replicates: np.ndarray, level: float) -> List[Optional[float]]:
    """Percentile CI as a JSON-friendly `[low, high]` (None for NaN)."""
    low, high = percentile_ci(replicates, level)
    return [None if math.isnan(low) else low, None if math.isnan(high) else high]
