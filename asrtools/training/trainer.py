"""The one trainer every asrtools model uses; what differs per model is its `TrainingTask`.

`Trainer` trains the model of the task named by `config.task` (asrtools.training.task):
AdamW with a warm-up/decay schedule, gradient clipping, lhotse sampler batches, a guard that
skips batches with a non-finite loss or gradient, optional regularisers on the parameters
(e.g. EWC), validation at epoch ends (and every N steps), TensorBoard scalars and a progress
bar, checkpoints every N steps and per epoch, and `averaged.pt` from the last or the best
(by a dev metric, e.g. dev WER) epoch checkpoints.

Exact resume: a checkpoint holds the model, optimizer, schedule, step/epoch counters, the
validation history, the task's own state and, for every DDP rank, the sampler position and
the python/numpy/torch RNG states, captured right after an optimizer step. Nothing between
that point and the next batch draws from a global RNG (DataLoaders have their own
generator, validation uses none), so a run resumed from any checkpoint makes the same
updates as one that never stopped: on CPU the final parameters are bit-identical.

Training time: the wall-clock seconds spent training (epochs, validations, checkpoints; not
start-up) are carried in every checkpoint and summed over resumed runs, so
`train_summary.json` reports how long an uninterrupted run would have taken (work redone after a
kill counts once) and the time at each epoch end: a CPU-budget recipe states its cost from it.

`run_training` wraps it as the `train` stage; under torchrun only rank 0 owns the stage
(lock, markers, logs, checkpoints) and tells the other ranks whether and from which
checkpoint to train.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from asrtools.config import to_dict
from asrtools.errors import AsrtoolsError, ConfigError
from asrtools.models.checkpoint import average_state_dicts, load_checkpoint, save_checkpoint
from asrtools.pipeline import StageContext, atomic_write_json, run_stage
from asrtools.training.checkpoints import (
    AVERAGED_NAME,
    FINAL_NAME,
    capture_rng_state,
    epoch_checkpoints,
    latest_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    seed_everything,
)
from asrtools.training.config import AMP_MODES, TrainConfig
from asrtools.training.data import make_loader, sampler_state_for_resume
from asrtools.training.distributed import (
    DistInfo,
    any_rank,
    barrier,
    broadcast_object,
    cleanup_distributed,
    gather_objects,
    setup_distributed,
    sum_over_ranks,
)
from asrtools.training.schedule import LrSchedule
from asrtools.training.task import Regularizer, TrainPaths, get_task
from asrtools.utils.progress import progress

logger = logging.getLogger("asrtools")

SUMMARY_NAME = "train_summary.json"
_now = time.monotonic  # the training clock (a test replaces it)

__all__ = ["Trainer", "TrainPaths", "TrainingDivergedError", "run_training", "SUMMARY_NAME"]


class TrainingDivergedError(AsrtoolsError):
    """Too many batches had a non-finite loss or gradient."""


@dataclasses.dataclass
class Progress:
    """Counters saved in every checkpoint.

    Attributes:
      step: optimizer updates done (skipped bad batches do not count).
      epoch: the current epoch, 1-based.
      batches_in_epoch: batches of this epoch consumed (bad ones included).
      epoch_finished: True once `epoch` is complete (its checkpoint is an epoch checkpoint).
      bad_batches: batches skipped for a non-finite loss or gradient, over the whole run.
      seconds: wall-clock seconds of training up to this checkpoint, summed over resumed runs.
    """

    step: int = 0
    epoch: int = 1
    batches_in_epoch: int = 0
    epoch_finished: bool = False
    bad_batches: int = 0
    seconds: float = 0.0


class Trainer:
    """Train the model of `config.task` on the cuts in `paths`.

    Args:
      config: the training config (the task's `TrainConfig` subclass).
      paths: inputs and the experiment directory.
      info: this process's DDP rank/world size and device.
      log: where progress is reported (rank 0).
      regularizers: extra loss terms on the model's parameters (e.g. EWC).
    """

    def __init__(self, config: TrainConfig, paths: TrainPaths, info: DistInfo, log: logging.Logger = logger,
                 regularizers: Sequence[Regularizer] = ()) -> None:
        self.config = config
        self.paths = paths
        self.info = info
        self.log = log
        self.exp_dir = Path(paths.exp_dir)
        self.regularizers = list(regularizers)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        seed_everything(config.seed + info.rank)
        _warn_if_slow_amp(config.amp, info.device, log)
        self.task = get_task(config.task)(config, paths, info, log)
        self.model: torch.nn.Module = self.task.model
        if paths.init_from is not None:
            self._init_weights(Path(paths.init_from))
        self.train_cuts = self.task.load_cuts("train")
        self.dev_cuts = self.task.load_cuts("dev")
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            eps=config.optim.eps,
            weight_decay=config.optim.weight_decay,
        )
        self.scheduler = LrSchedule(self.optimizer, config.optim)
        num_workers = config.data.num_workers
        self.sampler = self.task.make_sampler(self.train_cuts, train=True)
        self.loader = make_loader(self.task.dataset(train=True), self.sampler, num_workers, config.seed)
        dev_sampler = self.task.make_sampler(self.dev_cuts, train=False)
        self.dev_loader = make_loader(self.task.dataset(train=False), dev_sampler, num_workers, config.seed)
        self.progress = Progress()
        self.valid: Dict[str, float] = {}
        self.history: Dict[int, Dict[str, float]] = {}
        self.epoch_seconds: Dict[int, float] = {}  # epoch -> training seconds at its end
        self._clock_origin: Optional[float] = None  # _now() minus the seconds already trained
        self._pending_rng: Optional[Dict[str, Any]] = None
        self.ddp_model: torch.nn.Module = self.model
        self.writer = None

    # ----------------------------------------------------------------------------- set-up

    def _init_weights(self, path: Path) -> None:
        """Start from the weights of checkpoint `path` (fine-tuning); new parameters keep theirs."""
        ckpt = load_checkpoint(path)
        if "model" not in ckpt:
            raise ConfigError(f"--init-from {path}: the checkpoint holds no model weights")
        own = self.model.state_dict()
        mismatched = sorted(k for k, v in ckpt["model"].items() if k in own and v.shape != own[k].shape)
        # load_state_dict runs the modules' load hooks, which rename keys of older layouts
        result = None if mismatched else self.model.load_state_dict(ckpt["model"], strict=False)
        unexpected = sorted(result.unexpected_keys) if result is not None else []
        if unexpected or mismatched:
            bad = (unexpected + mismatched)[:3]
            raise ConfigError(f"--init-from {path}: weights do not fit this model "
                              f"({len(unexpected)} unknown, {len(mismatched)} of another shape, e.g. {', '.join(bad)})")
        missing = sorted(result.missing_keys)
        if self.info.is_main:
            self.log.info("initialised from %s%s", path,
                          f" ({len(missing)} new parameters keep their initial values, e.g. {missing[0]})"
                          if missing else "")

    def load_state(self, path: Path) -> None:
        """Restore everything from checkpoint `path` (RNG states are applied in `run`)."""
        # On CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device.
        ckpt = load_checkpoint(path, map_location="cpu")
        rank_states = ckpt["rank_states"]
        if len(rank_states) != self.info.world_size:
            raise ConfigError(f"{path}: saved by {len(rank_states)} processes, resuming with "
                              f"{self.info.world_size}; use the same number of processes")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.progress = Progress(**ckpt["progress"])
        self.valid = dict(ckpt.get("valid", {}))
        self.history = {int(e): dict(m) for e, m in ckpt.get("valid_history", {}).items()}
        self.epoch_seconds = {int(e): float(s) for e, s in ckpt.get("epoch_seconds", {}).items()}
        self.task.load_state_dict(ckpt.get("task_state", {}))
        own = rank_states[self.info.rank]
        if not self.progress.epoch_finished:
            self.sampler.load_state_dict(dict(own["sampler"]))
        self._pending_rng = own["rng"]
        if self.info.is_main:
            self.log.info("resuming from %s (epoch %d, %d batches into it, step %d)", path.name,
                          self.progress.epoch, self.progress.batches_in_epoch, self.progress.step)

    # ------------------------------------------------------------------------------ loop

    def run(self, resume_from: Optional[Path] = None) -> None:
        """Train to the end (resuming from `resume_from` if given) and write the final files."""
        if resume_from is not None:
            self.load_state(Path(resume_from))
        if self.info.distributed:
            device_ids = [self.info.device.index] if self.info.device.type == "cuda" else None
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if self.info.is_main and self.config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=self.progress.step)
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
        self._clock_origin = _now() - self.progress.seconds
        try:
            self._train_epochs()
            self._finish()
        finally:
            if self.writer is not None:
                self.writer.close()

    def _train_epochs(self) -> None:
        cfg = self.config
        first = self.progress.epoch + 1 if self.progress.epoch_finished else self.progress.epoch
        for epoch in range(first, cfg.num_epochs + 1):
            if self._reached_max_steps():
                return
            if self.progress.epoch != epoch or self.progress.epoch_finished:
                self.progress = dataclasses.replace(self.progress, epoch=epoch, batches_in_epoch=0,
                                                    epoch_finished=False)
            self.scheduler.set_epoch(epoch - 1)
            self.sampler.set_epoch(epoch)
            if not self._train_one_epoch():
                return
            self.valid = self.validate()
            self.history[epoch] = dict(self.valid)
            self.epoch_seconds[epoch] = self._seconds()
            self.progress.epoch_finished = True
            self._save(self.exp_dir / f"epoch-{epoch}.pt")
            if self.info.is_main:
                self.log.info("epoch %d done: step %d, %.1f min, valid %s", epoch, self.progress.step,
                              self.epoch_seconds[epoch] / 60, _format(self.valid))
                self._scalars("valid", self.valid)

    def _seconds(self) -> float:
        """Training seconds so far, this process's and those of the runs it resumed."""
        if self._clock_origin is None:
            return self.progress.seconds
        return _now() - self._clock_origin

    def _reached_max_steps(self) -> bool:
        return self.config.max_steps > 0 and self.progress.step >= self.config.max_steps

    def _train_one_epoch(self) -> bool:
        """Train on the rest of the current epoch; False if `max_steps` stopped it."""
        self.model.train()
        window = _Window()
        bar = progress(self.loader, desc=f"epoch {self.progress.epoch}", initial=self.progress.batches_in_epoch,
                       disable=not self.info.is_main, leave=False, unit="batch")
        for batch in bar:
            self.progress.batches_in_epoch += 1
            stats = self.train_step(batch)
            if stats is None:
                continue
            self.progress.step += 1
            window.add(stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", step=self.progress.step)
            if self.progress.step % self.config.log_every_n_steps == 0:
                self._log_window(window)
                window = _Window()
            self._maybe_validate_step()
            saved = self._maybe_save_step()
            if self._reached_max_steps():
                if not saved:
                    self._save(self.exp_dir / f"checkpoint-{self.progress.step}.pt")
                bar.close()
                return False
        bar.close()
        return True

    def train_step(self, batch: Dict[str, Any]) -> Optional[Dict[str, float]]:
        """One optimizer update on `batch`; None if the batch was skipped as bad.

        Args:
          batch: from the task's training dataset.

        Returns:
          The task's loss statistics plus any regularisers', grad_norm, lr and the batch's
          weight (frames/samples) under "weight"; None for a skipped batch.
        """
        self.task.on_step_start(self.progress.step, self.progress.epoch)
        amp_dtype = AMP_MODES[self.config.amp]
        with torch.autocast(self.info.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = self.task.compute_loss(self.ddp_model, batch, self.progress.step)
        loss, stats = out.loss, dict(out.stats)
        for regularizer in self.regularizers:
            term = regularizer(self.model)
            loss = loss + term
            stats[regularizer.name] = term.item()
        stats["loss"] = loss.item()
        if any_rank(not math.isfinite(stats["loss"]), self.info):
            self._bad_batch(batch, "loss")
            return None
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self._rank_share(out.weight)).backward()
        clip = self.config.optim.clip_grad_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        if not math.isfinite(float(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self._bad_batch(batch, "gradient")
            return None
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        extra = self.task.after_step(self.ddp_model, batch, self.progress.step + 1)
        return {**stats, **extra, "grad_norm": float(grad_norm), "lr": lr, "weight": out.weight}

    def _rank_share(self, weight: float) -> float:
        """Scale of this rank's normalised loss so that DDP's gradient average is the gradient
        of the whole step's loss normalised by the weight (frames) of all ranks together,
        exactly what one process would compute on the merged batch."""
        if not self.info.distributed:
            return 1.0
        total = sum_over_ranks([weight], self.info)[0]
        return weight * self.info.world_size / max(total, 1e-12)

    def _bad_batch(self, batch: Dict[str, Any], what: str) -> None:
        self.progress.bad_batches += 1
        cut_ids = self.task.batch_ids(batch)
        ids = ", ".join(cut_ids[:3]) + (", ..." if len(cut_ids) > 3 else "")
        self.log.warning("step %d: skipped a batch with a non-finite %s (cuts %s); %d bad batches so far",
                         self.progress.step, what, ids, self.progress.bad_batches)
        if self.progress.bad_batches > self.config.max_bad_batches:
            raise TrainingDivergedError(
                f"training stopped: {self.progress.bad_batches} batches had a non-finite {what} "
                f"(max_bad_batches={self.config.max_bad_batches}), the last at step {self.progress.step} "
                f"with cuts {ids}; check those features or lower optim.lr"
            )

    def validate(self) -> Dict[str, float]:
        """The task's dev metrics (e.g. per-frame losses, dev WER), summed over all ranks."""
        self.model.eval()
        try:
            return self.task.validate(self.model, self.dev_loader)
        finally:
            self.model.train()

    def _maybe_validate_step(self) -> None:
        every = self.config.valid_every_n_steps
        if every and self.progress.step % every == 0:
            metrics = self.validate()
            if self.info.is_main:
                self.log.info("step %d: valid %s", self.progress.step, _format(metrics))
                self._scalars("valid", metrics)

    # ----------------------------------------------------------------------- checkpoints

    def _maybe_save_step(self) -> bool:
        every = self.config.save_every_n_steps
        if every and self.progress.step % every == 0:
            self._save(self.exp_dir / f"checkpoint-{self.progress.step}.pt")
            return True
        return False

    def _save(self, path: Path) -> None:
        """Gather every rank's sampler and RNG state; rank 0 writes the checkpoint."""
        own = {
            "sampler": sampler_state_for_resume(self.sampler, self.progress.batches_in_epoch),
            "rng": capture_rng_state(),
        }
        rank_states = gather_objects(own, self.info)
        self.progress.seconds = self._seconds()
        if self.info.is_main:
            save_checkpoint(path, {
                **self.task.model_entry(self.model.state_dict()),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "progress": dataclasses.asdict(self.progress),
                "step": self.progress.step,
                "epoch": self.progress.epoch,
                "epoch_finished": self.progress.epoch_finished,
                "rank_states": rank_states,
                "valid": dict(self.valid),
                "valid_history": {str(e): m for e, m in self.history.items()},
                "epoch_seconds": {str(e): s for e, s in self.epoch_seconds.items()},
                "task_state": self.task.state_dict(),
                "train_config": to_dict(self.config),
            })
            keep = self.config.keep_last_k
            prune_checkpoints(self.exp_dir, keep, max(keep, self.config.average_last_n), protect_epochs=self._selected_epochs())
        barrier(self.info)

    def _selected_epochs(self) -> List[int]:
        """The epochs `averaged.pt` averages, by `config.average`, among those validated so far."""
        k = self.config.average_last_n
        metric = self.config.selection_metric()
        if metric is None:
            return sorted(self.history)[-k:]
        scored = [(m[metric], -e, e) for e, m in self.history.items() if math.isfinite(m.get(metric, math.nan))]
        return sorted(e for _, _, e in sorted(scored)[:k])

    def _finish(self) -> None:
        """Write `final.pt`, `averaged.pt` (mean of the selected epoch checkpoints) and the summary."""
        if self.info.is_main:
            meta = {"step": self.progress.step, "epoch": self.progress.epoch}
            save_checkpoint(self.exp_dir / FINAL_NAME, {**self.task.model_entry(self.model.state_dict()), **meta})
            available = dict(epoch_checkpoints(self.exp_dir))
            chosen = [(e, available[e]) for e in self._selected_epochs() if e in available]
            if chosen:
                averaged = average_state_dicts([load_checkpoint(p)["model"] for _, p in chosen])
            else:
                averaged = self.model.state_dict()
            names = [p.name for _, p in chosen] or [FINAL_NAME]
            selection = {"average": self.config.average, "k": self.config.average_last_n, "chosen": names}
            save_checkpoint(self.exp_dir / AVERAGED_NAME,
                            {**self.task.model_entry(averaged), **meta, "averaged_from": names,
                             "selection": selection})
            atomic_write_json(self.exp_dir / SUMMARY_NAME, {
                "steps": self.progress.step,
                "epochs": self.progress.epoch,
                "bad_batches": self.progress.bad_batches,
                "valid_history": {str(e): m for e, m in sorted(self.history.items())},
                "selection": selection,
                "train_seconds": round(self._seconds(), 1),
                "epoch_seconds": {str(e): round(s, 1) for e, s in sorted(self.epoch_seconds.items())},
            })
            self.log.info("training done at step %d (%d bad batches); %s = mean of %s (%s)", self.progress.step,
                          self.progress.bad_batches, AVERAGED_NAME, ", ".join(names), self.config.average)
        barrier(self.info)

    # --------------------------------------------------------------------------- logging

    def _log_window(self, window: "_Window") -> None:
        if not self.info.is_main:
            return
        means = window.means()
        self.log.info("epoch %d step %d: %s, bad %d", self.progress.epoch, self.progress.step, _format(means),
                      self.progress.bad_batches)
        self._scalars("train", means)

    def _scalars(self, prefix: str, values: Dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, self.progress.step)
        self.writer.flush()


def _fingerprinted_config(config: TrainConfig) -> Dict[str, Any]:
    """The config as the train stage fingerprints it: `amp` only when set, so that runs made
    before the key existed (float32) stay up to date."""
    values = to_dict(config)
    if values.get("amp") == "none":
        del values["amp"]
    return values


def _warn_if_slow_amp(amp: str, device: torch.device, log: logging.Logger) -> None:
    """bfloat16 on a CPU without native support (AVX512-BF16 / AMX) is emulated and runs
    slower than float32: say so rather than let a config tuned elsewhere silently overrun."""
    if amp == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        log.warning("amp: bf16 on a CPU without native bfloat16 (AVX512-BF16/AMX): training will be "
                    "slower than with amp: none")


def _format(values: Dict[str, float]) -> str:
    """`loss 0.4123, wer 0.3571, lr 2.00e-03` (loss first, then in insertion order)."""
    ordered = sorted(values.items(), key=lambda kv: kv[0] != "loss")
    return ", ".join(f"{k} {v:.2e}" if k == "lr" else f"{k} {v:.4f}" for k, v in ordered)


class _Window:
    """Means of step statistics between two log lines: weighted by the batch weight, except
    the learning rate and gradient norm (plain means over steps)."""

    PLAIN = ("lr", "grad_norm")

    def __init__(self) -> None:
        self.sums: Dict[str, float] = {}
        self.weights: Dict[str, float] = {}

    def add(self, stats: Dict[str, float]) -> None:
        weight = stats["weight"]
        for key, value in stats.items():
            if key == "weight":
                continue
            w = 1.0 if key in self.PLAIN else weight
            self.sums[key] = self.sums.get(key, 0.0) + value * w
            self.weights[key] = self.weights.get(key, 0.0) + w

    def means(self) -> Dict[str, float]:
        return {k: self.sums[k] / max(self.weights[k], 1e-12) for k in self.sums}


def run_training(config: TrainConfig, paths: TrainPaths, device: str = "cpu", force: bool = False,
                 regularizers: Sequence[Regularizer] = ()) -> bool:
    """Run training as the fingerprinted, resumable `train` stage in `paths.exp_dir`.

    Single process, or one process per rank under torchrun: rank 0 runs the stage (lock,
    markers, log file, checkpoints) and broadcasts whether to train and from which
    checkpoint; the other ranks train alongside it and write nothing.

    Args:
      config: the training config (its `task` picks the model family).
      paths: input manifests, BPE model, optional initial weights and extra inputs, and the
        experiment directory; all are fingerprinted.
      device: "cpu" or "cuda".
      force: retrain even if the stage is up to date.
      regularizers: extra loss terms on the parameters (their `params()` are fingerprinted).

    Returns:
      True if training ran, False if the stage was already up to date.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    info = setup_distributed(device)
    try:
        if not info.is_main:
            logger.setLevel(logging.WARNING)
            command, resume = broadcast_object(None, info)
            if command != "run":
                return False
            Trainer(config, paths, info, regularizers=regularizers).run(Path(resume) if resume else None)
            return True
        return _run_main_rank(config, paths, info, force, regularizers)
    finally:
        cleanup_distributed()


def _run_main_rank(config: TrainConfig, paths: TrainPaths, info: DistInfo, force: bool,
                   regularizers: Sequence[Regularizer]) -> bool:
    started = False

    def body(ctx: StageContext) -> None:
        nonlocal started
        started = True
        resume = latest_checkpoint(ctx.out_dir, ctx.log) if ctx.resumed else None
        broadcast_object(("run", str(resume) if resume else None), info)
        Trainer(config, paths, info, ctx.log, regularizers).run(resume)

    params: Dict[str, Any] = {"config": _fingerprinted_config(config), "world_size": info.world_size}
    if regularizers:
        params["regularizers"] = {r.name: r.params() for r in regularizers}
    try:
        ran = run_stage(paths.exp_dir, "train", params, paths.stage_inputs(), body, force=force)
    finally:
        if not started:
            broadcast_object(("stop", None), info)
    return ran
