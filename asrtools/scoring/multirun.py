"""Compare two systems that were each trained (and decoded) one or more times, e.g. with several seeds.

A system's runs are summarised per utterance by their mean error count, so each speaker
contributes its run-averaged errors over its reference words. The two systems are then
compared exactly as `asrtools.scoring.compare` compares two single runs overall: pooled
WERs, the difference ``WER_B - WER_A``, and a paired speaker-level bootstrap (the same
resampled speakers for both systems) giving the CI of the difference and a two-sided
p-value. With one run per system the numbers equal `compare_systems(...).overall` (same
generator names, same sums), so `asrtools score compare` and a report's pairwise section
agree.

What the interval covers: speaker sampling for these trained runs. Run-to-run (seed)
variation is averaged out, not resampled, so the test asks whether these runs of B beat
these runs of A on this speaker population; the per-run WERs (`run_wers_a/b`) show the
spread between runs.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.scoring.bootstrap import bootstrap_p_value, bootstrap_wer_pair, percentile_ci, rng_for
from asrtools.scoring.cohorts import ALL, UtteranceTable, finite_or_none, per_speaker_sums
from asrtools.scoring.compare import pair_tables


@dataclasses.dataclass
class RunAveragedComparison:
    """System A vs system B over their runs (WERs as fractions; B − A, negative: B better).

    Attributes:
      n_runs_a, n_runs_b: runs of each system.
      n_speakers, n_utts, n_words: the shared test set.
      wer_a, wer_b: pooled WER of the run-averaged errors (None without reference words).
      run_wers_a, run_wers_b: each run's pooled WER.
      ci_a, ci_b, ci_diff: bootstrap percentile intervals (NaN without a bootstrap).
      p_bootstrap: two-sided bootstrap p-value of "no difference" (NaN without a bootstrap).
      n_boot: bootstrap replicates.
      level: confidence level of the intervals.
    """

    n_runs_a: int
    n_runs_b: int
    n_speakers: int
    n_utts: int
    n_words: int
    wer_a: Optional[float]
    wer_b: Optional[float]
    run_wers_a: List[Optional[float]]
    run_wers_b: List[Optional[float]]
    ci_a: Tuple[float, float]
    ci_b: Tuple[float, float]
    ci_diff: Tuple[float, float]
    p_bootstrap: float
    n_boot: int
    level: float

    @property
    def diff(self) -> Optional[float]:
        """`WER_B - WER_A`."""
        return None if self.wer_a is None or self.wer_b is None else self.wer_b - self.wer_a

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (NaN become null)."""
        return {
            "n_runs_a": self.n_runs_a,
            "n_runs_b": self.n_runs_b,
            "n_speakers": self.n_speakers,
            "n_utts": self.n_utts,
            "n_words": self.n_words,
            "wer_a": self.wer_a,
            "wer_b": self.wer_b,
            "diff": self.diff,
            "run_wers_a": self.run_wers_a,
            "run_wers_b": self.run_wers_b,
            "ci_a": [finite_or_none(x) for x in self.ci_a],
            "ci_b": [finite_or_none(x) for x in self.ci_b],
            "ci_diff": [finite_or_none(x) for x in self.ci_diff],
            "p_bootstrap": finite_or_none(self.p_bootstrap),
            "n_boot": self.n_boot,
            "level": self.level,
        }


def _aligned_errors(base: UtteranceTable, base_name: str, runs: Sequence[UtteranceTable], name: str) -> np.ndarray:
    """`(R, U)` word errors of each run in `base`'s utterance order (same utterances and references)."""
    rows = []
    for index, run in enumerate(runs, start=1):
        _, aligned = pair_tables(base, run, base_name, f"run {index} of {name}")
        rows.append(aligned.errors.astype(np.float64))
    return np.stack(rows)


def _pooled(errors: np.ndarray, words: int) -> Optional[float]:
    return float(errors.sum()) / words if words else None


def compare_run_averaged(
    runs_a: Sequence[UtteranceTable],
    runs_b: Sequence[UtteranceTable],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    names: Tuple[str, str] = ("A", "B"),
) -> RunAveragedComparison:
    """Compare the run-averaged errors of two systems with a paired speaker bootstrap.

    Args:
      runs_a: utterance tables of system A's runs (at least one).
      runs_b: those of system B; every run must score the same utterances with the same
        references as A's first run.
      n_boot: bootstrap replicates (0: no intervals or p-value).
      seed: base seed (the generator is the one `compare_systems` uses overall).
      level: confidence level of the intervals.
      names: display names of A and B, for error messages.

    Raises:
      DataError: a system without runs, or runs over different utterances or references
        (naming the utterance and the runs).
    """
    if not runs_a or not runs_b:
        raise DataError(f"system {names[0] if not runs_a else names[1]} has no runs to compare")
    base = runs_a[0]
    base_name = f"run 1 of {names[0]}"
    errors_a = _aligned_errors(base, base_name, runs_a, names[0])  # (R_a, U)
    errors_b = _aligned_errors(base, base_name, runs_b, names[1])  # (R_b, U)
    words = base.words.astype(np.float64)
    n_words = int(base.words.sum())
    mean_a, mean_b = errors_a.mean(axis=0), errors_b.mean(axis=0)  # (U,)
    speakers, sums = per_speaker_sums(base.speakers, np.stack([mean_a, mean_b, words], axis=1))
    wer_a, wer_b = _pooled(mean_a, n_words), _pooled(mean_b, n_words)
    nan_ci = (float("nan"), float("nan"))
    ci_a = ci_b = ci_diff = nan_ci
    p_value = float("nan")
    if n_boot > 0 and n_words:
        rep_a, rep_b = bootstrap_wer_pair(sums[:, 0], sums[:, 1], sums[:, 2], n_boot,
                                          rng_for(seed, "paired", "overall", ALL))
        ci_a, ci_b, ci_diff = percentile_ci(rep_a, level), percentile_ci(rep_b, level), percentile_ci(rep_b - rep_a, level)
        p_value = bootstrap_p_value(rep_b - rep_a, wer_b - wer_a)
    return RunAveragedComparison(
        n_runs_a=len(runs_a),
        n_runs_b=len(runs_b),
        n_speakers=len(speakers),
        n_utts=len(base.ids),
        n_words=n_words,
        wer_a=wer_a,
        wer_b=wer_b,
        run_wers_a=[_pooled(e, n_words) for e in errors_a],
        run_wers_b=[_pooled(e, n_words) for e in errors_b],
        ci_a=ci_a,
        ci_b=ci_b,
        ci_diff=ci_diff,
        p_bootstrap=p_value,
        n_boot=n_boot,
        level=level,
    )
