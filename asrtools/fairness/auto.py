"""Automatic cohorts: k-means (scikit-learn) on speaker-averaged embeddings, clusters ranked by WER.

No labels are used: speakers are grouped by what their voices sound like to a speaker
encoder. `k` is given, or chosen by a minimum-cohort-size rule: the largest `k` in
`2..k_max` whose clusters all hold at least `min_cluster_speakers` speakers (k-means with
the same seed for every `k`). A new speaker goes to the nearest centroid (Euclidean; ties
to the lower cluster index).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.fairness.config import AutoConfig
from asrtools.fairness.discovery import CohortSummary, Discovery, register, summarise_cohorts
from asrtools.fairness.speakers import SpeakerTable
from asrtools.scoring.disparity import Thresholds


def kmeans(vectors: np.ndarray, k: int, seed: int, n_init: int) -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn k-means: `(centroids (k, D), cluster of each row (S,))`."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(vectors)
    return model.cluster_centers_.astype(np.float64), model.labels_.astype(np.int64)


def choose_k(vectors: np.ndarray, cfg: AutoConfig, seed: int) -> Tuple[int, np.ndarray, np.ndarray, Dict[int, int]]:
    """The configured k, or the largest k <= k_max whose smallest cluster has >= min_cluster_speakers.

    Returns:
      `(k, centroids (k, D), cluster of each speaker (S,), {k tried: smallest cluster})`.
    """
    S = len(vectors)
    if cfg.k is not None:
        if cfg.k > S:
            raise DataError(f"auto.k = {cfg.k} clusters asked for {S} speakers: lower auto.k (or unset it)")
        centroids, labels = kmeans(vectors, cfg.k, seed, cfg.n_init)
        return cfg.k, centroids, labels, {cfg.k: int(np.bincount(labels, minlength=cfg.k).min())}
    tried: Dict[int, int] = {}
    for k in range(min(cfg.k_max, S), 1, -1):
        centroids, labels = kmeans(vectors, k, seed, cfg.n_init)
        tried[k] = int(np.bincount(labels, minlength=k).min())
        if tried[k] >= cfg.min_cluster_speakers:
            return k, centroids, labels, tried
    raise DataError(f"{S} speakers; discovery needs >= 2 x {cfg.min_cluster_speakers} (no k in 2..{cfg.k_max} "
                    f"gives clusters that large; smallest cluster per k: {tried}): lower auto.min_cluster_speakers")


def nearest(centroids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid `(S,)` for `vectors (S, D)` and `centroids (k, D)`."""
    distances = ((vectors[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1)  # (S, k)
    return np.argmin(distances, axis=1)


def cluster_key(index: int) -> str:
    """Cohort key of cluster `index`."""
    return f"C{index}"


@register
class AutoDiscovery(Discovery):
    """k-means clusters of speaker embeddings; speakers are placed by nearest centroid.

    Attributes (besides `Discovery`'s):
      centroids: `(k, D)` cluster centres.
      tried: `{k: smallest cluster}` of the k-selection rule (or the given k).
    """

    method = "auto"

    def __init__(self, params: Mapping[str, Any], cohorts: List[CohortSummary], centroids: np.ndarray,
                 tried: Mapping[int, int]) -> None:
        super().__init__(params, cohorts)
        self.centroids = np.asarray(centroids, dtype=np.float64)
        self.tried = {int(k): int(v) for k, v in tried.items()}

    @staticmethod
    def inputs_of(table: SpeakerTable) -> Mapping[str, Any]:
        """Speaker embeddings."""
        return table.vector_map()

    def assign_keys(self, inputs: Mapping[str, Any]) -> Dict[str, str]:
        """Each speaker's nearest cluster; `DataError` naming a speaker whose vector has the wrong size."""
        speakers = list(inputs)
        if not speakers:
            return {}
        dim = self.centroids.shape[1]
        for speaker in speakers:
            size = np.asarray(inputs[speaker]).size
            if size != dim:
                raise DataError(f"speaker {speaker!r}: embedding has {size} dimensions, the discovery {dim}")
        vectors = np.stack([np.asarray(inputs[s], dtype=np.float64).reshape(-1) for s in speakers])
        return {s: cluster_key(int(j)) for s, j in zip(speakers, nearest(self.centroids, vectors))}

    def model_dict(self) -> Dict[str, Any]:
        """`{"centroids": [[...]], "k_tried": {k: smallest cluster}}`."""
        return {"centroids": self.centroids.tolist(), "k_tried": {str(k): v for k, v in self.tried.items()}}

    @classmethod
    def from_model(cls, params: Mapping[str, Any], model: Mapping[str, Any],
                   cohorts: List[CohortSummary]) -> "AutoDiscovery":
        """Inverse of `model_dict`."""
        centroids = np.asarray(model["centroids"], dtype=np.float64)
        if centroids.ndim != 2 or len(centroids) < 1:
            raise ValueError("centroids must be a (k, D) matrix")
        return cls(params, cohorts, centroids, {int(k): v for k, v in model.get("k_tried", {}).items()})


def fit(table: SpeakerTable, cfg: AutoConfig, thresholds: Thresholds = Thresholds(), seed: int = 0) -> AutoDiscovery:
    """Cluster the speakers' embeddings and rank the clusters by WER on these speakers.

    Args:
      table: discovery speakers with `vectors` (`SpeakerTable.with_vectors`).
      cfg: k or the k-selection rule.
      thresholds: the size floor of the ranking.
      seed: k-means seed.
    """
    if table.vectors is None:
        raise DataError("no speaker embeddings given (--embeddings)")
    k, centroids, _, tried = choose_k(table.vectors, cfg, seed)
    labels = nearest(centroids, table.vectors)  # the rule `assign` applies, so in-sample labels agree with it
    sizes = np.bincount(labels, minlength=k)
    descriptions = {cluster_key(j): f"k-means cluster {j} of {k} ({sizes[j]} discovery speakers)" for j in range(k)}
    cohorts = summarise_cohorts(table, [cluster_key(int(j)) for j in labels], descriptions, thresholds)
    return AutoDiscovery(dataclasses.asdict(cfg), cohorts, centroids, tried)
