"""Metric-learning losses for speaker embeddings, with per-sample and per-pair terms.

Adversarial reweighting (`asrtools.losses.arw`) needs the loss split into terms it can
weight, so every loss here returns its terms rather than a mean:

- `AAMSoftmax` (additive angular margin, ArcFace / Deng et al. 2019): one term per
  sample, `-log softmax(s * [cos(theta_y + m), cos(theta_c)])[y]`.
- `AngularPrototypical` (Chung et al. 2020): each sample i has an anchor crop and a
  positive crop (another utterance of its speaker); `S_ij = w * cos(anchor_i, positive_j) + b`
  with learnable w > 0, b. `softmax` form: the term of sample i is
  `-log softmax_j(S_ij)[i]` over the batch (Chung et al.'s loss). `pairs` form: one term
  per ordered pair (i, j), j a sample of another speaker,
  `l_ij = softplus(S_ij - S_ii)` = the angular-prototypical loss of anchor i against the
  single negative j; a sample's loss is the sum of its pair terms. The `pairs` form is what
  pair-based reweighting (APS, PW) weights. Off-diagonal entries whose two samples share a
  speaker are not negatives and are masked out of both forms.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class MetricTerms:
    """The terms of one batch's metric loss.

    Attributes:
      sample: (N,) per-sample loss terms (for `pairs`: the sum of the sample's pair terms).
      pair: (N, N) pair terms l_ij (0 where `pair_mask` is False), or None for per-sample losses.
      pair_mask: (N, N) bool, True where (i, j) is a valid negative pair, or None.
    """

    sample: torch.Tensor
    pair: Optional[torch.Tensor] = None
    pair_mask: Optional[torch.Tensor] = None

    def mean(self) -> torch.Tensor:
        """The unweighted batch loss: mean over samples, or over valid pairs."""
        if self.pair is None:
            return self.sample.mean()
        return self.pair.sum() / self.pair_mask.sum().clamp(min=1)


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax over `num_classes` speaker prototypes.

    Args:
      embed_dim: E.
      num_classes: training speakers.
      margin: m, the additive angular margin (radians).
      scale: s, the logit scale.
    """

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0) -> None:
        super().__init__()
        self.margin = margin
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_normal_(self.weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, margin: Optional[float] = None) -> MetricTerms:
        """Per-sample AAM-softmax terms.

        Args:
          embeddings: (N, E).
          labels: (N,) int64 class indices.
          margin: override the margin (e.g. a margin warm-up), default `self.margin`.
        """
        m = self.margin if margin is None else margin
        cosine = F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        target_cos = cosine.gather(1, labels[:, None])
        theta = torch.acos(target_cos)
        # cos(theta + m), made monotonic past theta = pi - m as in ArcFace's "easy margin" fallback
        with_margin = torch.where(theta + m < math.pi, torch.cos(theta + m), target_cos - m * math.sin(m))
        logits = cosine.scatter(1, labels[:, None], with_margin) * self.scale
        return MetricTerms(sample=F.cross_entropy(logits, labels, reduction="none"))


class AngularPrototypical(nn.Module):
    """Angular prototypical loss with learnable scale and bias (see the module docstring).

    Args:
      form: "softmax" (per-sample) or "pairs" (pair terms).
      init_scale: initial w.
      init_bias: initial b.
    """

    FORMS = ("softmax", "pairs")

    def __init__(self, form: str = "softmax", init_scale: float = 10.0, init_bias: float = -5.0) -> None:
        super().__init__()
        if form not in self.FORMS:
            raise ValueError(f"angular prototypical form {form!r} is unknown (known: {', '.join(self.FORMS)})")
        self.form = form
        self.w = nn.Parameter(torch.tensor(float(init_scale)))
        self.b = nn.Parameter(torch.tensor(float(init_bias)))

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor, labels: torch.Tensor) -> MetricTerms:
        """Loss terms of N (anchor, positive) pairs.

        Args:
          anchors: (N, E) embeddings of one crop per sample.
          positives: (N, E) embeddings of another utterance of the same speaker.
          labels: (N,) speaker indices (entries of the same speaker are not negatives).
        """
        sims = F.linear(F.normalize(anchors), F.normalize(positives))
        logits = sims * self.w.clamp(min=1e-6) + self.b
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        negative = ~same
        if self.form == "softmax":
            masked = logits.masked_fill(same & ~eye, float("-inf"))
            target = torch.arange(len(labels), device=labels.device)
            return MetricTerms(sample=F.cross_entropy(masked, target, reduction="none"))
        diff = logits - logits.diagonal()[:, None]
        pair = F.softplus(diff) * negative
        return MetricTerms(sample=pair.sum(dim=1), pair=pair, pair_mask=negative)
