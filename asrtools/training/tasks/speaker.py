"""The speaker-embedding task: an ECAPA-TDNN trained on the training speakers, validated by dev EER.

Batches are whole utterances (Fbank cuts, `AsrDataset` without transcripts) from lhotse's
`SimpleCutSampler` (`crop.batch_size` cuts). In the training process each utterance is cut
to a random `crop.frames`-frame crop (shorter ones are repeated to length) and
mean-normalised; the crop offsets, and for the angular prototypical loss the second
utterance of each sample's speaker, are drawn from torch's global RNG, which the trainer
checkpoints, so a resumed run draws the same crops.

Losses (`asrtools.losses.metric`): AAM-softmax over the training speakers, or angular
prototypical over (anchor, positive) pairs (softmax or pair-term form). Adversarial
reweighting (`asrtools.losses.arw`) is switched on by the `arw:` section: the learner's
loss is weighted by the adversary's weights in `compute_loss`, the adversary is updated
(maximising the same weighted loss) in `after_step`, and the adversary, its optimiser and
the k-means state are the task's checkpointed state. The k-means pseudo-labels keep their
identity across refits (`asrtools.losses.arw.PseudoLabeler`); every refit is logged with the
share of buffered embeddings whose cluster changed.

ARW provenance: the validation metrics of an ARW run also carry `arw_steps` (learner steps
trained with adversarial weights so far) and `pseudo_label_refits` (k-means fits so far), so
`train_summary.json`'s `valid_history` says, for the epoch checkpoints that `averaged.pt`
was selected from, how many ARW steps each had seen (`asrtools.scoring.sv_report.
checkpoint_selection` reads them for the SV page).

Validation embeds every dev utterance whole and scores all pairs of dev utterances by
cosine similarity: dev EER (ROC convex hull) and minDCF at P_target 0.01 are the
selection metrics (`average: best_k_by_dev_eer`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import SimpleCutSampler, SpecAugment
from torch import nn

from asrtools.data.cuts import AsrDataset, check_features, cut_speaker, load_cuts
from asrtools.errors import DataError
from asrtools.losses.arw import (
    PAIR_VARIANTS,
    Adversary,
    ArwConfig,
    PseudoLabeler,
    adversary_input,
    adversary_input_dim,
    arw_weights,
    weighted_loss,
)
from asrtools.losses.metric import AAMSoftmax, AngularPrototypical, MetricTerms
from asrtools.models.speaker import (
    SpeakerModelConfig,
    build_speaker_model,
    embed_batch,
    mean_normalize,
    speaker_config_to_dict,
)
from asrtools.scoring.sv import DcfParams, SortedTrials, eer_from_roc, min_dcf_from_roc, roc_points
from asrtools.training.config import TrainConfig
from asrtools.training.distributed import DistInfo, gather_objects
from asrtools.training.task import StepLoss, TrainingTask, TrainPaths, register_task

LOSS_TYPES = ("aam", "ap")
VALID_DCF = DcfParams(0.01)


@dataclasses.dataclass
class SpeakerLossConfig:
    """The metric loss.

    Attributes:
      type: "aam" (AAM-softmax over training speakers) or "ap" (angular prototypical).
      margin: AAM angular margin (radians).
      scale: AAM logit scale.
      margin_warmup_steps: AAM margin rises linearly from 0 over these steps (0 = none).
      ap_form: "softmax" (Chung et al.) or "pairs" (sum of pair terms; needed by ARW aps / pw).
      ap_init_scale: initial scale w of the AP similarity.
      ap_init_bias: initial bias b of the AP similarity.
    """

    type: str = "aam"
    margin: float = 0.2
    scale: float = 30.0
    margin_warmup_steps: int = 0
    ap_form: str = "softmax"
    ap_init_scale: float = 10.0
    ap_init_bias: float = -5.0

    def validate(self) -> None:
        if self.type not in LOSS_TYPES:
            raise ValueError(f"loss.type {self.type!r} is unknown (known: {', '.join(LOSS_TYPES)})")
        if self.ap_form not in AngularPrototypical.FORMS:
            raise ValueError(f"loss.ap_form {self.ap_form!r} is unknown "
                             f"(known: {', '.join(AngularPrototypical.FORMS)})")
        if self.margin < 0 or self.scale <= 0 or self.margin_warmup_steps < 0:
            raise ValueError("loss.margin >= 0, loss.scale > 0, loss.margin_warmup_steps >= 0")


@dataclasses.dataclass
class CropConfig:
    """Training crops and batch sizes.

    Attributes:
      frames: crop length in feature frames (10 ms).
      batch_size: training utterances per batch (per process under DDP).
      valid_batch_size: dev utterances embedded at once.
      cmn: subtract each crop's (utterance's) mean feature vector.
    """

    frames: int = 200
    batch_size: int = 64
    valid_batch_size: int = 32
    cmn: bool = True

    def validate(self) -> None:
        if self.frames < 10 or self.batch_size < 2 or self.valid_batch_size < 1:
            raise ValueError("crop.frames >= 10, crop.batch_size >= 2, crop.valid_batch_size >= 1")


@dataclasses.dataclass
class SpeakerTrainConfig(TrainConfig):
    """A speaker-embedding run (`task: speaker`).

    Attributes:
      model: the ECAPA-TDNN sizes.
      loss: the metric loss.
      crop: crops and batch sizes.
      arw: adversarial reweighting (variant none = plain training).
    """

    model: SpeakerModelConfig = dataclasses.field(default_factory=SpeakerModelConfig)
    loss: SpeakerLossConfig = dataclasses.field(default_factory=SpeakerLossConfig)
    crop: CropConfig = dataclasses.field(default_factory=CropConfig)
    arw: ArwConfig = dataclasses.field(default_factory=ArwConfig)

    VALID_METRICS: ClassVar[Tuple[str, ...]] = ("eer", "mindcf")

    def validate(self) -> None:
        super().validate()
        if self.arw.variant in PAIR_VARIANTS and (self.loss.type != "ap" or self.loss.ap_form != "pairs"):
            raise ValueError(f"arw.variant {self.arw.variant} weights pair terms: it needs loss.type ap "
                             f"with loss.ap_form pairs (got {self.loss.type}/{self.loss.ap_form})")


class SpeakerModel(nn.Module):
    """The embedding network plus the loss's trained parameters (AAM prototypes or AP scale/bias).

    Args:
      config: the network sizes.
      loss: the loss settings.
      num_speakers: training speakers (AAM classes).
    """

    def __init__(self, config: SpeakerModelConfig, loss: SpeakerLossConfig, num_speakers: int) -> None:
        super().__init__()
        self.embedder = build_speaker_model(config)
        self.loss_type = loss.type
        if loss.type == "aam":
            self.head: nn.Module = AAMSoftmax(config.embed_dim, num_speakers, loss.margin, loss.scale)
        else:
            self.head = AngularPrototypical(loss.ap_form, loss.ap_init_scale, loss.ap_init_bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
                margin: Optional[float] = None) -> Tuple[torch.Tensor, MetricTerms]:
        """Embed and compute the loss terms.

        Args:
          x: (B, T, F) crops; for "ap" B = 2N, the N anchors then their N positives.
          lengths: (B,) int64.
          labels: (N,) int64 speaker indices.
          margin: AAM margin override.

        Returns:
          (N, E) anchor embeddings and the loss terms.
        """
        embeddings = self.embedder(x, lengths)
        if self.loss_type == "aam":
            return embeddings, self.head(embeddings, labels, margin)
        n = len(labels)
        return embeddings[:n], self.head(embeddings[:n], embeddings[n:], labels)


def random_crop(features: torch.Tensor, length: int, frames: int) -> torch.Tensor:
    """A `frames`-long crop of the first `length` frames of (T, F) features; (frames, F).

    The offset is drawn from torch's global RNG; shorter inputs are repeated to length.
    """
    valid = features[:length]
    if length < frames:
        valid = valid.repeat(math.ceil(frames / length), 1)[:frames]
        return valid
    start = int(torch.randint(0, length - frames + 1, (1,)))
    return valid[start:start + frames]


@register_task("speaker", SpeakerTrainConfig)
class SpeakerTask(TrainingTask):
    """Speaker-embedding training with optional adversarial reweighting (see the module docstring)."""

    config: SpeakerTrainConfig

    def __init__(self, config: SpeakerTrainConfig, paths: TrainPaths, info: DistInfo, log: logging.Logger) -> None:
        super().__init__(config, paths, info, log)
        self._train_cuts = load_cuts(paths.cuts_train, "cuts_train")
        speakers = sorted({cut_speaker(c) for c in self._train_cuts})
        if "unknown" in speakers:
            bad = next(c.id for c in self._train_cuts if cut_speaker(c) == "unknown")
            raise DataError(f"cuts_train: cut {bad} has no speaker")
        self.speaker_index = {s: i for i, s in enumerate(speakers)}
        self.model = SpeakerModel(config.model, config.loss, len(speakers)).to(info.device)
        self.spec_augment = self._make_spec_augment()
        self.speaker_cuts: Dict[str, List[Cut]] = {}
        arw = config.arw
        self.adversary: Optional[Adversary] = None
        self.labeler: Optional[PseudoLabeler] = None
        self._pending: Optional[Tuple[torch.Tensor, MetricTerms]] = None
        self.arw_steps = 0  # learner steps whose loss carried the adversary's weights
        if arw.enabled:
            dim = adversary_input_dim(arw.variant, config.model.embed_dim, arw.num_clusters)
            self.adversary = Adversary(dim, arw.hidden_dim).to(info.device)
            self.adversary_optimizer = torch.optim.Adam(self.adversary.parameters(), lr=arw.lr,
                                                        weight_decay=arw.weight_decay)
            if arw.uses_clusters:
                self.labeler = PseudoLabeler(config.model.embed_dim, arw.num_clusters, arw.kmeans_buffer,
                                             config.seed)

    # -------------------------------------------------------------------------- data

    def load_cuts(self, split: str) -> CutSet:
        data = self.config.data
        if split == "train":
            cuts = self._train_cuts
            check_features(cuts, self.config.model.feature_dim, "cuts_train")
            kept = cuts.filter(lambda c: data.min_cut_duration <= c.duration <= data.max_cut_duration).to_eager()
            by_speaker: Dict[str, List[Cut]] = defaultdict(list)
            for cut in kept:
                by_speaker[cut_speaker(cut)].append(cut)
            if self.config.loss.type == "ap":
                lonely = sorted(s for s, c in by_speaker.items() if len(c) < 2)
                if lonely:
                    kept = kept.filter(lambda c: cut_speaker(c) not in lonely).to_eager()
                    by_speaker = {s: c for s, c in by_speaker.items() if s not in lonely}
            if len(kept) == 0:
                raise DataError("cuts_train: no training cuts left after the duration filter")
            self.speaker_cuts = {s: sorted(c, key=lambda cut: cut.id) for s, c in by_speaker.items()}
            if self.info.is_main:
                self.log.info("cuts_train: %d cuts of %d speakers (of %d cuts)", len(kept), len(self.speaker_cuts),
                              len(cuts))
            return kept
        cuts = load_cuts(self.paths.cuts_dev, "cuts_dev")
        check_features(cuts, self.config.model.feature_dim, "cuts_dev")
        if len({cut_speaker(c) for c in cuts}) < 2:
            raise DataError("cuts_dev: dev EER needs at least two speakers")
        return cuts.sort_by_duration(ascending=False)

    def dataset(self, train: bool) -> torch.utils.data.Dataset:
        return AsrDataset(require_text=False)

    def make_sampler(self, cuts: CutSet, train: bool) -> Any:
        crop = self.config.crop
        return SimpleCutSampler(cuts, max_cuts=crop.batch_size if train else crop.valid_batch_size,
                                shuffle=train and self.config.data.shuffle, drop_last=train, seed=self.config.seed,
                                world_size=self.info.world_size, rank=self.info.rank)

    def _make_spec_augment(self) -> Optional[SpecAugment]:
        spec = self.config.data.spec_augment
        if not spec.enabled:
            return None
        return SpecAugment(time_warp_factor=spec.time_warp_factor, num_feature_masks=spec.num_feature_masks,
                           features_mask_size=spec.features_mask_size, num_frame_masks=spec.num_frame_masks,
                           frames_mask_size=spec.frames_mask_size,
                           max_frames_mask_fraction=spec.max_frames_mask_fraction, p=spec.p)

    # ------------------------------------------------------------------------- steps

    def _crops(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, L, F) random crops of the batch (anchors, then positives for AP) and (N,) labels."""
        frames = self.config.crop.frames
        crops = [random_crop(f, int(n), frames) for f, n in zip(batch["features"], batch["feature_lens"])]
        labels = torch.tensor([self.speaker_index[s] for s in batch["speakers"]], dtype=torch.int64)
        if self.config.loss.type == "ap":
            for cut_id, speaker in zip(batch["cut_ids"], batch["speakers"]):
                others = [c for c in self.speaker_cuts[speaker] if c.id != cut_id]
                partner = others[int(torch.randint(0, len(others), (1,)))]
                feats = torch.from_numpy(partner.load_features()).float()
                crops.append(random_crop(feats, feats.shape[0], frames))
        x = torch.stack(crops)
        if self.spec_augment is not None:
            x = self.spec_augment(x)
        lengths = torch.full((len(x),), frames, dtype=torch.int64)
        if self.config.crop.cmn:
            x = mean_normalize(x, lengths)
        return x, labels

    def _margin(self, step: int) -> Optional[float]:
        loss = self.config.loss
        if loss.type != "aam" or loss.margin_warmup_steps == 0:
            return None
        return loss.margin * min(1.0, step / loss.margin_warmup_steps)

    def _adversary_active(self, step: int) -> bool:
        return self.adversary is not None and step >= self.config.arw.warmup_steps

    def compute_loss(self, model: nn.Module, batch: Dict[str, Any], step: int) -> StepLoss:
        """The (ARW-weighted) metric loss of one batch of random crops."""
        device = self.info.device
        x, labels = self._crops(batch)
        labels = labels.to(device)
        embeddings, terms = model(x.to(device), torch.full((len(x),), x.shape[1], device=device), labels,
                                  self._margin(step))
        stats = {"metric": float(terms.mean().detach())}
        weights = None
        arw = self.config.arw
        self._pending = None
        if self.adversary is not None:
            clusters = None
            if self.labeler is not None:
                # every rank fits k-means on the same (all ranks') embeddings, so clusters agree
                shared = gather_objects(embeddings.detach().cpu(), self.info)
                self.labeler.add(torch.cat(shared))
                if step >= arw.warmup_steps and (self.labeler.centroids is None
                                                 or (step - arw.warmup_steps) % arw.kmeans_every == 0):
                    self._refit(step)
                if self.labeler.centroids is not None:
                    clusters = self.labeler.assign(embeddings)
            ready = self._adversary_active(step) and (self.labeler is None or clusters is not None)
            if ready:
                inputs = adversary_input(arw.variant, embeddings, clusters, arw.num_clusters)
                with torch.no_grad():
                    weights = arw_weights(self.adversary(inputs))
                detached = MetricTerms(terms.sample.detach(),
                                       None if terms.pair is None else terms.pair.detach(), terms.pair_mask)
                self._pending = (inputs, detached)
                stats["weight_max"] = float(weights.max() / weights.mean())
                stats["weight_min"] = float(weights.min() / weights.mean())
        loss = weighted_loss(arw.variant, terms, weights)
        return StepLoss(loss=loss, stats=stats, weight=float(len(labels)))

    def _refit(self, step: int) -> None:
        """Refit the pseudo-labels (identity kept) and log how many buffered embeddings moved."""
        if not self.labeler.fit(step) or not self.info.is_main:
            return
        changed = self.labeler.last_changed
        self.log.info("step %d: k-means pseudo-labels fitted (fit %d)%s", step, self.labeler.refits,
                      "" if changed is None else f"; {100 * changed:.1f}% of the buffered embeddings changed cluster")

    def after_step(self, model: nn.Module, batch: Dict[str, Any], step: int) -> Dict[str, float]:
        """Update the adversary to maximise the weighted loss of this step's (fixed) loss terms."""
        if self._pending is None or self.adversary is None:
            return {}
        inputs, terms = self._pending
        self._pending = None
        self.arw_steps += 1  # after_step runs only after a learner step that was not skipped
        arw = self.config.arw
        gain = 0.0
        for _ in range(arw.adversary_steps):
            weighted = weighted_loss(arw.variant, terms, arw_weights(self.adversary(inputs)))
            self.adversary_optimizer.zero_grad(set_to_none=True)
            (-weighted).backward()
            self._average_adversary_gradients()
            if arw.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.adversary.parameters(), arw.clip_grad_norm)
            self.adversary_optimizer.step()
            gain = float(weighted.detach())
        return {"adversary_loss": gain}

    def _average_adversary_gradients(self) -> None:
        """Under DDP, every rank's adversary takes the mean gradient, so all stay identical."""
        if not self.info.distributed:
            return
        import torch.distributed as dist

        for p in self.adversary.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.info.world_size

    # -------------------------------------------------------------------- validation

    @torch.no_grad()
    def validate(self, model: nn.Module, dev_loader: torch.utils.data.DataLoader) -> Dict[str, float]:
        """Dev EER and minDCF(0.01) over all pairs of dev utterances (cosine scoring)."""
        ids, speakers, vectors = [], [], []
        embedder = self.model.embedder
        for batch in dev_loader:
            emb = embed_batch(embedder, batch["features"], batch["feature_lens"], self.config.crop.cmn,
                              self.info.device)
            ids += batch["cut_ids"]
            speakers += batch["speakers"]
            vectors.append(emb.cpu())
        gathered = gather_objects((ids, speakers, torch.cat(vectors) if vectors else torch.zeros(0)), self.info)
        all_ids = [i for g in gathered for i in g[0]]
        order = np.argsort(all_ids, kind="stable")
        spk = np.array([s for g in gathered for s in g[1]])[order]
        emb = torch.cat([g[2] for g in gathered if len(g[2])])[torch.from_numpy(order)]
        scores, labels = all_pair_trials(emb, spk)
        p_miss, p_fa = roc_points(SortedTrials.build(scores, labels))
        metrics = {"eer": float(eer_from_roc(p_miss, p_fa)[0]),
                   "mindcf": float(min_dcf_from_roc(p_miss, p_fa, VALID_DCF)[0])}
        if self.adversary is not None:  # provenance of this checkpoint, not a selection metric
            metrics["arw_steps"] = float(self.arw_steps)
            metrics["pseudo_label_refits"] = float(self.labeler.refits if self.labeler is not None else 0)
        return metrics

    def model_entry(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        return {
            "task": self.name,
            "model": state_dict,
            "speaker_model_config": speaker_config_to_dict(self.config.model),
            "num_speakers": len(self.speaker_index),
            "cmn": self.config.crop.cmn,
        }

    # ------------------------------------------------------------------- extra state

    def state_dict(self) -> Dict[str, Any]:
        if self.adversary is None:
            return {}
        state: Dict[str, Any] = {"adversary": self.adversary.state_dict(),
                                 "adversary_optimizer": self.adversary_optimizer.state_dict(),
                                 "arw_steps": self.arw_steps}
        if self.labeler is not None:
            state["labeler"] = self.labeler.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if self.adversary is None:
            return
        missing = [k for k in ("arw_steps",) if k not in state] + (
            ["labeler.refits"] if self.labeler is not None and "refits" not in state.get("labeler", {}) else [])
        if missing:
            raise DataError(f"the checkpoint's ARW state lacks {', '.join(missing)}: it was written before ARW "
                            "pseudo-labels kept their identity across refits; train this run again from the start")
        self.arw_steps = int(state["arw_steps"])
        self.adversary.load_state_dict(state["adversary"])
        self.adversary_optimizer.load_state_dict(state["adversary_optimizer"])
        if self.labeler is not None:
            self.labeler.load_state_dict(state["labeler"])


def all_pair_trials(embeddings: torch.Tensor, speakers: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Cosine scores and same-speaker labels of every pair i < j of (U, E) normalised embeddings."""
    sims = (embeddings @ embeddings.T).numpy().astype(np.float64)
    upper = np.triu_indices(len(speakers), k=1)
    return sims[upper], speakers[upper[0]] == speakers[upper[1]]
