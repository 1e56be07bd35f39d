"""Held-out measurement of discovered cohorts: never choose and measure on the same speakers.

- `crossfit` (default): speakers are split into K folds (seeded, speaker level); for each
  fold the method is fitted on the other K-1 folds, the fitted `Discovery` labels the
  held-out fold's speakers by the *rank* of their cohort on the discovery folds (`rank1` =
  worst there), and the held-out labels of all folds are pooled. Ranks, not cohort
  identities, are pooled: fold 2's `rank1` region need not be fold 3's.
- `dev_test`: fit on one speaker set (e.g. dev), label another (test); they must not share
  a speaker.
- `in_sample`: fit and label the same speakers; reported beside the held-out numbers,
  labelled in-sample, to show how much choosing the cohorts on the measured speakers inflates
  the gap.

`measure` turns labels into the cohort table (pooled WER with a speaker-bootstrap CI, flags
under the size floor, shares), the disparity over all cohorts (`speaker_disparity`, the
selection-aware best-worst gap; `cohorts_chosen_on_these_speakers` only in-sample), and the
pre-designated comparison: the `bottom` cohort (rank1) against the `top` one (the
best-ranked eligible cohort of the same discovery), as a *signed* gap (`signed_pair_gap`:
speaker-bootstrap interval that goes below 0 when bottom is better on these speakers, and a
one-sided permutation p, H1: bottom worse). A discovery with a single cohort designates no
pair: its held-out speakers are in neither side.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from asrtools.errors import ConfigError, DataError
from asrtools.fairness.config import MeasureConfig
from asrtools.fairness.discovery import Discovery, rank_number
from asrtools.fairness.speakers import SpeakerTable
from asrtools.scoring.bootstrap import bootstrap_wer, percentile_ci, rng_for
from asrtools.scoring.disparity import Disparity, signed_pair_gap, speaker_disparity

FitFn = Callable[[SpeakerTable], Discovery]
BOTTOM, TOP, MIDDLE = "bottom", "top", "middle"


@dataclasses.dataclass
class FoldRecord:
    """One discovery/measurement split: sizes, and how many cohorts the discovery found."""

    fold: int
    n_discovery: int
    n_measurement: int
    n_cohorts: int


@dataclasses.dataclass
class Labelling:
    """Rank labels of the measurement speakers and how they were obtained.

    Attributes:
      mode: `crossfit`, `dev-test` or `in-sample`.
      labels: `{measurement speaker: rank label}`.
      designated: `{measurement speaker: bottom | top | middle}` (rank1 / best-ranked eligible).
      folds: the discovery/measurement splits.
      n_discovery_speakers: distinct speakers any discovery was fitted on.
      disjoint: every speaker was labelled by a discovery fitted without it.
    """

    mode: str
    labels: Dict[str, str]
    designated: Dict[str, str]
    folds: List[FoldRecord]
    n_discovery_speakers: int
    disjoint: bool

    @property
    def chosen_on_these_speakers(self) -> bool:
        """Whether the cohorts were chosen on the speakers they are measured on."""
        return not self.disjoint


def speaker_folds(n_speakers: int, folds: int, seed: int) -> List[np.ndarray]:
    """`folds` disjoint sorted index sets covering `range(n_speakers)` (seeded shuffle, sizes differ by <= 1)."""
    if folds < 2 or folds > n_speakers:
        raise ConfigError(f"measure.folds = {folds}: need 2 <= folds <= speakers ({n_speakers}): "
                          f"{'lower' if folds > n_speakers else 'raise'} measure.folds")
    order = rng_for(seed, "crossfit").permutation(n_speakers)
    return [np.sort(part) for part in np.array_split(order, folds)]


def _label(discovery: Discovery, table: SpeakerTable) -> Tuple[Dict[str, str], Dict[str, str]]:
    labels = discovery.assign_table(table)
    bottom, top = discovery.designated()
    if top is None:  # one cohort: this discovery designates no comparison, its speakers are in neither side
        return labels, {s: MIDDLE for s in labels}
    designated = {s: BOTTOM if label == bottom else TOP if label == top else MIDDLE for s, label in labels.items()}
    return labels, designated


def crossfit(table: SpeakerTable, fit: FitFn, folds: int = 5, seed: int = 0) -> Labelling:
    """Speaker-level K-fold cross-fitting: every speaker labelled by a discovery fitted without it."""
    labels: Dict[str, str] = {}
    designated: Dict[str, str] = {}
    records = []
    everyone = np.arange(len(table))
    for k, held_out in enumerate(speaker_folds(len(table), folds, seed)):
        discovery_rows = np.setdiff1d(everyone, held_out)
        discovery = fit(table.subset(discovery_rows))
        fold_labels, fold_designated = _label(discovery, table.subset(held_out))
        labels.update(fold_labels)
        designated.update(fold_designated)
        records.append(FoldRecord(k, len(discovery_rows), len(held_out), len(discovery.cohorts)))
    return Labelling("crossfit", labels, designated, records, len(table), disjoint=True)


def designated_gap(table: SpeakerTable, designated: Dict[str, str], min_speakers: int) -> Optional[float]:
    """Pooled WER of the `bottom` speakers minus the `top` ones' (None: a side under the floor or without words).

    Args:
      table: the measured speakers (labelled ones must be in it).
      designated: `{speaker: bottom | top | middle}`.
      min_speakers: the smallest side (at least 2) with a gap.
    """
    groups = np.asarray([designated.get(s, MIDDLE) for s in table.speakers], dtype=object)
    bottom, top = groups == BOTTOM, groups == TOP
    if min(bottom.sum(), top.sum()) < max(2, min_speakers):
        return None
    w_b, w_t = table.words[bottom].sum(), table.words[top].sum()
    if w_b <= 0 or w_t <= 0:
        return None
    return float(table.errors[bottom].sum() / w_b - table.errors[top].sum() / w_t)


def permutation_orders(n_speakers: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """`(n_permutations, n_speakers)` random orders of the speakers.

    Row b: the speaker at position i gets the counts of speaker `order[b, i]`.
    """
    return rng.permuted(np.broadcast_to(np.arange(n_speakers), (n_permutations, n_speakers)), axis=1)


def refit_gaps(table: SpeakerTable, fit: FitFn, folds: int, seed: int, min_speakers: int,
               orders: np.ndarray) -> np.ndarray:
    """`(B,)` pooled held-out designated gaps of `crossfit` re-run on each reordering (NaN: no pair)."""
    gaps = np.full(len(orders), np.nan)
    for b, order in enumerate(orders):
        shuffled = dataclasses.replace(table, errors=table.errors[order], words=table.words[order],
                                       utterances=table.utterances[order])
        gap = designated_gap(shuffled, crossfit(shuffled, fit, folds, seed).designated, min_speakers)
        gaps[b] = np.nan if gap is None else gap
    return gaps


def pipeline_p_value(observed: Optional[float], permuted_gaps: np.ndarray) -> Optional[float]:
    """One-sided p of the held-out designated gap over permutations of the whole cross-fitting pipeline.

    Each permutation moves every speaker's (errors, words, utterances) to another speaker (whole
    speakers; coordinates, zip codes and embeddings stay), re-runs `crossfit` with the same
    folds (every fold's discovery re-fitted) and recomputes the pooled designated gap
    (`refit_gaps`, or a method's vectorised equivalent); a permutation without a designated
    pair (NaN) counts as not extreme. `p = (1 + #{gap_perm >= gap}) / (1 + B)`; None when the
    observed gap is None.

    Why not permute the held-out labels: a fold's labels depend on the other folds' errors, so
    the pooled bottom speakers' errors are not exchangeable with the top ones' given the labels;
    on null tables that test rejects ~10% at 0.05 when every fold designates a pair
    (docs/statistics.md, "Geographic discovery").
    """
    if observed is None or len(permuted_gaps) == 0:
        return None
    tolerance = 1e-12 + 1e-9 * abs(observed)
    extreme = int(np.count_nonzero(np.nan_to_num(permuted_gaps, nan=-np.inf) >= observed - tolerance))
    return (1 + extreme) / (1 + len(permuted_gaps))


def dev_test(discovery_table: SpeakerTable, measure_table: SpeakerTable, fit: FitFn) -> Tuple[Labelling, Discovery]:
    """Fit on `discovery_table`, label `measure_table`; `DataError` naming a speaker in both."""
    shared = sorted(set(discovery_table.speakers) & set(measure_table.speakers))
    if shared:
        raise DataError(f"speaker {shared[0]!r} is in both the discovery and the measurement set "
                        f"({len(shared)} shared)")
    discovery = fit(discovery_table)
    labels, designated = _label(discovery, measure_table)
    record = FoldRecord(0, len(discovery_table), len(measure_table), len(discovery.cohorts))
    return Labelling("dev-test", labels, designated, [record], len(discovery_table), disjoint=True), discovery


def in_sample(table: SpeakerTable, discovery: Discovery) -> Labelling:
    """Labels of the speakers `discovery` was fitted on (in-sample: chosen and measured on the same)."""
    labels, designated = _label(discovery, table)
    record = FoldRecord(0, len(table), len(table), len(discovery.cohorts))
    return Labelling("in-sample", labels, designated, [record], len(table), disjoint=False)


@dataclasses.dataclass
class CohortRow:
    """One labelled cohort measured on the measurement speakers (fractions)."""

    label: str
    description: str
    n_speakers: int
    n_utts: int
    n_words: int
    n_errors: int
    wer: Optional[float]
    wer_ci: Tuple[float, float]
    flags: List[str]
    share_speakers: float
    share_utts: float
    share_errors: float

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (NaN bounds as null)."""
        from asrtools.scoring.cohorts import finite_or_none

        out = dataclasses.asdict(self)
        out["wer_ci"] = [finite_or_none(x) for x in self.wer_ci]
        return out


@dataclasses.dataclass
class Measurement:
    """The cohort table and disparity numbers of one labelling.

    Attributes:
      labelling: the labels measured.
      cohorts: per rank label (rank order).
      disparity: `speaker_disparity` over all labelled cohorts (None: fewer than two with words).
      designated: bottom (rank1) vs top (best-ranked eligible), `SignedGap.to_dict()`: the signed
        gap `wer_bottom - wer_top` with its speaker-bootstrap interval, the relative gap, and the
        one-sided permutation p (H1: bottom worse).
      bottom_share: the bottom cohort's share of speakers, utterances and word errors.
    """

    labelling: Labelling
    cohorts: List[CohortRow]
    disparity: Optional[Disparity]
    designated: Dict[str, Any]
    bottom_share: Dict[str, float]


def _share(part: float, whole: float) -> float:
    return float(part / whole) if whole else 0.0


def _rows(table: SpeakerTable, labels: List[str], descriptions: Dict[str, str], cfg: MeasureConfig, seed: int,
          names: Tuple[str, ...]) -> List[CohortRow]:
    labels_arr = np.asarray(labels, dtype=object)
    thresholds = cfg.thresholds
    rows = []
    for label in sorted(set(labels), key=lambda x: (rank_number(x), x)):
        mask = labels_arr == label
        e, w, u = table.errors[mask], table.words[mask], table.utterances[mask]
        ci = (float("nan"), float("nan"))
        if cfg.n_boot > 0 and w.sum() > 0:
            ci = percentile_ci(bootstrap_wer(e, w, cfg.n_boot, rng_for(seed, "cohort-wer", *names, label)), cfg.level)
        n_spk, n_words, n_errors = int(mask.sum()), int(w.sum()), int(e.sum())
        rows.append(CohortRow(
            label=label, description=descriptions.get(label, ""), n_speakers=n_spk, n_utts=int(u.sum()),
            n_words=n_words, n_errors=n_errors, wer=n_errors / n_words if n_words else None, wer_ci=ci,
            flags=thresholds.flags(n_spk, n_words, n_errors), share_speakers=_share(n_spk, len(table)),
            share_utts=_share(u.sum(), table.utterances.sum()), share_errors=_share(e.sum(), table.errors.sum()),
        ))
    return rows


def _designated(table: SpeakerTable, designated: List[str], cfg: MeasureConfig, seed: int, names: Tuple[str, ...],
                chosen: bool) -> Dict[str, Any]:
    """The signed bottom - top gap (speaker-bootstrap interval, one-sided permutation p; `SignedGap`)."""
    groups = np.asarray(designated, dtype=object)
    bottom, top = groups == BOTTOM, groups == TOP
    gap = signed_pair_gap(table.errors[bottom], table.words[bottom], table.errors[top], table.words[top], cfg.level,
                          cfg.n_boot, cfg.n_permutations, seed, (*names, "designated"),
                          min_speakers=cfg.thresholds.min_speakers)
    out = {"bottom": "rank1", "top": "best-ranked eligible cohort of the same discovery", **gap.to_dict()}
    if chosen:
        out["method"] += ("; CAUTION: the pair was chosen on these same speakers, which neither the test nor the "
                          "interval accounts for")
    return out


def measure(table: SpeakerTable, labelling: Labelling, cfg: MeasureConfig, seed: int = 0, method: str = "",
            descriptions: Optional[Dict[str, str]] = None) -> Measurement:
    """Cohort table, disparity and designated comparison of `labelling` on `table`'s speakers.

    Args:
      table: the measurement speakers (every labelled speaker must be in it).
      labelling: rank labels (crossfit / dev-test / in-sample).
      cfg: size floor, permutations, bootstrap, level.
      seed: base seed of the bootstrap and permutations.
      method: the method's name (keeps random streams of methods distinct).
      descriptions: `{rank label: description}` (default: "rank N on its discovery speakers").
    """
    index = {s: i for i, s in enumerate(table.speakers)}
    missing = [s for s in labelling.labels if s not in index]
    if missing:
        raise DataError(f"labelled speaker {missing[0]!r} is not among the measured speakers")
    sub = table.subset(sorted(index[s] for s in labelling.labels))
    labels = [labelling.labels[s] for s in sub.speakers]
    names = (method, labelling.mode)
    chosen = labelling.chosen_on_these_speakers
    descriptions = descriptions or {label: f"rank {rank_number(label)} on its discovery speakers" for label in labels}
    rows = _rows(sub, labels, descriptions, cfg, seed, names)
    disparity = speaker_disparity(sub.speakers, labels, sub.errors, sub.words, sub.utterances, cfg.thresholds,
                                  cfg.level, cfg.n_permutations, seed, names, cohorts_chosen_on_these_speakers=chosen)
    designated = [labelling.designated[s] for s in sub.speakers]
    bottom = np.asarray(designated, dtype=object) == BOTTOM
    shares = {"speakers": _share(bottom.sum(), len(sub)),
              "utterances": _share(sub.utterances[bottom].sum(), sub.utterances.sum()),
              "errors": _share(sub.errors[bottom].sum(), sub.errors.sum())}
    return Measurement(labelling, rows, disparity, _designated(sub, designated, cfg, seed, names, chosen), shares)
