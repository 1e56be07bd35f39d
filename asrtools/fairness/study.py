"""One discovery study: fit a method, measure its cohorts held out and in-sample.

`discover` is what `asrtools cohorts geo|geodemographic|auto` run:

1. the method fitted on all discovery speakers (the measurement speakers themselves in
   crossfit mode, the `--discover-recogs` speakers in dev-test mode): `discovery.json`;
2. the held-out labels (K-fold cross-fitting, or dev-discover/test-measure) and their
   measurement: the headline numbers;
3. the in-sample labels (fitted on the measurement speakers, measured on them), labelled
   in-sample: how much selection inflates the gap.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional

from asrtools.errors import ConfigError
from asrtools.fairness import auto, geo, geodemographic
from asrtools.fairness.config import CohortsConfig
from asrtools.fairness.crossfit import FitFn, Measurement, crossfit, dev_test, in_sample, measure
from asrtools.fairness.discovery import Discovery
from asrtools.fairness.speakers import SpeakerTable

_FITS: Dict[str, Callable[..., Discovery]] = {"geo": geo.fit, "geodemographic": geodemographic.fit, "auto": auto.fit}
METHODS = tuple(_FITS)


def fitter(method: str, cfg: CohortsConfig) -> FitFn:
    """`table -> Discovery` for `method` with its config section, the size floor and the seed."""
    if method not in _FITS:
        raise ConfigError(f"unknown discovery method {method!r} (known: {', '.join(METHODS)})")
    section = getattr(cfg, method)
    thresholds = cfg.measure.thresholds

    def fit(table: SpeakerTable) -> Discovery:
        return _FITS[method](table, section, thresholds, cfg.seed)

    return fit


@dataclasses.dataclass
class Study:
    """A method's discovery (on all discovery speakers) and its held-out and in-sample measurements."""

    method: str
    discovery: Discovery
    held_out: Measurement
    in_sample: Measurement


def _descriptions(discovery: Discovery) -> Dict[str, str]:
    labels = discovery.labels
    return {labels[c.key]: c.description for c in discovery.cohorts}


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
    if discovery_table is None:
        labelling = crossfit(table, fit, cfg.measure.folds, cfg.seed)
        discovery = in_sample_discovery = fit(table)
    else:
        labelling, discovery = dev_test(discovery_table, table, fit)
        in_sample_discovery = fit(table)
    held_out = measure(table, labelling, cfg.measure, cfg.seed, method)
    inside = measure(table, in_sample(table, in_sample_discovery), cfg.measure, cfg.seed, method,
                     _descriptions(in_sample_discovery))
    return Study(method, discovery, held_out, inside)
