"""The artifacts of a discovery study: assignments.json, cohorts.json / .csv / .md.

- `assignments.json`: `{"method", "mode", "cohorts": {speaker: rank label}, "ranking": [label,
  ... worst first]}` (held-out labels for crossfit / dev-test; mode `applied` from
  `asrtools cohorts assign`).
- `cohorts.json`: the held-out cohort table (`cohorts`), `held_out` (the disparity,
  `Disparity.to_dict()`), `designated` (rank1 vs the best-ranked eligible cohort: the signed gap, its speaker-bootstrap
  interval, the one-sided permutation p),
  `bottom_share`, the same measured in-sample (`in_sample`, `in_sample_cohorts`, ...; the
  cohorts were chosen on the measured speakers, so these are inflated), `disjoint`, speaker
  counts, folds, and the method's own details (`model`: tree nodes with stop rules,
  attribute partitions, k-means choice).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from asrtools.fairness.crossfit import CohortRow, Measurement
from asrtools.fairness.discovery import Discovery, rank_number
from asrtools.fairness.geo import CandidateSplit
from asrtools.fairness.scan import describe_rectangle
from asrtools.fairness.speakers import SpeakerTable
from asrtools.fairness.study import Study
from asrtools.pipeline import atomic_write_json, atomic_write_text
from asrtools.scoring.tables import _ci, _md_table, _pct, disparity_markdown

IN_SAMPLE_NOTE = ("in-sample: cohorts chosen and measured on the same speakers; the test and interval ignore "
                  "that choice, so these numbers are inflated (compare with held_out)")


def assignments_json(method: str, mode: str, labels: Mapping[str, str],
                     ranking: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The assignments.json document; `ranking` defaults to the labels present, in rank order."""
    ranking = list(ranking) if ranking is not None else sorted(set(labels.values()), key=lambda x: (rank_number(x), x))
    return {"method": method, "mode": mode, "cohorts": dict(sorted(labels.items())), "ranking": ranking}


def _measurement_json(m: Measurement) -> Dict[str, Any]:
    return {
        "cohorts": [row.to_dict() for row in m.cohorts],
        "disparity": m.disparity.to_dict() if m.disparity else None,
        "designated": m.designated,
        "bottom_share": m.bottom_share,
    }


def cohorts_json(study: Study, params: Mapping[str, Any]) -> Dict[str, Any]:
    """The cohorts.json document (see the module docstring)."""
    held, inside = _measurement_json(study.held_out), _measurement_json(study.in_sample)
    labelling = study.held_out.labelling
    model = study.discovery.model_dict()
    model.pop("zip_sides", None)  # in discovery.json; too long for the table
    return {
        "method": study.method,
        "mode": labelling.mode,
        "params": dict(params),
        "cohorts": held["cohorts"],
        "held_out": held["disparity"],
        "designated": held["designated"],
        "bottom_share": held["bottom_share"],
        "in_sample": inside["disparity"],
        "in_sample_note": IN_SAMPLE_NOTE,
        "in_sample_cohorts": inside["cohorts"],
        "in_sample_designated": inside["designated"],
        "in_sample_bottom_share": inside["bottom_share"],
        "disjoint": labelling.disjoint,
        "n_discovery_speakers": labelling.n_discovery_speakers,
        "n_measurement_speakers": len(labelling.labels),
        "unplaced_excluded": {"count": len(study.unplaced), "speakers": list(study.unplaced)},
        "folds": [vars(f) for f in labelling.folds],
        "discovery_cohorts": [c.to_dict() for c in study.discovery.cohorts],
        "model": model,
    }


_CSV_HEADER = ["measured", "label", "description", "n_speakers", "n_utts", "n_words", "n_errors", "wer",
               "wer_ci_low", "wer_ci_high", "flags", "share_speakers", "share_utts", "share_errors"]


def _csv_row(measured: str, row: CohortRow) -> List[Any]:
    ci = [f"{x:.6f}" if math.isfinite(x) else "" for x in row.wer_ci]
    return [measured, row.label, row.description, row.n_speakers, row.n_utts, row.n_words, row.n_errors,
            "" if row.wer is None else f"{row.wer:.6f}", *ci, ";".join(row.flags), f"{row.share_speakers:.6f}",
            f"{row.share_utts:.6f}", f"{row.share_errors:.6f}"]


