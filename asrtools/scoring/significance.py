"""NIST's significance tests for two systems on the same utterances (sc_stats), and Holm.

The four tests of ``sctk sc_stats -t std4``, computed as sc_stats computes them (checked
against the Debian sctk 2.4.10 binary in tests/test_scoring_nist_tests.py):

- ``mapsswe`` (MP, matched pairs sentence-segment word error; Gillick & Cox 1989): each
  utterance pair is cut into segments that are separated by at least two words correct in
  BOTH systems' alignments (a segment includes those two boundary words on each side; the
  alignments are the ``C/S/D/I`` op strings of `asrtools.scoring.wer.Alignment`). Segments
  without an error in either system are dropped. With ``z_s = err_A(s) - err_B(s)`` over
  the ``n`` segments, ``W = mean / (sd / sqrt(n))`` (``n - 1`` divisor; zero variance gives
  ``W = 0``), compared with the standard normal.
- ``sign_test`` (SI): per speaker, the sign of the difference of speaker WER (%); equal
  within 0.005 points counts as a tie, and ties are split between the two sides (the odd
  one to the side that makes the result less significant); exact two-sided binomial p.
- ``wilcoxon_test`` (WI): signed ranks of the per-speaker WER differences (average ranks for
  ties; tied speakers get alternately + and - ranks, in speaker order); normal
  approximation ``Z = (W - n (n + 1) / 4) / sqrt(n (n + 1) (2n + 1) / 24)`` with W the rank sum
  of the side with fewer speakers.
- ``mcnemar_test`` (MN): utterances wrong (any error) in one system only, ``b`` and ``c``;
  exact two-sided binomial p of ``min(b, c)`` out of ``b + c`` (1 when ``b == c``).

Normal p-values are those sc_stats prints: it looks |Z| up in a 0.01-step table of the
normal CDF, rounding |Z| *down* (a conservative p, larger than the exact one by < 0.01).
Speaker WER is ``errors / words * 100`` in that operation order, as sc_stats computes it,
so exact ties and the 0.005 threshold fall where they fall there.

One deliberate difference: for more than 20 discordant utterances (or speakers), sctk
2.4.10 replaces the binomial of the sign and McNemar tests by a normal approximation that
is wrong (e.g. McNemar b = 38, c = 40 gets p < 0.001 instead of 0.91); here the exact
binomial is used for every n, which is what sc_stats computes for n <= 20.

Holm's step-down adjustment is provided for testing many cohorts at once.
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from scipy import stats

MIN_BOUNDARY_WORDS = 2  # sc_stats runs the matched-pairs test with 2 correct boundary words
SPEAKER_TIE_POINTS = 0.005  # |WER_A - WER_B| (percentage points) below which a speaker is a tie
_NORMAL_TABLE_STEP = 0.01
_NORMAL_TABLE_MAX = 5.14  # the last z of sc_stats' table; beyond it the last value is used


def normal_two_sided_p(z: float) -> float:
    """Exact `P(|N(0, 1)| >= |z|)`."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def nist_normal_p(z: float) -> float:
    """Two-sided normal p-value as sc_stats reports it: |z| rounded down to a 0.01 step.

    sc_stats reads the normal CDF from a table at 0.00, 0.01, ..., 5.14 and takes the
    entry at or below |z| (capped at 5.14), so its p is slightly conservative.
    """
    zx = min(abs(z), _NORMAL_TABLE_MAX)
    index = int(np.searchsorted(np.arange(515) * _NORMAL_TABLE_STEP, zx, side="right")) - 1
    return normal_two_sided_p(index * _NORMAL_TABLE_STEP)


# ---------------------------------------------------------------------------------- MAPSSWE


