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


@dataclasses.dataclass
class GeoConfig:
    """The geographic tree.

    Attributes:
      max_leaves: leaf budget (regions); the tree grows best-split-first until it has this many.
      min_speakers, min_words: smallest side of a split.
      min_gain: smallest absolute WER difference (fraction) between the sides worth a split.
      alpha: a split is made only if its selection-aware permutation p-value is <= alpha.
      n_permutations: permutations of that test per node.
    """

    max_leaves: int = 8
    min_speakers: int = 10
    min_words: int = 300
    min_gain: float = 0.005
    alpha: float = 0.05
    n_permutations: int = 199

    def validate(self) -> None:
        """Range checks (ValueError naming the key)."""
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
    """

    folds: int = 5
    n_permutations: int = 1000
    n_boot: int = 1000
    level: float = 0.95
    min_speakers: int = 5
    min_words: int = 200
    min_errors: int = 20

    def validate(self) -> None:
        """Range checks (ValueError naming the key)."""
        _at_least("folds", self.folds, 2)
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
    """Everything `asrtools cohorts` reads from `--config` (each command uses its section + measure)."""

    seed: int = 0
    geo: GeoConfig = dataclasses.field(default_factory=GeoConfig)
    geodemographic: GeodemographicConfig = dataclasses.field(default_factory=GeodemographicConfig)
    auto: AutoConfig = dataclasses.field(default_factory=AutoConfig)
    measure: MeasureConfig = dataclasses.field(default_factory=MeasureConfig)
