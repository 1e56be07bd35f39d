"""Geodemographic cohorts: the binary partition of zip codes by one census attribute with the largest WER gap.

Each speaker's zip code is joined with the census table (zipcodes.csv). For every attribute
(column) the candidate partitions of the zip codes are:

- categorical (e.g. urbanicity, income_band, region): each value vs the rest;
- numeric (every value parses as a number: median_age, population, ...): `value <= t` vs
  `value > t` for each `t` halfway between consecutive distinct values of the speakers' zips.

A partition needs `min_speakers` speakers and `min_words` words on each side. The one with the
largest pooled-WER difference over all attributes is kept (`asrtools.fairness.partition`);
its selection-aware permutation p-value re-runs the search over every attribute and threshold
in each permutation of the speakers' (errors, words). The partition is stored as a map of
*every* zip code of the census table to its side, so any speaker with a known zip can be
placed (an unknown zip is an error naming it).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.fairness.config import GeodemographicConfig
from asrtools.fairness.discovery import CohortSummary, Discovery, register, summarise_cohorts
from asrtools.fairness.partition import SideLimits, Split, best_split, split_p_value
from asrtools.fairness.speakers import LAT_KEY, LON_KEY, ZIP_KEY, SpeakerTable, zip_of
from asrtools.scoring.bootstrap import rng_for
from asrtools.scoring.disparity import Thresholds

_NOT_ATTRIBUTES = (ZIP_KEY, LAT_KEY, LON_KEY)


@dataclasses.dataclass(frozen=True)
class Rule:
    """`attribute <= value` (numeric) or `attribute == value` (categorical): the "in" side."""

    attribute: str
    op: str
    value: Any

    def holds(self, row: Mapping[str, Any]) -> bool:
        """Whether a zip code's census row is on the "in" side."""
        if self.op == "<=":
            return float(row[self.attribute]) <= float(self.value)
        return str(row.get(self.attribute, "")) == str(self.value)

    def describe(self) -> str:
        """`urbanicity = rural` / `median_age <= 40.5`."""
        value = f"{self.value:.6g}" if self.op == "<=" else str(self.value)
        return f"{self.attribute} {'<=' if self.op == '<=' else '='} {value}"

    def keys(self) -> Tuple[str, str]:
        """Cohort keys of the in and out sides, e.g. `("urbanicity=rural", "urbanicity!=rural")`."""
        if self.op == "<=":
            return f"{self.attribute}<={self.value:.6g}", f"{self.attribute}>{self.value:.6g}"
        return f"{self.attribute}={self.value}", f"{self.attribute}!={self.value}"


@dataclasses.dataclass
class AttributeResult:
    """The best partition by one attribute (None fields when no partition is valid)."""

    attribute: str
    kind: str
    rule: Optional[Dict[str, Any]]
    gap: Optional[float]
    wer_in: Optional[float]
    wer_out: Optional[float]
    n_speakers_in: Optional[int]


def attribute_names(zipcodes: Mapping[str, Mapping[str, Any]], wanted: List[str]) -> List[str]:
    """The census columns to try: `wanted` (each must exist) or all but zip/lat/lon."""
    columns = sorted({c for row in zipcodes.values() for c in row})
    for name in wanted:
        if name not in columns:
            raise DataError(f"attribute {name!r} is not a column of the zip-code table (columns: {', '.join(columns)})")
    return list(wanted) or [c for c in columns if c not in _NOT_ATTRIBUTES]


def _is_numeric(zipcodes: Mapping[str, Mapping[str, Any]], attribute: str) -> bool:
    return all(isinstance(row.get(attribute), float) for row in zipcodes.values())


def attribute_candidates(rows: List[Mapping[str, Any]], attribute: str, numeric: bool) -> Tuple[List[Rule], np.ndarray]:
    """Candidate rules of one attribute and their membership `(C, S)` over the speakers' census rows."""
    if numeric:
        values = np.asarray([float(r[attribute]) for r in rows])
        distinct = np.unique(values)
        cuts = (distinct[:-1] + distinct[1:]) / 2.0
        return [Rule(attribute, "<=", float(t)) for t in cuts], values[None, :] <= cuts[:, None]
    labels = np.asarray([str(r.get(attribute, "")) for r in rows], dtype=object)
    distinct = sorted(set(labels.tolist()))
    if len(distinct) < 2:
        return [], np.zeros((0, len(rows)), dtype=bool)
    if len(distinct) == 2:
        distinct = distinct[:1]  # a vs b and b vs a are the same partition
    return [Rule(attribute, "==", v) for v in distinct], labels[None, :] == np.asarray(distinct, dtype=object)[:, None]


