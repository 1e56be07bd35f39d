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
best-ranked eligible cohort of the same discovery).
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
from asrtools.scoring.disparity import Disparity, speaker_disparity

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
        raise ConfigError(f"measure.folds = {folds}: need 2 <= folds <= speakers ({n_speakers})")
    order = rng_for(seed, "crossfit").permutation(n_speakers)
    return [np.sort(part) for part in np.array_split(order, folds)]


def _label(discovery: Discovery, table: SpeakerTable) -> Tuple[Dict[str, str], Dict[str, str]]:
    labels = discovery.assign_table(table)
    bottom, top = discovery.designated()
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
      designated: bottom (rank1) vs top (best-ranked eligible) as `speaker_disparity` of the
        two, plus the signed gap (`wer_bottom - wer_top`) and its relative form.
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
    groups = np.asarray(designated, dtype=object)
    pair = np.isin(groups, [BOTTOM, TOP])
    wer = {}
    for group in (BOTTOM, TOP):
        mask = groups == group
        wer[group] = float(table.errors[mask].sum() / table.words[mask].sum()) if table.words[mask].sum() else None
    gap = rel = None
    if wer[BOTTOM] is not None and wer[TOP] is not None:
        gap = wer[BOTTOM] - wer[TOP]
        rel = gap / wer[TOP] if wer[TOP] > 0 else None
    disparity = speaker_disparity(
        [s for s, keep in zip(table.speakers, pair) if keep], groups[pair].tolist(), table.errors[pair],
        table.words[pair], table.utterances[pair], cfg.thresholds, cfg.level, cfg.n_permutations, seed,
        (*names, "designated"), cohorts_chosen_on_these_speakers=chosen)
    return {"bottom": "rank1", "top": "best-ranked eligible cohort of the same discovery",
            "n_speakers_bottom": int((groups == BOTTOM).sum()), "n_speakers_top": int((groups == TOP).sum()),
            "wer_bottom": wer[BOTTOM], "wer_top": wer[TOP], "abs_gap": gap, "rel_gap": rel,
            "disparity": disparity.to_dict() if disparity else None}


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
