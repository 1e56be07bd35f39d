"""The speaker-verification results page (`asrtools sv results`), built from stage artifacts only.

For every system (an `asrtools score sv` directory) it reads `sv.json`, the scores file it
names and the supervisions (for the speaker bootstrap), and, following the artifacts'
own records (sv.json -> score.json -> embed.json -> checkpoint -> the training stage's
`.done.json` and `train_summary.json`), how the system was trained: parameters, threads,
training time (the trainer's `train_seconds`, summed over resumed runs). Paths on the page
are relative to the working directory (`asrtools.utils.paths`). The table gives EER,
minDCF(0.01), EER female / male, gender gap and the std of the region EERs, each with its
speaker-bootstrap CI, and for every non-reference system its change against the baseline
with a paired speaker-bootstrap CI and p-value (both systems' metrics computed on the same
speaker draws of the same trials): relative, or in points where the baseline is near 0
(`relative_is_stable`).
The page names the commit, torch version, CPU and threads that produced it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.errors import DataError
from asrtools.scoring.bootstrap import rng_for
from asrtools.scoring.io import read_speaker_attributes
from asrtools.scoring.sv import DcfParams, speaker_draws
from asrtools.scoring.sv_report import (
    SV_JSON,
    SvOptions,
    build_trial_set,
    check_same_trials,
    checkpoint_selection,
    evaluate,
    paired_difference,
    selection_lines,
    utterance_speakers,
)
from asrtools.sv.score import read_scores
from asrtools.utils.paths import display_path
from asrtools.utils.provenance import format_provenance
from asrtools.utils.provenance import provenance as run_provenance

PAPER = {"eer": -0.077, "gender_gap": -0.17}  # Jin et al.: relative change of the best ARW variant
GENDER_GAP = "gender.gender_gap"
REGION_STD = "region.eer_std"


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


def _maybe_json(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(sv_doc: Dict[str, Any]) -> Dict[str, Any]:
    """How a system was made, from the artifacts' own records (missing links give None)."""
    out: Dict[str, Any] = {"model": None, "params": None, "train_threads": None, "train_seconds": None,
                           "train_steps": None, "checkpoint": None, "norm": None}
    score_dir = Path(sv_doc["scores"]).parent
    score_json = _maybe_json(score_dir / "score.json")
    if not score_json:
        return out
    out["norm"] = score_json.get("norm")
    embed = _maybe_json(Path(score_json["embeddings"]) / "embed.json")
    if not embed:
        return out
    out.update(model=embed.get("model"), params=embed.get("params"), checkpoint=embed.get("checkpoint"))
    if embed.get("checkpoint"):
        exp_dir = Path(embed["checkpoint"]).parent
        marker = _maybe_json(exp_dir / ".done.json") or {}
        config = marker.get("params", {}).get("config", {})
        out["train_threads"] = config.get("num_threads")
        out["arw"] = config.get("arw", {}).get("variant")
        summary = _maybe_json(exp_dir / "train_summary.json") or {}
        # The trainer's own sum over every resumed run; the marker's seconds are the last run's only.
        out["train_seconds"] = summary.get("train_seconds")
        out["train_steps"] = summary.get("steps")
        out["selection"] = checkpoint_selection(summary) if summary else None
    return out


def _metric_paths(doc: Dict[str, Any]) -> Dict[str, str]:
    """Column -> path in sv.json (and in the replicate dict)."""
    groups = doc["groupings"]
    paths = {"eer": "overall.eer", "mindcf": "overall.mindcf_0.01",
             "eer_female": "gender.female.eer", "eer_male": "gender.male.eer",
             "gender_gap": GENDER_GAP, "region_std": REGION_STD}
    if "gender" not in groups:
        for key in ("eer_female", "eer_male", "gender_gap"):
            paths.pop(key)
    if "region" not in groups:
        paths.pop("region_std")
    return paths


def _doc_node(doc: Dict[str, Any], path: str) -> Any:
    """The sv.json node of a metric path: `overall.<metric>` (the metric name may itself contain a
    dot, e.g. `mindcf_0.01`), `<field>.<group>.eer`, or `<field>.<statistic>`."""
    head, _, rest = path.partition(".")
    if head == "overall":
        return doc["overall"].get(rest)
    grouping = doc["groupings"].get(head, {})
    parts = rest.split(".")
    if len(parts) == 2:
        group = grouping.get("groups", {}).get(parts[0])
        return group.get(parts[1]) if isinstance(group, dict) else None
    return grouping.get(parts[0])


def _doc_value(doc: Dict[str, Any], path: str) -> Optional[float]:
    node = _doc_node(doc, path)
    return node.get("value") if isinstance(node, dict) else node


def _doc_ci(doc: Dict[str, Any], path: str) -> List[Optional[float]]:
    node = _doc_node(doc, path)
    return node.get("ci", [None, None]) if isinstance(node, dict) else [None, None]