def _result(attribute: str, numeric: bool, rules: List[Rule], members: np.ndarray,
            split: Optional[Split]) -> AttributeResult:
    kind = "numeric" if numeric else "categorical"
    if split is None:
        return AttributeResult(attribute, kind, None, None, None, None, None)
    rule = rules[split.index]
    return AttributeResult(attribute, kind, dataclasses.asdict(rule), split.gap, split.wer_in, split.wer_out,
                           int(members[split.index].sum()))


@register
class GeodemographicDiscovery(Discovery):
    """Two cohorts: the zip codes on each side of the chosen census-attribute partition.

    Attributes (besides `Discovery`'s):
      rule: the chosen partition (its "in" side).
      zip_sides: every census zip code -> its side's cohort key.
      attributes: the best partition by each attribute (on the discovery speakers).
      p_value: selection-aware permutation p-value of the chosen partition (in-sample).
    """

    method = "geodemographic"

    def __init__(self, params: Mapping[str, Any], cohorts: List[CohortSummary], rule: Rule,
                 zip_sides: Mapping[str, str], attributes: List[AttributeResult], p_value: Optional[float]) -> None:
        super().__init__(params, cohorts)
        self.rule = rule
        self.zip_sides = dict(zip_sides)
        self.attributes = list(attributes)
        self.p_value = p_value

    @staticmethod
    def inputs_of(table: SpeakerTable) -> Mapping[str, Any]:
        """Speaker attributes (zip)."""
        return table.attribute_map()

    def assign_keys(self, inputs: Mapping[str, Any]) -> Dict[str, str]:
        """Each speaker's side, by its zip code."""
        out = {}
        for speaker, attrs in inputs.items():
            code = zip_of(speaker, attrs)
            if code not in self.zip_sides:
                raise DataError(f"speaker {speaker!r}: zip {code!r} is not in the zip-code table of the discovery")
            out[speaker] = self.zip_sides[code]
        return out

    def model_dict(self) -> Dict[str, Any]:
        """`{"rule", "zip_sides", "attributes", "p_value"}`."""
        return {"rule": dataclasses.asdict(self.rule), "zip_sides": dict(self.zip_sides),
                "attributes": [dataclasses.asdict(a) for a in self.attributes], "p_value": self.p_value}

    @classmethod
    def from_model(cls, params: Mapping[str, Any], model: Mapping[str, Any],
                   cohorts: List[CohortSummary]) -> "GeodemographicDiscovery":
        """Inverse of `model_dict`."""
        return cls(params, cohorts, Rule(**model["rule"]), model["zip_sides"],
                   [AttributeResult(**a) for a in model["attributes"]], model.get("p_value"))


def fit(table: SpeakerTable, cfg: GeodemographicConfig, thresholds: Thresholds = Thresholds(),
        seed: int = 0) -> GeodemographicDiscovery:
    """Choose the census-attribute partition of zip codes with the largest WER gap on `table`.

    Args:
      table: discovery speakers with zip codes in `table.zipcodes` (else `DataError` naming one).
      cfg: attributes to try and side sizes.
      thresholds: the size floor of the ranking.
      seed: seeds the permutation test.
    """
    zips = table.zip_codes()
    rows = [table.zipcodes[z] for z in zips]
    limits = SideLimits(cfg.min_speakers, cfg.min_words)
    all_rules: List[Rule] = []
    all_members = []
    results = []
    for attribute in attribute_names(table.zipcodes, list(cfg.attributes)):
        numeric = _is_numeric(table.zipcodes, attribute)
        rules, members = attribute_candidates(rows, attribute, numeric)
        results.append(_result(attribute, numeric, rules, members, best_split(members, table.errors, table.words,
                                                                              limits)))
        all_rules += rules
        all_members.append(members)
    members = np.concatenate(all_members).reshape(-1, len(table)) if all_members else np.zeros((0, len(table)))
    split = best_split(members, table.errors, table.words, limits)
    if split is None:
        raise DataError(f"no zip-code partition leaves >= {cfg.min_speakers} speakers and >= {cfg.min_words} words "
                        f"on both sides ({len(table)} speakers)")
    p, _ = split_p_value(members, table.errors, table.words, limits, split.gap, cfg.n_permutations,
                         rng_for(seed, "geodemographic"))
    rule = all_rules[split.index]
    key_in, key_out = rule.keys()
    zip_sides = {z: key_in if rule.holds(row) else key_out for z, row in sorted(table.zipcodes.items())}
    n_zips_in = sum(1 for k in zip_sides.values() if k == key_in)
    descriptions = {key_in: f"zip codes with {key_in} ({n_zips_in} zip codes)",
                    key_out: f"zip codes with {key_out} ({len(zip_sides) - n_zips_in} zip codes)"}
    cohorts = summarise_cohorts(table, [zip_sides[z] for z in zips], descriptions, thresholds)
    return GeodemographicDiscovery(dataclasses.asdict(cfg), cohorts, rule, zip_sides, results,
                                   p if math.isfinite(p) else None)
