"""Geographic regions: a recursive partition of speakers by latitude or longitude, or a spatial scan.

`geo.method` chooses (docs/statistics.md, "Geographic discovery", has the detection rates
that chose the default):

- `scan` (default): Kulldorff's spatial scan over lat/lon rectangles with a Monte-Carlo p over
  whole-speaker permutations (`asrtools.fairness.scan`): two regions, the most elevated
  rectangle and the rest (always with `scan_alpha` 1, the default; else when its p <=
  `scan_alpha`, otherwise one region and no comparison designated).
- `tree`: the paper's tree, below, with one-threshold splits.
- `band_tree`: the same tree whose candidates also include bands `lo < coordinate <= hi` on
  one axis (a node splits into the part below, the band and the part above), so a region in
  the middle of the map can be carved out in two splits; band ends are `band_cuts` quantile
  cut points per axis.

The tree: at each node, every threshold halfway between two consecutive distinct speaker coordinates on
either axis is a candidate (`asrtools.fairness.partition`); the split maximising the
pooled-WER difference between its sides, with at least `min_speakers` speakers and
`min_words` words on each side, is the node's best split. The tree grows best-first (the leaf
whose best split has the largest gain is split next) and a leaf stops for one of:

- `no_valid_split`: no threshold leaves both sides big enough;
- `min_gain`: its best split's WER difference is below `min_gain`;
- `not_significant`: its best split's selection-aware permutation p-value (speakers'
  (errors, words) permuted across the node's coordinates, the whole two-axis search re-run in
  every permutation) is above `alpha` (each node is tested at `alpha`, without correction for
  the number of nodes: the held-out measurement is what carries the guarantee);
- `leaf_budget`: the tree already has `max_leaves` leaves.

Leaves are the regions: boxes `lat in (lo, hi], lon in (lo, hi]` (a side "<= threshold" is
the low one), so a new speaker is placed by walking the tree with its coordinates (into the
child whose `(lo, hi]` range on the split axis holds it).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.fairness.config import GeoConfig
from asrtools.fairness.discovery import CohortSummary, Discovery, register, summarise_cohorts
from asrtools.fairness.partition import SideLimits, best_split, split_p_value
from asrtools.fairness.speakers import SpeakerTable, coordinates_of
from asrtools.scoring.bootstrap import rng_for
from asrtools.scoring.disparity import Thresholds

AXES = ("lat", "lon")
STOP_RULES = ("no_valid_split", "min_gain", "not_significant", "leaf_budget")


@dataclasses.dataclass
class CandidateSplit:
    """A node's best split.

    Threshold split (`band_high` None): `axis <= threshold` is the low side (`wer_low`), the
    rest the high side (`wer_high`). Band split: `threshold < axis <= band_high` is the band
    (`wer_low` is its WER, `wer_high` the rest's); the node's children are the part below the
    band, the band and the part above it.
    """

    axis: str
    threshold: float
    gain: float
    wer_low: float
    wer_high: float
    p_value: Optional[float] = None
    band_high: Optional[float] = None

    def child_bounds(self) -> List[Tuple[float, float]]:
        """The `(lo, hi]` ranges on `axis` of the children, in order."""
        if self.band_high is None:
            return [(-math.inf, self.threshold), (self.threshold, math.inf)]
        return [(-math.inf, self.threshold), (self.threshold, self.band_high), (self.band_high, math.inf)]

    def describe(self) -> str:
        """`lat <= 40` or `lat in (35, 40]`."""
        if self.band_high is None:
            return f"{self.axis} <= {self.threshold:.4g}"
        return f"{self.axis} in ({self.threshold:.4g}, {self.band_high:.4g}]"


@dataclasses.dataclass
class GeoNode:
    """One node of the tree, with its size on the discovery speakers.

    Attributes:
      bounds: `{"lat": [lo, hi], "lon": [lo, hi]}`, the box `(lo, hi]` (infinite at the root).
      best: the node's best split (made or not); None when no split is valid.
      children: child node ids in `best.child_bounds()` order (2, or 3 for a band split), None for a leaf.
      stop: for a leaf, the rule that stopped it (one of `STOP_RULES`).
    """

    id: int
    parent: Optional[int]
    bounds: Dict[str, List[float]]
    n_speakers: int
    n_words: int
    n_errors: int
    best: Optional[CandidateSplit] = None
    children: Optional[List[int]] = None
    stop: Optional[str] = None

    @property
    def key(self) -> str:
        """The region's cohort key."""
        return f"R{self.id}"

    def to_dict(self) -> Dict[str, Any]:
        """JSON form (infinite bounds as null)."""
        out = dataclasses.asdict(self)
        out["bounds"] = {a: [b if math.isfinite(b) else None for b in lo_hi] for a, lo_hi in self.bounds.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GeoNode":
        """Inverse of `to_dict`."""
        bounds = {a: [(-math.inf, math.inf)[i] if b is None else float(b) for i, b in enumerate(data["bounds"][a])]
                  for a in AXES}
        best = CandidateSplit(**data["best"]) if data.get("best") else None
        return cls(data["id"], data["parent"], bounds, data["n_speakers"], data["n_words"], data["n_errors"], best,
                   data.get("children"), data.get("stop"))


def describe_bounds(bounds: Mapping[str, List[float]]) -> str:
    """`lat (17.5, 25], lon any` style text of a box."""
    parts = []
    for axis in AXES:
        lo, hi = bounds[axis]
        if math.isinf(lo) and math.isinf(hi):
            parts.append(f"{axis} any")
        elif math.isinf(lo):
            parts.append(f"{axis} <= {hi:.4g}")
        elif math.isinf(hi):
            parts.append(f"{axis} > {lo:.4g}")
        else:
            parts.append(f"{axis} ({lo:.4g}, {hi:.4g}]")
    return ", ".join(parts)


def candidates(coords: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every threshold between consecutive distinct coordinates on each axis.

    Args:
      coords: `(n, 2)` lat, lon.

    Returns:
      `(axis (C,) int, threshold (C,), members (C, n) bool)`, members = coordinate <= threshold.
    """
    axes, thresholds, members = [], [], []
    for a in range(2):
        values = np.unique(coords[:, a])
        cut = (values[:-1] + values[1:]) / 2.0
        axes.append(np.full(len(cut), a))
        thresholds.append(cut)
        members.append(coords[None, :, a] <= cut[:, None])
    return np.concatenate(axes), np.concatenate(thresholds), np.concatenate(members).reshape(-1, len(coords))


def band_candidates(coords: np.ndarray, n_cuts: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every band `lo < coordinate <= hi` on each axis, ends among `n_cuts` quantile cuts or open.

    A band open at one end is a threshold split. Returns `(axis (C,), lo (C,), hi (C,), members (C, n))`.
    """
    from asrtools.fairness.scan import intervals, quantile_cuts

    axes, lows, highs, members = [], [], [], []
    for a in range(2):
        iv = intervals(quantile_cuts(coords[:, a], n_cuts))
        iv = iv[~np.all(np.isinf(iv), axis=1)]
        axes.append(np.full(len(iv), a))
        lows.append(iv[:, 0])
        highs.append(iv[:, 1])
        members.append((coords[None, :, a] > iv[:, :1]) & (coords[None, :, a] <= iv[:, 1:]))
    return (np.concatenate(axes), np.concatenate(lows), np.concatenate(highs),
            np.concatenate(members).reshape(-1, len(coords)))


def _candidate_split(coords: np.ndarray, cfg: GeoConfig) -> Tuple[np.ndarray, Any]:
    """`(members (C, n), make)`: the node's candidates and `make(index, gap, wer_in, wer_out)` -> CandidateSplit."""
    if cfg.method == "band_tree":
        axes, lows, highs, members = band_candidates(coords, cfg.band_cuts)

        def make_band(i: int, gap: float, wer_in: float, wer_out: float) -> CandidateSplit:
            axis, lo, hi = AXES[axes[i]], float(lows[i]), float(highs[i])
            if math.isinf(lo):  # (-inf, hi]: the low side of a threshold split
                return CandidateSplit(axis, hi, gap, wer_in, wer_out)
            if math.isinf(hi):  # (lo, inf): the high side of a threshold split
                return CandidateSplit(axis, lo, gap, wer_out, wer_in)
            return CandidateSplit(axis, lo, gap, wer_in, wer_out, band_high=hi)

        return members, make_band
    axes, thresholds, members = candidates(coords)

    def make(i: int, gap: float, wer_in: float, wer_out: float) -> CandidateSplit:
        return CandidateSplit(AXES[axes[i]], float(thresholds[i]), gap, wer_in, wer_out)

    return members, make


def _evaluate(node: GeoNode, coords: np.ndarray, errors: np.ndarray, words: np.ndarray, cfg: GeoConfig,
              seed: int) -> Optional[str]:
    """Find the node's best split (stored in `node.best`); the stop rule it meets, or None if splittable."""
    members, make = _candidate_split(coords, cfg)
    limits = SideLimits(cfg.min_speakers, cfg.min_words)
    split = best_split(members, errors, words, limits)
    if split is None:
        return "no_valid_split"
    node.best = make(split.index, split.gap, split.wer_in, split.wer_out)
    if split.gap < cfg.min_gain:
        return "min_gain"
    p, _ = split_p_value(members, errors, words, limits, split.gap, cfg.n_permutations,
                         rng_for(seed, "geo", f"node{node.id}"))
    node.best.p_value = p if math.isfinite(p) else None
    return "not_significant" if math.isfinite(p) and p > cfg.alpha else None


def _child(parent: GeoNode, node_id: int, lo_hi: Tuple[float, float], rows: np.ndarray,
           table: SpeakerTable) -> GeoNode:
    assert parent.best is not None
    bounds = {a: list(b) for a, b in parent.bounds.items()}
    axis = parent.best.axis
    bounds[axis] = [max(bounds[axis][0], lo_hi[0]), min(bounds[axis][1], lo_hi[1])]
    return GeoNode(node_id, parent.id, bounds, int(len(rows)), int(table.words[rows].sum()),
                   int(table.errors[rows].sum()))


def grow_tree(table: SpeakerTable, cfg: GeoConfig, seed: int = 0) -> Tuple[List[GeoNode], np.ndarray]:
    """Grow the tree on `table`; returns `(nodes, leaf node id of each speaker (S,))`."""
    coords = table.coordinates()
    everyone = np.arange(len(table))
    inf = [-math.inf, math.inf]
    nodes = [GeoNode(0, None, {"lat": list(inf), "lon": list(inf)}, len(table), int(table.words.sum()),
                     int(table.errors.sum()))]
    rows = {0: everyone}
    status = {0: _evaluate(nodes[0], coords, table.errors, table.words, cfg, seed)}
    leaves = {0}
    while True:
        open_ = sorted(i for i in leaves if status[i] is None)
        if not open_:
            break
        if len(leaves) >= cfg.max_leaves:
            for i in open_:
                status[i] = "leaf_budget"
            break
        pick = max(open_, key=lambda i: (nodes[i].best.gain, -i))  # type: ignore[union-attr]
        parent = nodes[pick]
        axis = AXES.index(parent.best.axis)  # type: ignore[union-attr]
        values = coords[rows[pick], axis]
        parent.children = []
        for lo, hi in parent.best.child_bounds():  # type: ignore[union-attr]
            part = rows[pick][(values > lo) & (values <= hi)]
            child = _child(parent, len(nodes), (lo, hi), part, table)
            nodes.append(child)
            rows[child.id] = part
            parent.children.append(child.id)
            status[child.id] = _evaluate(child, coords[part], table.errors[part], table.words[part], cfg, seed)
            leaves.add(child.id)
        leaves.discard(pick)
    leaf_of = np.zeros(len(table), dtype=np.int64)
    for i in leaves:
        nodes[i].stop = status[i]
        leaf_of[rows[i]] = i
    return nodes, leaf_of


@register
class GeoDiscovery(Discovery):
    """Regions found by the geographic tree; speakers are placed by their lat/lon."""

    method = "geo"

    def __init__(self, params: Mapping[str, Any], cohorts: List[CohortSummary], nodes: List[GeoNode]) -> None:
        super().__init__(params, cohorts)
        self.nodes = list(nodes)

    @property
    def leaves(self) -> List[GeoNode]:
        """The regions (leaf nodes), in node order."""
        return [n for n in self.nodes if n.children is None]

    @staticmethod
    def inputs_of(table: SpeakerTable) -> Mapping[str, Any]:
        """Speaker attributes (lat, lon)."""
        return table.attribute_map()

    def leaf_of(self, lat: float, lon: float) -> GeoNode:
        """The region holding a point."""
        node = self.nodes[0]
        while node.children is not None:
            assert node.best is not None
            value = lat if node.best.axis == "lat" else lon
            ranges = node.best.child_bounds()
            node = self.nodes[next(c for c, (lo, hi) in zip(node.children, ranges) if lo < value <= hi)]
        return node

    def assign_keys(self, inputs: Mapping[str, Any]) -> Dict[str, str]:
        """Each speaker's region key, by its coordinates."""
        return {speaker: self.leaf_of(*coordinates_of(speaker, attrs)).key for speaker, attrs in inputs.items()}

    def model_dict(self) -> Dict[str, Any]:
        """`{"nodes": [...]}`."""
        return {"nodes": [n.to_dict() for n in self.nodes]}

    @classmethod
    def from_model(cls, params: Mapping[str, Any], model: Mapping[str, Any],
                   cohorts: List[CohortSummary]) -> "GeoDiscovery":
        """Inverse of `model_dict`."""
        nodes = [GeoNode.from_dict(n) for n in model["nodes"]]
        if [n.id for n in nodes] != list(range(len(nodes))) or not nodes:
            raise ValueError("node ids must be 0..N-1 in order")
        return cls(params, cohorts, nodes)


def fit(table: SpeakerTable, cfg: GeoConfig, thresholds: Thresholds = Thresholds(), seed: int = 0) -> Discovery:
    """Find regions on `table` (`cfg.method`: scan, tree or band_tree) and rank them by WER on these speakers.

    Args:
      table: discovery speakers (each with numeric lat/lon, else `DataError`).
      cfg: the method and its settings.
      thresholds: the size floor of the ranking.
      seed: seeds the permutation tests (node by node, or the scan's).
    """
    if len(table) == 0:
        raise DataError("no speakers to discover regions on")
    if cfg.method == "scan":
        from asrtools.fairness.scan import fit_scan

        return fit_scan(table, cfg, thresholds, seed)
    nodes, leaf_of = grow_tree(table, cfg, seed)
    keys = [nodes[i].key for i in leaf_of]
    descriptions = {n.key: describe_bounds(n.bounds) for n in nodes if n.children is None}
    cohorts = summarise_cohorts(table, keys, descriptions, thresholds)
    return GeoDiscovery(dataclasses.asdict(cfg), cohorts, nodes)
