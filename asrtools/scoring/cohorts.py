"""WER by speaker cohort: pooled WER, per-speaker spread, bootstrap CIs, disparity summary.

A cohort is the set of utterances sharing the values of the grouping fields (``--by
region`` or ``--by region,gender``). A field is looked up, in order, in the speaker
attributes given with ``--cohort-map``, in the utterance's cohort fields (``custom`` of
recogs.jsonl), and as ``speaker`` itself; an utterance without the field falls in the
cohort ``(missing)``, and every grouping reports which speakers lack which field
(`missing_attributes`: in the log, cohorts.json and cohorts.md). The ``(missing)`` cohort is
shown but never enters the gap test: it is not a group of speakers that share anything.

The size floor (`speaker_floor`): a cohort with fewer speakers than ``--min-speakers`` (never
fewer than 2) gets no interval, no p-value and no verdict, since a speaker bootstrap over one
speaker has nothing to resample; it is shown with "too few speakers (1 < 5)" instead, and it
does not enter the gap test.

Per cohort: speakers, utterances, reference words, pooled WER (sum of errors / sum of
words), substitution/deletion/insertion rates, mean/median/SD of per-speaker WER (speakers
with reference words), a speaker-level cluster-bootstrap CI of the pooled WER and, for
comparison, an utterance-level bootstrap CI, and flags for cohorts below the size
thresholds. The disparity summary of each grouping (worst vs best cohort, its interval and
permutation test) comes from `asrtools.scoring.disparity`, which decides eligibility by
speakers and words only.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np

from asrtools.errors import ConfigError
from asrtools.scoring.bootstrap import bootstrap_wer, percentile_ci, rng_for
# Thresholds and Disparity are defined with the disparity rules and used from here too.
from asrtools.scoring.disparity import Disparity, Thresholds, speaker_disparity  # noqa: F401
from asrtools.scoring.wer import WerReport

MISSING = "(missing)"
ALL = "all"
MIN_SPEAKERS_FOR_A_TEST = 2  # below this no speaker-level variance exists, whatever --min-speakers says


def speaker_floor(thresholds: Thresholds) -> int:
    """The fewest speakers a cohort needs for an interval, a p-value or a verdict.

    It is `thresholds.min_speakers` (`--min-speakers`, default 5), and never below
    `MIN_SPEAKERS_FOR_A_TEST`.
    """
    return max(int(thresholds.min_speakers), MIN_SPEAKERS_FOR_A_TEST)


def too_few_speakers(n_speakers: int, thresholds: Thresholds) -> Optional[str]:
    """Why a cohort of `n_speakers` is not tested (e.g. "too few speakers (1 < 5)"), or None if it is."""
    floor = speaker_floor(thresholds)
    return f"too few speakers ({n_speakers} < {floor})" if n_speakers < floor else None


@dataclasses.dataclass
class UtteranceTable:
    """Per-utterance counts and cohort attributes, column-wise.

    Attributes:
      ids: utterance ids `(U,)`.
      speakers: speaker ids `(U,)`.
      counts: `(U, 4)` int64 `(corr, sub, del, ins)`.
      attributes: per utterance, its cohort fields (after `--cohort-map` speaker attributes).
      refs: per utterance, the normalised reference text (to check paired inputs).
      ops: per utterance, the alignment as `C/S/D/I` ops (for the matched-pairs test).
    """

    ids: List[str]
    speakers: List[str]
    counts: np.ndarray
    attributes: List[Mapping[str, Any]]
    refs: List[str]
    ops: List[str]

    @classmethod
    def from_report(
        cls, report: WerReport, speaker_attributes: Optional[Mapping[str, Mapping[str, Any]]] = None
    ) -> "UtteranceTable":
        """Build from a `WerReport`; `speaker_attributes` override utterance fields."""
        speaker_attributes = speaker_attributes or {}
        attributes = []
        for utt in report.utterances:
            merged = dict(utt.custom)
            merged.update(speaker_attributes.get(utt.speaker, {}))
            merged.setdefault("speaker", utt.speaker)
            attributes.append(merged)
        return cls(
            ids=[u.id for u in report.utterances],
            speakers=[u.speaker for u in report.utterances],
            counts=report.counts_array(),
            attributes=attributes,
            refs=[" ".join(u.alignment.ref) for u in report.utterances],
            ops=[u.alignment.ops for u in report.utterances],
        )

    @property
    def words(self) -> np.ndarray:
        """Reference words per utterance `(U,)`."""
        return self.counts[:, 0] + self.counts[:, 1] + self.counts[:, 2]

    @property
    def errors(self) -> np.ndarray:
        """Word errors per utterance `(U,)`."""
        return self.counts[:, 1:].sum(axis=1)


def parse_by(specs: Sequence[str]) -> List[Tuple[str, ...]]:
    """`["region", "region,gender"]` -> `[("region",), ("region", "gender")]`."""
    groupings = []
    for spec in specs:
        fields = tuple(f.strip() for f in spec.split(",") if f.strip())
        if not fields:
            raise ConfigError(f"--by {spec!r}: no field name")
        groupings.append(fields)
    return groupings


def cohort_labels(table: UtteranceTable, by: Sequence[str]) -> Tuple[List[str], Dict[str, Dict[str, str]]]:
    """The cohort label of every utterance, and each label's field values.

    Args:
      table: the utterances.
      by: grouping fields; a label joins the values with `/`.

    Returns:
      `(labels (U,), {label: {field: value}})`.
    """
    for field in by:
        if not any(field in attrs for attrs in table.attributes):
            known = sorted({k for attrs in table.attributes for k in attrs})
            raise ConfigError(f"--by {field!r}: no utterance has this field (known: {', '.join(known)})")
    labels = []
    values: Dict[str, Dict[str, str]] = {}
    for attrs in table.attributes:
        parts = {f: str(attrs[f]) if attrs.get(f) not in (None, "") else MISSING for f in by}
        label = "/".join(parts.values())
        values.setdefault(label, parts)
        labels.append(label)
    return labels, values


def missing_attributes(table: UtteranceTable, by: Sequence[str]) -> Dict[str, List[str]]:
    """For each field of `by`, the speakers with an utterance that lacks it (sorted; fields with none left out)."""
    missing: Dict[str, set] = {}
    for speaker, attrs in zip(table.speakers, table.attributes):
        for field in by:
            if attrs.get(field) in (None, ""):
                missing.setdefault(field, set()).add(speaker)
    return {field: sorted(speakers) for field, speakers in missing.items()}


def describe_missing(missing: Mapping[str, Sequence[str]], n_speakers: int, examples: int = 5) -> List[str]:
    """One line per field, e.g. "accent: 2 of 40 speakers have no value (s1, s2)"."""
    lines = []
    for field, speakers in missing.items():
        shown = ", ".join(speakers[:examples]) + (" ..." if len(speakers) > examples else "")
        lines.append(f"{field}: {len(speakers)} of {n_speakers} speakers have no value ({shown})")
    return lines


def _mean_median_sd(values: np.ndarray) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    if values.size == 0:
        return None, None, None
    as_list = values.tolist()
    sd = statistics.stdev(as_list) if len(as_list) > 1 else None
    return statistics.fmean(as_list), statistics.median(as_list), sd


def _rate(part: float, whole: float) -> Optional[float]:
    return part / whole if whole else None


@dataclasses.dataclass
class CohortSize:
    """Which cohort, and how much data it holds; the first fields of every per-cohort result."""

    label: str
    values: Dict[str, str]
    n_speakers: int
    n_utts: int
    n_words: int

    def size_dict(self) -> Dict[str, Any]:
        """JSON form of these fields (the head of each per-cohort result's `to_dict`)."""
        return {
            "cohort": self.label,
            "values": dict(self.values),
            "n_speakers": self.n_speakers,
            "n_utts": self.n_utts,
            "n_words": self.n_words,
        }


@dataclasses.dataclass
class CohortStats(CohortSize):
    """WER statistics of one cohort (fractions, not percentages)."""

    n_errors: int
    n_sub: int
    n_del: int
    n_ins: int
    wer: Optional[float]
    speaker_wer_mean: Optional[float]
    speaker_wer_median: Optional[float]
    speaker_wer_sd: Optional[float]
    ci_speaker: Tuple[float, float]
    ci_utterance: Tuple[float, float]
    flags: List[str]
    share_speakers: float = 1.0
    share_utts: float = 1.0
    share_errors: float = 1.0
    not_tested: Optional[str] = None  # why there is no interval (e.g. "too few speakers (1 < 5)")

    @property
    def sub_rate(self) -> Optional[float]:
        """Substitutions per reference word."""
        return _rate(self.n_sub, self.n_words)

    @property
    def del_rate(self) -> Optional[float]:
        """Deletions per reference word."""
        return _rate(self.n_del, self.n_words)

    @property
    def ins_rate(self) -> Optional[float]:
        """Insertions per reference word."""
        return _rate(self.n_ins, self.n_words)

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (NaN bounds become null)."""
        return {
            **self.size_dict(),
            "n_errors": self.n_errors,
            "n_sub": self.n_sub,
            "n_del": self.n_del,
            "n_ins": self.n_ins,
            "wer": self.wer,
            "sub_rate": self.sub_rate,
            "del_rate": self.del_rate,
            "ins_rate": self.ins_rate,
            "speaker_wer_mean": self.speaker_wer_mean,
            "speaker_wer_median": self.speaker_wer_median,
            "speaker_wer_sd": self.speaker_wer_sd,
            "ci_speaker": [finite_or_none(x) for x in self.ci_speaker],
            "ci_utterance": [finite_or_none(x) for x in self.ci_utterance],
            "flags": list(self.flags),
            "share_speakers": self.share_speakers,
            "share_utts": self.share_utts,
            "share_errors": self.share_errors,
            "not_tested": self.not_tested,
        }


def finite_or_none(value: Optional[float]) -> Optional[float]:
    """`value` if it is a finite number, else None (JSON has no NaN/inf)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def per_speaker_sums(speakers: Sequence[str], columns: np.ndarray) -> Tuple[List[str], np.ndarray]:
    """Sum rows of `columns` `(U, K)` per speaker; returns (sorted speakers, `(S, K)` sums)."""
    names, inverse = np.unique(np.asarray(speakers, dtype=object), return_inverse=True)
    sums = np.stack(
        [np.bincount(inverse, weights=columns[:, k], minlength=len(names)) for k in range(columns.shape[1])],
        axis=1,
    ).reshape(len(names), columns.shape[1])
    return [str(n) for n in names], sums


def cohort_stats(
    table: UtteranceTable,
    rows: np.ndarray,
    label: str,
    values: Dict[str, str],
    n_boot: int,
    seed: int,
    level: float,
    thresholds: Thresholds,
    rng_names: Sequence[str] = (),
) -> CohortStats:
    """Statistics of the utterances `rows` of `table`.

    Args:
      table: all utterances.
      rows: indices of this cohort's utterances `(n,)`.
      label: the cohort label.
      values: its field values.
      n_boot: bootstrap replicates (0 disables the CIs).
      seed: base seed; the generators also depend on `rng_names` and `label`.
      level: confidence level of the intervals, e.g. 0.95.
      thresholds: size thresholds for the flags; a cohort below `speaker_floor(thresholds)`
        speakers gets no interval.
      rng_names: extra names identifying the grouping (keeps cohorts' streams distinct).
    """
    counts = table.counts[rows]
    words = counts[:, 0] + counts[:, 1] + counts[:, 2]
    errors = counts[:, 1:].sum(axis=1)
    speakers, spk_sums = per_speaker_sums([table.speakers[i] for i in rows], np.stack([errors, words], axis=1))
    n_words, n_errors = int(words.sum()), int(errors.sum())
    spk_wer = spk_sums[spk_sums[:, 1] > 0, 0] / spk_sums[spk_sums[:, 1] > 0, 1]
    mean, median, sd = _mean_median_sd(spk_wer)
    nan_ci = (float("nan"), float("nan"))
    ci_speaker = ci_utterance = nan_ci
    not_tested = too_few_speakers(len(speakers), thresholds)
    if not_tested is None and n_boot > 0 and len(rows):
        replicates = bootstrap_wer(spk_sums[:, 0], spk_sums[:, 1], n_boot, rng_for(seed, "speaker", *rng_names, label))
        ci_speaker = percentile_ci(replicates, level)
        utt_replicates = bootstrap_wer(errors, words, n_boot, rng_for(seed, "utterance", *rng_names, label))
        ci_utterance = percentile_ci(utt_replicates, level)
    return CohortStats(
        label=label,
        values=values,
        n_speakers=len(speakers),
        n_utts=int(len(rows)),
        n_words=n_words,
        n_errors=n_errors,
        n_sub=int(counts[:, 1].sum()),
        n_del=int(counts[:, 2].sum()),
        n_ins=int(counts[:, 3].sum()),
        wer=_rate(n_errors, n_words),
        speaker_wer_mean=mean,
        speaker_wer_median=median,
        speaker_wer_sd=sd,
        ci_speaker=ci_speaker,
        ci_utterance=ci_utterance,
        flags=thresholds.flags(len(speakers), n_words, n_errors),
        not_tested=not_tested,
    )


CohortT = TypeVar("CohortT", bound=CohortSize)


@dataclasses.dataclass
class Grouping(Generic[CohortT]):
    """The per-cohort results of one `--by` grouping."""

    by: Tuple[str, ...]
    cohorts: List[CohortT]
    missing: Dict[str, List[str]]  # field -> speakers without a value (see `missing_attributes`)

    @property
    def name(self) -> str:
        """The grouping as written on the command line, e.g. `region,gender`."""
        return ",".join(self.by)

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return {
            "by": list(self.by),
            "cohorts": [c.to_dict() for c in self.cohorts],
            "missing_attributes": {field: {"count": len(speakers), "speakers": list(speakers)}
                                   for field, speakers in self.missing.items()},
        }


@dataclasses.dataclass
class CohortGrouping(Grouping[CohortStats]):
    """The cohort table of one `--by` grouping, worst WER first."""

    disparity: Optional[Disparity]

    def to_dict(self) -> Dict[str, Any]:
        """JSON form, with the disparity summary."""
        return {
            **super().to_dict(),
            "disparity": self.disparity.to_dict() if self.disparity else None,
        }


def group_rows(labels: Sequence[str]) -> Dict[str, np.ndarray]:
    """`{label: utterance indices}` in first-appearance order."""
    rows: Dict[str, List[int]] = {}
    for index, label in enumerate(labels):
        rows.setdefault(label, []).append(index)
    return {label: np.asarray(idx, dtype=np.int64) for label, idx in rows.items()}


def sort_worst_first(cohorts: List[CohortStats]) -> List[CohortStats]:
    """Cohorts by pooled WER descending (cohorts without words last), then label."""
    return sorted(cohorts, key=lambda c: (c.wer is None, -(c.wer or 0.0), c.label))


def cohort_table(
    table: UtteranceTable,
    by: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    thresholds: Thresholds = Thresholds(),
    n_permutations: int = 1000,
) -> CohortGrouping:
    """Per-cohort WER statistics and the disparity summary for one grouping.

    Args:
      table: the scored utterances (see `UtteranceTable.from_report`).
      by: grouping fields, e.g. `("region",)` or `("region", "gender")`.
      n_boot: bootstrap replicates for the per-cohort CIs (0: no CIs).
      seed: base seed (results are a deterministic function of it).
      level: confidence level, e.g. 0.95.
      thresholds: cohort sizes; cohorts below the speaker or word minimum are flagged and
        left out of the disparity summary (unless fewer than two cohorts pass the word
        minimum), cohorts below the error minimum are only flagged. Cohorts below the
        speaker floor (`speaker_floor`) and the `(missing)` cohort never enter the gap test.
      n_permutations: label permutations of the disparity test and interval (0: neither).
    """
    by = tuple(by)
    labels, values = cohort_labels(table, by)
    n_speakers_total = len(set(table.speakers))
    n_errors_total = int(table.errors.sum())
    cohorts = []
    for label, rows in group_rows(labels).items():
        stats = cohort_stats(table, rows, label, values[label], n_boot, seed, level, thresholds, (",".join(by),))
        stats.share_speakers = stats.n_speakers / n_speakers_total if n_speakers_total else 0.0
        stats.share_utts = stats.n_utts / len(table.ids) if table.ids else 0.0
        stats.share_errors = stats.n_errors / n_errors_total if n_errors_total else 0.0
        cohorts.append(stats)
    cohorts = sort_worst_first(cohorts)
    testable = {c.label for c in cohorts if c.not_tested is None and MISSING not in c.values.values()}
    keep = np.asarray([label in testable for label in labels], dtype=bool)
    gap = speaker_disparity([spk for spk, k in zip(table.speakers, keep) if k],
                            [label for label, k in zip(labels, keep) if k],
                            table.errors[keep], table.words[keep], thresholds=thresholds, level=level,
                            n_permutations=n_permutations, seed=seed, rng_names=(",".join(by),))
    return CohortGrouping(by, cohorts, missing_attributes(table, by), gap)


def overall_stats(
    table: UtteranceTable, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
    thresholds: Thresholds = Thresholds(),
) -> CohortStats:
    """The statistics of all utterances together (cohort label `all`)."""
    rows = np.arange(len(table.ids), dtype=np.int64)
    return cohort_stats(table, rows, ALL, {}, n_boot, seed, level, thresholds, ("overall",))
