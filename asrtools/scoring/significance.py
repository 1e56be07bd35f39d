"""Significance tests for comparing two systems on the same utterances.

MAPSSWE (matched-pairs sentence-segment word error test, Gillick & Cox 1989), as NIST
``sc_stats`` computes it, with whole utterances as the segments: for every utterance where
at least one system makes an error (a segment with no error in either system carries no
information and is never formed by sc_stats), ``z_u = err_A(u) - err_B(u)``; with ``n``
segments, mean ``m`` and variance ``s^2`` (``n - 1`` divisor),
``W = m / (s / sqrt(n))`` is compared with the standard normal (two-sided). Like sc_stats,
a zero variance gives ``W = 0`` (reported as no evidence of a difference).

Holm's step-down adjustment is provided for testing many cohorts at once.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class MapssweResult:
    """The outcome of one MAPSSWE test.

    Attributes:
      n_segments: utterances with at least one error in either system.
      mean: mean of `err_A - err_B` over the segments.
      std: its standard deviation (n - 1 divisor).
      z: the test statistic W.
      p_value: two-sided normal p-value (1.0 when there are fewer than 2 segments).
    """

    n_segments: int
    mean: float
    std: float
    z: float
    p_value: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def normal_two_sided_p(z: float) -> float:
    """`P(|N(0, 1)| >= |z|)`."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def mapsswe(errors_a: np.ndarray, errors_b: np.ndarray) -> MapssweResult:
    """MAPSSWE over utterances as segments.

    Args:
      errors_a: word errors of system A per utterance `(U,)`.
      errors_b: word errors of system B on the same utterances `(U,)`.
    """
    errors_a = np.asarray(errors_a, dtype=np.float64)
    errors_b = np.asarray(errors_b, dtype=np.float64)
    if errors_a.shape != errors_b.shape:
        raise ValueError(f"error arrays differ in shape: {errors_a.shape} vs {errors_b.shape}")
    segments = (errors_a > 0) | (errors_b > 0)
    diff = (errors_a - errors_b)[segments]
    n = int(diff.size)
    if n < 2:
        mean = float(diff.mean()) if n else 0.0
        return MapssweResult(n, mean, 0.0, 0.0, 1.0)
    mean = float(diff.mean())
    variance = float(((diff - mean) ** 2).sum() / (n - 1))
    if variance == 0.0:
        return MapssweResult(n, mean, 0.0, 0.0, 1.0)
    std = math.sqrt(variance)
    z = mean / (std / math.sqrt(n))
    return MapssweResult(n, mean, std, z, normal_two_sided_p(z))


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
