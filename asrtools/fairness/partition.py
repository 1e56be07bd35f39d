"""The best binary partition of speakers by pooled WER, and its selection-aware permutation test.

Both the geographic tree (a threshold on latitude or longitude) and the geodemographic
partitions (a value or threshold of a census attribute of the speaker's zip code) choose
among candidate partitions of a set of `n` speakers. A candidate is a membership row; all
candidates form a matrix `members (C, n)` (1 = the speaker is on the "in" side). For
speaker errors `e` and words `w` the side sums are `members @ e`, so evaluating every
candidate under many permutations is one matrix product.

- `best_split`: the candidate maximising `|W_in - W_out|` (pooled WER of each side) among
  those with at least `min_speakers` speakers and `min_words` words on both sides; ties go to
  the first candidate.
- `split_p_value`: "the speakers' (errors, words) do not depend on what the candidates
  look at" is tested by permuting whole speakers' (errors, words) pairs across speakers and
  re-running the *whole* search (every candidate, the size rules re-checked) in every
  permutation, so the p-value accounts for choosing the best of many splits:
  `p = (1 + #{best gap_perm >= gap}) / (1 + n_permutations)`.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Tuple

import numpy as np

_MAX_ELEMENTS = 1 << 22  # (permutations x candidates) or (permutations x speakers) per chunk


@dataclasses.dataclass(frozen=True)
class SideLimits:
    """Minimum size of each side of a partition."""

    min_speakers: int
    min_words: float


@dataclasses.dataclass(frozen=True)
class Split:
    """The chosen candidate: its row in `members`, the gap and each side's pooled WER."""

    index: int
    gap: float
    wer_in: float
    wer_out: float


def _gaps(members: np.ndarray, errors: np.ndarray, words: np.ndarray, limits: SideLimits) -> np.ndarray:
    """`|W_in - W_out|` of every candidate `(B, C)`; `-inf` where a side is too small.

    Args:
      members: `(C, n)` float 0/1 membership of the "in" side.
      errors, words: `(B, n)` per-speaker counts (B orderings of the speakers).
      limits: the size rules.
    """
    n = members.shape[1]
    count_in = members.sum(axis=1)  # (C,)
    e_in, w_in = errors @ members.T, words @ members.T  # (B, C)
    e_out = errors.sum(axis=1, keepdims=True) - e_in
    w_out = words.sum(axis=1, keepdims=True) - w_in
    valid = ((count_in >= limits.min_speakers) & (n - count_in >= limits.min_speakers))[None, :]
    valid = valid & (w_in >= limits.min_words) & (w_out >= limits.min_words) & (w_in > 0) & (w_out > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(e_in / w_in - e_out / w_out)
    return np.where(valid, gap, -np.inf)


def best_split(members: np.ndarray, errors: np.ndarray, words: np.ndarray, limits: SideLimits) -> Optional[Split]:
    """The candidate with the largest WER gap between its sides, or None if no candidate is valid.

    Args:
      members: `(C, n)` 0/1 membership of the "in" side per candidate.
      errors, words: `(n,)` per-speaker counts.
      limits: the size rules of both sides.
    """
    members = np.asarray(members, dtype=np.float64).reshape(-1, len(errors))
    if members.shape[0] == 0:
        return None
    gaps = _gaps(members, errors[None, :], words[None, :], limits)[0]
    index = int(np.argmax(gaps))
    if not np.isfinite(gaps[index]):
        return None
    side = members[index] > 0
    wer_in = float(errors[side].sum() / words[side].sum())
    wer_out = float(errors[~side].sum() / words[~side].sum())
    return Split(index, float(gaps[index]), wer_in, wer_out)


def _permuted(n: int, n_permutations: int, per_chunk: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    done = 0
    base = np.arange(n)
    while done < n_permutations:
        size = min(per_chunk, n_permutations - done)
        yield rng.permuted(np.broadcast_to(base, (size, n)), axis=1)
        done += size


def permutation_maxima(members: np.ndarray, errors: np.ndarray, words: np.ndarray, limits: SideLimits,
                       n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """The best valid gap of each permutation `(n_permutations,)` (`-inf` when none is valid).

    Args:
      members: `(C, n)` candidates (fixed: they depend on the speakers' coordinates/zips only).
      errors, words: `(n,)` per-speaker counts; each permutation shuffles the pairs across speakers.
      limits: the size rules, re-checked in every permutation (words move with the speakers).
      n_permutations: how many permutations.
      rng: the generator.
    """
    members = np.asarray(members, dtype=np.float64).reshape(-1, len(errors))
    n, C = len(errors), members.shape[0]
    per_chunk = max(1, _MAX_ELEMENTS // max(n, C, 1))
    maxima = [_gaps(members, errors[order], words[order], limits).max(axis=1)
              for order in _permuted(n, n_permutations, per_chunk, rng)]
    return np.concatenate(maxima) if maxima else np.zeros(0)


def split_p_value(members: np.ndarray, errors: np.ndarray, words: np.ndarray, limits: SideLimits,
                  gap: float, n_permutations: int, rng: np.random.Generator) -> Tuple[float, int]:
    """Selection-aware permutation p-value of the best split's `gap`.

    Returns:
      `(p, n_as_extreme)` with `p = (1 + n_as_extreme) / (1 + n_permutations)`; NaN when
      `n_permutations` is 0.
    """
    if n_permutations <= 0:
        return float("nan"), 0
    maxima = permutation_maxima(members, errors, words, limits, n_permutations, rng)
    tolerance = 1e-12 + 1e-9 * abs(gap)  # ties in floating point count as "as extreme"
    extreme = int(np.count_nonzero(maxima >= gap - tolerance))
    return (1 + extreme) / (1 + n_permutations), extreme
