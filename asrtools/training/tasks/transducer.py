"""The transducer task: pruned RNN-T training of any registered encoder, validated by dev WER.

Batches are padded Fbank features and BPE token ids (`asrtools.data.cuts.AsrDataset`);
SpecAugment runs here, in the training process, so its RNG draws are checkpointed with the
global RNG state. The loss is icefall's mix of the smoothed simple loss and the pruned loss
(`loss_scales` warm-up), plus any auxiliary losses the encoder reports (already weighted,
e.g. a compute penalty). Validation gives the per-frame dev losses and, on a fixed subset of
dev cuts decoded with batched greedy search, the dev WER that checkpoint selection can use.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional, Tuple

import kaldialign
import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler, SpecAugment
from torch import nn

from asrtools.data.cuts import AsrDataset, check_features, load_cuts
from asrtools.decoding.greedy import greedy_search
from asrtools.errors import ConfigError
from asrtools.models.build import build_model, model_config_to_dict
from asrtools.models.compute import summarize_compute
from asrtools.models.enc_cohort_input import condition_on_speakers
from asrtools.models.transducer import Transducer, TransducerLosses, loss_scales
from asrtools.text.tokenizer import Tokenizer
from asrtools.training.config import LossConfig, TransducerTrainConfig
from asrtools.training.data import encoder_output_lengths, filter_trainable
from asrtools.training.distributed import DistInfo, sum_over_ranks
from asrtools.training.task import StepLoss, TrainingTask, TrainPaths, register_task


def pad_token_ids(token_ids: List[List[int]], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, S) int64 tokens padded with 0, and (B,) int64 lengths."""
    lens = torch.tensor([len(ids) for ids in token_ids], dtype=torch.int64)
    padded = torch.zeros(len(token_ids), max(1, int(lens.max())), dtype=torch.int64)
    for i, ids in enumerate(token_ids):
        padded[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return padded.to(device), lens.to(device)


def transducer_losses(model: nn.Module, batch: Dict[str, Any], tokenizer: Tokenizer, loss: LossConfig,
                      device: torch.device) -> TransducerLosses:
    """Summed simple and pruned RNN-T losses of an `AsrDataset` batch (features (B, T, F), texts).

    Args:
      model: the transducer (or its DDP wrapper).
      batch: padded features, their lengths and the transcripts.
      tokenizer: texts -> token ids.
      loss: the pruned RNN-T settings.
      device: where the model is.
    """
    y, y_lens = pad_token_ids(tokenizer.encode(batch["texts"]), device)
    return model(batch["features"].to(device), batch["feature_lens"].to(device), y, y_lens,
                 prune_range=loss.prune_range, am_scale=loss.am_scale, lm_scale=loss.lm_scale,
                 rnnt_type=loss.rnnt_type, delay_penalty=loss.delay_penalty, backend=loss.backend)


def spread_subset(cuts: CutSet, count: int) -> CutSet:
    """`count` cuts spread evenly over `cuts` in id order (all of them if fewer)."""
    ordered = sorted(cuts, key=lambda c: c.id)
    if count <= 0:
        return CutSet.from_cuts([])
    if count >= len(ordered):
        return CutSet.from_cuts(ordered)
    step = len(ordered) / count
    return CutSet.from_cuts(ordered[int(i * step)] for i in range(count))


def word_errors(refs: List[str], hyps: List[str]) -> Tuple[int, int]:
    """(word errors, reference words) of paired transcripts (kaldialign edit distance)."""
    errors = words = 0
    for ref, hyp in zip(refs, hyps):
        ref_words = ref.split()
        errors += kaldialign.edit_distance(ref_words, hyp.split())["total"]
        words += len(ref_words)
    return errors, words


@register_task("transducer", TransducerTrainConfig)
class TransducerTask(TrainingTask):
    """Pruned RNN-T training of a `Transducer` (see the module docstring)."""

    config: TransducerTrainConfig

    def __init__(self, config: TransducerTrainConfig, paths: TrainPaths, info: DistInfo,
                 log: logging.Logger) -> None:
        super().__init__(config, paths, info, log)
        if paths.bpe_model is None:
            raise ConfigError("the transducer task needs a BPE model (--bpe-model)")
        self.tokenizer = Tokenizer(paths.bpe_model)
        self.model: Transducer = build_model(config.model, self.tokenizer.vocab_size).to(info.device)
        self.spec_augment = self._make_spec_augment()
        self._wer_cuts: Optional[CutSet] = None

    # -------------------------------------------------------------------------- data

    def load_cuts(self, split: str) -> CutSet:
        data = self.config.data
        path = self.paths.cuts_train if split == "train" else self.paths.cuts_dev
        name = f"cuts_{split}"
        cuts = load_cuts(path, name)
        check_features(cuts, self.config.model.feature_dim, name)
        lengths = encoder_output_lengths(self.model.encoder, self.config.model.feature_dim)
        bounds = (data.min_cut_duration, data.max_cut_duration) if split == "train" else (0.0, math.inf)
        kept, dropped = filter_trainable(cuts, self.tokenizer.encode, lengths, *bounds)
        if self.info.is_main:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "none"
            self.log.info("%s: kept %d of %d cuts (dropped: %s)", name, len(kept), len(cuts), reasons)
        if split == "dev":
            subset = spread_subset(kept, self.config.valid.wer_utts)
            self._wer_cuts = CutSet.from_cuts(list(subset)[self.info.rank :: self.info.world_size])
        return kept

    def dataset(self, train: bool) -> torch.utils.data.Dataset:
        return AsrDataset()

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

    # ------------------------------------------------------------------------- steps

    def on_step_start(self, step: int, epoch: int) -> None:
        self.model.encoder.set_training_progress(step, epoch)

    def _forward(self, model: nn.Module, batch: Dict[str, Any]) -> TransducerLosses:
        condition_on_speakers(self.model, batch["speakers"])
        return transducer_losses(model, batch, self.tokenizer, self.config.loss, self.info.device)

    def compute_loss(self, model: nn.Module, batch: Dict[str, Any], step: int) -> StepLoss:
        """Per-frame `simple_scale * simple + pruned_scale * pruned` plus the encoder's auxiliary losses."""
        if self.spec_augment is not None:
            lens = batch["feature_lens"]
            segments = torch.stack([torch.arange(len(lens)), torch.zeros_like(lens), lens], 1)
            batch = dict(batch, features=self.spec_augment(batch["features"], supervision_segments=segments))
        simple_scale, pruned_scale = loss_scales(step, self.config.loss.warm_steps, self.config.loss.simple_loss_scale)
        losses = self._forward(model, batch)
        frames = max(losses.num_frames, 1)
        loss = (simple_scale * losses.simple + pruned_scale * losses.pruned) / frames
        stats = {"rnnt": loss.item(), "simple": losses.simple.item() / frames, "pruned": losses.pruned.item() / frames}
        for name, value in losses.aux.items():
            loss = loss + value
            stats[name] = value.item()
        stats.update(self.model.encoder.training_statistics())
        stats["loss"] = loss.item()
        return StepLoss(loss, stats, float(frames))

    @torch.no_grad()
    def validate(self, model: nn.Module, dev_loader: torch.utils.data.DataLoader) -> Dict[str, float]:
        """Per-frame dev losses (post-warm-up weights), the greedy WER of the dev subset and, for
        an encoder that skips work per frame, its executed compute fraction on the dev cuts."""
        totals = [0.0, 0.0, 0.0]
        compute = [0.0, 0.0]  # executed and dense encoder FLOPs
        encoder = self.model.encoder
        for batch in dev_loader:
            encoder.reset_compute(len(batch["feature_lens"]))
            losses = self._forward(model, batch)
            simple, pruned = losses.simple.item(), losses.pruned.item()
            if math.isfinite(simple) and math.isfinite(pruned):
                totals = [totals[0] + simple, totals[1] + pruned, totals[2] + losses.num_frames]
            summary = summarize_compute(encoder.compute_counts() or [])
            if summary is not None:
                compute = [compute[0] + summary["flops"]["front_end"] + summary["flops"]["layers"],
                           compute[1] + summary["flops"]["front_end"] + summary["flops"]["dense_layers"]]
        encoder.stop_counting()
        errors, words = self._dev_word_errors(model)
        simple, pruned, frames, errors, words, executed, dense = sum_over_ranks([*totals, errors, words, *compute],
                                                                                self.info)
        frames = max(frames, 1.0)
        scale = self.config.loss.simple_loss_scale
        metrics = {"loss": (scale * simple + pruned) / frames, "simple": simple / frames, "pruned": pruned / frames}
        if self.config.valid.wer_utts > 0:
            metrics["wer"] = errors / max(words, 1.0)
        if dense > 0:
            metrics["compute"] = executed / dense
        return metrics

    def _dev_word_errors(self, model: nn.Module) -> Tuple[float, float]:
        """(errors, words) of greedy search on this rank's share of the dev WER subset."""
        if self._wer_cuts is None or len(self._wer_cuts) == 0:
            return 0.0, 0.0
        sampler = SimpleCutSampler(self._wer_cuts.sort_by_duration(ascending=False),
                                   max_duration=self.config.valid.max_duration)
        dataset = AsrDataset()
        device = self.info.device
        errors = words = 0
        for cuts in sampler:
            batch = dataset[cuts]
            condition_on_speakers(self.model, batch["speakers"])
            encoder_out, encoder_out_lens = model.encoder(batch["features"].to(device),
                                                          batch["feature_lens"].to(device))
            hyps = self.tokenizer.decode(greedy_search(model, encoder_out, encoder_out_lens))
            batch_errors, batch_words = word_errors(batch["texts"], hyps)
            errors, words = errors + batch_errors, words + batch_words
        return float(errors), float(words)

    def model_entry(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        return {
            "task": self.name,
            "model": state_dict,
            "model_config": model_config_to_dict(self.config.model),
            "vocab_size": self.tokenizer.vocab_size,
        }