@dataclasses.dataclass(frozen=True)
class MapssweResult:
    """The outcome of one MAPSSWE test.

    Attributes:
      n_segments: segments with at least one error in either system.
      mean: mean of `err_A - err_B` over the segments.
      std: its standard deviation (n - 1 divisor).
      z: the test statistic W.
      p_value: two-sided p as sc_stats reports it (`nist_normal_p`); 1.0 with < 2 segments.
      ref_words: reference words inside the segments.
      errors_a, errors_b: each system's errors inside the segments.
    """

    n_segments: int
    mean: float
    std: float
    z: float
    p_value: float
    ref_words: int = 0
    errors_a: int = 0
    errors_b: int = 0

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def mapsswe_segments(ops_a: str, ops_b: str, min_good: int = MIN_BOUNDARY_WORDS) -> List[Tuple[int, int, int]]:
    """Cut one utterance's two alignments into MAPSSWE segments, as sc_stats does.

    Both op strings align the same reference (`C`, `S`, `D` consume a reference word, `I`
    does not). The walk advances through the reference words of both in step; an error
    (or an insertion in either) opens a segment, which closes once `min_good` consecutive
    reference words are correct in both. A segment spans from the last `min_good` words
    that were correct in both before it to the `min_good` words that close it. At the end
    of the utterance an open segment (or one holding B's trailing insertions) runs to the
    last alignment column of each system.

    Args:
      ops_a: system A's alignment ops, e.g. `"CCSCIC"`.
      ops_b: system B's alignment ops of the same reference.
      min_good: correct boundary words that separate segments (sc_stats: 2).

    Returns:
      `(reference words, errors of A, errors of B)` per segment with an error.
    """
    n_a, n_b = len(ops_a), len(ops_b)
    i_a = i_b = end_good_a = end_good_b = good = 0
    state = "between"  # "between" segments, in an "error" region, or counting "good" words
    spans = []
    while i_a < n_a:
        while i_a < n_a and ops_a[i_a] == "I":
            i_a += 1
            state = "error"
        while i_b < n_b and ops_b[i_b] == "I":
            i_b += 1
            state = "error"
        both_correct = i_a < n_a and ops_a[i_a] == "C" and i_b < n_b and ops_b[i_b] == "C"
        if state == "between":
            if both_correct:
                end_good_a, end_good_b = i_a, i_b
            else:
                state = "error"
        elif both_correct:
            good = 1 if state == "error" else good + 1
            state = "good"
            if good == min_good:
                spans.append((end_good_a - (min_good - 1), end_good_b - (min_good - 1), i_a, i_b))
                end_good_a, end_good_b, state = i_a, i_b, "between"
        elif state == "good":
            state = "error"
        if i_a < n_a:
            i_a += 1
        if i_b < n_b:
            i_b += 1
    if state != "between" or i_b < n_b:  # an open segment, or B has words left (insertions): up to the end
        spans.append((end_good_a - (min_good - 1), end_good_b - (min_good - 1), n_a - 1, n_b - 1))
    segments = []
    for begin_a, begin_b, end_a, end_b in spans:
        part_a, part_b = ops_a[max(begin_a, 0): end_a + 1], ops_b[max(begin_b, 0): end_b + 1]
        err_a, err_b = sum(op != "C" for op in part_a), sum(op != "C" for op in part_b)
        if err_a or err_b:
            ref_words = (sum(op != "I" for op in part_a) + sum(op != "I" for op in part_b)) // 2
            segments.append((ref_words, err_a, err_b))
    return segments


def mapsswe_from_segments(segments: Sequence[Tuple[int, int, int]]) -> MapssweResult:
    """The test over `(ref words, err_A, err_B)` segments (of all utterances compared).

    Sums run in segment order, one term at a time, as sc_stats adds them (so a statistic
    that lands exactly on a table step rounds the same way).
    """
    seg = np.asarray(segments, dtype=np.int64).reshape(-1, 3)
    diff = (seg[:, 1] - seg[:, 2]).tolist()
    n = len(diff)
    totals = dict(ref_words=int(seg[:, 0].sum()), errors_a=int(seg[:, 1].sum()), errors_b=int(seg[:, 2].sum()))
    mean = sum(diff) / n if n else 0.0
    squares = 0.0
    for d in diff:
        squares += (d - mean) * (d - mean)
    if n < 2 or squares == 0.0:
        return MapssweResult(n, mean, 0.0, 0.0, 1.0, **totals)
    variance = squares / (n - 1)
    z = mean / (math.sqrt(variance) / math.sqrt(n))
    return MapssweResult(n, mean, math.sqrt(variance), z, nist_normal_p(z), **totals)


