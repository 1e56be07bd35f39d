"""The best-worst cohort WER gap, with an interval and a test that hold when cohorts do not differ.

Input is per-speaker (or per-utterance) error and word counts plus a cohort label for each,
so the same code serves `asrtools score cohorts` and cohort discovery (including cohorts that
were found on other speakers). Counts are first summed per (speaker, cohort): a speaker is a
cluster, never split into independent utterances.

Eligibility depends on size only (speakers and reference words); a cohort with few *errors*
is still eligible (it is flagged), so an accurate cohort can be the best one.

Over the eligible cohorts (pooled WER ``W_c = errors_c / words_c``):

- ``abs_gap = max_c W_c - min_c W_c``; ``rel_gap = abs_gap / min_c W_c``.
- ``p_value``: permutation test of "no difference between cohorts": cohort labels are
  permuted across speakers (speakers kept whole, cohort sizes kept), the statistic is
  recomputed with best and worst re-chosen in every permutation, and
  ``p = (1 + #{gap_perm >= gap}) / (1 + n_permutations)``. ``p_value_max_t`` is the same test
  with the largest studentised pairwise difference as the statistic (more powerful when
  cohort sizes differ a lot, since small noisy cohorts dominate the raw gap).
- ``abs_gap_ci``: the gap in the population is ``max_ij (mu_i - mu_j)``. The interval is the
  projection of simultaneous intervals for all pairwise differences ``d_ij = W_i - W_j``
  with speaker-cluster (delta-method) standard errors ``se_ij``:
  lower bound ``max(0, max_ij (d_ij - c * se_ij))`` where ``c`` is the ``1 - a/2`` quantile of
  the largest pairwise ``|t|`` over the label permutations (so every pair is covered at once,
  and the bound is 0 unless some pair differs); upper bound ``max_ij (d_ij + t * se_ij)``
  with the Welch ``1 - a/2`` t quantile (only the truly largest pair needs covering), for
  ``a = 1 - level``. Each side misses with probability at most about ``a/2``.
  ``rel_gap_ci`` is the same construction on ``log W``, mapped back by ``exp(.) - 1``.

Why not the plain speaker bootstrap of max-min: docs/statistics.md measures it. Re-choosing
best and worst in every replicate makes every replicate positive, so its percentile
interval never contains 0 under the null; the basic (bias-corrected) bootstrap excludes 0 in
~44% of null sets with 7 speakers per cohort, and bootstrap max-|t| critical values are far
off at such sizes. The permutation distribution of the studentised maximum is exact under
the null and keeps coverage on planted gaps (table and command in docs/statistics.md).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

from asrtools.scoring.bootstrap import rng_for

_MAX_PERMUTATION_ELEMENTS = 1 << 22  # (permutations x speakers) or (permutations x cohort pairs) per chunk

METHOD = (
    "permutation test (cohort labels permuted across whole speakers, cohort sizes kept; best and worst "
    "re-chosen in every permutation); interval: simultaneous studentised pairwise differences "
    "(speaker-cluster standard errors; lower bound calibrated on the permutation distribution of the "
    "largest pairwise |t|, upper bound Welch t) projected onto the best-worst gap"
)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Cohort size thresholds: speakers and words decide eligibility, errors only flag.

    Attributes:
      min_speakers: fewer speakers -> flagged and not eligible for the disparity summary.
      min_words: fewer reference words -> flagged and not eligible.
      min_errors: fewer word errors -> flagged only (a very accurate cohort stays eligible).
    """

    min_speakers: int = 5
    min_words: int = 200
    min_errors: int = 20

    def flags(self, n_speakers: int, n_words: int, n_errors: int) -> List[str]:
        """Which thresholds a cohort of this size misses, e.g. `["speakers<5"]`."""
        flags = []
        if n_speakers < self.min_speakers:
            flags.append(f"speakers<{self.min_speakers}")
        if n_words < self.min_words:
            flags.append(f"words<{self.min_words}")
        if n_errors < self.min_errors:
            flags.append(f"errors<{self.min_errors}")
        return flags

    def eligible(self, n_speakers: int, n_words: int) -> bool:
        """Whether a cohort of this size enters the disparity summary (never by its errors)."""
        return n_speakers >= self.min_speakers and n_words >= self.min_words


