"""Spatial scan statistic: the lat/lon rectangle of speakers with the most elevated WER, with a Monte-Carlo p.

Kulldorff's scan (Kulldorff 1997, "A spatial scan statistic"), the standard method for
finding a region of elevated rates, over axis-aligned rectangles: every rectangle
`lat in (a, b], lon in (c, d]` whose edges are among `cuts` quantile cut points per axis
(midpoints between consecutive distinct coordinates of the discovery speakers, plus the
open ends), with at least `min_speakers` speakers and `min_words` words inside and
outside and at most `max_share` of the speakers inside, is a candidate. Each candidate
gets Kulldorff's one-sided binomial log-likelihood ratio on word errors,
`LLR = ll(in) + ll(out) - ll(all)` with `ll = e log p + (w - e) log(1 - p)` at each part's
pooled WER, 0 where the inside is not worse. (A studentised difference with speaker-cluster
standard errors was tried as the statistic: its noisy standard errors of small rectangles
made it pick 5-speaker rectangles and lose most of the power, so it is not offered.)

The rectangle with the largest statistic is the finding. Its p-value is Monte-Carlo over
*whole-speaker* permutations: each speaker's (errors, words) pair is moved to another
speaker's location and the whole scan is re-run (every rectangle, size rules re-checked),
`p = (1 + #{max_perm >= max_obs}) / (1 + n_permutations)`, so it accounts for choosing the
best of all rectangles and for word errors being clustered within speakers (a binomial
LLR referred to a chi-square would ignore both). Why hand-written: scikit-learn / scipy
have no scan statistic, and the vectorised form (every rectangle under every permutation
is one matrix product) is a few lines.

As a discovery (`geo.method: scan`, `fit_scan`): cohorts `inside` and `outside` the best
rectangle when its p <= `scan_alpha` (inside is rank1: the statistic is one-sided), else one
cohort `all` (no comparison is designated). `scan_alpha` 1 (the default) always designates
the best rectangle: its p is reported, and the held-out measurement is the test.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.special import xlogy

from asrtools.fairness.discovery import CohortSummary, Discovery, register, summarise_cohorts
from asrtools.fairness.speakers import SpeakerTable, coordinates_of
from asrtools.scoring.bootstrap import rng_for
from asrtools.scoring.disparity import Thresholds

_MAX_ELEMENTS = 1 << 23  # (permutations x rectangles) per chunk


@dataclasses.dataclass(frozen=True)
class ScanLimits:
    """Which rectangles are candidates: size inside and outside, and the largest inside share."""

    min_speakers: int
    min_words: float
    max_share: float


@dataclasses.dataclass
class ScanResult:
    """The best rectangle: `(lo, hi]` bounds per axis (infinite = open), statistic, p, WERs, size."""

    lat: Tuple[float, float]
    lon: Tuple[float, float]
    statistic: float
    p_value: Optional[float]
    wer_in: float
    wer_out: float
    n_speakers_in: int
    n_rectangles: int


def quantile_cuts(values: np.ndarray, n_cuts: int) -> np.ndarray:
    """Up to `n_cuts` thresholds halfway between consecutive distinct values, at evenly spaced ranks."""
    distinct = np.unique(values)
    mids = (distinct[:-1] + distinct[1:]) / 2.0
    if len(mids) <= n_cuts:
        return mids
    positions = np.round(np.linspace(0, len(mids) - 1, n_cuts)).astype(np.int64)
    return mids[np.unique(positions)]


def intervals(cuts: np.ndarray) -> np.ndarray:
    """Every `(lo, hi]` with ends in `{-inf} + cuts + {inf}`, lo < hi: `(I, 2)` (the whole line included)."""
    ends = np.concatenate(([-math.inf], cuts, [math.inf]))
    lo, hi = np.triu_indices(len(ends), k=1)
    return np.stack([ends[lo], ends[hi]], axis=1)


def rectangles(coords: np.ndarray, n_cuts: int) -> Tuple[np.ndarray, np.ndarray]:
    """All candidate rectangles of `coords (n, 2)` (lat, lon) before the size rules.

    Returns:
      `(bounds (R, 4) lat_lo, lat_hi, lon_lo, lon_hi; members (R, n) float 0/1)`; the whole
      map (both intervals infinite) is left out.
    """
    lat_iv = intervals(quantile_cuts(coords[:, 0], n_cuts))
    lon_iv = intervals(quantile_cuts(coords[:, 1], n_cuts))
    in_lat = (coords[None, :, 0] > lat_iv[:, :1]) & (coords[None, :, 0] <= lat_iv[:, 1:])  # (I_lat, n)
    in_lon = (coords[None, :, 1] > lon_iv[:, :1]) & (coords[None, :, 1] <= lon_iv[:, 1:])  # (I_lon, n)
    members = (in_lat[:, None, :] & in_lon[None, :, :]).reshape(-1, len(coords))
    bounds = np.concatenate([np.repeat(lat_iv, len(lon_iv), axis=0), np.tile(lon_iv, (len(lat_iv), 1))], axis=1)
    whole = np.all(np.isinf(bounds), axis=1)
    return bounds[~whole], members[~whole].astype(np.float64)


def _statistic(members: np.ndarray, errors: np.ndarray, words: np.ndarray, count_in: np.ndarray,
               limits: ScanLimits) -> np.ndarray:
    """Kulldorff's one-sided binomial LLR of every rectangle `(B, R)`; `-inf` where the size rules fail.

    Args:
      members: `(R, n)` float32 0/1 rectangles.
      errors, words: `(B, n)` per-speaker counts for B orderings of the speakers.
      count_in: `(R,)` speakers inside.
      limits: the size rules.
    """
    B, n = errors.shape
    # One GEMM for all orderings: counts are integers, exact in float32 up to 2^24.
    stacked = np.concatenate([errors, words]).astype(np.float32).T  # (n, 2B)
    sums = (members @ stacked).astype(np.float64)  # (R, 2B)
    e_in, w_in = sums[:, :B].T, sums[:, B:].T  # (B, R)
    e_all, w_all = errors.sum(axis=1, keepdims=True), words.sum(axis=1, keepdims=True)
    e_out, w_out = e_all - e_in, w_all - w_in
    valid = ((count_in >= limits.min_speakers) & (n - count_in >= limits.min_speakers)
             & (count_in <= limits.max_share * n))[None, :]
    valid = valid & (w_in >= max(limits.min_words, 1e-9)) & (w_out >= max(limits.min_words, 1e-9))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_in, p_out = e_in / w_in, e_out / w_out

        def ll(e: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
            return xlogy(e, p) + xlogy(w - e, 1.0 - p)

        stat = ll(e_in, w_in, p_in) + ll(e_out, w_out, p_out) - ll(e_all, w_all, e_all / w_all)
    return np.where(valid & (p_in > p_out), stat, np.where(valid, 0.0, -np.inf))


def _orderings(n: int, n_permutations: int, per_chunk: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    done = 0
    while done < n_permutations:
        size = min(per_chunk, n_permutations - done)
        yield rng.permuted(np.broadcast_to(np.arange(n), (size, n)), axis=1)
        done += size


def sized_rectangles(coords: np.ndarray, n_cuts: int, limits: ScanLimits) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rectangles whose speaker counts meet the size rules (fixed by location, so checked once).

    Returns:
      `(bounds (R, 4), members (R, n) float32, speakers inside (R,))`.
    """
    bounds, members = rectangles(coords, n_cuts)
    count_in = members.sum(axis=1)
    n = len(coords)
    sized = ((count_in >= limits.min_speakers) & (n - count_in >= limits.min_speakers)
             & (count_in <= limits.max_share * n))
    return bounds[sized], members[sized].astype(np.float32), count_in[sized]


