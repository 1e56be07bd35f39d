"""Configuration of `asrtools cohorts geo|geodemographic|auto` (one YAML file, one section per method).

Loaded with `asrtools.config.load_config` (unknown keys and wrong types are errors naming
the key; `--set geo.max_leaves=6` overrides); `validate` rejects out-of-range values.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

from asrtools.scoring.disparity import Thresholds


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"{name} must be >= {low:g}, got {value!r}")


GEO_METHODS = ("scan", "tree", "band_tree")


@dataclasses.dataclass
class GeoConfig:
    """Geographic discovery: a spatial scan (default) or the tree (asrtools.fairness.geo).

    The default `scan` was chosen from the detection-rate table in docs/statistics.md
    ("Geographic discovery"): the one-threshold tree misses a region in the middle of the map.

    Attributes:
      method: `scan` (Kulldorff's scan over rectangles), `tree` (the paper's one-threshold
        tree) or `band_tree` (the tree with band splits as well).
      max_leaves: leaf budget of the trees (regions); grown best-split-first until it has this many.
      min_speakers, min_words: smallest side of a split, and of a scan rectangle's inside and outside.
      min_gain: smallest absolute WER difference (fraction) between the sides worth a tree split.
      alpha: a tree split is made only if its selection-aware permutation p-value is <= alpha.
      scan_alpha: the scan's best rectangle becomes a region only if its Monte-Carlo p <= scan_alpha;
        1 (default): always (the held-out measurement tests it; gating on the discovery folds
        only throws held-out speakers away), its p still reported.
      n_permutations: permutations of that test per node (the scan's Monte-Carlo test).
      scan_cuts: the scan's rectangle edges: this many quantile cut points per axis.
      max_share: the largest share of the speakers a scan rectangle may hold (Kulldorff's usual 0.5).
      band_cuts: band_tree: band ends among this many quantile cut points per axis.
    """

    method: str = "scan"
    max_leaves: int = 8
    min_speakers: int = 10
    min_words: int = 300
    min_gain: float = 0.005
    alpha: float = 0.05
    n_permutations: int = 199
    scan_alpha: float = 1.0
    scan_cuts: int = 12
    max_share: float = 0.5
    band_cuts: int = 24

    def validate(self) -> None:
        """Range checks (ValueError naming the key)."""
        if self.method not in GEO_METHODS:
            raise ValueError(f"method must be one of {', '.join(GEO_METHODS)}, got {self.method!r}")
        _at_least("scan_cuts", self.scan_cuts, 1)
        if not 0.0 < self.scan_alpha <= 1.0:
            raise ValueError(f"scan_alpha must be in (0, 1], got {self.scan_alpha!r}")
        _at_least("band_cuts", self.band_cuts, 1)
        if not 0.0 < self.max_share < 1.0:
            raise ValueError(f"max_share must be in (0, 1), got {self.max_share!r}")
        _at_least("max_leaves", self.max_leaves, 1)
        _at_least("min_speakers", self.min_speakers, 1)
        _at_least("min_words", self.min_words, 0)
        _at_least("min_gain", self.min_gain, 0)
        _at_least("n_permutations", self.n_permutations, 0)
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")


@dataclasses.dataclass
class GeodemographicConfig:
    """Binary partitions of zip codes by census attributes.

    Attributes:
      attributes: zipcodes.csv columns to try (empty: all but zip, lat, lon).
      min_speakers, min_words: smallest side of a partition.
      n_permutations: permutations of the selection-aware test of the chosen partition.
    """

    attributes: List[str] = dataclasses.field(default_factory=list)
    min_speakers: int = 10
    min_words: int = 300
    n_permutations: int = 199

    def validate(self) -> None:
        """Range checks (ValueError naming the key)."""
        _at_least("min_speakers", self.min_speakers, 1)
        _at_least("min_words", self.min_words, 0)
        _at_least("n_permutations", self.n_permutations, 0)


@dataclasses.dataclass
class AutoConfig:
    """k-means on speaker embeddings.

    Attributes:
      k: number of clusters; null: the largest k in 2..k_max whose clusters all have at
        least `min_cluster_speakers` speakers.
      k_max: the largest k the rule tries.
      min_cluster_speakers: the rule's smallest cluster.
      n_init: k-means restarts (scikit-learn `n_init`).
    """

    k: Optional[int] = None
    k_max: int = 8
    min_cluster_speakers: int = 10
    n_init: int = 10

    def validate(self) -> None:
        """Range checks (ValueError naming the key)."""
        if self.k is not None:
            _at_least("k", self.k, 2)
        _at_least("k_max", self.k_max, 2)
        _at_least("min_cluster_speakers", self.min_cluster_speakers, 1)
        _at_least("n_init", self.n_init, 1)


@dataclasses.dataclass
class MeasureConfig:
    """Held-out measurement and the cohort size floor.

    Attributes:
      folds: K of the speaker-level K-fold cross-fitting (ignored with a discovery set).
      n_permutations: permutations of the disparity test and interval (`speaker_disparity`).
      n_boot: speaker-bootstrap replicates of each cohort's WER interval.
      level: confidence level.
      min_speakers, min_words, min_errors: the size floor (`Thresholds`): cohorts under the
        speaker or word floor are flagged and never ranked first; few errors only flag.
      pipeline_permutations: crossfit only: permutations of the *whole* pipeline (speakers'
        counts shuffled across speakers, every fold's discovery re-fitted, labels and pooled
        measurement redone) that give the held-out designated gap its p-value. A plain label
        permutation ignores that each fold's labels depend on the other folds' errors and
        rejects ~10% of null tables at 0.05 (docs/statistics.md); 0: that plain p instead.
    """

    folds: int = 5
    pipeline_permutations: int = 199
    n_permutations: int = 1000
    n_boot: int = 1000
    level: float = 0.95
    min_speakers: int = 5
    min_words: int = 200
    min_errors: int = 20

    def validate(self) -> None:
        """Range checks (ValueError naming the key)."""
        _at_least("folds", self.folds, 2)
        _at_least("pipeline_permutations", self.pipeline_permutations, 0)
        _at_least("n_permutations", self.n_permutations, 0)
        _at_least("n_boot", self.n_boot, 0)
        _at_least("min_speakers", self.min_speakers, 0)
        _at_least("min_words", self.min_words, 0)
        _at_least("min_errors", self.min_errors, 0)
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")

    @property
    def thresholds(self) -> Thresholds:
        """The size floor as `Thresholds`."""
        return Thresholds(self.min_speakers, self.min_words, self.min_errors)


@dataclasses.dataclass
class CohortsConfig:
    """Everything `asrtools cohorts` reads from `--config` (each command uses its section + measure).

    `unplaced_speakers` says what `geo` and `geodemographic` do with a scored speaker they
    cannot place (no numeric lat/lon; no zip in the zip table), as real corpora have (speakers.csv
    of `asrtools data prepare` says why in `place_detail`): `error` (default) stops with a line
    naming the speaker; `exclude` leaves such speakers out of discovery and measurement and
    reports their count and ids in cohorts.json / cohorts.md and the log.
    """

    seed: int = 0
    unplaced_speakers: str = "error"
    geo: GeoConfig = dataclasses.field(default_factory=GeoConfig)
    geodemographic: GeodemographicConfig = dataclasses.field(default_factory=GeodemographicConfig)
    auto: AutoConfig = dataclasses.field(default_factory=AutoConfig)
    measure: MeasureConfig = dataclasses.field(default_factory=MeasureConfig)

    def validate(self) -> None:
        if self.unplaced_speakers not in ("error", "exclude"):
            raise ValueError(f"unplaced_speakers {self.unplaced_speakers!r}: expected error or exclude")
