"""Compare two systems scored on the same utterances, overall and per cohort.

Per cohort: both pooled WERs, the difference ``WER_B - WER_A`` (and relative to A), a
paired speaker-level bootstrap (the same resampled speakers for both systems) giving the
CI of the difference and a two-sided p-value, and NIST's four paired tests as sc_stats
computes them (matched-pairs sentence-segment MAPSSWE, sign and Wilcoxon tests on speaker
WER, McNemar on utterance errors; `asrtools.scoring.significance`).

Testing every cohort of a grouping is a family of tests: each p-value is also given
Holm-adjusted over the cohorts of its grouping, and a cohort's verdict ("changed
significantly", better / worse) uses the Holm-adjusted bootstrap p-value. The overall
comparison is a single test (its adjusted p equals the raw one).

A cohort with fewer speakers than the size floor (`speaker_floor`: `--min-speakers`, at least
2) is not tested: a speaker bootstrap over one speaker has no between-speaker variance to
estimate, so its interval collapses to a point and its p-value is meaningless. Such a cohort
gets its WERs and difference but no interval, no p-value (bootstrap or NIST) and the verdict
"too few speakers (1 < 5)"; Holm's adjustment counts only the cohorts actually tested.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.scoring.bootstrap import bootstrap_p_value, bootstrap_wer_pair, percentile_ci, rng_for
from asrtools.scoring.cohorts import (
    ALL,
    CohortSize,
    Grouping,
    Thresholds,
    UtteranceTable,
    cohort_labels,
    finite_or_none,
    group_rows,
    missing_attributes,
    per_speaker_sums,
    too_few_speakers,
)
from asrtools.scoring.significance import (
    McNemarResult,
    MapssweResult,
    SignTestResult,
    WilcoxonResult,
    holm,
    mapsswe,
    mcnemar_test,
    sign_test,
    speaker_wer_percent,
    wilcoxon_test,
)

BETTER, WORSE, UNCHANGED = "better", "worse", "no significant change"


def pair_tables(
    a: UtteranceTable, b: UtteranceTable, name_a: str = "A", name_b: str = "B"
) -> Tuple[UtteranceTable, UtteranceTable]:
    """Check that `a` and `b` score the same utterances with the same references.

    Returns:
      `(a, b reordered to a's utterance order)`.
    """
    index_b = {utt: i for i, utt in enumerate(b.ids)}
    for utt in a.ids:
        if utt not in index_b:
            raise DataError(f"utterance {utt!r} is in {name_a} but not in {name_b}")
    if len(index_b) != len(a.ids):
        in_a = set(a.ids)
        extra = next(utt for utt in b.ids if utt not in in_a)
        raise DataError(f"utterance {extra!r} is in {name_b} but not in {name_a}")
    order = [index_b[utt] for utt in a.ids]
    for i, pos in enumerate(order):
        if a.refs[i] != b.refs[pos]:
            raise DataError(
                f"utterance {a.ids[i]!r}: the reference differs between {name_a} and {name_b} "
                "(different test sets or normalisations?)"
            )
    reordered = UtteranceTable(
        ids=[b.ids[p] for p in order],
        speakers=[b.speakers[p] for p in order],
        counts=b.counts[order],
        attributes=[b.attributes[p] for p in order],
        refs=[b.refs[p] for p in order],
        ops=[b.ops[p] for p in order],
    )
    return a, reordered


@dataclasses.dataclass(frozen=True)
class NistTests:
    """NIST's paired tests of one cohort (sc_stats `-t std4`)."""

    mapsswe: MapssweResult
    sign: SignTestResult
    wilcoxon: WilcoxonResult
    mcnemar: McNemarResult

    def p_values(self) -> Dict[str, float]:
        """`{test name: p-value}`."""
        return {name: getattr(self, name).p_value for name in NIST_TESTS}


NIST_TESTS = ("mapsswe", "sign", "wilcoxon", "mcnemar")


def nist_tests(a: UtteranceTable, b: UtteranceTable, rows: np.ndarray) -> NistTests:
    """The four NIST tests of A vs B on the utterances `rows` (paired tables).

    Speakers are taken in order of first appearance (the order sc_stats uses, which
    decides how the Wilcoxon test splits tied speakers).
    """
    speakers = [a.speakers[i] for i in rows]
    index = {spk: k for k, spk in enumerate(dict.fromkeys(speakers))}
    spk = np.asarray([index[s] for s in speakers], dtype=np.int64)
    by_speaker = np.asarray(rows)[np.argsort(spk, kind="stable")]  # sc_stats' utterance order
    words = np.bincount(spk, weights=a.words[rows], minlength=len(index))
    wer_a = speaker_wer_percent(np.bincount(spk, weights=a.errors[rows], minlength=len(index)), words)
    wer_b = speaker_wer_percent(np.bincount(spk, weights=b.errors[rows], minlength=len(index)), words)
    return NistTests(
        mapsswe=mapsswe([a.ops[i] for i in by_speaker], [b.ops[i] for i in by_speaker]),
        sign=sign_test(wer_a, wer_b),
        wilcoxon=wilcoxon_test(wer_a, wer_b),
        mcnemar=mcnemar_test(a.errors[rows] > 0, b.errors[rows] > 0),
    )