def cohorts_csv(study: Study) -> str:
    """cohorts.csv: one row per cohort, held-out rows first (`measured` = held-out mode or in-sample)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_HEADER)
    for m in (study.held_out, study.in_sample):
        for row in m.cohorts:
            writer.writerow(_csv_row(m.labelling.mode, row))
    return buffer.getvalue()


def _table(rows: Sequence[CohortRow]) -> List[str]:
    header = ["cohort", "description", "speakers", "utts", "words", "WER %", "95% CI", "flags"]
    return _md_table(header, [[r.label, r.description, str(r.n_speakers), str(r.n_utts), str(r.n_words),
                               _pct(r.wer), _ci(r.wer_ci), ", ".join(r.flags)] for r in rows])


def _bounds(ci: Optional[Sequence[Optional[float]]]) -> Tuple[float, float]:
    """A JSON interval as floats (null -> NaN)."""
    ci = ci or [None, None]
    return tuple(float("nan") if x is None else float(x) for x in ci)  # type: ignore[return-value]


def _designated_line(d: Mapping[str, Any], shares: Mapping[str, float]) -> str:
    p = d.get("p_value")
    level = 100 * d.get("level", 0.95)
    note = f" ({d['note']})" if d.get("note") else ""
    test = (f"{d['pipeline_permutations']} permutations of the whole pipeline" if d.get("pipeline_permutations")
            else "held-out labels permuted across whole speakers")
    if "CAUTION" in d.get("method", ""):
        test += "; the pair was chosen on these speakers, so this is no test"
    return (f"Designated comparison (rank1 vs the best-ranked eligible cohort of the same discovery): bottom "
            f"{_pct(d.get('wer_bottom'))}% ({d['n_speakers_bottom']} speakers) vs top {_pct(d.get('wer_top'))}% "
            f"({d['n_speakers_top']} speakers): signed gap bottom - top {_pct(d.get('abs_gap'))} points "
            f"{_ci(_bounds(d.get('abs_gap_ci')))} ({level:g}% speaker-bootstrap interval; negative = bottom better), "
            f"relative {_pct(d.get('rel_gap'), 1)}% {_ci(_bounds(d.get('rel_gap_ci')), 1)}, one-sided p = "
            f"{'n/a' if p is None else f'{p:.3g}'} ({test}; H1: bottom worse){note}. "
            f"Bottom cohort's share: {_pct(shares['speakers'], 1)}% of speakers, {_pct(shares['utterances'], 1)}% "
            f"of utterances, {_pct(shares['errors'], 1)}% of word errors.")


def _measurement_md(m: Measurement) -> List[str]:
    lines = _table(m.cohorts) + [""]
    if m.disparity is not None:
        lines += disparity_markdown(m.disparity) + [""]
    return lines + [_designated_line(m.designated, m.bottom_share), ""]


def method_markdown(discovery: Discovery) -> List[str]:
    """The method's own details: tree nodes and stop rules, attribute partitions, or the k choice."""
    model = discovery.model_dict()
    if discovery.method == "geo":
        rows = []
        for n in model["nodes"]:
            best = n["best"] or {}
            split = CandidateSplit(**best).describe() if best else "-"
            p = best.get("p_value")
            rows.append([str(n["id"]), str(n["parent"]), str(n["n_speakers"]), _pct(n["n_errors"] / n["n_words"])
                         if n["n_words"] else "n/a", split, _pct(best.get("gain")) if best else "-",
                         "-" if p is None else f"{p:.3g}", "split" if n["children"] else n["stop"]])
        return ["## Tree (discovery speakers)", ""] + _md_table(
            ["node", "parent", "speakers", "WER %", "best split", "gain (points)", "p (selection-aware)",
             "split / stop rule"], rows)
    if discovery.method == "geo_scan":
        scan = model["scan"]
        p = scan["p_value"]
        where = describe_rectangle(*(tuple(math.inf * (2 * i - 1) if x is None else x for i, x in
                                           enumerate(scan[axis])) for axis in ("lat", "lon")))
        found = (f"best rectangle {where}: {scan['n_speakers_in']} speakers, WER {_pct(scan['wer_in'])}% inside vs "
                 f"{_pct(scan['wer_out'])}% outside, LLR {scan['statistic']:.3g}, Monte-Carlo p = {p:.3g} "
                 f"({'a region' if scan['significant'] else 'not significant: one cohort'})"
                 if scan["statistic"] is not None and p is not None else "no rectangle tested")
        return ["## Spatial scan (discovery speakers)", "",
                f"Kulldorff's one-sided binomial scan over {scan['n_rectangles']} lat/lon rectangles, p over "
                f"whole-speaker permutations: {found}."]
    if discovery.method == "geodemographic":
        from asrtools.fairness.geodemographic import Rule

        rows = [[a["attribute"], a["kind"], Rule(**a["rule"]).describe() if a["rule"] else "-",
                 _pct(a["gap"]), _pct(a["wer_in"]), _pct(a["wer_out"]), str(a["n_speakers_in"] or "-")]
                for a in model["attributes"]]
        p = model["p_value"]
        return ["## Partitions by attribute (discovery speakers)", ""] + _md_table(
            ["attribute", "kind", "best partition (in side)", "gap (points)", "WER in %", "WER out %",
             "speakers in"], rows) + ["", f"Chosen: {Rule(**model['rule']).describe()}; selection-aware permutation p (in-sample) = "
                                          f"{'n/a' if p is None else f'{p:.3g}'}."]
    tried = ", ".join(f"k={k}: {v}" for k, v in sorted(model["k_tried"].items(), key=lambda kv: -int(kv[0])))
    return ["## k-means (discovery speakers)", "", f"k = {len(model['centroids'])}; smallest cluster per k tried: "
            f"{tried}."]


