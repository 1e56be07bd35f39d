"""The `sts` task: multi-talker training of the separator-transducer-segmenter (METHODS.md §3).

Batches are conversation cuts from `asrtools data mix` (one supervision per turn). Each
conversation's turns are assigned to the output channels by start time and turned into
per-channel token targets (`asrtools.data.turns`): `<sot> words <eot>` per turn (scheme
`sot_eot`, STS) or turns joined by a speaker-change token (scheme `speaker_change`, the
multi-turn RNN-T baseline). The loss is, per encoder frame of all channels,

    simple_scale * simple + pruned_scale * pruned          (icefall's warm-up, both with
                                                             the optional <eot> latency
                                                             penalty and FastEmit)
    + activity_weight * BCE(activity logits, per-channel speech activity)

Every extra term is switchable (weight 0 = off) for ablations. Validation gives the
per-frame dev losses and, on a fixed subset of dev conversations decoded with greedy
search, the speaker-agnostic WER (channels merged by turn start time) that checkpoint
selection can use.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, ClassVar, Dict, List, Tuple

import torch
import torch.nn.functional as F
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler, SpecAugment
from torch import nn

from asrtools.data.cuts import ConversationDataset, check_features, load_cuts
from asrtools.data.turns import (
    NUM_CHANNELS,
    SOT_EOT,
    TURN_SCHEMES,
    ChannelTargets,
    Turn,
    activity_targets,
    assign_channels,
    channel_token_ids,
    turns_of_cut,
)
from asrtools.errors import ConfigError, DataError
from asrtools.losses.turn_penalties import eot_deadlines
from asrtools.models.sts import SeparatorTransducer, StsModelConfig, build_sts_model, sts_config_to_dict
from asrtools.models.transducer import loss_scales
from asrtools.text.tokenizer import Tokenizer
from asrtools.training.config import LossConfig, TrainConfig, ValidConfig
from asrtools.training.distributed import DistInfo, sum_over_ranks
from asrtools.training.task import StepLoss, TrainingTask, TrainPaths, register_task
from asrtools.training.tasks.transducer import pad_token_ids, spread_subset


@dataclasses.dataclass
class StsLossConfig(LossConfig):
    """The pruned RNN-T loss per channel plus the STS terms (each 0 = off).

    Attributes:
      turn_scheme: "sot_eot" (STS) or "speaker_change" (the multi-turn baseline).
      fastemit_lambda: FastEmit's lambda on every channel's symbol arcs.
      activity_weight: weight of the per-frame speech-activity BCE (mean over frames).
      eot_latency_weight: nats per second by which an `<eot>` emitted after its turn's
        reference end is penalised (sot_eot only).
    """

    turn_scheme: str = SOT_EOT
    fastemit_lambda: float = 0.0
    activity_weight: float = 0.0
    eot_latency_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.turn_scheme not in TURN_SCHEMES:
            raise ValueError(f"turn_scheme {self.turn_scheme!r} is unknown (known: {', '.join(TURN_SCHEMES)})")
        if self.fastemit_lambda < 0 or self.activity_weight < 0 or self.eot_latency_weight < 0:
            raise ValueError("fastemit_lambda, activity_weight and eot_latency_weight must be >= 0")
        if self.eot_latency_weight > 0 and self.turn_scheme != SOT_EOT:
            raise ValueError("eot_latency_weight needs turn_scheme sot_eot (there is no <eot> otherwise)")
        if self.delay_penalty != 0:
            raise ValueError("delay_penalty is not used by the sts task (use fastemit_lambda)")


@dataclasses.dataclass
class StsTrainConfig(TrainConfig):
    """A multi-talker run (`task: sts`).

    Attributes:
      model: transducer architecture plus the separator branches.
      loss: per-channel pruned RNN-T and the STS terms.
      valid: `wer_utts` dev conversations decoded (greedy) for the dev WER.
    """

    model: StsModelConfig = dataclasses.field(default_factory=StsModelConfig)
    loss: StsLossConfig = dataclasses.field(default_factory=StsLossConfig)
    valid: ValidConfig = dataclasses.field(default_factory=ValidConfig)

    VALID_METRICS: ClassVar[Tuple[str, ...]] = ("loss", "wer")

    def validate(self) -> None:
        super().validate()
        if self.model.num_channels != NUM_CHANNELS:
            raise ValueError(f"model.num_channels must be {NUM_CHANNELS} (turns are assigned to two channels)")
        if self.selection_metric() == "wer" and self.valid.wer_utts == 0:
            raise ValueError(f"average {self.average!r} needs valid.wer_utts > 0")


@register_task("sts", StsTrainConfig)
class StsTask(TrainingTask):
    """Two-channel multi-talker transducer training (see the module doc)."""

    config: StsTrainConfig

    def __init__(self, config: StsTrainConfig, paths: TrainPaths, info: DistInfo, log: logging.Logger) -> None:
        super().__init__(config, paths, info, log)
        if paths.bpe_model is None:
            raise ConfigError("the sts task needs a BPE model (--bpe-model)")
        self.tokenizer = Tokenizer(paths.bpe_model)
        self.model: SeparatorTransducer = build_sts_model(config.model, self.tokenizer.vocab_size).to(info.device)
        self.spec_augment = self._make_spec_augment()
        self.frame_seconds = 0.0
        self._targets: Dict[str, Tuple[List[Turn], List[ChannelTargets]]] = {}
        self._wer_cuts: CutSet = CutSet.from_cuts([])

    # -------------------------------------------------------------------------- data

    def _make_spec_augment(self) -> Any:
        spec = self.config.data.spec_augment
        if not spec.enabled:
            return None
        return SpecAugment(time_warp_factor=spec.time_warp_factor, num_feature_masks=spec.num_feature_masks,
                           features_mask_size=spec.features_mask_size, num_frame_masks=spec.num_frame_masks,
                           frames_mask_size=spec.frames_mask_size,
                           max_frames_mask_fraction=spec.max_frames_mask_fraction, p=spec.p)

    def targets_of(self, cut_id: str, turns: List[Turn]) -> Tuple[List[Turn], List[ChannelTargets]]:
        """Channel-assigned turns and per-channel targets of a conversation (cached)."""
        if cut_id not in self._targets:
            assigned = assign_channels(turns, NUM_CHANNELS, name=f"cut {cut_id}")
            targets = channel_token_ids(assigned, self.tokenizer.encode, self.tokenizer.sot_id,
                                        self.tokenizer.eot_id, self.config.loss.turn_scheme, NUM_CHANNELS)
            self._targets[cut_id] = (assigned, targets)
        return self._targets[cut_id]

    def load_cuts(self, split: str) -> CutSet:
        data = self.config.data
        name = f"cuts_{split}"
        cuts = load_cuts(self.paths.cuts_train if split == "train" else self.paths.cuts_dev, name)
        check_features(cuts, self.config.model.feature_dim, name)
        frame_shift = next(iter(cuts)).frame_shift
        self.frame_seconds = self.model.encoder.subsampling_factor * float(frame_shift)
        lengths = self.model.encoder.output_lengths if hasattr(self.model.encoder, "output_lengths") else None
        low, high = (data.min_cut_duration, data.max_cut_duration) if split == "train" else (0.0, math.inf)
        kept, dropped = [], {"too_short": 0, "too_long": 0, "more_tokens_than_frames": 0}
        for cut in cuts:
            _, targets = self.targets_of(cut.id, turns_of_cut(cut))
            frames = int(lengths(torch.tensor([cut.num_frames]))[0]) if lengths else cut.num_frames
            if cut.duration < low:
                dropped["too_short"] += 1
            elif cut.duration > high:
                dropped["too_long"] += 1
            elif max(len(t.token_ids) for t in targets) > frames:
                dropped["more_tokens_than_frames"] += 1
            else:
                kept.append(cut)
        if not kept:
            raise DataError(f"{name}: no trainable conversations left ({dropped})")
        if self.info.is_main:
            self.log.info("%s: kept %d of %d conversations (dropped: %s)", name, len(kept), len(cuts),
                          ", ".join(f"{k}={v}" for k, v in dropped.items() if v) or "none")
        kept_set = CutSet.from_cuts(kept)
        if split == "dev":
            subset = spread_subset(kept_set, self.config.valid.wer_utts)
            self._wer_cuts = CutSet.from_cuts(list(subset)[self.info.rank :: self.info.world_size])
        return kept_set

    def dataset(self, train: bool) -> torch.utils.data.Dataset:
        return ConversationDataset()

    # ------------------------------------------------------------------------- steps

    def on_step_start(self, step: int, epoch: int) -> None:
        self.model.encoder.set_training_progress(step, epoch)

    def _batch_targets(self, batch: Dict[str, Any], num_frames: int) -> Tuple[torch.Tensor, ...]:
        """Channel-major (K*B, S) targets, (K*B,) lengths, (K*B, S) deadlines, (K, B, T') activity."""
        per_cut = [self.targets_of(cut_id, turns) for cut_id, turns in zip(batch["cut_ids"], batch["turns"])]
        ids, eots = [], []
        for k in range(NUM_CHANNELS):
            for _, targets in per_cut:
                ids.append(targets[k].token_ids)
                eots.append(list(zip(targets[k].eot_positions, targets[k].eot_times)))
        device = self.info.device
        y, y_lens = pad_token_ids(ids, device)
        deadlines = eot_deadlines(y.cpu(), self.tokenizer.eot_id, eots).to(device)
        activity = torch.stack([activity_targets(turns, num_frames, self.frame_seconds, NUM_CHANNELS)
                                for turns, _ in per_cut], dim=1)
        return y, y_lens, deadlines, activity.to(device)

    def _forward(self, model: nn.Module, batch: Dict[str, Any]) -> Tuple[Any, torch.Tensor]:
        device, loss = self.info.device, self.config.loss
        features, feature_lens = batch["features"].to(device), batch["feature_lens"].to(device)
        out_frames = int(self.model.encoder.output_lengths(feature_lens).max()) if hasattr(
            self.model.encoder, "output_lengths") else None
        y, y_lens, deadlines, activity = self._batch_targets(batch, out_frames or features.size(1))
        losses = model(features, feature_lens, y, y_lens, deadlines, self.frame_seconds,
                       prune_range=loss.prune_range, am_scale=loss.am_scale, lm_scale=loss.lm_scale,
                       rnnt_type=loss.rnnt_type, eot_latency_weight=loss.eot_latency_weight,
                       fastemit_lambda=loss.fastemit_lambda, backend=loss.backend)
        return losses, activity

    def _activity_loss(self, logits: torch.Tensor, targets: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Mean BCE over the valid frames of every channel. logits, targets: (K, B, T')."""
        T = logits.size(-1)
        targets = targets[..., :T]
        if targets.size(-1) < T:
            targets = F.pad(targets, (0, T - targets.size(-1)))
        mask = (torch.arange(T, device=lens.device).view(1, 1, T) < lens.view(1, -1, 1)).expand_as(logits)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return (bce * mask).sum() / mask.sum().clamp(min=1)

    def compute_loss(self, model: nn.Module, batch: Dict[str, Any], step: int) -> StepLoss:
        if self.spec_augment is not None:
            lens = batch["feature_lens"]
            segments = torch.stack([torch.arange(len(lens)), torch.zeros_like(lens), lens], 1)
            batch = dict(batch, features=self.spec_augment(batch["features"], supervision_segments=segments))
        cfg = self.config.loss
        simple_scale, pruned_scale = loss_scales(step, cfg.warm_steps, cfg.simple_loss_scale)
        losses, activity = self._forward(model, batch)
        frames = max(int(losses.encoder_out_lens.sum()) * NUM_CHANNELS, 1)
        rnnt_loss = (simple_scale * losses.simple + pruned_scale * losses.pruned) / frames
        activity_loss = self._activity_loss(losses.activity_logits, activity, losses.encoder_out_lens)
        loss = rnnt_loss + cfg.activity_weight * activity_loss if cfg.activity_weight > 0 else rnnt_loss
        stats = {"rnnt": rnnt_loss.item(), "simple": losses.simple.item() / frames,
                 "pruned": losses.pruned.item() / frames, "activity": activity_loss.item(), "loss": loss.item()}
        return StepLoss(loss, stats, float(frames))

    @torch.no_grad()
    def validate(self, model: nn.Module, dev_loader: torch.utils.data.DataLoader) -> Dict[str, float]:
        """Per-frame dev losses, activity BCE and the merged-channel greedy WER of the dev subset."""
        totals = [0.0, 0.0, 0.0, 0.0]
        for batch in dev_loader:
            losses, activity = self._forward(model, batch)
            simple, pruned = losses.simple.item(), losses.pruned.item()
            if math.isfinite(simple) and math.isfinite(pruned):
                frames = int(losses.encoder_out_lens.sum()) * NUM_CHANNELS
                act = self._activity_loss(losses.activity_logits, activity, losses.encoder_out_lens).item()
                totals = [totals[0] + simple, totals[1] + pruned, totals[2] + frames, totals[3] + act * frames]
        errors, words = self._dev_word_errors(model)
        simple, pruned, frames, act, errors, words = sum_over_ranks([*totals, errors, words], self.info)
        frames = max(frames, 1.0)
        scale = self.config.loss.simple_loss_scale
        metrics = {"loss": (scale * simple + pruned) / frames, "simple": simple / frames, "pruned": pruned / frames,
                   "activity": act / frames}
        if self.config.valid.wer_utts > 0:
            metrics["wer"] = errors / max(words, 1.0)
        return metrics

    def _dev_word_errors(self, model: nn.Module) -> Tuple[float, float]:
        """(errors, words) of the channels-merged greedy transcripts of this rank's dev subset."""
        from asrtools.decoding.multitalker import decode_turns
        from asrtools.scoring.multitalker import merged_word_errors

        if not self._wer_cuts:
            return 0.0, 0.0
        sampler = SimpleCutSampler(self._wer_cuts.sort_by_duration(ascending=False),
                                   max_duration=self.config.valid.max_duration)
        dataset, errors, words = ConversationDataset(), 0, 0
        for cuts in sampler:
            batch = dataset[cuts]
            hyps = decode_turns(self.model, self.tokenizer, batch["features"].to(self.info.device),
                                batch["feature_lens"].to(self.info.device), self.config.loss.turn_scheme,
                                self.frame_seconds)
            for ref, hyp in zip(batch["turns"], hyps):
                e, w = merged_word_errors(ref, hyp)
                errors, words = errors + e, words + w
        return float(errors), float(words)

    def model_entry(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        return {
            "task": self.name,
            "model": state_dict,
            "model_config": sts_config_to_dict(self.config.model),
            "vocab_size": self.tokenizer.vocab_size,
            "turn_scheme": self.config.loss.turn_scheme,
            "frame_seconds": self.frame_seconds,
        }