@dataclasses.dataclass
class Disparity:
    """Worst-vs-best comparison over the eligible cohorts of one grouping (fractions).

    Intervals are `(nan, nan)` and p-values NaN when not computed (no permutations, or a
    cohort with fewer than two speakers); `rel_gap`/`ratio` are None when the best WER is 0.
    """

    basis: str
    n_cohorts: int
    cohorts: List[str]
    worst: str
    best: str
    wer_worst: float
    wer_best: float
    abs_gap: float
    rel_gap: Optional[float]
    ratio: Optional[float]
    mean_across: float
    std_across: float
    abs_gap_ci: Tuple[float, float]
    rel_gap_ci: Tuple[float, float]
    level: float
    p_value: float
    p_value_max_t: float
    n_permutations: int
    n_speakers: int
    method: str
    low_error_cohorts: List[str]
    speakers_in_several_cohorts: int
    worst_share_speakers: float
    worst_share_utts: float
    worst_share_errors: float

    @property
    def ci_excludes_zero(self) -> bool:
        """Whether the gap interval lies above 0 (some pair of cohorts differs)."""
        return bool(math.isfinite(self.abs_gap_ci[0]) and self.abs_gap_ci[0] > 0)

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (NaN/inf become null)."""
        out = dataclasses.asdict(self)
        for key in ("abs_gap_ci", "rel_gap_ci"):
            out[key] = [_finite_or_none(x) for x in out[key]]
        for key in ("rel_gap", "ratio", "p_value", "p_value_max_t"):
            out[key] = _finite_or_none(out[key])
        return out


def _finite_or_none(value: Optional[float]) -> Optional[float]:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# ---------------------------------------------------------------------------- cluster sums


# Per-cluster columns summed for a cohort: e, n, e^2, e*n, n^2 (the last three give the
# delta-method variance of the ratio e/n without a second pass over the speakers).
def _cluster_columns(errors: np.ndarray, words: np.ndarray) -> np.ndarray:
    return np.stack([errors, words, errors * errors, errors * words, words * words], axis=-1)


def wer_and_se(sums: np.ndarray, n_clusters: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pooled WER and its speaker-cluster standard error from summed cluster columns.

    Ratio estimator ``W = sum e / sum n`` with the delta-method variance
    ``m / (m - 1) * sum_i (e_i - W n_i)^2 / (sum n)^2`` over the ``m`` clusters.

    Args:
      sums: `(..., K, 5)` per-cohort sums of `(e, n, e^2, e n, n^2)` over its clusters.
      n_clusters: `(K,)` clusters (speakers) per cohort; the SE is NaN where it is < 2.

    Returns:
      `(wer (..., K), se (..., K))`; WER is NaN where a cohort has no words.
    """
    e, n, ee, en, nn = (sums[..., k] for k in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = e / n
        residual = np.maximum(ee - 2.0 * wer * en + wer * wer * nn, 0.0)
        m = n_clusters.astype(np.float64)
        var = np.where(m > 1, m / np.maximum(m - 1, 1) * residual / (n * n), np.nan)
    return wer, np.sqrt(var)


def _pairwise(values: np.ndarray, ses: np.ndarray, off: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Differences `v_i - v_j` and their SEs over ordered pairs: `(..., P)` each, P = K (K - 1)."""
    diff = (values[..., :, None] - values[..., None, :])[..., off]
    se = np.sqrt(ses[..., :, None] ** 2 + ses[..., None, :] ** 2)[..., off]
    return diff, se


def _max_t(diff: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Largest studentised difference per row; 0/0 counts as 0, x/0 as +-inf. `(B, P)` -> `(B,)`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / se
    t = np.where(se > 0, t, np.where(diff > 0, np.inf, np.where(diff < 0, -np.inf, 0.0)))
    t = np.where(np.isnan(t), np.inf, t)  # inf - inf (a zero WER on the log scale): count as extreme
    return t.max(axis=-1)


def _welch_df(ses: np.ndarray, n_clusters: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of every ordered pair `(P,)`."""
    v = ses ** 2
    m = n_clusters.astype(np.float64) - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (v[:, None] + v[None, :]) ** 2 / (v[:, None] ** 2 / m[:, None] + v[None, :] ** 2 / m[None, :])
    df = df[off]
    return np.where(np.isfinite(df) & (df > 0), df, np.minimum.outer(m, m)[off])


# ------------------------------------------------------------------------------ permutations


def permutation_sums(columns: np.ndarray, n_clusters: np.ndarray, n_permutations: int,
                     rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Per-cohort column sums under random relabelling of clusters, in chunks.

    Args:
      columns: `(S, C)` per-cluster values (any order: every permutation reshuffles them).
      n_clusters: `(K,)` clusters per cohort (the sizes every permutation keeps).
      n_permutations: how many relabellings.
      rng: the generator.

    Yields:
      `(b, K, C)` sums for chunks of b permutations (b summing to `n_permutations`).
    """
    S, K = columns.shape[0], len(n_clusters)
    starts = np.concatenate(([0], np.cumsum(n_clusters)[:-1]))
    per_chunk = max(1, _MAX_PERMUTATION_ELEMENTS // max(S * columns.shape[1], K * K, 1))
    base = np.arange(S)
    done = 0
    while done < n_permutations:
        size = min(per_chunk, n_permutations - done)
        # Row b: a random order of the clusters; the first n_0 go to cohort 0, the next n_1 to 1, ...
        order = rng.permuted(np.broadcast_to(base, (size, S)), axis=1)
        yield np.add.reduceat(columns[order], starts, axis=1)
        done += size


def _aggregate(speakers: Sequence[str], cohorts: Sequence[str], errors: np.ndarray, words: np.ndarray,
               utterances: np.ndarray):
    """Sum rows per (speaker, cohort). Returns labels, per-cluster arrays and the split count."""
    keys = np.asarray([f"{c}\x00{s}" for s, c in zip(speakers, cohorts)], dtype=object)
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.stack([np.bincount(inverse, weights=x, minlength=len(unique)) for x in (errors, words, utterances)],
                      axis=1)
    cluster_cohort = [str(k).split("\x00", 1)[0] for k in unique]
    cluster_speaker = [str(k).split("\x00", 1)[1] for k in unique]
    split = len(cluster_speaker) - len(set(cluster_speaker))
    return cluster_cohort, cluster_speaker, summed, split


def speaker_disparity(
    speakers: Sequence[str],
    cohorts: Sequence[str],
    errors: np.ndarray,
    words: np.ndarray,
    utterances: Optional[np.ndarray] = None,
    thresholds: Thresholds = Thresholds(),
    level: float = 0.95,
    n_permutations: int = 1000,
    seed: int = 0,
    rng_names: Sequence[str] = (),
    cohorts_chosen_on_these_speakers: bool = False,
) -> Optional[Disparity]:
    """Best-worst gap of cohort WERs, its interval and permutation p-values.

    Args:
      speakers: speaker of each row `(N,)` (rows are speakers or utterances).
      cohorts: cohort label of each row `(N,)`.
      errors: word errors per row `(N,)`.
      words: reference words per row `(N,)`.
      utterances: utterances per row `(N,)` (default: 1 per row), for the worst cohort's share.
      thresholds: sizes that make a cohort eligible (speakers, words) or flagged (errors).
      level: confidence level of the intervals, e.g. 0.95.
      n_permutations: label permutations (0: no p-values and no intervals).
      seed: base seed; with `rng_names` it fixes every random draw.
      rng_names: names of the grouping (keeps the streams of groupings distinct).
      cohorts_chosen_on_these_speakers: the cohorts were found by searching these same
        speakers' errors (then the test and interval ignore that search; it is said in `method`).

    Returns:
      The `Disparity`, or None when fewer than two cohorts have reference words. If fewer
      than two cohorts are eligible, all cohorts with words are compared (said in `basis`).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    errors = np.asarray(errors, dtype=np.float64)
    words = np.asarray(words, dtype=np.float64)
    utterances = np.ones_like(words) if utterances is None else np.asarray(utterances, dtype=np.float64)
    if not (len(speakers) == len(cohorts) == errors.shape[0] == words.shape[0] == utterances.shape[0]):
        raise ValueError("speakers, cohorts, errors, words and utterances must have the same length")
    cluster_cohort, cluster_speaker, summed, split = _aggregate(speakers, cohorts, errors, words, utterances)

    labels = sorted(set(cluster_cohort))
    members = {label: np.asarray([i for i, c in enumerate(cluster_cohort) if c == label]) for label in labels}
    sizes = {label: (len(set(cluster_speaker[i] for i in idx)), summed[idx, 1].sum()) for label, idx in members.items()}
    scored = [label for label in labels if sizes[label][1] > 0]
    eligible = [label for label in scored if thresholds.eligible(*sizes[label])]
    basis = (f"cohorts with >= {thresholds.min_speakers} speakers and >= {thresholds.min_words} words "
             "(cohorts with few errors are flagged, not dropped)")
    if len(eligible) < 2:
        eligible = scored
        basis = "all cohorts with words (fewer than two have the required speakers and words)"
    if len(eligible) < 2:
        return None

    order = np.concatenate([members[label] for label in eligible])
    n_clusters = np.asarray([len(members[label]) for label in eligible], dtype=np.int64)
    columns = _cluster_columns(summed[order, 0], summed[order, 1])
    cohort_index = np.repeat(np.arange(len(eligible)), n_clusters)
    sums = np.stack([columns[cohort_index == k].sum(axis=0) for k in range(len(eligible))])
    wer, se = wer_and_se(sums, n_clusters)

    worst_k = max(range(len(eligible)), key=lambda k: (wer[k], eligible[k]))
    best_k = min(range(len(eligible)), key=lambda k: (wer[k], eligible[k]))
    wer_worst, wer_best = float(wer[worst_k]), float(wer[best_k])
    abs_gap = wer_worst - wer_best
    rel_gap = abs_gap / wer_best if wer_best > 0 else None

    nan2 = (float("nan"), float("nan"))
    p_value = p_max_t = float("nan")
    abs_ci = rel_ci = nan2
    if n_permutations > 0:
        rng = rng_for(seed, "disparity", *rng_names)
        p_value, p_max_t, abs_ci, rel_ci = _test_and_intervals(columns, n_clusters, sums, level, n_permutations,
                                                               rng)

    errors_by = {label: summed[members[label], 0].sum() for label in labels}
    total_errors = summed[:, 0].sum()
    worst_label = eligible[worst_k]
    n_speakers_total = len(set(cluster_speaker))
    method = METHOD
    if split:
        method += f"; {split} speaker(s) appear in several cohorts: each (speaker, cohort) part is one unit"
    if cohorts_chosen_on_these_speakers:
        method += ("; CAUTION: the cohorts were chosen on these same speakers, which neither the test nor "
                   "the interval accounts for (measure on held-out speakers)")
    wers = wer.astype(np.float64)
    return Disparity(
        basis=basis,
        n_cohorts=len(eligible),
        cohorts=list(eligible),
        worst=worst_label,
        best=eligible[best_k],
        wer_worst=wer_worst,
        wer_best=wer_best,
        abs_gap=abs_gap,
        rel_gap=rel_gap,
        ratio=wer_worst / wer_best if wer_best > 0 else None,
        mean_across=float(wers.mean()),
        std_across=float(wers.std()),
        abs_gap_ci=abs_ci,
        rel_gap_ci=rel_ci,
        level=level,
        p_value=p_value,
        p_value_max_t=p_max_t,
        n_permutations=int(n_permutations),
        n_speakers=int(n_clusters.sum()),
        method=method,
        low_error_cohorts=[label for label in eligible if errors_by[label] < thresholds.min_errors],
        speakers_in_several_cohorts=split,
        worst_share_speakers=sizes[worst_label][0] / n_speakers_total if n_speakers_total else 0.0,
        worst_share_utts=float(summed[members[worst_label], 2].sum() / summed[:, 2].sum()) if summed[:, 2].sum() else 0.0,
        worst_share_errors=float(errors_by[worst_label] / total_errors) if total_errors else 0.0,
    )


def _test_and_intervals(columns: np.ndarray, n_clusters: np.ndarray, sums: np.ndarray, level: float,
                        n_permutations: int, rng: np.random.Generator):
    """Permutation p-values (gap, max-t) and the gap intervals (absolute, relative).

    Args:
      columns: `(S, 5)` cluster columns.
      n_clusters: `(K,)` clusters per cohort.
      sums: `(K, 5)` observed per-cohort sums.
      level, n_permutations, rng: as `speaker_disparity`.

    Returns:
      `(p_gap, p_max_t, abs_ci, rel_ci)`.
    """
    K = len(n_clusters)
    off = ~np.eye(K, dtype=bool)
    wer, se = wer_and_se(sums, n_clusters)
    diff, diff_se = _pairwise(wer, se, off)
    gap = float(wer.max() - wer.min())
    t_obs = float(_max_t(diff[None], diff_se[None])[0])

    perm_gap, perm_t, perm_log_t = [], [], []
    for chunk in permutation_sums(columns, n_clusters, n_permutations, rng):
        w, s = wer_and_se(chunk, n_clusters)
        perm_gap.append(w.max(axis=1) - w.min(axis=1))
        d, ds = _pairwise(w, s, off)
        perm_t.append(_max_t(d, ds))
        with np.errstate(divide="ignore", invalid="ignore"):
            ld, lds = _pairwise(np.log(w), s / w, off)
        perm_log_t.append(_max_t(ld, lds))
    perm_gap_all = np.concatenate(perm_gap)
    perm_t_all, perm_log_t_all = np.concatenate(perm_t), np.concatenate(perm_log_t)

    tolerance = 1e-12 + 1e-9 * abs(gap)  # ties in floating point count as "as extreme"
    p_gap = (1 + np.count_nonzero(perm_gap_all >= gap - tolerance)) / (1 + n_permutations)
    t_tolerance = 1e-9 * abs(t_obs) if math.isfinite(t_obs) else 0.0
    p_max_t = (1 + np.count_nonzero(perm_t_all >= t_obs - t_tolerance)) / (1 + n_permutations)

    if np.any(n_clusters < 2):  # no speaker-level SE for a one-speaker cohort: no max-t, no interval
        nan2 = (float("nan"), float("nan"))
        return float(p_gap), float("nan"), nan2, nan2
    tail = (1.0 - level) / 2.0
    upper_t = stats.t.ppf(1.0 - tail, _welch_df(se, n_clusters, off))
    abs_ci = _projected_interval(diff, diff_se, np.quantile(perm_t_all, 1.0 - tail), upper_t)
    rel_ci = (float("nan"), float("nan"))
    if np.all(wer > 0):
        log_diff, log_diff_se = _pairwise(np.log(wer), se / wer, off)
        log_ci = _projected_interval(log_diff, log_diff_se, np.quantile(perm_log_t_all, 1.0 - tail), upper_t)
        rel_ci = (math.expm1(log_ci[0]), math.expm1(log_ci[1]))
    return float(p_gap), float(p_max_t), abs_ci, rel_ci


def _projected_interval(diff: np.ndarray, se: np.ndarray, lower_crit: float, upper_t: np.ndarray) -> Tuple[float, float]:
    """`[max(0, max(d - c se)), max(d + t se)]` over the ordered pairs `(P,)`."""
    if not math.isfinite(lower_crit):
        low = 0.0
    else:
        low = max(0.0, float(np.max(diff - lower_crit * se)))
    high = float(np.max(diff + upper_t * se))
    return low, max(high, low)


# ----------------------------------------------------------------- a designated (fixed) pair

SIGNED_METHOD = (
    "signed gap of a pair fixed in advance (bottom - top, pooled WERs): percentile interval of the stratified "
    "speaker bootstrap (each side's speakers resampled whole); relative gap bottom / top - 1 with the "
    "percentile interval of log(bottom / top) mapped back; one-sided permutation p (H1: bottom worse; the "
    "two sides' speakers relabelled whole, sizes kept)"
)


@dataclasses.dataclass
class SignedGap:
    """A pre-designated comparison `bottom - top` (fractions), signed: negative when bottom is better.

    `abs_gap_ci` and `p_value` are NaN when not computed (no replicates / permutations, or a
    side under the size floor: `note` says which); the relative fields are None when top's WER is 0.
    """

    n_speakers_bottom: int
    n_speakers_top: int
    wer_bottom: Optional[float]
    wer_top: Optional[float]
    abs_gap: Optional[float]
    abs_gap_ci: Tuple[float, float]
    rel_gap: Optional[float]
    rel_gap_ci: Tuple[float, float]
    p_value: float
    alternative: str
    level: float
    n_boot: int
    n_permutations: int
    method: str
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (NaN/inf become null)."""
        out = dataclasses.asdict(self)
        for key in ("abs_gap_ci", "rel_gap_ci"):
            out[key] = [_finite_or_none(x) for x in out[key]]
        for key in ("abs_gap", "rel_gap", "p_value", "wer_bottom", "wer_top"):
            out[key] = _finite_or_none(out[key])
        return out


def _pooled(errors: np.ndarray, words: np.ndarray) -> Optional[float]:
    total = float(words.sum())
    return float(errors.sum()) / total if total > 0 else None


def _bootstrap_wers(errors: np.ndarray, words: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """`(n_boot,)` pooled WERs of whole-speaker resamples (a replicate without words is NaN)."""
    rows = rng.integers(0, len(errors), size=(n_boot, len(errors)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return errors[rows].sum(axis=1) / words[rows].sum(axis=1)


def signed_pair_gap(
    errors_bottom: np.ndarray,
    words_bottom: np.ndarray,
    errors_top: np.ndarray,
    words_top: np.ndarray,
    level: float = 0.95,
    n_boot: int = 1000,
    n_permutations: int = 1000,
    seed: int = 0,
    rng_names: Sequence[str] = (),
    min_speakers: int = 2,
) -> SignedGap:
    """Signed gap `WER_bottom - WER_top` of a pair chosen before looking at these speakers.

    Args:
      errors_bottom, words_bottom: per-speaker counts of the bottom side `(S_b,)`.
      errors_top, words_top: per-speaker counts of the top side `(S_t,)`.
      level: confidence level of the intervals.
      n_boot: speaker-bootstrap replicates (0: no interval).
      n_permutations: label permutations of the one-sided test (0: no p-value).
      seed, rng_names: fix the random draws.
      min_speakers: a side with fewer speakers (at least 2) gets no interval and no p-value.
    """
    e_b, w_b = np.asarray(errors_bottom, np.float64), np.asarray(words_bottom, np.float64)
    e_t, w_t = np.asarray(errors_top, np.float64), np.asarray(words_top, np.float64)
    wer_b, wer_t = _pooled(e_b, w_b), _pooled(e_t, w_t)
    gap = None if wer_b is None or wer_t is None else wer_b - wer_t
    rel = gap / wer_t if gap is not None and wer_t > 0 else None
    nan2 = (float("nan"), float("nan"))
    abs_ci, rel_ci, p = nan2, nan2, float("nan")
    floor = max(2, min_speakers)
    note = ""
    if gap is None:
        note = "a side has no reference words"
    elif min(len(e_b), len(e_t)) < floor:
        note = f"a side has fewer than {floor} speakers: no interval, no test"
    else:
        tail = (1.0 - level) / 2.0
        if n_boot > 0:
            boot_b = _bootstrap_wers(e_b, w_b, n_boot, rng_for(seed, "signed-gap", "boot-bottom", *rng_names))
            boot_t = _bootstrap_wers(e_t, w_t, n_boot, rng_for(seed, "signed-gap", "boot-top", *rng_names))
            diff = boot_b - boot_t
            abs_ci = tuple(float(x) for x in np.nanquantile(diff, [tail, 1.0 - tail]))
            if rel is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    log_ratio = np.log(boot_b / boot_t)
                low, high = np.quantile(np.where(np.isnan(log_ratio), np.inf, log_ratio), [tail, 1.0 - tail])
                rel_ci = (math.expm1(low), math.expm1(high))
        if n_permutations > 0:
            p = _one_sided_p(np.concatenate([e_b, e_t]), np.concatenate([w_b, w_t]), len(e_b), gap, n_permutations,
                             rng_for(seed, "signed-gap", "perm", *rng_names))
    return SignedGap(len(e_b), len(e_t), wer_b, wer_t, gap, abs_ci, rel, rel_ci, p, "greater (bottom worse)", level,
                     int(n_boot), int(n_permutations), SIGNED_METHOD, note)


def _one_sided_p(errors: np.ndarray, words: np.ndarray, n_bottom: int, gap: float, n_permutations: int,
                 rng: np.random.Generator) -> float:
    """`(1 + #{gap_perm >= gap}) / (1 + n_permutations)`, the first `n_bottom` of each shuffle being bottom."""
    columns = np.stack([errors, words], axis=1)
    exceed = 0
    for chunk in permutation_sums(columns, np.asarray([n_bottom, len(errors) - n_bottom]), n_permutations, rng):
        with np.errstate(divide="ignore", invalid="ignore"):
            wer = chunk[..., 0] / chunk[..., 1]  # (b, 2)
        perm_gap = wer[:, 0] - wer[:, 1]
        exceed += int(np.count_nonzero(perm_gap >= gap - (1e-12 + 1e-9 * abs(gap))))
    return (1 + exceed) / (1 + n_permutations)