def build_results(systems: Sequence[Tuple[str, Path]], baseline: str, references: Sequence[str],
                  title: str) -> Tuple[str, Dict[str, Any]]:
    """The Markdown page and its JSON twin (see the module docstring)."""
    docs = {name: _read_json(Path(path) / SV_JSON) for name, path in systems}
    base_doc = docs[baseline]
    p = base_doc["params"]
    dcfs = [DcfParams(0.01)]
    options = SvOptions(list(p["groupings"]), dcfs, p.get("gender_field", "gender"), int(p["n_boot"]),
                        float(p["level"]), int(p["seed"]))
    if options.n_boot < 1:
        raise DataError(f"{baseline}: scored without bootstrap (--bootstrap 0); paired comparisons need replicates")
    supervisions = Path(base_doc["supervisions"])
    utt2spk = utterance_speakers(supervisions)
    attributes = read_speaker_attributes(supervisions)
    base_trials, _ = read_scores(Path(base_doc["scores"]))
    replicates: Dict[str, Dict[str, np.ndarray]] = {}
    counts = None
    for name, _ in systems:
        trial_list, scores = read_scores(Path(docs[name]["scores"]))
        check_same_trials(base_trials, trial_list, baseline, name)
        trial_set = build_trial_set(trial_list, scores, utt2spk)
        if counts is None:
            counts = speaker_draws(len(trial_set.speakers), options.n_boot, rng_for(options.seed, "sv-speakers"))
        replicates[name] = evaluate(trial_set, attributes, options, counts)["replicates"]
    paths = _metric_paths(base_doc)
    rows = []
    for name, path in systems:
        doc = docs[name]
        row: Dict[str, Any] = {"name": name, "dir": display_path(path), "reference": name in references,
                               "provenance": provenance(doc), "metrics": {}, "vs_baseline": {}}
        for column, mpath in paths.items():
            row["metrics"][column] = {"value": _doc_value(doc, mpath), "ci": _doc_ci(doc, mpath)}
            if name != baseline and name not in references and mpath in replicates[name]:
                diff = paired_difference(_doc_value(base_doc, mpath), _doc_value(doc, mpath),
                                         replicates[baseline][mpath], replicates[name][mpath], options.level)
                row["vs_baseline"][column] = {**vars(diff), "baseline_ci": _doc_ci(base_doc, mpath)}
        row["groups"] = {field: {g: v["eer"] for g, v in grouping["groups"].items()}
                         for field, grouping in doc["groupings"].items()}
        rows.append(row)
    group_sizes = {field: {g: {k: v[k] for k in ("speakers", "target", "nontarget")}
                           for g, v in grouping["groups"].items()}
                   for field, grouping in base_doc["groupings"].items()}
    doc = {"title": title, "baseline": baseline, "trials": len(base_trials), "n_boot": options.n_boot,
           "level": options.level, "made_by": run_provenance(), "paper": PAPER, "rows": rows,
           "trial_list": display_path(base_doc["scores"]), "supervisions": display_path(supervisions),
           "group_sizes": group_sizes}
    return results_markdown(doc), doc


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def _cell(m: Dict[str, Any], scale: float = 100.0, fmt: str = ".2f") -> str:
    v, (lo, hi) = m.get("value"), m.get("ci", [None, None])
    if v is None:
        return "n/a"
    ci = "" if lo is None or hi is None else f" [{scale * lo:{fmt}}, {scale * hi:{fmt}}]"
    return f"{scale * v:{fmt}}{ci}"


def relative_is_stable(d: Dict[str, Any]) -> bool:
    """Whether the baseline's own interval keeps it at least half its value (docs/statistics.md, "Relative
    changes"): only then does a relative change have a usable interval; near a zero baseline the ratio's
    replicates explode (e.g. [-97%, +1911%])."""
    a, (low, _) = d.get("a"), d.get("baseline_ci") or [None, None]
    return a is not None and a > 0 and low is not None and low >= 0.5 * a


def _change(d: Optional[Dict[str, Any]]) -> str:
    """`-7.7% [-12.0, -3.1], p=0.002`, or, when the baseline is near 0, `+0.41 pp [-0.20, +1.10] (+35%), p=...`."""
    if not d or d.get("relative") is None:
        return "–"
    p = d.get("p_value")
    tail = "" if p is None else f", p={p:.3f}"
    if relative_is_stable(d):
        lo, hi = d["relative_ci"]
        ci = "" if lo is None or hi is None else f" [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        return f"{100 * d['relative']:+.1f}%{ci}{tail}"
    lo, hi = d.get("ci") or [None, None]
    ci = "" if lo is None or hi is None else f" [{100 * lo:+.2f}, {100 * hi:+.2f}]"
    return f"{100 * d['diff']:+.2f} pp{ci} ({100 * d['relative']:+.0f}%){tail}"