def mapsswe(ops_a: Sequence[str], ops_b: Sequence[str]) -> MapssweResult:
    """MAPSSWE of two systems over utterances.

    Args:
      ops_a: system A's alignment op strings, one per utterance `(U,)` (sc_stats takes them
        speaker by speaker, in order of first appearance; the order only moves the last bits).
      ops_b: system B's op strings for the same utterances (same references).
    """
    if len(ops_a) != len(ops_b):
        raise ValueError(f"{len(ops_a)} alignments of A but {len(ops_b)} of B")
    segments: List[Tuple[int, int, int]] = []
    for a, b in zip(ops_a, ops_b):
        segments.extend(mapsswe_segments(a, b))
    return mapsswe_from_segments(segments)


# ------------------------------------------------------------------- speaker and sentence tests


@dataclasses.dataclass(frozen=True)
class SignTestResult:
    """Sign test on per-speaker WER (A minus B).

    Attributes:
      n_plus: speakers with WER_A > WER_B; n_minus: WER_A < WER_B; n_ties: equal within
        `SPEAKER_TIE_POINTS`.
      p_value: exact two-sided binomial p after splitting the ties.
    """

    n_plus: int
    n_minus: int
    n_ties: int
    p_value: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test on per-speaker WER (A minus B).

    Attributes:
      n_plus, n_minus: speakers counted on each side (ties alternate, see module docs).
      rank_sum_plus, rank_sum_minus: the rank sums of the two sides.
      z: the normal approximation's statistic.
      p_value: two-sided p as sc_stats reports it.
    """

    n_plus: int
    n_minus: int
    rank_sum_plus: float
    rank_sum_minus: float
    z: float
    p_value: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class McNemarResult:
    """McNemar test on utterance errors.

    Attributes:
      only_a_wrong: utterances with an error in A but not in B.
      only_b_wrong: utterances with an error in B but not in A.
      both_wrong, both_right: the concordant pairs.
      p_value: exact two-sided binomial p (1 when the discordant counts are equal).
    """

    only_a_wrong: int
    only_b_wrong: int
    both_wrong: int
    both_right: int
    p_value: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def speaker_wer_percent(errors: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Per-speaker WER in percent as sc_stats computes it: `errors / words * 100` (0 without words).

    The operation order matters: it decides which speakers' differences tie exactly.

    Args:
      errors: errors per speaker `(S,)`; words: reference words per speaker `(S,)`.
    """
    errors = np.asarray(errors, dtype=np.float64)
    words = np.asarray(words, dtype=np.float64)
    return np.divide(errors, words, out=np.zeros_like(errors), where=words != 0) * 100.0


def _binomial_two_sided(k: int, n: int) -> float:
    """`2 P(X <= k)` for X ~ Binomial(n, 1/2), k <= n / 2 (at most 1), exactly (then rounded once)."""
    tail = Fraction(2 * sum(math.comb(n, r) for r in range(k + 1)), 2 ** n)
    return float(min(tail, Fraction(1)))


def _higher_first(wer_a: np.ndarray, wer_b: np.ndarray) -> Tuple[np.ndarray, np.ndarray, bool]:
    """sc_stats orders the pair by the sum of speaker WERs (higher first); returns that order."""
    swapped = not float(wer_a.sum()) > float(wer_b.sum())
    return (wer_b, wer_a, swapped) if swapped else (wer_a, wer_b, swapped)


