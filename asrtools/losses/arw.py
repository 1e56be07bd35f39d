"""Adversarial reweighting (ARW) of a metric loss (Jin et al., Interspeech 2022; METHODS.md section 6).

An adversary network gives each training sample a weight

    s_i = sigmoid(adversary(a_i)),   lambda_i = 1 + n * s_i / sum_j s_j      (n = batch size)

and training alternates: the learner (embedding network) minimises the weighted loss with
the weights held fixed, then the adversary, with its own optimiser, maximises the same
weighted loss with the learner's loss terms held fixed. Since sum_i lambda_i = 2n always,
the weights are used divided by their mean (2), so the weighted loss keeps the unweighted
loss's scale and equals it when every lambda_i is equal.

Variants (`ArwConfig.variant`), for pair-based metric losses (`asrtools.losses.metric`):

- `aps` (accumulated pairwise similarity): the adversary sees the sample's embedding; the
  sample's loss is the sum of its pair terms; loss = sum_i lambda_i l_i / #pairs.
- `pl` (pseudo-labels): the adversary sees only the one-hot k-means cluster of the
  sample's embedding (a pseudo-label in place of the group labels ARW does without); the
  sample loss is as in `aps` (or the per-sample loss of a classification loss such as AAM).
- `pw` (pairwise weighting): each pair term l_ij is weighted by (lambda_i + lambda_j) / 2
  (the paper's lambda_i + lambda_j, halved so that equal weights give the unweighted loss);
  the adversary sees the embedding and its one-hot k-means region.

*(choices)* The adversary's input is the learner's embedding, detached and L2-normalised
(the paper's x_i is the sample; the embedding is its fixed-size summary); k-means runs
(scikit-learn, cosine geometry via normalised vectors) on a ring buffer of the most
recent training embeddings, refitted every `kmeans_every` steps.

Cluster identity across refits: a pseudo-label is only a useful adversary input if cluster
j means the same region of embedding space at every step. A fresh k-means numbers its
clusters arbitrarily, so every refit after the first is warm-started from the previous
centroids (`init=` the previous centroids, one Lloyd run) and its centroids are then
matched one-to-one to the previous ones by maximum total cosine similarity (Hungarian
assignment, `scipy.optimize.linear_sum_assignment`): the warm start keeps the numbering
when the regions move a little, the matching keeps it when k-means relocates an emptied
cluster or the regions swap. Each refit records the share of the buffered embeddings whose
cluster changed (`PseudoLabeler.last_changed`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asrtools.losses.metric import MetricTerms

VARIANTS = ("none", "aps", "pl", "pw")
PAIR_VARIANTS = ("aps", "pw")


@dataclasses.dataclass
class ArwConfig:
    """Adversarial reweighting settings (`arw:` section of an SV training YAML).

    Attributes:
      variant: none | aps | pl | pw (see the module docstring).
      warmup_steps: learner steps before the adversary starts (weights are 1 until then).
      hidden_dim: adversary MLP hidden size (0 = a linear adversary).
      lr: adversary Adam learning rate.
      weight_decay: adversary weight decay.
      adversary_steps: adversary updates per learner step (on the same batch).
      num_clusters: k of the k-means pseudo-labels / regions (pl, pw).
      kmeans_buffer: training embeddings kept for k-means.
      kmeans_every: refit k-means every this many steps (after warm-up).
      clip_grad_norm: adversary gradient clipping (<= 0: none).
    """

    variant: str = "none"
    warmup_steps: int = 200
    hidden_dim: int = 64
    lr: float = 1.0e-3
    weight_decay: float = 0.0
    adversary_steps: int = 1
    num_clusters: int = 16
    kmeans_buffer: int = 2048
    kmeans_every: int = 100
    clip_grad_norm: float = 5.0

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"arw.variant {self.variant!r} is unknown (known: {', '.join(VARIANTS)})")
        if self.warmup_steps < 0 or self.hidden_dim < 0 or self.lr <= 0 or self.adversary_steps < 1:
            raise ValueError("arw: warmup_steps, hidden_dim >= 0, lr > 0, adversary_steps >= 1")
        if self.num_clusters < 2 or self.kmeans_buffer < self.num_clusters or self.kmeans_every < 1:
            raise ValueError("arw: num_clusters >= 2, kmeans_buffer >= num_clusters, kmeans_every >= 1")

    @property
    def enabled(self) -> bool:
        return self.variant != "none"

    @property
    def uses_clusters(self) -> bool:
        return self.variant in ("pl", "pw")


def arw_weights(logits: torch.Tensor) -> torch.Tensor:
    """lambda_i = 1 + n s_i / sum_j s_j with s = sigmoid(logits); (N,) -> (N,)."""
    s = torch.sigmoid(logits)
    return 1.0 + len(s) * s / s.sum().clamp(min=1e-12)


def weighted_loss(variant: str, terms: MetricTerms, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """The (weighted) batch loss.

    Args:
      variant: an ARW variant (or "none").
      terms: the metric loss's terms.
      weights: (N,) lambda (None: unweighted); used divided by their mean.
    """
    if weights is None or variant == "none":
        return terms.mean()
    w = weights / weights.mean()
    if variant == "pw":
        if terms.pair is None:
            raise ValueError("arw variant pw needs pair terms (loss.type ap with ap_form pairs)")
        pair_w = (w[:, None] + w[None, :]) / 2
        return (pair_w * terms.pair).sum() / terms.pair_mask.sum().clamp(min=1)
    if terms.pair is not None:
        return (w * terms.sample).sum() / terms.pair_mask.sum().clamp(min=1)
    return (w * terms.sample).mean()


class Adversary(nn.Module):
    """The weighting network: (N, D) adversary inputs -> (N,) logits.

    Args:
      input_dim: D.
      hidden_dim: hidden units of a one-hidden-layer MLP (0: linear).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        if hidden_dim > 0:
            self.net: nn.Module = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        else:
            self.net = nn.Linear(input_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class PseudoLabeler:
    """k-means regions of embedding space, fitted on a ring buffer of recent embeddings.

    Args:
      embed_dim: E.
      num_clusters: k.
      buffer_size: embeddings kept.
      seed: k-means seed (plus the step of the fit).

    Attributes:
      centroids: (k, E) normalised centroids, row j = cluster j (None before the first fit).
      refits: fits so far (the first included).
      last_changed: share of the buffered embeddings whose cluster the last refit changed
        (None after the first fit).
    """

    def __init__(self, embed_dim: int, num_clusters: int, buffer_size: int, seed: int) -> None:
        self.num_clusters = num_clusters
        self.seed = seed
        self.buffer = torch.zeros(buffer_size, embed_dim)
        self.filled = 0
        self.position = 0
        self.centroids: Optional[torch.Tensor] = None
        self.refits = 0
        self.last_changed: Optional[float] = None

    def add(self, embeddings: torch.Tensor) -> None:
        """Append (N, E) embeddings (normalised here) to the ring buffer."""
        x = F.normalize(embeddings.detach().float().cpu(), dim=1)
        for row in x[-len(self.buffer):]:
            self.buffer[self.position] = row
            self.position = (self.position + 1) % len(self.buffer)
        self.filled = min(self.filled + len(x), len(self.buffer))

    def fit(self, step: int) -> bool:
        """Refit k-means on the buffer, keeping the clusters' identity (see the module doc).

        The first fit is a seeded k-means++ (3 inits); later fits start from the previous
        centroids and are matched to them. Deterministic. False (nothing fitted) while the
        buffer holds fewer than k embeddings.
        """
        from sklearn.cluster import KMeans

        if self.filled < self.num_clusters:
            return False
        data = self.buffer[: self.filled].numpy().astype(np.float64)
        previous = self.centroids
        if previous is None:
            kmeans = KMeans(self.num_clusters, n_init=3, random_state=(self.seed + step) % (2**31), algorithm="lloyd")
        else:
            kmeans = KMeans(self.num_clusters, init=previous.numpy().astype(np.float64), n_init=1,
                            random_state=(self.seed + step) % (2**31), algorithm="lloyd")
        kmeans.fit(data)
        fitted = F.normalize(torch.from_numpy(kmeans.cluster_centers_).float(), dim=1)
        if previous is None:
            self.centroids, self.last_changed = fitted, None
        else:
            before = self.assign(self.buffer[: self.filled])
            self.centroids = fitted[torch.from_numpy(match_clusters(fitted, previous))]
            self.last_changed = float((self.assign(self.buffer[: self.filled]) != before).float().mean())
        self.refits += 1
        return True

    def assign(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N,) int64 nearest centroid (cosine) of (N, E) embeddings."""
        if self.centroids is None:
            raise RuntimeError("k-means has not been fitted yet")
        sims = F.normalize(embeddings.detach().float(), dim=1) @ self.centroids.to(embeddings.device).T
        return sims.argmax(dim=1)

    def state_dict(self) -> Dict[str, Any]:
        return {"buffer": self.buffer.clone(), "filled": self.filled, "position": self.position,
                "centroids": None if self.centroids is None else self.centroids.clone(), "refits": self.refits}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.buffer = state["buffer"].clone()
        self.filled = int(state["filled"])
        self.position = int(state["position"])
        self.centroids = None if state["centroids"] is None else state["centroids"].clone()
        self.refits = int(state["refits"])


def match_clusters(new: torch.Tensor, previous: torch.Tensor) -> np.ndarray:
    """Which new cluster takes each previous cluster's index.

    Args:
      new: (K, E) normalised centroids of a refit.
      previous: (K, E) normalised centroids they replace.

    Returns:
      (K,) int64 order: `new[order]` puts at row j the new centroid matched to previous
      centroid j (one-to-one, maximum total cosine similarity).
    """
    from scipy.optimize import linear_sum_assignment

    similarity = (previous @ new.T).numpy().astype(np.float64)
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    return cols[np.argsort(rows)].astype(np.int64)


def adversary_input(variant: str, embeddings: torch.Tensor, clusters: Optional[torch.Tensor],
                    num_clusters: int) -> torch.Tensor:
    """What the adversary sees, (N, D): the normalised embedding (aps), the one-hot cluster
    (pl), or both concatenated (pw)."""
    emb = F.normalize(embeddings.detach(), dim=1)
    if variant == "aps":
        return emb
    one_hot = F.one_hot(clusters, num_clusters).to(emb.dtype)
    return one_hot if variant == "pl" else torch.cat([emb, one_hot], dim=1)


def adversary_input_dim(variant: str, embed_dim: int, num_clusters: int) -> int:
    """D of `adversary_input`."""
    return {"aps": embed_dim, "pl": num_clusters, "pw": embed_dim + num_clusters}[variant]
