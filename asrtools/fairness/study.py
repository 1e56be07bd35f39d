"""One discovery study: fit a method, measure its cohorts held out and in-sample.

`discover` is what `asrtools cohorts geo|geodemographic|auto` run:

1. the method fitted on all discovery speakers (the measurement speakers themselves in
   crossfit mode, the `--discover-recogs` speakers in dev-test mode): `discovery.json`;
2. the held-out labels (K-fold cross-fitting, or dev-discover/test-measure) and their
   measurement: the headline numbers; in crossfit mode the designated gap's p comes from
   permutations of the whole pipeline (`crossfit.pipeline_p_value`);
3. the in-sample labels (fitted on the measurement speakers, measured on them), labelled
   in-sample: how much selection inflates the gap.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from asrtools.errors import ConfigError
from asrtools.fairness import auto, geo, geodemographic
from asrtools.fairness.config import CohortsConfig
from asrtools.fairness.crossfit import (FitFn, Measurement, crossfit, designated_gap, dev_test, in_sample, measure,
                                       permutation_orders, pipeline_p_value, refit_gaps)
from asrtools.fairness.discovery import Discovery, summarise_cohorts
from asrtools.fairness.speakers import SpeakerTable
from asrtools.scoring.bootstrap import rng_for
from asrtools.scoring.disparity import Thresholds

_FITS: Dict[str, Callable[..., Discovery]] = {"geo": geo.fit, "geodemographic": geodemographic.fit, "auto": auto.fit}
METHODS = tuple(_FITS)


def fitter(method: str, cfg: CohortsConfig, refit: bool = False) -> FitFn:
    """`table -> Discovery` for `method` with its config section, the size floor and the seed.

    `refit`: for the cross-fitting folds and the pipeline permutations, where only the labels
    matter: a scan that always designates its best rectangle (`scan_alpha` 1) and the
    geodemographic partition skip their permutation p-values (they change no label).
    """
    if method not in _FITS:
        raise ConfigError(f"unknown discovery method {method!r} (known: {', '.join(METHODS)})")
    section = getattr(cfg, method)
    if refit and ((method == "geo" and section.method == "scan" and section.scan_alpha >= 1.0)
                  or method == "geodemographic"):  # the geodemographic p is reported, never used to choose
        section = dataclasses.replace(section, n_permutations=0)
    thresholds = cfg.measure.thresholds

    if refit and method == "auto":
        return _auto_refit(section, thresholds, cfg.seed)

    def fit(table: SpeakerTable) -> Discovery:
        return _FITS[method](table, section, thresholds, cfg.seed)

    return fit


def _auto_refit(section: Any, thresholds: Thresholds, seed: int) -> FitFn:
    """`auto.fit` whose k-means is run once per set of speakers: the clusters depend on the embeddings
    and the speaker counts only, never on the errors, so a pipeline permutation (errors moved, embeddings
    kept) only re-ranks them; ranked exactly as `auto.fit` ranks."""
    fitted: Dict[Tuple[str, ...], auto.AutoDiscovery] = {}

    def fit(table: SpeakerTable) -> Discovery:
        key = tuple(table.speakers)
        if key not in fitted:
            fitted[key] = auto.fit(table, section, thresholds, seed)
        base = fitted[key]
        labels = auto.nearest(base.centroids, table.vectors)
        k = len(base.centroids)
        sizes = np.bincount(labels, minlength=k)
        descriptions = {auto.cluster_key(j): f"k-means cluster {j} of {k} ({sizes[j]} discovery speakers)"
                        for j in range(k)}
        cohorts = summarise_cohorts(table, [auto.cluster_key(int(j)) for j in labels], descriptions, thresholds)
        return auto.AutoDiscovery(base.params, cohorts, base.centroids, base.tried)

    return fit


@dataclasses.dataclass
class Study:
    """A method's discovery (on all discovery speakers) and its held-out and in-sample measurements.

    `unplaced` lists the scored speakers left out because the method could not place them
    (`unplaced_speakers: exclude`), discovery and measurement speakers alike.
    """

    method: str
    discovery: Discovery
    held_out: Measurement
    in_sample: Measurement
    unplaced: List[str] = dataclasses.field(default_factory=list)


def _descriptions(discovery: Discovery) -> Dict[str, str]:
    labels = discovery.labels
    return {labels[c.key]: c.description for c in discovery.cohorts}


def _scan_vectorised(method: str, cfg: CohortsConfig) -> bool:
    """Whether `scan.crossfit_gaps` computes the refits exactly (scan always designating, sizes over the floor)."""
    g, m = cfg.geo, cfg.measure
    return (method == "geo" and g.method == "scan" and g.scan_alpha >= 1.0 and g.min_speakers >= m.min_speakers
            and g.min_words >= m.min_words)


def pipeline_gaps(table: SpeakerTable, method: str, cfg: CohortsConfig, orders: np.ndarray) -> np.ndarray:
    """The pooled held-out designated gap under each reordering of the speakers' counts `(B,)`."""
    m = cfg.measure
    if _scan_vectorised(method, cfg):
        from asrtools.fairness.scan import crossfit_gaps

        return crossfit_gaps(table, cfg.geo, m.folds, cfg.seed, m.min_speakers, orders)
    return refit_gaps(table, fitter(method, cfg, refit=True), m.folds, cfg.seed, m.min_speakers, orders)


def _pipeline_test(held_out: Measurement, table: SpeakerTable, method: str, cfg: CohortsConfig) -> None:
    """Replace the crossfit designated p by the whole-pipeline permutation p (the label permutation's kept)."""
    m = cfg.measure
    observed = designated_gap(table, held_out.labelling.designated, m.min_speakers)
    orders = permutation_orders(len(table), m.pipeline_permutations, rng_for(cfg.seed, "pipeline", method))
    p = pipeline_p_value(observed, pipeline_gaps(table, method, cfg, orders) if observed is not None else orders[:0])
    d = held_out.designated
    d["p_value_label_permutation"] = d["p_value"]
    d["p_value"] = p
    d["pipeline_permutations"] = m.pipeline_permutations
    d["method"] += ("; p_value: whole-pipeline permutation (speakers' counts shuffled, every fold re-discovered, "
                    "labels and pooled gap redone); p_value_label_permutation: held-out labels permuted (ignores "
                    "that a fold's labels depend on the other folds' errors)")


def discover(method: str, table: SpeakerTable, cfg: CohortsConfig,
             discovery_table: Optional[SpeakerTable] = None) -> Study:
    """Fit `method`, measure held out (crossfit, or dev-test with `discovery_table`) and in-sample.

    Args:
      method: `geo`, `geodemographic` or `auto`.
      table: the measurement speakers.
      cfg: the whole configuration (method section, measure section, seed).
      discovery_table: speakers to discover on (dev-test mode); None: K-fold cross-fitting on `table`.
    """
    fit = fitter(method, cfg)
    if discovery_table is None:  # the folds' discoveries only label speakers: no test that changes no label
        labelling = crossfit(table, fitter(method, cfg, refit=True), cfg.measure.folds, cfg.seed)
        discovery = in_sample_discovery = fit(table)
    else:
        labelling, discovery = dev_test(discovery_table, table, fit)
        in_sample_discovery = fit(table)
    held_out = measure(table, labelling, cfg.measure, cfg.seed, method)
    if discovery_table is None and cfg.measure.pipeline_permutations > 0:
        _pipeline_test(held_out, table, method, cfg)
    inside = measure(table, in_sample(table, in_sample_discovery), cfg.measure, cfg.seed, method,
                     _descriptions(in_sample_discovery))
    return Study(method, discovery, held_out, inside)
