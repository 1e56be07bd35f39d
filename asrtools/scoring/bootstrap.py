"""Seeded, vectorised bootstrap resampling of WER-like ratios.

WER is a ratio of sums (errors / reference words), and utterances of one speaker are not
independent, so confidence intervals come from a *cluster* bootstrap: resample whole
clusters (speakers) with replacement and recompute the pooled ratio. Resampling
utterances instead (clusters of one) is available for comparison; it ignores the
within-speaker correlation and gives too narrow intervals when speakers differ.

All resampling for one quantity uses one `numpy.random.Generator`; `rng_for` derives it
from the user's seed and names (grouping, cohort), so a cohort's interval does not change
when other cohorts or groupings are added.
"""
from __future__ import annotations

import zlib
from typing import Tuple

import numpy as np

_MAX_INDEX_ELEMENTS = 1 << 22  # resample indices held in memory at once (32 MiB)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded by `seed` and the CRC32 of each name (stable across runs).

    Args:
      seed: the user's seed.
      names: strings identifying what is resampled, e.g. ("speaker", "region", "north").
    """
    entropy = [int(seed)] + [zlib.crc32(name.encode("utf-8")) for name in names]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def resample_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of `n_boot` resamples (with replacement) of the rows of `values`.

    Args:
      values: per-cluster quantities, shape `(n_clusters, K)` (e.g. errors, words).
      n_boot: number of bootstrap replicates.
      rng: the generator.

    Returns:
      `(n_boot, K)` sums; row b sums `n_clusters` rows drawn uniformly with replacement.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be (n_clusters, K), got shape {values.shape}")
    n_clusters, n_cols = values.shape
    out = np.zeros((n_boot, n_cols), dtype=np.float64)
    if n_clusters == 0:
        return out
    per_chunk = max(1, _MAX_INDEX_ELEMENTS // n_clusters)
    for start in range(0, n_boot, per_chunk):
        size = min(per_chunk, n_boot - start)
        index = rng.integers(0, n_clusters, size=(size, n_clusters))
        for col in range(n_cols):
            out[start : start + size, col] = values[:, col][index].sum(axis=1)
    return out


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise `numerator / denominator`, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def bootstrap_wer(errors: np.ndarray, words: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Pooled-WER replicates `(n_boot,)` from resampling clusters.

    Args:
      errors: errors per cluster `(n_clusters,)`.
      words: reference words per cluster `(n_clusters,)`.
      n_boot: number of replicates.
      rng: the generator.
    """
    sums = resample_sums(np.stack([errors, words], axis=1), n_boot, rng)
    return ratio(sums[:, 0], sums[:, 1])


def bootstrap_wer_pair(
    errors_a: np.ndarray, errors_b: np.ndarray, words: np.ndarray, n_boot: int, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray]:
    """Paired replicates of two systems' pooled WER on the same resampled clusters.

    Args:
      errors_a: system A's errors per cluster `(n_clusters,)`.
      errors_b: system B's errors per cluster `(n_clusters,)`.
      words: reference words per cluster `(n_clusters,)`.
      n_boot: number of replicates.
      rng: the generator.

    Returns:
      `(wer_a, wer_b)`, each `(n_boot,)`.
    """
    sums = resample_sums(np.stack([errors_a, errors_b, words], axis=1), n_boot, rng)
    return ratio(sums[:, 0], sums[:, 2]), ratio(sums[:, 1], sums[:, 2])


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> Tuple[float, float]:
    """Percentile interval `(low, high)` covering `level` of the replicates (NaNs ignored).

    Returns `(nan, nan)` if no replicate is finite.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_p_value(replicates: np.ndarray, observed: float) -> float:
    """Two-sided p-value of "no difference" from replicates of a difference.

    The replicate distribution is shifted to mean zero under the null (Efron &
    Tibshirani's test): `p = (1 + #{|d_b - d| >= |d|}) / (1 + B)`, `d` the observed value.
    """
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0 or not np.isfinite(observed):
        return float("nan")
    extreme = np.count_nonzero(np.abs(finite - observed) >= abs(observed) - 1e-12)
    return float((1 + extreme) / (1 + finite.size))