def results_markdown(doc: Dict[str, Any]) -> str:
    """RESULTS.md of `build_results`' JSON."""
    level = 100 * doc["level"]
    lines = [
        f"# {doc['title']}", "",
        f"Generated by `asrtools sv results` ({format_provenance(doc.get('made_by'))}; training threads per "
        f"system below), "
        f"from the `asrtools score sv` artifacts listed under Sources.", "",
        f"{doc['trials']} trials (`{doc['trial_list']}`). EER: ROC convex hull; minDCF normalised, P_target 0.01, "
        f"C_miss = C_fa = 1; EER female / male on within-gender trials; gender gap = |EER_male - EER_female|; "
        f"region std = population std of the per-region EERs (within-region trials), corrected for each "
        f"region's sampling noise (the gender gap's CI comes from the signed gap's). All in %, with "
        f"{level:g}% speaker-bootstrap CIs ({doc['n_boot']} replicates: speakers resampled, trials among the drawn "
        f"speakers kept). Change vs `{doc['baseline']}`: relative, paired over the same speaker draws, with its CI "
        f"and two-sided bootstrap p-value; where the baseline's own interval reaches below half its value (a gap "
        f"near 0) the change is given in points with its CI and the relative change without one "
        f"(docs/statistics.md, \"Relative changes\").", "",
        "| system | EER % | minDCF(0.01) | EER female % | EER male % | gender gap pp | region std pp |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in doc["rows"]:
        m = row["metrics"]
        name = row["name"] + (" (reference)" if row["reference"] else "") + (
            " (baseline)" if row["name"] == doc["baseline"] else "")
        lines.append(f"| {name} | {_cell(m['eer'])} | {_cell(m['mindcf'], 1.0, '.4f')} | "
                     f"{_cell(m.get('eer_female', {}))} | {_cell(m.get('eer_male', {}))} | "
                     f"{_cell(m.get('gender_gap', {}))} | {_cell(m.get('region_std', {}))} |")
    compared = [r for r in doc["rows"] if r["vs_baseline"]]
    if compared:
        lines += ["", f"Relative change vs `{doc['baseline']}` [{level:g}% CI], paired speaker-bootstrap p-value:", "",
                  "| system | EER | minDCF(0.01) | EER female | EER male | gender gap | region std |",
                  "|---|---|---|---|---|---|---|"]
        for row in compared:
            v = row["vs_baseline"]
            lines.append(f"| {row['name']} | " + " | ".join(_change(v.get(k)) for k in
                         ("eer", "mindcf", "eer_female", "eer_male", "gender_gap", "region_std")) + " |")
        lines += ["", f"Paper (Jin et al., VoxCeleb, best variant): EER {100 * doc['paper']['eer']:+.1f}%, "
                      f"gender gap {100 * doc['paper']['gender_gap']:+.0f}%. Here:", ""]
        for row in compared:
            lines.append("- " + _verdict(row))
    lines += ["", "## EER % by group (within-group trials) [speaker-bootstrap CI]", "",
              "| grouping | group | speakers | target | non-target | " + " | ".join(r["name"] for r in doc["rows"]) + " |",
              "|---|---|---:|---:|---:|" + "---|" * len(doc["rows"])]
    for field, groups in doc["group_sizes"].items():
        for group, size in groups.items():
            cells = [_cell(r["groups"].get(field, {}).get(group, {})) for r in doc["rows"]]
            lines.append(f"| {field} | {group} | {size['speakers']} | {size['target']} | {size['nontarget']} | "
                         + " | ".join(cells) + " |")
    lines += selection_lines(doc["rows"])
    lines += ["", "## Sources", "", "| system | sv.json | model | params | training threads | training time | steps |",
              "|---|---|---|---:|---:|---:|---:|"]
    for row in doc["rows"]:
        pv = row["provenance"]
        secs = pv.get("train_seconds")
        lines.append(f"| {row['name']} | `{row['dir']}/sv.json` | {pv.get('model') or 'n/a'}"
                     f"{' ' + display_path(pv['checkpoint']) if pv.get('checkpoint') else ''} | "
                     f"{pv['params'] if pv.get('params') else 'n/a'} | {pv.get('train_threads') or 'n/a'} | "
                     f"{'n/a' if secs is None else f'{secs / 60:.1f} min'} | {pv.get('train_steps') or 'n/a'} |")
    return "\n".join(lines) + "\n"


def _verdict(row: Dict[str, Any]) -> str:
    parts = []
    for key, label in (("eer", "EER"), ("gender_gap", "gender gap")):
        d = row["vs_baseline"].get(key)
        if not d or d.get("relative") is None:
            parts.append(f"{label}: n/a")
            continue
        p = d.get("p_value")
        significant = p is not None and p < 1 - 0.95 + 1e-12
        direction = "lower" if d["relative"] < 0 else "higher"
        parts.append(f"{label} {direction} by {abs(100 * d['relative']):.1f}% "
                     f"({'significant' if significant else 'not significant'}, p={p:.3f})")
    return f"`{row['name']}`: " + "; ".join(parts)