def scan(coords: np.ndarray, errors: np.ndarray, words: np.ndarray, limits: ScanLimits, n_cuts: int,
         n_permutations: int, rng: np.random.Generator) -> Optional[ScanResult]:
    """The most elevated rectangle and its Monte-Carlo p-value (None when no rectangle is valid).

    Args:
      coords: `(n, 2)` lat, lon of the speakers.
      errors, words: `(n,)` per-speaker word errors and reference words.
      limits: the size rules of a candidate.
      n_cuts: quantile cut points per axis.
      n_permutations: Monte-Carlo permutations of whole speakers (0: no p-value).
      rng: the generator of the permutations.
    """
    errors, words = np.asarray(errors, np.float64), np.asarray(words, np.float64)
    bounds, members, count_in = sized_rectangles(np.asarray(coords, np.float64), n_cuts, limits)
    observed = _statistic(members, errors[None], words[None], count_in, limits)[0]
    best = int(np.argmax(observed)) if len(observed) else 0
    if not len(observed) or observed[best] == -np.inf:
        return None
    p = None
    if n_permutations > 0:
        per_chunk = max(1, _MAX_ELEMENTS // max(members.shape[0], 1))
        maxima = np.concatenate([_statistic(members, errors[order], words[order], count_in, limits).max(axis=1)
                                 for order in _orderings(len(errors), n_permutations, per_chunk, rng)])
        value = observed[best]
        p = (1 + int(np.count_nonzero(maxima >= value - (1e-12 + 1e-9 * abs(value))))) / (1 + n_permutations)
    side = members[best] > 0
    return ScanResult(lat=(float(bounds[best, 0]), float(bounds[best, 1])),
                      lon=(float(bounds[best, 2]), float(bounds[best, 3])), statistic=float(observed[best]),
                      p_value=p, wer_in=float(errors[side].sum() / words[side].sum()),
                      wer_out=float(errors[~side].sum() / words[~side].sum()), n_speakers_in=int(side.sum()),
                      n_rectangles=int(np.isfinite(observed).sum()))


# --------------------------------------------------------------------------- as a discovery

INSIDE, OUTSIDE, EVERYONE = "inside", "outside", "all"


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def _box(lo_hi: Sequence[Optional[float]]) -> Tuple[float, float]:
    return (-math.inf if lo_hi[0] is None else float(lo_hi[0]), math.inf if lo_hi[1] is None else float(lo_hi[1]))


@register
class ScanDiscovery(Discovery):
    """The scan's finding as cohorts: the rectangle and the rest (significant), or everyone (not)."""

    method = "geo_scan"

    def __init__(self, params: Mapping[str, Any], cohorts: List[CohortSummary], result: Mapping[str, Any]) -> None:
        super().__init__(params, cohorts)
        self.result = dict(result)

    @property
    def significant(self) -> bool:
        """Whether the rectangle is a region (its p-value at most alpha)."""
        return bool(self.result.get("significant"))

    @property
    def rectangle(self) -> Dict[str, Tuple[float, float]]:
        """`{"lat": (lo, hi), "lon": (lo, hi)}` of the best rectangle (infinite = open)."""
        return {axis: _box(self.result[axis]) for axis in ("lat", "lon")}

    @staticmethod
    def inputs_of(table: SpeakerTable) -> Mapping[str, Any]:
        """Speaker attributes (lat, lon)."""
        return table.attribute_map()

    def contains(self, lat: float, lon: float) -> bool:
        """Whether a point lies in the rectangle `(lo, hi]` x `(lo, hi]`."""
        box = self.rectangle
        return box["lat"][0] < lat <= box["lat"][1] and box["lon"][0] < lon <= box["lon"][1]

    def assign_keys(self, inputs: Mapping[str, Any]) -> Dict[str, str]:
        """Each speaker's cohort: inside / outside the rectangle (everyone in `all` when not significant)."""
        out = {}
        for speaker, attrs in inputs.items():
            lat, lon = coordinates_of(speaker, attrs)
            out[speaker] = EVERYONE if not self.significant else INSIDE if self.contains(lat, lon) else OUTSIDE
        return out

    def model_dict(self) -> Dict[str, Any]:
        """`{"scan": {lat, lon, statistic, p_value, wer_in, wer_out, n_speakers_in, n_rectangles, significant}}`."""
        return {"scan": dict(self.result)}

    @classmethod
    def from_model(cls, params: Mapping[str, Any], model: Mapping[str, Any],
                   cohorts: List[CohortSummary]) -> "ScanDiscovery":
        """Inverse of `model_dict`."""
        result = dict(model["scan"])
        for axis in ("lat", "lon"):
            if len(result[axis]) != 2:
                raise ValueError(f"scan.{axis} must be [lo, hi]")
        return cls(params, cohorts, result)


def describe_rectangle(lat: Tuple[float, float], lon: Tuple[float, float]) -> str:
    """`lat (30, 40], lon <= -90` style text."""
    from asrtools.fairness.geo import describe_bounds

    return describe_bounds({"lat": list(lat), "lon": list(lon)})


def fit_scan(table: SpeakerTable, cfg: Any, thresholds: Thresholds = Thresholds(), seed: int = 0) -> ScanDiscovery:
    """Scan `table`'s speakers (`cfg`: a `GeoConfig`) and rank the cohorts it gives by WER on them."""
    coords = table.coordinates()
    limits = ScanLimits(cfg.min_speakers, cfg.min_words, cfg.max_share)
    found = scan(coords, table.errors, table.words, limits, cfg.scan_cuts, cfg.n_permutations,
                 rng_for(seed, "geo-scan"))
    result: Dict[str, Any] = {"lat": [None, None], "lon": [None, None], "statistic": None, "p_value": None,
                              "wer_in": None, "wer_out": None, "n_speakers_in": 0, "n_rectangles": 0,
                              "significant": False}
    if found is not None:
        # alpha >= 1: the best rectangle is always the region (the held-out measurement tests it);
        # otherwise it must pass its Monte-Carlo test, and without permutations there is none.
        significant = cfg.scan_alpha >= 1.0 or (found.p_value is not None and found.p_value <= cfg.scan_alpha)
        result.update(lat=[_finite(x) for x in found.lat], lon=[_finite(x) for x in found.lon],
                      statistic=found.statistic, p_value=found.p_value, wer_in=found.wer_in, wer_out=found.wer_out,
                      n_speakers_in=found.n_speakers_in, n_rectangles=found.n_rectangles, significant=significant)
    discovery = ScanDiscovery(dataclasses.asdict(cfg), [], result)
    if discovery.significant:
        box = discovery.rectangle
        descriptions = {INSIDE: "inside " + describe_rectangle(box["lat"], box["lon"]),
                        OUTSIDE: "outside " + describe_rectangle(box["lat"], box["lon"])}
    else:
        descriptions = {EVERYONE: "all speakers (no significant rectangle)"}
    keys = discovery.assign_keys(table.attribute_map())
    discovery.cohorts = summarise_cohorts(table, [keys[s] for s in table.speakers], descriptions, thresholds)
    return discovery


def crossfit_gaps(table: SpeakerTable, cfg: Any, folds: int, seed: int, min_speakers: int,
                  orders: np.ndarray) -> np.ndarray:
    """The pooled held-out designated gap of `crossfit` with `fit_scan` refits, for many reorderings at once.

    Computes exactly what re-running `crossfit(permuted table, fit_scan)` and
    `crossfit.designated_gap` gives for every row of `orders` (a speaker's counts moved to
    position `i` of row b come from speaker `orders[b, i]`), vectorised: per fold, every
    rectangle's statistic under every reordering is one matrix product. Valid only when every
    rectangle's inside and outside meet the size floor of the ranking (`cfg.min_speakers` and
    `cfg.min_words` at least the floor's), as `asrtools.fairness.study` checks, and for
    `scan_alpha` 1 (the best rectangle always designated).

    Returns:
      `(B,)` gaps, NaN where a permutation has no designated pair or a side under the floor.
    """
    from asrtools.fairness.crossfit import speaker_folds

    coords = table.coordinates()
    n = len(table)
    limits = ScanLimits(cfg.min_speakers, cfg.min_words, cfg.max_share)
    errors, words = table.errors[orders], table.words[orders]  # (B, n)
    B = len(orders)
    e_side, w_side, n_side = np.zeros((B, 2)), np.zeros((B, 2)), np.zeros((B, 2))  # bottom, top
    everyone = np.arange(n)
    for held in speaker_folds(n, folds, seed):
        found = everyone[~np.isin(everyone, held)]
        bounds, members, count_in = sized_rectangles(coords[found], cfg.scan_cuts, limits)
        if not len(bounds):
            continue  # no rectangle: one cohort, no pair designated by this fold
        per_chunk = max(1, _MAX_ELEMENTS // len(bounds))
        best = np.concatenate([np.argmax(_statistic(members, errors[i:i + per_chunk][:, found],
                                                    words[i:i + per_chunk][:, found], count_in, limits), axis=1)
                               for i in range(0, B, per_chunk)])
        valid = np.ones(B, dtype=bool)
        inside = members[best] > 0  # (B, m) on the discovery speakers
        e_f, w_f = errors[:, found], words[:, found]
        e_in, w_in = (e_f * inside).sum(axis=1), (w_f * inside).sum(axis=1)
        valid &= (w_in >= max(limits.min_words, 1e-9)) & (w_f.sum(axis=1) - w_in >= max(limits.min_words, 1e-9))
        wer_in = e_in / np.maximum(w_in, 1e-300)
        wer_out = (e_f.sum(axis=1) - e_in) / np.maximum(w_f.sum(axis=1) - w_in, 1e-300)
        inside_is_bottom = wer_in >= wer_out  # ranked by WER, ties to "inside" (sorted by key)
        box = bounds[best]  # (B, 4)
        lat, lon = coords[held, 0][None, :], coords[held, 1][None, :]
        held_inside = ((lat > box[:, :1]) & (lat <= box[:, 1:2]) & (lon > box[:, 2:3]) & (lon <= box[:, 3:4]))
        bottom = np.where(inside_is_bottom[:, None], held_inside, ~held_inside) & valid[:, None]
        top = ~bottom & valid[:, None]
        for side, mask in enumerate((bottom, top)):
            e_side[:, side] += (errors[:, held] * mask).sum(axis=1)
            w_side[:, side] += (words[:, held] * mask).sum(axis=1)
            n_side[:, side] += mask.sum(axis=1)
    ok = (n_side.min(axis=1) >= max(2, min_speakers)) & (w_side.min(axis=1) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = e_side[:, 0] / w_side[:, 0] - e_side[:, 1] / w_side[:, 1]
    return np.where(ok, gaps, np.nan)