def sign_test(wer_a: np.ndarray, wer_b: np.ndarray) -> SignTestResult:
    """Sign test of per-speaker WER.

    Args:
      wer_a: speaker WERs (percent, `speaker_wer_percent`) of system A `(S,)`.
      wer_b: the same speakers' WERs of system B `(S,)`.
    """
    wer_a, wer_b = np.asarray(wer_a, dtype=np.float64), np.asarray(wer_b, dtype=np.float64)
    high, low, swapped = _higher_first(wer_a, wer_b)
    diff = high - low
    ties = int(np.count_nonzero(np.abs(diff) <= SPEAKER_TIE_POINTS))
    above = int(np.count_nonzero((np.abs(diff) > SPEAKER_TIE_POINTS) & (diff > 0)))
    below = int(np.count_nonzero((np.abs(diff) > SPEAKER_TIE_POINTS) & (diff < 0)))
    split_above, split_below = above + ties // 2, below + ties // 2 + ties % 2
    p = 1.0 if split_above == split_below else _binomial_two_sided(min(split_above, split_below), split_above + split_below)
    plus, minus = (below, above) if swapped else (above, below)
    return SignTestResult(plus, minus, ties, p)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `values` (ties, by exact equality, share their mean rank)."""
    return stats.rankdata(values, method="average")


def wilcoxon_test(wer_a: np.ndarray, wer_b: np.ndarray) -> WilcoxonResult:
    """Wilcoxon signed-rank test of per-speaker WER, as sc_stats computes it.

    Args:
      wer_a: speaker WERs (percent) of system A `(S,)`, in speaker order.
      wer_b: the same speakers' WERs of system B `(S,)`.
    """
    wer_a, wer_b = np.asarray(wer_a, dtype=np.float64), np.asarray(wer_b, dtype=np.float64)
    high, low, swapped = _higher_first(wer_a, wer_b)
    diff = high - low
    ranks = _average_ranks(np.abs(diff))
    n_above = n_below = 0
    sum_above = sum_below = 0.0
    alternate = 0
    for d, r in zip(diff, ranks):
        if d < 0.0 and abs(d) > SPEAKER_TIE_POINTS:
            n_below, sum_below = n_below + 1, sum_below + r
        elif d > 0.0 and abs(d) > SPEAKER_TIE_POINTS:
            n_above, sum_above = n_above + 1, sum_above + r
        else:  # a tie goes alternately to the two sides
            if alternate % 2 == 0:
                n_above, sum_above = n_above + 1, sum_above + r
            else:
                n_below, sum_below = n_below + 1, sum_below + r
            alternate += 1
    n = n_above + n_below
    if n == 0:
        return WilcoxonResult(0, 0, 0.0, 0.0, 0.0, 1.0)
    w = sum_above if n_above < n_below else sum_below
    expected = n * (n + 1) / 4.0
    z = (w - expected) / math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    if swapped:
        return WilcoxonResult(n_below, n_above, float(sum_below), float(sum_above), z, nist_normal_p(z))
    return WilcoxonResult(n_above, n_below, float(sum_above), float(sum_below), z, nist_normal_p(z))


def mcnemar_test(wrong_a: np.ndarray, wrong_b: np.ndarray) -> McNemarResult:
    """McNemar test of utterance errors.

    Args:
      wrong_a: whether system A made any error on each utterance `(U,)` bool.
      wrong_b: the same for system B `(U,)`.
    """
    wrong_a, wrong_b = np.asarray(wrong_a, dtype=bool), np.asarray(wrong_b, dtype=bool)
    only_a = int(np.count_nonzero(wrong_a & ~wrong_b))
    only_b = int(np.count_nonzero(wrong_b & ~wrong_a))
    both = int(np.count_nonzero(wrong_a & wrong_b))
    neither = int(np.count_nonzero(~wrong_a & ~wrong_b))
    p = 1.0 if only_a == only_b else _binomial_two_sided(min(only_a, only_b), only_a + only_b)
    return McNemarResult(only_a, only_b, both, neither, p)


# ----------------------------------------------------------------------------------- Holm


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    values = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(values))
    adjusted = values.copy()
    order = valid[np.argsort(values[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * values[idx]))
        adjusted[idx] = running
    return adjusted.tolist()
