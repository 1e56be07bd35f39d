"""The training config: one YAML file per experiment, strict dataclasses.

    task: transducer             # which `TrainingTask` trains (default: transducer)
    model: {encoder: lstm, encoder_params: {...}, decoder_dim: 256, ...}   # ModelConfig
    optim: {lr: 2.0e-3, scheduler: eden, warmup_steps: 500, clip_grad_norm: 5.0, ...}
    data: {max_duration: 300, num_buckets: 10, spec_augment: {enabled: true, ...}}
    loss: {simple_loss_scale: 0.5, warm_steps: 1000, prune_range: 5, ...}
    valid: {wer_utts: 300}
    num_epochs: 10
    average: best_k_by_dev_wer
    seed: 42

`TrainConfig` holds what every task shares (optimizer, batching, schedule length,
checkpointing, selection); each task extends it with its own sections (the transducer's
`TransducerTrainConfig` adds model, loss and valid) and `load_train_config` picks the class
from the `task:` key. Unknown keys, wrong types and contradictory values are `ConfigError`s
naming the file and key, raised at load time, before any data is read.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import ClassVar, Dict, Iterable, List, Optional, Tuple, Type

import torch

from asrtools.config import from_dict, merge, parse_overrides, read_yaml
from asrtools.errors import ConfigError
from asrtools.models.build import ModelConfig

SCHEDULERS = ("eden", "noam", "constant")
RNNT_TYPES = ("regular", "modified", "constrained")
RNNT_BACKENDS = ("auto", "k2", "native")
AVERAGE_LAST = "last_n"
_AVERAGE_BEST = re.compile(r"^best_k_by_dev_([a-z_]+)$")
#: `amp` settings: the autocast dtype of the training forward pass (None = float32).
AMP_MODES = {"none": None, "bf16": torch.bfloat16}


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
        if self.backend not in RNNT_BACKENDS:
            raise ValueError(f"backend {self.backend!r} is unknown (known: {', '.join(RNNT_BACKENDS)})")
        # k2's pruning keeps no valid path otherwise: a regular transducer emits a symbol without
        # moving to the next frame, so each frame's window must hold at least two symbol positions.
        min_range = 2 if self.rnnt_type == "regular" else 1
        if self.prune_range < min_range:
            raise ValueError(f"prune_range {self.prune_range} is too small for the {self.rnnt_type} "
                             f"transducer lattice (at least {min_range}, or no path survives pruning)")
        if self.warm_steps < 0:
            raise ValueError("warm_steps must be >= 0")
        if not (0.0 <= self.lm_scale <= 1.0 and 0.0 <= self.am_scale <= 1.0):
            raise ValueError(f"lm_scale ({self.lm_scale}) and am_scale ({self.am_scale}) must lie in [0, 1]")
        if self.lm_scale + self.am_scale > 1.0:
            raise ValueError(f"lm_scale + am_scale = {self.lm_scale + self.am_scale:g} > 1: the smoothed loss "
                             f"would give the combined AM+LM term a negative weight")
        if not 0.0 <= self.simple_loss_scale <= 1.0:
            raise ValueError(f"simple_loss_scale {self.simple_loss_scale} must lie in [0, 1]")
        if self.delay_penalty < 0:
            raise ValueError(f"delay_penalty {self.delay_penalty} must be >= 0 (it rewards early emission)")


@dataclasses.dataclass
class ValidConfig:
    """Transducer validation beyond the dev loss.

    Attributes:
      wer_utts: dev cuts decoded (batched greedy search) at every validation for the dev
        WER; a fixed subset spread evenly over the dev cuts in id order (0 = loss only).
      max_duration: seconds of audio per decoding batch.
    """

    wer_utts: int = 300
    max_duration: float = 200.0

    def validate(self) -> None:
        if self.wer_utts < 0 or self.max_duration <= 0:
            raise ValueError("wer_utts must be >= 0 and max_duration > 0")


@dataclasses.dataclass
class TrainConfig:
    """What every training task shares.

    Attributes:
      task: the `TrainingTask` that trains (`transducer`, ...); selects the config class.
      optim: optimizer and schedule.
      data: batching, filtering, augmentation.
      num_epochs: epochs to train.
      max_steps: stop after this many optimizer steps (0 = no limit).
      seed: seed of every RNG (python, numpy, torch; + rank under DDP) and of the sampler.
      save_every_n_steps: write `checkpoint-<step>.pt` this often (0 = only per epoch).
      keep_last_k: step checkpoints kept (older ones are deleted).
      average: which epoch checkpoints `averaged.pt` averages: `last_n` (the last
        `average_last_n`) or `best_k_by_dev_<metric>` (the `average_last_n` epochs with the
        lowest dev metric, e.g. `best_k_by_dev_wer`; the task lists its metrics).
      average_last_n: how many epoch checkpoints `averaged.pt` averages (k).
      valid_every_n_steps: also validate (and log) every N optimizer steps; 0 = at epoch
        ends only. Selection uses the epoch-end validations.
      max_bad_batches: stop with an error after more batches than this had a non-finite
        loss or gradient (they are skipped).
      log_every_n_steps: console / TensorBoard logging period.
      tensorboard: write TensorBoard scalars under `<exp-dir>/tensorboard`.
      num_threads: torch intra-op CPU threads per process (0 = torch's default). Small
        LSTM matmuls often run fastest on 1 thread, and much slower when the cores are shared.
      amp: mixed precision of the training forward pass: `none` (float32) or `bf16`
        (`torch.autocast` to bfloat16 on the training device, CPU or CUDA; weights,
        gradients, optimizer state, losses and normalisation statistics stay float32, so
        no loss scaling is needed). Validation and decoding run in float32. The transducer
        losses are forced to float32; other tasks' losses follow autocast's per-op rules.
    """

    task: str = "transducer"
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    num_epochs: int = 10
    max_steps: int = 0
    seed: int = 42
    save_every_n_steps: int = 500
    keep_last_k: int = 3
    average: str = AVERAGE_LAST
    average_last_n: int = 3
    valid_every_n_steps: int = 0
    max_bad_batches: int = 20
    log_every_n_steps: int = 50
    tensorboard: bool = True
    num_threads: int = 0
    amp: str = "none"

    # Dev metrics (lower is better) that `average: best_k_by_dev_<metric>` may name.
    VALID_METRICS: ClassVar[Tuple[str, ...]] = ("loss",)

    def validate(self) -> None:
        if self.num_threads < 0:
            raise ValueError("num_threads must be >= 0")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.num_epochs < 1 or self.max_steps < 0 or self.save_every_n_steps < 0:
            raise ValueError("num_epochs must be >= 1, max_steps and save_every_n_steps >= 0")
        if self.keep_last_k < 1 or self.average_last_n < 1 or self.max_bad_batches < 0:
            raise ValueError("keep_last_k and average_last_n must be >= 1, max_bad_batches >= 0")
        if self.log_every_n_steps < 1 or self.valid_every_n_steps < 0:
            raise ValueError("log_every_n_steps must be >= 1 and valid_every_n_steps >= 0")
        self.selection_metric()

    def selection_metric(self) -> Optional[str]:
        """The dev metric `average` selects epochs by, or None for `last_n`."""
        if self.average == AVERAGE_LAST:
            return None
        match = _AVERAGE_BEST.match(self.average)
        if not match or match.group(1) not in self.VALID_METRICS:
            known = [AVERAGE_LAST] + [f"best_k_by_dev_{m}" for m in self.VALID_METRICS]
            raise ValueError(f"average {self.average!r} is unknown for task {self.task!r} "
                             f"(known: {', '.join(known)})")
        return match.group(1)


@dataclasses.dataclass
class TransducerTrainConfig(TrainConfig):
    """A pruned RNN-T transducer run (`task: transducer`).

    Attributes:
      model: the architecture (`asrtools.models.build.ModelConfig`).
      loss: the pruned RNN-T loss and its warm-up.
      valid: dev-WER validation.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    valid: ValidConfig = dataclasses.field(default_factory=ValidConfig)

    VALID_METRICS: ClassVar[Tuple[str, ...]] = ("loss", "wer")

    def validate(self) -> None:
        super().validate()
        if self.selection_metric() == "wer" and self.valid.wer_utts == 0:
            raise ValueError(f"average {self.average!r} needs valid.wer_utts > 0")


# Task name -> its config class; tasks register themselves (asrtools.training.task.register_task).
TASK_CONFIGS: Dict[str, Type[TrainConfig]] = {"transducer": TransducerTrainConfig}


def load_train_config(path: Optional[Path], overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training YAML (optional) and `key.sub=value` overrides into its task's config.

    The `task:` key (default `transducer`) picks the dataclass; everything is checked here,
    before any data is read.
    """
    import asrtools.training.tasks  # noqa: F401  (tasks register their config classes)

    source = str(path) if path is not None else "config"
    data = read_yaml(Path(path)) if path is not None else {}
    data = merge(data, parse_overrides(overrides))
    task = data.get("task", "transducer")
    if task not in TASK_CONFIGS:
        raise ConfigError(f"{source}: task {task!r} is unknown (known: {', '.join(sorted(TASK_CONFIGS))})")
    return from_dict(TASK_CONFIGS[task], data, source)
