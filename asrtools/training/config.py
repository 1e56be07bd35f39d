"""The training config: one YAML file per experiment, strict dataclasses.

    model: {encoder: lstm, encoder_params: {...}, decoder_dim: 256, ...}   # ModelConfig
    optim: {lr: 2.0e-3, scheduler: eden, warmup_steps: 500, clip_grad_norm: 5.0, ...}
    data: {max_duration: 300, num_buckets: 10, spec_augment: {enabled: true, ...}}
    loss: {simple_loss_scale: 0.5, warm_steps: 1000, prune_range: 5, ...}
    num_epochs: 10
    seed: 42

Unknown keys and wrong types are `ConfigError`s naming the file and key
(`asrtools.config.load_config`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, List, Optional

from asrtools.config import load_config
from asrtools.models.build import ModelConfig

SCHEDULERS = ("eden", "noam", "constant")
RNNT_TYPES = ("regular", "modified", "constrained")


@dataclasses.dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule.

    Attributes:
      lr: peak learning rate.
      betas: AdamW betas.
      eps: AdamW epsilon.
      weight_decay: AdamW (decoupled) weight decay.
      scheduler: "eden" (icefall-like decay in steps and epochs), "noam" (inverse square
        root after warm-up) or "constant"; all warm up linearly over `warmup_steps`.
      warmup_steps: linear warm-up length in optimizer steps.
      lr_steps: eden: steps at which the step factor has fallen to 2^-0.25.
      lr_epochs: eden: epochs at which the epoch factor has fallen to 2^-0.25.
      clip_grad_norm: clip the global gradient norm to this (<= 0 disables clipping).
    """

    lr: float = 1.0e-3
    betas: List[float] = dataclasses.field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1.0e-8
    weight_decay: float = 1.0e-3
    scheduler: str = "eden"
    warmup_steps: int = 500
    lr_steps: int = 5000
    lr_epochs: float = 6.0
    clip_grad_norm: float = 5.0

    def validate(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {self.scheduler!r} is unknown (known: {', '.join(SCHEDULERS)})")
        if self.lr <= 0 or len(self.betas) != 2:
            raise ValueError("lr must be > 0 and betas must hold two numbers")
        if self.warmup_steps < 0 or self.lr_steps <= 0 or self.lr_epochs <= 0:
            raise ValueError("warmup_steps must be >= 0, lr_steps and lr_epochs > 0")


@dataclasses.dataclass
class SpecAugmentConfig:
    """lhotse `SpecAugment` arguments (applied to training batches only)."""

    enabled: bool = True
    time_warp_factor: int = 80
    num_feature_masks: int = 2
    features_mask_size: int = 27
    num_frame_masks: int = 10
    frames_mask_size: int = 100
    max_frames_mask_fraction: float = 0.15
    p: float = 0.9


@dataclasses.dataclass
class DataConfig:
    """Batching and filtering.

    Attributes:
      max_duration: seconds of audio per batch (per process under DDP).
      num_buckets: duration buckets of lhotse's DynamicBucketingSampler.
      shuffle: shuffle the training cuts each epoch (seeded by `seed` and the epoch).
      num_workers: DataLoader workers reading features (0 = in the training process).
      min_cut_duration: drop shorter training cuts (seconds).
      max_cut_duration: drop longer training cuts (seconds).
      spec_augment: SpecAugment settings.
    """

    max_duration: float = 200.0
    num_buckets: int = 10
    shuffle: bool = True
    num_workers: int = 0
    min_cut_duration: float = 0.3
    max_cut_duration: float = 30.0
    spec_augment: SpecAugmentConfig = dataclasses.field(default_factory=SpecAugmentConfig)

    def validate(self) -> None:
        if self.max_duration <= 0 or self.num_buckets < 2 or self.num_workers < 0:
            raise ValueError("max_duration must be > 0, num_buckets >= 2 (lhotse's minimum), num_workers >= 0")


@dataclasses.dataclass
class LossConfig:
    """Pruned RNN-T loss and its warm-up (icefall's schedule, see `loss_scales`).

    Attributes:
      simple_loss_scale: weight of the smoothed simple loss after warm-up.
      warm_steps: steps over which the pruned loss's weight rises from 0 to 1 and the
        simple loss's falls from 1 to `simple_loss_scale`.
      prune_range: symbols per frame kept by pruning (k2's s_range).
      lm_scale: smoothed loss LM-only weight (k2's lm_only_scale).
      am_scale: smoothed loss AM-only weight (k2's am_only_scale).
      rnnt_type: "regular", "modified" (one symbol per frame) or "constrained".
      delay_penalty: k2's delay penalty (0 = off).
      backend: loss implementation passed to `asrtools.losses.rnnt` ("auto", "k2", "native").
    """

    simple_loss_scale: float = 0.5
    warm_steps: int = 2000
    prune_range: int = 5
    lm_scale: float = 0.25
    am_scale: float = 0.0
    rnnt_type: str = "regular"
    delay_penalty: float = 0.0
    backend: str = "auto"

    def validate(self) -> None:
        if self.rnnt_type not in RNNT_TYPES:
            raise ValueError(f"rnnt_type {self.rnnt_type!r} is unknown (known: {', '.join(RNNT_TYPES)})")
        if self.prune_range < 1 or self.warm_steps < 0:
            raise ValueError("prune_range must be >= 1 and warm_steps >= 0")


@dataclasses.dataclass
class TrainConfig:
    """One training run.

    Attributes:
      model: the architecture (`asrtools.models.build.ModelConfig`).
      optim: optimizer and schedule.
      data: batching, filtering, augmentation.
      loss: loss settings.
      num_epochs: epochs to train.
      max_steps: stop after this many optimizer steps (0 = no limit).
      seed: seed of every RNG (python, numpy, torch; + rank under DDP) and of the sampler.
      save_every_n_steps: write `checkpoint-<step>.pt` this often (0 = only per epoch).
      keep_last_k: step checkpoints kept (older ones are deleted).
      average_last_n: `averaged.pt` averages the last n epoch checkpoints.
      max_bad_batches: stop with an error after more batches than this had a non-finite
        loss or gradient (they are skipped).
      log_every_n_steps: console / TensorBoard logging period.
      tensorboard: write TensorBoard scalars under `<exp-dir>/tensorboard`.
      num_threads: torch intra-op CPU threads per process (0 = torch's default). Small
        LSTM matmuls often run fastest on 1 thread, and much slower when the cores are shared.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    num_epochs: int = 10
    max_steps: int = 0
    seed: int = 42
    save_every_n_steps: int = 500
    keep_last_k: int = 3
    average_last_n: int = 3
    max_bad_batches: int = 20
    log_every_n_steps: int = 50
    tensorboard: bool = True
    num_threads: int = 0

    def validate(self) -> None:
        if self.num_threads < 0:
            raise ValueError("num_threads must be >= 0")
        if self.num_epochs < 1 or self.max_steps < 0 or self.save_every_n_steps < 0:
            raise ValueError("num_epochs must be >= 1, max_steps and save_every_n_steps >= 0")
        if self.keep_last_k < 1 or self.average_last_n < 1 or self.max_bad_batches < 0:
            raise ValueError("keep_last_k and average_last_n must be >= 1, max_bad_batches >= 0")
        if self.log_every_n_steps < 1:
            raise ValueError("log_every_n_steps must be >= 1")


def load_train_config(path: Optional[Path], overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training YAML (optional) and `key.sub=value` overrides into a `TrainConfig`."""
    return load_config(TrainConfig, path, overrides)
