"""The `mitigation` task: transducer fine-tuning on cohort-selected, pooled or oversampled data.

It is the transducer task with a different choice of training cuts (METHODS.md §4-§5), by
the speakers' cohorts in an `assignments.json` (the task's extra input `assignments`):

- `data: general`  every training cut (the "continue training the baseline" control, and
  the data of oversampling and cohort input);
- `data: cohorts`  the cuts of the speakers of the `worst_k` worst cohorts (EWC, L2, plain
  fine-tuning);
- `data: pooled`   those cuts plus `pooled_ratio` times as many other cuts drawn with the
  seed (pooled fine-tuning).

`oversample_factor` > 1 repeats the worst cohorts' cuts in the training sampler
(`asrtools.training.data.oversampled_cuts`). A model with a cohort input
(`asrtools.models.enc_cohort_input`) is given the speakers' cohorts from the same file;
speakers not in it get the explicit cohort `(unknown)`, and how many training and dev
speakers (and cuts) that is goes to the log and to `cohort_coverage.json` in the
experiment directory (read by `asrtools mitigate evaluate` for the page). Penalties on the parameters (EWC, L2)
are the trainer's regularisers, not part of the task. The `asrtools mitigate` commands build
these runs from a baseline checkpoint.
"""
from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any, Dict, Optional, Set

from lhotse import CutSet

from asrtools.data.assignments import Assignments, read_assignments
from asrtools.data.cuts import cut_speaker
from asrtools.errors import ConfigError, DataError
from asrtools.models.enc_cohort_input import attach_cohort_map, cohort_coverage, has_cohort_input
from asrtools.pipeline import atomic_write_json
from asrtools.training.config import TransducerTrainConfig
from asrtools.training.data import oversampled_cuts
from asrtools.training.distributed import DistInfo
from asrtools.training.task import TrainPaths, register_task
from asrtools.training.tasks.transducer import TransducerTask, spread_subset

DATA_CHOICES = ("general", "cohorts", "pooled")
ASSIGNMENTS_INPUT = "assignments"
COVERAGE_NAME = "cohort_coverage.json"


@dataclasses.dataclass
class MitigationConfig:
    """Which training data a mitigation run uses (see the module docstring).

    Attributes:
      data: "general", "cohorts" or "pooled".
      worst_k: how many of the worst-ranked cohorts count as the bottom cohorts.
      pooled_ratio: pooled: other cuts drawn per bottom-cohort cut.
      oversample_factor: expected copies per epoch of each bottom-cohort cut (1 = off).
      fisher_utts: utterances of general training data the Fisher is estimated on
        (`asrtools mitigate fisher`).
      dev_utts: validate on this many dev cuts spread over the dev set in id order
        (0 = all): a short run validates at every end of an epoch of its (smaller) data, and
        the validations should not dominate its cost.
    """

    data: str = "general"
    worst_k: int = 1
    pooled_ratio: float = 1.0
    oversample_factor: float = 1.0
    fisher_utts: int = 500
    dev_utts: int = 0

    def validate(self) -> None:
        if self.data not in DATA_CHOICES:
            raise ValueError(f"data {self.data!r} is unknown (known: {', '.join(DATA_CHOICES)})")
        if self.worst_k < 1 or self.pooled_ratio <= 0 or self.oversample_factor < 1 or self.fisher_utts < 1:
            raise ValueError("worst_k and fisher_utts must be >= 1, pooled_ratio > 0, oversample_factor >= 1")
        if self.dev_utts < 0:
            raise ValueError("dev_utts must be >= 0")

    @property
    def needs_cohorts(self) -> bool:
        """Whether the run selects or weights data by cohort."""
        return self.data != "general" or self.oversample_factor != 1.0


@dataclasses.dataclass
class MitigationTrainConfig(TransducerTrainConfig):
    """A transducer run whose training cuts are chosen by cohort (`task: mitigation`)."""

    mitigation: MitigationConfig = dataclasses.field(default_factory=MitigationConfig)


@register_task("mitigation", MitigationTrainConfig)
class MitigationTask(TransducerTask):
    """Transducer training on cohort-selected data (see the module docstring)."""

    config: MitigationTrainConfig

    def __init__(self, config: MitigationTrainConfig, paths: TrainPaths, info: DistInfo,
                 log: logging.Logger) -> None:
        super().__init__(config, paths, info, log)
        self.assignments: Optional[Assignments] = None
        if ASSIGNMENTS_INPUT in paths.extra_inputs:
            self.assignments = read_assignments(paths.extra_inputs[ASSIGNMENTS_INPUT])
        elif config.mitigation.needs_cohorts or has_cohort_input(self.model):
            raise ConfigError("this mitigation run needs the speakers' cohorts (an assignments.json input)")
        self.coverage: Dict[str, Dict[str, Any]] = {}
        if has_cohort_input(self.model):
            attach_cohort_map(self.model, self.assignments.cohorts)

    def bottom_speakers(self) -> Set[str]:
        """The speakers of the `worst_k` worst cohorts."""
        assert self.assignments is not None
        return self.assignments.speakers_in(self.assignments.worst(self.config.mitigation.worst_k))

    def load_cuts(self, split: str) -> CutSet:
        cuts = self._choose_cuts(split)
        if has_cohort_input(self.model):
            self._report_coverage(split, cuts)
        return cuts

    def _report_coverage(self, split: str, cuts: CutSet) -> None:
        """Log and record how many of the split's speakers are missing from the cohort map."""
        coverage = cohort_coverage(self.assignments.cohorts, [cut_speaker(c) for c in cuts])
        self.coverage[split] = coverage.to_dict()
        if self.info.is_main:
            log = self.log.warning if coverage.unknown_speakers else self.log.info
            log(coverage.describe(split, self.assignments.source))
            atomic_write_json(self.paths.exp_dir / COVERAGE_NAME, self.coverage)

    def _choose_cuts(self, split: str) -> CutSet:
        cuts = super().load_cuts(split)
        if split == "dev" and self.config.mitigation.dev_utts > 0:
            return spread_subset(cuts, self.config.mitigation.dev_utts)
        if split != "train" or self.config.mitigation.data == "general":
            return cuts
        bottom = self.bottom_speakers()
        chosen = [c for c in cuts if cut_speaker(c) in bottom]
        if not chosen:
            raise DataError(f"{self.assignments.source}: no training cut is spoken by a speaker of the worst "
                            f"{self.config.mitigation.worst_k} cohort(s)")
        if self.config.mitigation.data == "pooled":
            others = sorted((c for c in cuts if cut_speaker(c) not in bottom), key=lambda c: c.id)
            count = min(len(others), round(self.config.mitigation.pooled_ratio * len(chosen)))
            chosen += random.Random(self.config.seed).sample(others, count)
        if self.info.is_main:
            self.log.info("mitigation data %s: %d of %d training cuts (%d bottom-cohort speakers)",
                          self.config.mitigation.data, len(chosen), len(cuts), len(bottom))
        return CutSet.from_cuts(chosen)

    def make_sampler(self, cuts: CutSet, train: bool) -> Any:
        factor = self.config.mitigation.oversample_factor
        if not train or factor == 1.0:
            return super().make_sampler(cuts, train)
        bottom = self.bottom_speakers()
        weighted = oversampled_cuts(cuts, lambda c: factor if cut_speaker(c) in bottom else 1.0, self.config.seed)
        if self.info.is_main:
            self.log.info("oversampling: %d cuts per epoch (%d distinct)", len(weighted), len(cuts))
        return super().make_sampler(weighted, train)
