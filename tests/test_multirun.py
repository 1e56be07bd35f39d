"""asrtools.scoring.multirun: run-averaged paired speaker bootstrap, checked on simulated data.

The simulation: 30 speakers x 5 utterances of 6-14 words, each speaker's word error rate
drawn from Beta(4, 12); every run of a system draws binomial errors at its speakers' rates.
Under the null both systems share the rates; with a planted gain system B's rates are 5
points lower. Fewer bootstrap replicates (199) than the default keep it fast.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest

from asrtools.errors import DataError
from asrtools.scoring.cohorts import UtteranceTable
from asrtools.scoring.compare import compare_systems
from asrtools.scoring.multirun import compare_run_averaged

SPEAKERS, UTTS = 30, 5


def _table(errors: np.ndarray, words: np.ndarray, speakers: List[str], refs: List[str]) -> UtteranceTable:
    counts = np.stack([words - errors, errors, np.zeros_like(errors), np.zeros_like(errors)], axis=1).astype(np.int64)
    ids = [f"{s}-u{i}" for i, s in enumerate(speakers)]
    ops = ["C" * (w - e) + "S" * e for w, e in zip(words.tolist(), errors.tolist())]
    return UtteranceTable(ids, list(speakers), counts, [{} for _ in ids], list(refs), ops)


def _simulate(rng: np.random.Generator, gain: float, runs: Tuple[int, int]) -> Tuple[list, list]:
    rates = rng.beta(4, 12, size=SPEAKERS)
    speakers = [f"spk{s:02d}" for s in range(SPEAKERS) for _ in range(UTTS)]
    words = rng.integers(6, 15, size=SPEAKERS * UTTS)
    refs = [f"ref {i}" for i in range(len(words))]
    per_utt = np.repeat(rates, UTTS)
    systems = []
    for n_runs, shift in zip(runs, (0.0, gain)):
        systems.append([_table(rng.binomial(words, np.clip(per_utt - shift, 0, 1)), words, speakers, refs)
                        for _ in range(n_runs)])
    return systems[0], systems[1]


def test_single_runs_equal_compare_systems_overall() -> None:
    a, b = _simulate(np.random.default_rng(1), 0.03, (1, 1))
    ours = compare_run_averaged(a, b, n_boot=300, seed=7, level=0.9)
    theirs = compare_systems(a[0], b[0], [], n_boot=300, seed=7, level=0.9).overall
    assert (ours.wer_a, ours.wer_b) == (theirs.wer_a, theirs.wer_b)
    assert ours.ci_diff == pytest.approx(theirs.ci_diff) and ours.ci_a == pytest.approx(theirs.ci_a)
    assert ours.p_bootstrap == pytest.approx(theirs.p_bootstrap)


def test_runs_are_averaged_per_utterance() -> None:
    a, b = _simulate(np.random.default_rng(2), 0.0, (2, 3))
    result = compare_run_averaged(a, b, n_boot=50)
    assert (result.n_runs_a, result.n_runs_b, result.n_speakers, result.n_utts) == (2, 3, SPEAKERS, SPEAKERS * UTTS)
    assert result.wer_a == pytest.approx(np.mean(result.run_wers_a))
    assert result.wer_b == pytest.approx(np.mean(result.run_wers_b))
    assert result.run_wers_a[1] == pytest.approx(a[1].errors.sum() / a[1].words.sum())


def test_runs_over_different_utterances_are_refused() -> None:
    a, b = _simulate(np.random.default_rng(3), 0.0, (2, 1))
    short = UtteranceTable(a[1].ids[:-1], a[1].speakers[:-1], a[1].counts[:-1], a[1].attributes[:-1], a[1].refs[:-1],
                           a[1].ops[:-1])
    with pytest.raises(DataError, match="is in run 1 of lstm but not in run 2 of lstm"):
        compare_run_averaged([a[0], short], b, names=("lstm", "convrnnt"))
    other = UtteranceTable(b[0].ids, b[0].speakers, b[0].counts, b[0].attributes, ["x"] + b[0].refs[1:], b[0].ops)
    with pytest.raises(DataError, match="the reference differs between run 1 of lstm and run 1 of convrnnt"):
        compare_run_averaged(a, [other], names=("lstm", "convrnnt"))


def _rates(gain: float, runs: Tuple[int, int], sets: int, seed: int) -> Tuple[float, float]:
    """(rejection rate at alpha 0.05, coverage of the true difference -gain by the 95% CI)."""
    rng = np.random.default_rng(seed)
    rejected = covered = 0
    for _ in range(sets):
        a, b = _simulate(rng, gain, runs)
        result = compare_run_averaged(a, b, n_boot=199, seed=int(rng.integers(1 << 30)))
        rejected += result.p_bootstrap < 0.05
        covered += result.ci_diff[0] <= -gain <= result.ci_diff[1]
    return rejected / sets, covered / sets


@pytest.mark.parametrize("runs", [(1, 1), (2, 3)])
def test_calibrated_under_the_null_and_powerful_with_a_planted_gain(runs) -> None:
    false_positives, null_coverage = _rates(0.0, runs, sets=300, seed=11)
    assert 0.02 <= false_positives <= 0.09, false_positives
    assert null_coverage >= 0.9
    power, coverage = _rates(0.05, runs, sets=100, seed=12)
    assert power >= 0.8 and coverage >= 0.88, (power, coverage)