def cohorts_markdown(study: Study) -> str:
    """cohorts.md: held-out table and disparity, then the in-sample ones, then the method's details."""
    labelling = study.held_out.labelling
    folds = ", ".join(f"{f.n_discovery}/{f.n_measurement}" for f in labelling.folds)
    lines = [f"# Cohort discovery: {study.method}", "",
             f"Held out ({labelling.mode}): {len(labelling.labels)} measurement speakers, each labelled by a "
             f"discovery fitted without it (discovery/measurement speakers per fold: {folds}). Labels are ranks "
             "on the discovery speakers (rank1 = worst there); cohorts under the size floor are flagged and never "
             "ranked first.", ""]
    if study.unplaced:
        shown = ", ".join(study.unplaced[:20]) + (", ..." if len(study.unplaced) > 20 else "")
        lines += [f"{len(study.unplaced)} scored speakers could not be placed by {study.method} and are left out of "
                  f"discovery and measurement (`unplaced_speakers: exclude`): {shown}.", ""]
    lines += _measurement_md(study.held_out)
    lines += ["## In-sample (inflated)", "", f"*{IN_SAMPLE_NOTE}.*", ""] + _measurement_md(study.in_sample)
    lines += method_markdown(study.discovery)
    return "\n".join(lines) + "\n"


def write_study(study: Study, discovery_table: SpeakerTable, out_dir: Path, params: Mapping[str, Any]) -> None:
    """Write discovery.json, assignments.json, cohorts.json/.csv/.md and the method's PNG into `out_dir`.

    Args:
      study: the fitted and measured study.
      discovery_table: the speakers `study.discovery` was fitted on (drawn in the PNG).
      out_dir: the stage directory (each file written atomically).
      params: the stage parameters (recorded in cohorts.json).
    """
    from asrtools.fairness.plots import PLOT_NAMES, plot_discovery

    labelling = study.held_out.labelling
    atomic_write_json(out_dir / "discovery.json", study.discovery.to_dict())
    atomic_write_json(out_dir / "assignments.json", assignments_json(study.method, labelling.mode, labelling.labels))
    atomic_write_json(out_dir / "cohorts.json", cohorts_json(study, params))
    atomic_write_text(out_dir / "cohorts.csv", cohorts_csv(study))
    atomic_write_text(out_dir / "cohorts.md", cohorts_markdown(study))
    plot_discovery(study.discovery, discovery_table, out_dir / PLOT_NAMES[study.method])
