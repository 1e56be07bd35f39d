"""What one kind of model contributes to the shared trainer, and the task registry.

The `Trainer` (asrtools.training.trainer) owns everything that is the same for every model:
the optimizer and learning-rate schedule of the task's model, the epoch/step loop, batch
samplers and loaders, gradient clipping and the non-finite guard, checkpoints with exact
resume, DDP, validation scheduling, checkpoint selection and averaging, logging. A
`TrainingTask` owns what differs: the model, the cuts it trains on and their batches, the
loss, the dev metrics, and any extra trained state of its own (e.g. an adversary with its
optimizer) which it checkpoints through `state_dict` / `load_state_dict`.

A task registers itself with its config class:

    @register_task("transducer", TransducerTrainConfig)
    class TransducerTask(TrainingTask): ...

and a training YAML selects it with `task: transducer` (the default).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Type

import torch
from lhotse import CutSet
from torch import nn

from asrtools.errors import ConfigError
from asrtools.training.config import TASK_CONFIGS, TrainConfig
from asrtools.training.data import make_sampler
from asrtools.training.distributed import DistInfo


@dataclasses.dataclass
class TrainPaths:
    """Inputs and output directory of a training run (all fingerprinted by the stage).

    Attributes:
      cuts_train: training CutSet manifest.
      cuts_dev: dev CutSet manifest (validation).
      bpe_model: sentencepiece model, for tasks that predict tokens (None otherwise).
      exp_dir: the experiment (stage) directory.
      init_from: a model-bearing checkpoint whose weights initialise the model before
        training (fine-tuning; parameters the checkpoint lacks keep their fresh values).
      extra_inputs: other files a task or regulariser reads (e.g. a Fisher matrix, a cohort
        map), by name.
    """

    cuts_train: Path
    cuts_dev: Path
    bpe_model: Optional[Path]
    exp_dir: Path
    init_from: Optional[Path] = None
    extra_inputs: Dict[str, Path] = dataclasses.field(default_factory=dict)

    def stage_inputs(self) -> Dict[str, Path]:
        """Every input file by name, as the stage fingerprints them."""
        inputs = {"cuts_train": self.cuts_train, "cuts_dev": self.cuts_dev}
        if self.bpe_model is not None:
            inputs["bpe_model"] = self.bpe_model
        if self.init_from is not None:
            inputs["init_from"] = self.init_from
        inputs.update(self.extra_inputs)
        return inputs


@dataclasses.dataclass
class StepLoss:
    """The loss of one training batch.

    Attributes:
      loss: scalar tensor to back-propagate, already normalised (per frame, per sample...).
      stats: values to log (means over a log window weighted by `weight`), e.g. the loss terms.
      weight: how much this batch counts in those means (frames, samples).
    """

    loss: torch.Tensor
    stats: Dict[str, float]
    weight: float


class Regularizer:
    """An extra loss term on the model's parameters (e.g. EWC), added by the trainer.

    Subclasses set `name`, return their settings from `params()` (fingerprinted with the
    stage) and compute the term in `__call__`.
    """

    name: str = "regularizer"

    def params(self) -> Dict[str, Any]:
        """JSON-serialisable settings that change the result (part of the stage fingerprint)."""
        return {}

    def __call__(self, model: nn.Module) -> torch.Tensor:
        """The (already weighted) scalar penalty of `model`'s current parameters."""
        raise NotImplementedError


class TrainingTask:
    """Base class of the model-specific half of training.

    Args:
      config: the run's config (the task's `TrainConfig` subclass).
      paths: inputs and the experiment directory.
      info: this process's rank, world size and device.
      log: where to report (only rank 0 should log at info level).

    Subclasses must set `self.model` in `__init__` (after the trainer has seeded the RNGs)
    and implement `load_cuts`, `dataset`, `compute_loss`, `validate` and `model_entry`.
    """

    name = "task"

    def __init__(self, config: TrainConfig, paths: TrainPaths, info: DistInfo, log: logging.Logger) -> None:
        self.config = config
        self.paths = paths
        self.info = info
        self.log = log
        self.model: nn.Module

    # -------------------------------------------------------------------------- data

    def load_cuts(self, split: str) -> CutSet:
        """The cuts of `split` ("train" or "dev") the task can use (loaded, checked, filtered)."""
        raise NotImplementedError

    def dataset(self, train: bool) -> torch.utils.data.Dataset:
        """The map dataset turning a sampler's `CutSet` mini-batch into a batch dict."""
        raise NotImplementedError

    def make_sampler(self, cuts: CutSet, train: bool) -> Any:
        """lhotse's DynamicBucketingSampler over `cuts` for this rank (shuffled when training)."""
        data = self.config.data
        return make_sampler(cuts, data.max_duration, data.num_buckets, data.shuffle and train, self.config.seed,
                            self.info.world_size, self.info.rank)

    @staticmethod
    def batch_ids(batch: Dict[str, Any]) -> List[str]:
        """Ids of a batch's cuts, for error messages."""
        return list(batch.get("cut_ids", []))

    # ------------------------------------------------------------------------- steps

    def on_step_start(self, step: int, epoch: int) -> None:
        """Called before every training step (e.g. to anneal a temperature). Default: nothing."""

    def compute_loss(self, model: nn.Module, batch: Dict[str, Any], step: int) -> StepLoss:
        """The training loss of `batch`.

        Args:
          model: the model to call (wrapped in DistributedDataParallel under DDP).
          batch: from `dataset(train=True)`.
          step: optimizer updates done so far (0-based), for warm-up schedules.
        """
        raise NotImplementedError

    def after_step(self, model: nn.Module, batch: Dict[str, Any], step: int) -> Dict[str, float]:
        """Called after each optimizer update (e.g. to update an adversary); returns stats to log."""
        return {}

    @torch.no_grad()
    def validate(self, model: nn.Module, dev_loader: torch.utils.data.DataLoader) -> Dict[str, float]:
        """Dev metrics (lower is better for every selection metric), summed over all ranks.

        Must not draw from the global RNGs (exact resume depends on it); the trainer puts
        the model in eval mode before and back in train mode after.
        """
        raise NotImplementedError

    def model_entry(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        """What a model-bearing checkpoint stores: the weights and what rebuilds the model."""
        raise NotImplementedError

    # ------------------------------------------------------------------- extra state

    def state_dict(self) -> Dict[str, Any]:
        """Trained state the task owns beyond `model` (checkpointed; tensors and plain values)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


_TASKS: Dict[str, Type[TrainingTask]] = {}


def register_task(name: str, config_class: Type[TrainConfig]) -> Callable[[Type[TrainingTask]], Type[TrainingTask]]:
    """Class decorator: register a task under `name` with the config class its YAML loads into."""

    def wrap(cls: Type[TrainingTask]) -> Type[TrainingTask]:
        cls.name = name
        _TASKS[name] = cls
        TASK_CONFIGS[name] = config_class
        return cls

    return wrap


def get_task(name: str) -> Type[TrainingTask]:
    """The task class registered as `name`."""
    import asrtools.training.tasks  # noqa: F401  (imports every task module so they register)

    if name not in _TASKS:
        raise ConfigError(f"task {name!r} is unknown (known: {', '.join(sorted(_TASKS))})")
    return _TASKS[name]