@dataclasses.dataclass
class CohortChange(CohortSize):
    """The A-vs-B comparison of one cohort (WERs as fractions)."""

    errors_a: int
    errors_b: int
    wer_a: Optional[float]
    wer_b: Optional[float]
    ci_a: Tuple[float, float]
    ci_b: Tuple[float, float]
    ci_diff: Tuple[float, float]
    p_bootstrap: float
    tests: Optional[NistTests]
    flags: List[str]
    alpha: float
    p_bootstrap_holm: float = float("nan")
    p_tests_holm: Dict[str, float] = dataclasses.field(default_factory=dict)
    not_tested: Optional[str] = None  # why no interval, p-value or verdict (e.g. "too few speakers (1 < 5)")

    def p_values(self) -> Dict[str, float]:
        """`{NIST test name: p-value}` (NaN for a cohort that was not tested)."""
        if self.tests is None:
            return {name: float("nan") for name in NIST_TESTS}
        return self.tests.p_values()

    @property
    def diff(self) -> Optional[float]:
        """`WER_B - WER_A` (negative: B is better)."""
        if self.wer_a is None or self.wer_b is None:
            return None
        return self.wer_b - self.wer_a

    @property
    def rel_diff(self) -> Optional[float]:
        """`(WER_B - WER_A) / WER_A`."""
        diff = self.diff
        return diff / self.wer_a if diff is not None and self.wer_a else None

    @property
    def mapsswe(self) -> Optional[MapssweResult]:
        """The matched-pairs test of this cohort (None when not tested)."""
        return self.tests.mapsswe if self.tests is not None else None

    @property
    def significant(self) -> bool:
        """Holm-adjusted bootstrap p-value below alpha (over the cohorts of the grouping)."""
        return bool(np.isfinite(self.p_bootstrap_holm) and self.p_bootstrap_holm < self.alpha)

    @property
    def significant_mapsswe(self) -> bool:
        """Holm-adjusted MAPSSWE p-value below alpha."""
        return bool(self.p_tests_holm.get("mapsswe", float("nan")) < self.alpha)

    @property
    def verdict(self) -> str:
        """`better` / `worse` (B relative to A, significant by Holm-adjusted bootstrap), no change, or why not tested."""
        if self.not_tested is not None:
            return self.not_tested
        if not self.significant or self.diff is None or self.diff == 0:
            return UNCHANGED
        return BETTER if self.diff < 0 else WORSE

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (NaN become null)."""
        return {
            **self.size_dict(),
            "errors_a": self.errors_a,
            "errors_b": self.errors_b,
            "wer_a": self.wer_a,
            "wer_b": self.wer_b,
            "diff": self.diff,
            "rel_diff": self.rel_diff,
            "ci_a": [finite_or_none(x) for x in self.ci_a],
            "ci_b": [finite_or_none(x) for x in self.ci_b],
            "ci_diff": [finite_or_none(x) for x in self.ci_diff],
            "p_bootstrap": finite_or_none(self.p_bootstrap),
            "p_bootstrap_holm": finite_or_none(self.p_bootstrap_holm),
            "tests": None if self.tests is None else {
                name: {**getattr(self.tests, name).to_dict(),
                       "p_value_holm": finite_or_none(self.p_tests_holm.get(name, float("nan")))}
                for name in NIST_TESTS},
            "tested": self.not_tested is None,
            "not_tested": self.not_tested,
            "significant": self.significant,
            "significant_mapsswe": self.significant_mapsswe,
            "verdict": self.verdict,
            "flags": list(self.flags),
        }


def cohort_change(
    a: UtteranceTable,
    b: UtteranceTable,
    rows: np.ndarray,
    label: str,
    values: Dict[str, str],
    n_boot: int,
    seed: int,
    level: float,
    alpha: float,
    thresholds: Thresholds,
    rng_names: Sequence[str] = (),
) -> CohortChange:
    """Compare A and B on the utterances `rows` (paired tables from `pair_tables`).

    Args:
      a, b: the paired utterance tables.
      rows: this cohort's utterance indices `(n,)`.
      label, values: the cohort label and its field values.
      n_boot: paired bootstrap replicates (0: no bootstrap).
      seed: base seed.
      level: confidence level of the intervals.
      alpha: significance level.
      thresholds: size thresholds for the flags; below `speaker_floor(thresholds)` speakers
        the cohort is not tested (no interval, no p-value, no verdict).
      rng_names: names of the grouping, for the generator.
    """
    words = a.words[rows]
    err_a, err_b = a.errors[rows], b.errors[rows]
    speakers, sums = per_speaker_sums([a.speakers[i] for i in rows], np.stack([err_a, err_b, words], axis=1))
    n_words = int(words.sum())
    wer_a = int(err_a.sum()) / n_words if n_words else None
    wer_b = int(err_b.sum()) / n_words if n_words else None
    nan_ci = (float("nan"), float("nan"))
    ci_a = ci_b = ci_diff = nan_ci
    p_boot = float("nan")
    not_tested = too_few_speakers(len(speakers), thresholds)
    if not_tested is None and n_boot > 0 and len(rows) and n_words:
        rep_a, rep_b = bootstrap_wer_pair(sums[:, 0], sums[:, 1], sums[:, 2], n_boot,
                                          rng_for(seed, "paired", *rng_names, label))
        ci_a, ci_b = percentile_ci(rep_a, level), percentile_ci(rep_b, level)
        ci_diff = percentile_ci(rep_b - rep_a, level)
        p_boot = bootstrap_p_value(rep_b - rep_a, wer_b - wer_a)
    return CohortChange(
        label=label,
        values=values,
        n_speakers=len(speakers),
        n_utts=int(len(rows)),
        n_words=n_words,
        errors_a=int(err_a.sum()),
        errors_b=int(err_b.sum()),
        wer_a=wer_a,
        wer_b=wer_b,
        ci_a=ci_a,
        ci_b=ci_b,
        ci_diff=ci_diff,
        p_bootstrap=p_boot,
        tests=nist_tests(a, b, rows) if not_tested is None else None,
        flags=thresholds.flags(len(speakers), n_words, int(max(err_a.sum(), err_b.sum()))),
        alpha=alpha,
        not_tested=not_tested,
    )


@dataclasses.dataclass
class ComparisonGrouping(Grouping[CohortChange]):
    """The per-cohort comparison of one `--by` grouping (cohorts by name)."""

    def to_dict(self) -> Dict[str, Any]:
        """JSON form, with the labels of significantly changed and of untested cohorts."""
        return {
            **super().to_dict(),
            "changed": [c.label for c in self.cohorts if c.significant],
            "changed_mapsswe": [c.label for c in self.cohorts if c.significant_mapsswe],
            "not_tested": {c.label: c.not_tested for c in self.cohorts if c.not_tested is not None},
            "n_tests": sum(c.not_tested is None for c in self.cohorts),
        }


@dataclasses.dataclass
class Comparison:
    """System A vs system B: overall and per grouping."""

    name_a: str
    name_b: str
    overall: CohortChange
    groupings: List[ComparisonGrouping]


def compare_systems(
    a: UtteranceTable,
    b: UtteranceTable,
    groupings: Sequence[Sequence[str]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    thresholds: Thresholds = Thresholds(),
    names: Tuple[str, str] = ("A", "B"),
) -> Comparison:
    """Compare two systems overall and per cohort of each grouping.

    Args:
      a, b: utterance tables of the two systems (same utterances and references; cohort
        fields are taken from `a`).
      groupings: e.g. `[("region",), ("region", "gender")]`.
      n_boot: paired bootstrap replicates.
      seed: base seed.
      level: confidence level of the intervals.
      alpha: significance level.
      thresholds: cohort size thresholds: flags, and the size floor below which a cohort
        (or the overall comparison) is not tested (`speaker_floor`).
      names: display names of A and B (used in error messages too).
    """
    a, b = pair_tables(a, b, *names)
    everything = np.arange(len(a.ids), dtype=np.int64)
    overall = cohort_change(a, b, everything, ALL, {}, n_boot, seed, level, alpha, thresholds, ("overall",))
    overall.p_bootstrap_holm = overall.p_bootstrap  # one test: nothing to adjust
    overall.p_tests_holm = overall.p_values()
    results = []
    for by in groupings:
        by = tuple(by)
        labels, values = cohort_labels(a, by)
        cohorts = [
            cohort_change(a, b, rows, label, values[label], n_boot, seed, level, alpha, thresholds, (",".join(by),))
            for label, rows in sorted(group_rows(labels).items())
        ]
        tested = [c for c in cohorts if c.not_tested is None]  # Holm counts only the tests made
        for cohort, value in zip(tested, holm([c.p_bootstrap for c in tested])):
            cohort.p_bootstrap_holm = value
        for name in NIST_TESTS:
            for cohort, value in zip(tested, holm([c.p_values()[name] for c in tested])):
                cohort.p_tests_holm[name] = value
        results.append(ComparisonGrouping(by, cohorts, missing_attributes(a, by)))
    return Comparison(names[0], names[1], overall, results)
