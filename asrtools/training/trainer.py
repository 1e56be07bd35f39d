"""The one trainer every asrtools transducer uses.

`Trainer` trains a `Transducer` from a `TrainConfig`: AdamW with a warm-up/decay schedule,
gradient clipping, lhotse DynamicBucketingSampler batches, SpecAugment, the pruned RNN-T
loss with icefall's warm-up, a guard that skips batches with a non-finite loss or gradient,
TensorBoard scalars and a tqdm bar, and checkpoints every N steps and per epoch.

Exact resume: a checkpoint holds the model, optimizer, schedule, step/epoch counters and,
for every DDP rank, the sampler position and the python/numpy/torch RNG states, captured
right after an optimizer step. Nothing between that point and the next batch draws from a
global RNG (DataLoaders have their own generator, validation uses none), so a run resumed
from any checkpoint makes the same updates as one that never stopped: on CPU the final
parameters are bit-identical.

`run_training` wraps it as the `train` stage; under torchrun only rank 0 owns the stage
(lock, markers, logs, checkpoints) and tells the other ranks whether and from which
checkpoint to train.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from lhotse.dataset import SpecAugment
from tqdm import tqdm

from asrtools.config import to_dict
from asrtools.errors import AsrtoolsError, ConfigError
from asrtools.models.build import build_model, model_config_to_dict
from asrtools.models.transducer import TransducerLosses, loss_scales
from asrtools.pipeline import StageContext, run_stage
from asrtools.text.tokenizer import Tokenizer
from asrtools.models.checkpoint import average_state_dicts, load_checkpoint, save_checkpoint
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
from asrtools.training.config import TrainConfig
from asrtools.data.cuts import check_features, load_cuts
from asrtools.training.data import (
    encoder_output_lengths,
    filter_trainable,
    make_loader,
    make_sampler,
    sampler_state_for_resume,
)
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

logger = logging.getLogger("asrtools")


class TrainingDivergedError(AsrtoolsError):
    """Too many batches had a non-finite loss or gradient."""


@dataclasses.dataclass
class TrainPaths:
    """Inputs and output directory of a training run."""

    cuts_train: Path
    cuts_dev: Path
    bpe_model: Path
    exp_dir: Path


@dataclasses.dataclass
class Progress:
    """Counters saved in every checkpoint.

    Attributes:
      step: optimizer updates done (skipped bad batches do not count).
      epoch: the current epoch, 1-based.
      batches_in_epoch: batches of this epoch consumed (bad ones included).
      epoch_finished: True once `epoch` is complete (its checkpoint is an epoch checkpoint).
      bad_batches: batches skipped for a non-finite loss or gradient, over the whole run.
    """

    step: int = 0
    epoch: int = 1
    batches_in_epoch: int = 0
    epoch_finished: bool = False
    bad_batches: int = 0


def pad_token_ids(token_ids: List[List[int]], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, S) int64 tokens padded with 0, and (B,) int64 lengths."""
    lens = torch.tensor([len(ids) for ids in token_ids], dtype=torch.int64)
    padded = torch.zeros(len(token_ids), max(1, int(lens.max())), dtype=torch.int64)
    for i, ids in enumerate(token_ids):
        padded[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return padded.to(device), lens.to(device)


class Trainer:
    """Train a transducer described by `config` on the cuts in `paths`.

    Args:
      config: the training config.
      paths: inputs and the experiment directory.
      info: this process's DDP rank/world size and device.
      log: where progress is reported (rank 0).
    """

    def __init__(self, config: TrainConfig, paths: TrainPaths, info: DistInfo, log: logging.Logger = logger) -> None:
        self.config = config
        self.paths = paths
        self.info = info
        self.log = log
        self.exp_dir = Path(paths.exp_dir)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        seed_everything(config.seed + info.rank)
        self.tokenizer = Tokenizer(paths.bpe_model)
        self.model = build_model(config.model, self.tokenizer.vocab_size).to(info.device)
        self.train_cuts = self._load_filtered(paths.cuts_train, "cuts_train", config.data.min_cut_duration,
                                              config.data.max_cut_duration)
        self.dev_cuts = self._load_filtered(paths.cuts_dev, "cuts_dev", 0.0, math.inf)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            eps=config.optim.eps,
            weight_decay=config.optim.weight_decay,
        )
        self.scheduler = LrSchedule(self.optimizer, config.optim)
        data = config.data
        self.sampler = make_sampler(self.train_cuts, data.max_duration, data.num_buckets, data.shuffle,
                                    config.seed, info.world_size, info.rank)
        self.loader = make_loader(self.sampler, data.num_workers, config.seed)
        dev_sampler = make_sampler(self.dev_cuts, data.max_duration, data.num_buckets, False,
                                   config.seed, info.world_size, info.rank)
        self.dev_loader = make_loader(dev_sampler, data.num_workers, config.seed)
        self.spec_augment = self._make_spec_augment()
        self.progress = Progress()
        self.valid: Dict[str, float] = {}
        self._pending_rng: Optional[Dict[str, Any]] = None
        self.ddp_model: torch.nn.Module = self.model
        self.writer = None

    # ----------------------------------------------------------------------------- set-up

    def _load_filtered(self, path: Path, name: str, min_duration: float, max_duration: float):
        cuts = load_cuts(path, name)
        check_features(cuts, self.config.model.feature_dim, name)
        lengths = encoder_output_lengths(self.model.encoder, self.config.model.feature_dim)
        kept, dropped = filter_trainable(cuts, self.tokenizer.encode, lengths, min_duration, max_duration)
        if self.info.is_main:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "none"
            self.log.info("%s: kept %d of %d cuts (dropped: %s)", name, len(kept), len(cuts), reasons)
        return kept

    def _make_spec_augment(self) -> Optional[SpecAugment]:
        spec = self.config.data.spec_augment
        if not spec.enabled:
            return None
        return SpecAugment(
            time_warp_factor=spec.time_warp_factor,
            num_feature_masks=spec.num_feature_masks,
            features_mask_size=spec.features_mask_size,
            num_frame_masks=spec.num_frame_masks,
            frames_mask_size=spec.frames_mask_size,
            max_frames_mask_fraction=spec.max_frames_mask_fraction,
            p=spec.p,
        )

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
            self.progress.epoch_finished = True
            self._save(self.exp_dir / f"epoch-{epoch}.pt")
            if self.info.is_main:
                self.log.info("epoch %d done: step %d, valid loss %.4f (simple %.4f, pruned %.4f) per frame",
                              epoch, self.progress.step, self.valid["loss"], self.valid["simple"],
                              self.valid["pruned"])
                self._scalars("valid", self.valid)

    def _reached_max_steps(self) -> bool:
        return self.config.max_steps > 0 and self.progress.step >= self.config.max_steps

    def _train_one_epoch(self) -> bool:
        """Train on the rest of the current epoch; False if `max_steps` stopped it."""
        self.model.train()
        window = _Window()
        bar = tqdm(self.loader, desc=f"epoch {self.progress.epoch}", initial=self.progress.batches_in_epoch,
                   disable=None if self.info.is_main else True, leave=False, dynamic_ncols=True, unit="batch")
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
          batch: from `AsrDataset`: features (B, T, F), feature_lens (B,), texts, cut_ids.

        Returns:
          Per-frame loss, simple, pruned, grad_norm, lr and frames, or None.
        """
        features, feature_lens = batch["features"], batch["feature_lens"]
        if self.spec_augment is not None:
            segments = torch.stack([torch.arange(len(feature_lens)), torch.zeros_like(feature_lens), feature_lens], 1)
            features = self.spec_augment(features, supervision_segments=segments)
        device = self.info.device
        y, y_lens = pad_token_ids(self.tokenizer.encode(batch["texts"]), device)
        simple_scale, pruned_scale = loss_scales(self.progress.step, self.config.loss.warm_steps,
                                                 self.config.loss.simple_loss_scale)
        losses = self._forward(self.ddp_model, features.to(device), feature_lens.to(device), y, y_lens)
        frames = max(losses.num_frames, 1)
        loss = (simple_scale * losses.simple + pruned_scale * losses.pruned) / frames
        if any_rank(not math.isfinite(loss.item()), self.info):
            self._bad_batch(batch, "loss")
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.optim.clip_grad_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else math.inf)
        if not math.isfinite(float(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self._bad_batch(batch, "gradient")
            return None
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        return {
            "loss": loss.item(),
            "simple": losses.simple.item() / frames,
            "pruned": losses.pruned.item() / frames,
            "grad_norm": float(grad_norm),
            "lr": lr,
            "frames": float(frames),
        }

    def _forward(self, model: torch.nn.Module, features: torch.Tensor, feature_lens: torch.Tensor,
                 y: torch.Tensor, y_lens: torch.Tensor) -> TransducerLosses:
        loss = self.config.loss
        return model(features, feature_lens, y, y_lens, prune_range=loss.prune_range, am_scale=loss.am_scale,
                     lm_scale=loss.lm_scale, rnnt_type=loss.rnnt_type, delay_penalty=loss.delay_penalty,
                     backend=loss.backend)

    def _bad_batch(self, batch: Dict[str, Any], what: str) -> None:
        self.progress.bad_batches += 1
        ids = ", ".join(batch["cut_ids"][:3]) + (", ..." if len(batch["cut_ids"]) > 3 else "")
        self.log.warning("step %d: skipped a batch with a non-finite %s (cuts %s); %d bad batches so far",
                         self.progress.step, what, ids, self.progress.bad_batches)
        if self.progress.bad_batches > self.config.max_bad_batches:
            raise TrainingDivergedError(
                f"training stopped: {self.progress.bad_batches} batches had a non-finite {what} "
                f"(max_bad_batches={self.config.max_bad_batches}), the last at step {self.progress.step} "
                f"with cuts {ids}; check those features or lower optim.lr"
            )

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Per-frame dev losses (post-warm-up loss weights), summed over all ranks."""
        self.model.eval()
        totals = [0.0, 0.0, 0.0]
        scale = self.config.loss.simple_loss_scale
        for batch in self.dev_loader:
            y, y_lens = pad_token_ids(self.tokenizer.encode(batch["texts"]), self.info.device)
            losses = self._forward(self.model, batch["features"].to(self.info.device),
                                   batch["feature_lens"].to(self.info.device), y, y_lens)
            simple, pruned = losses.simple.item(), losses.pruned.item()
            if math.isfinite(simple) and math.isfinite(pruned):
                totals = [totals[0] + simple, totals[1] + pruned, totals[2] + losses.num_frames]
        simple, pruned, frames = sum_over_ranks(totals, self.info)
        self.model.train()
        frames = max(frames, 1.0)
        return {"loss": (scale * simple + pruned) / frames, "simple": simple / frames, "pruned": pruned / frames}

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
        if self.info.is_main:
            save_checkpoint(path, {
                **self._model_entry(self.model.state_dict()),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "progress": dataclasses.asdict(self.progress),
                "step": self.progress.step,
                "epoch": self.progress.epoch,
                "epoch_finished": self.progress.epoch_finished,
                "rank_states": rank_states,
                "valid": dict(self.valid),
                "train_config": to_dict(self.config),
            })
            keep = self.config.keep_last_k
            prune_checkpoints(self.exp_dir, keep, max(keep, self.config.average_last_n))
        barrier(self.info)

    def _model_entry(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        return {
            "model": state_dict,
            "model_config": model_config_to_dict(self.config.model),
            "vocab_size": self.tokenizer.vocab_size,
        }

    def _finish(self) -> None:
        """Write `final.pt` and `averaged.pt` (mean of the last n epoch checkpoints)."""
        if self.info.is_main:
            meta = {"step": self.progress.step, "epoch": self.progress.epoch}
            save_checkpoint(self.exp_dir / FINAL_NAME, {**self._model_entry(self.model.state_dict()), **meta})
            chosen = epoch_checkpoints(self.exp_dir)[-self.config.average_last_n :]
            if chosen:
                averaged = average_state_dicts([load_checkpoint(p)["model"] for _, p in chosen])
            else:
                averaged = self.model.state_dict()
            names = [p.name for _, p in chosen] or [FINAL_NAME]
            save_checkpoint(self.exp_dir / AVERAGED_NAME,
                            {**self._model_entry(averaged), **meta, "averaged_from": names})
            self.log.info("training done at step %d (%d bad batches); %s = mean of %s", self.progress.step,
                          self.progress.bad_batches, AVERAGED_NAME, ", ".join(names))
        barrier(self.info)

    # --------------------------------------------------------------------------- logging

    def _log_window(self, window: "_Window") -> None:
        if not self.info.is_main:
            return
        means = window.means()
        self.log.info("epoch %d step %d: loss %.4f (simple %.4f, pruned %.4f) lr %.2e grad-norm %.2f bad %d",
                      self.progress.epoch, self.progress.step, means["loss"], means["simple"], means["pruned"],
                      means["lr"], means["grad_norm"], self.progress.bad_batches)
        self._scalars("train", means)

    def _scalars(self, prefix: str, values: Dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            if name != "frames":
                self.writer.add_scalar(f"{prefix}/{name}", value, self.progress.step)
        self.writer.flush()


class _Window:
    """Frame-weighted means of step statistics between two log lines."""

    def __init__(self) -> None:
        self.sums: Dict[str, float] = {}
        self.frames = 0.0
        self.count = 0

    def add(self, stats: Dict[str, float]) -> None:
        for key in ("loss", "simple", "pruned"):
            self.sums[key] = self.sums.get(key, 0.0) + stats[key] * stats["frames"]
        for key in ("lr", "grad_norm"):
            self.sums[key] = self.sums.get(key, 0.0) + stats[key]
        self.frames += stats["frames"]
        self.count += 1

    def means(self) -> Dict[str, float]:
        out = {k: self.sums[k] / max(self.frames, 1.0) for k in ("loss", "simple", "pruned")}
        out.update({k: self.sums[k] / max(self.count, 1) for k in ("lr", "grad_norm")})
        return out


def run_training(config: TrainConfig, paths: TrainPaths, device: str = "cpu", force: bool = False) -> bool:
    """Run training as the fingerprinted, resumable `train` stage in `paths.exp_dir`.

    Single process, or one process per rank under torchrun: rank 0 runs the stage (lock,
    markers, log file, checkpoints) and broadcasts whether to train and from which
    checkpoint; the other ranks train alongside it and write nothing.

    Args:
      config: the training config.
      paths: input manifests, BPE model and experiment directory.
      device: "cpu" or "cuda".
      force: retrain even if the stage is up to date.

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
            Trainer(config, paths, info).run(Path(resume) if resume else None)
            return True
        return _run_main_rank(config, paths, info, force)
    finally:
        cleanup_distributed()


def _run_main_rank(config: TrainConfig, paths: TrainPaths, info: DistInfo, force: bool) -> bool:
    started = False

    def body(ctx: StageContext) -> None:
        nonlocal started
        started = True
        resume = latest_checkpoint(ctx.out_dir) if ctx.resumed else None
        broadcast_object(("run", str(resume) if resume else None), info)
        Trainer(config, paths, info, ctx.log).run(resume)

    params = {"config": to_dict(config), "world_size": info.world_size}
    inputs = {"cuts_train": paths.cuts_train, "cuts_dev": paths.cuts_dev, "bpe_model": paths.bpe_model}
    try:
        ran = run_stage(paths.exp_dir, "train", params, inputs, body, force=force)
    finally:
        if not started:
            broadcast_object(("stop", None), info)
    return ran
