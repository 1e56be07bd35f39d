"""The fairness recipe's results page: cohort discovery methods compared, from JSON artifacts only.

Input: the output directories of `asrtools cohorts geo|geodemographic|auto`, one per
(method, system, mode), each holding `cohorts.json` (`asrtools.fairness.report.cohorts_json`:
the held-out cohort table `cohorts`, the designated comparison `designated` = rank1 (worst
on the discovery speakers) vs the best-ranked eligible cohort, `bottom_share`, the all-cohort
disparity `held_out`, the same in-sample (`in_sample_*`), `disjoint`, speaker counts) and
the stage's `.done.json` marker (its provenance). Nothing is recomputed.

The headline gap is the designated one: its cohorts were fixed on other speakers (the
other folds, or dev); it is signed (a reversed gap has a negative interval) and its p-value is
one-sided (`asrtools.fairness.crossfit`, `asrtools.fairness.study`).
The in-sample figures beside it come from cohorts chosen on the measured speakers.

`build_fairness_page` returns the Markdown page and its JSON twin; `asrtools report fairness`
writes them as a stage.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from asrtools.errors import ConfigError, DataError
from asrtools.scoring.report import read_json
from asrtools.scoring.tables import _md_table, format_p_value
from asrtools.utils.paths import display_path, relative_paths
from asrtools.utils.provenance import format_provenance

COHORTS_JSON = "cohorts.json"
SCHEMA = "asrtools.fairness_results"
SCHEMA_VERSION = 1
METHODS = ("geo", "geodemographic", "auto")
ALPHA = 0.05

# The paper's figures (METHODS.md §4-5): relative WER gap of the bottom cohort and its share.
PAPER = {"auto": {"label": "automatic (embedding cohorts)", "rel_gap": 0.650, "share": 0.100},
         "geodemographic": {"label": "geodemographic", "rel_gap": 0.417, "share": 0.008}}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One discovery run on the page: `METHOD:SYSTEM=DIR`."""

    method: str
    system: str
    directory: Path


def parse_run(spec: str) -> RunSpec:
    """`METHOD:SYSTEM=DIR` -> `RunSpec`; ConfigError naming the spec otherwise."""
    key, sep, directory = spec.partition("=")
    method, colon, system = key.partition(":")
    if not sep or not colon or not directory or not system:
        raise ConfigError(f"--run {spec!r}: expected METHOD:SYSTEM=DIR, e.g. auto:lstm=exp/lstm/cohorts_auto")
    if method not in METHODS:
        raise ConfigError(f"--run {spec!r}: unknown method {method!r} (known: {', '.join(METHODS)})")
    return RunSpec(method, system, Path(directory))


@dataclasses.dataclass
class Side:
    """One measurement (held-out or in-sample) of a run, as the page shows it (fractions)."""

    rel_gap: Optional[float]
    rel_gap_ci: Tuple[Optional[float], Optional[float]]
    p_value: Optional[float]
    reversed: bool
    share: Dict[str, float]
    cohorts: List[Dict[str, Any]]
    wer_bottom: Optional[float]
    wer_top: Optional[float]
    abs_gap: Optional[float] = None
    abs_gap_ci: Tuple[Optional[float], Optional[float]] = (None, None)

    @property
    def significant(self) -> bool:
        """One-sided test (H1: bottom worse) significant at ALPHA."""
        return self.p_value is not None and self.p_value < ALPHA


@dataclasses.dataclass
class Run:
    """A discovery run read from its directory."""

    spec: RunSpec
    mode: str
    disjoint: bool
    n_discovery: int
    n_measurement: int
    held_out: Side
    in_sample: Side
    provenance: Optional[Dict[str, Any]]


def _get(document: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in document:
        raise DataError(f"{path}: no field {key!r} (not an `asrtools cohorts` cohorts.json?)")
    return document[key]


def _side(document: Mapping[str, Any], prefix: str, path: Path) -> Side:
    """The designated comparison, shares and cohort rows of one measurement (`prefix` "" or "in_sample_")."""
    designated = _get(document, f"{prefix}designated", path)
    if "p_value" not in designated or "abs_gap_ci" not in designated:
        raise DataError(f"{path}: {prefix}designated has no signed interval / one-sided p-value (written by an "
                        "older asrtools: rerun the cohorts stage)")
    gap = designated.get("abs_gap")
    ci = designated.get("rel_gap_ci") or [None, None]
    return Side(rel_gap=designated.get("rel_gap"), rel_gap_ci=(ci[0], ci[1]), p_value=designated.get("p_value"),
                reversed=gap is not None and gap < 0, share=dict(_get(document, f"{prefix}bottom_share", path)),
                cohorts=list(_get(document, "cohorts" if not prefix else f"{prefix}cohorts", path)),
                wer_bottom=designated.get("wer_bottom"), wer_top=designated.get("wer_top"),
                abs_gap=gap, abs_gap_ci=tuple(designated.get("abs_gap_ci") or (None, None)))


def read_run(spec: RunSpec) -> Run:
    """Read `<dir>/cohorts.json` and the stage's marker; DataError naming the file when unusable."""
    path = spec.directory / COHORTS_JSON
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    method = _get(document, "method", path)
    if method != spec.method:
        raise DataError(f"{path}: made by `cohorts {method}`, but given as {spec.method}:{spec.system}")
    marker = spec.directory / ".done.json"
    provenance = json.loads(marker.read_text()).get("provenance") if marker.is_file() else None
    return Run(spec=spec, mode=_get(document, "mode", path), disjoint=bool(_get(document, "disjoint", path)),
               n_discovery=int(_get(document, "n_discovery_speakers", path)),
               n_measurement=int(_get(document, "n_measurement_speakers", path)),
               held_out=_side(document, "", path), in_sample=_side(document, "in_sample_", path),
               provenance=provenance)


# ---------------------------------------------------------------------------- formatting


def _pct(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}"


def _gap_cell(side: Side) -> str:
    """`25.0 [10.0, 40.0]`: the signed relative gap and its interval (a reversed gap is marked)."""
    low, high = side.rel_gap_ci
    ci = "" if low is None or high is None else f" [{_pct(low)}, {_pct(high)}]"
    return f"{_pct(side.rel_gap)}{ci}" + (" (reversed: top worse)" if side.reversed else "")


def _p_cell(side: Side) -> str:
    if side.p_value is None:
        return "n/a"
    return format_p_value(side.p_value) + (" *" if side.significant else "")


def _share_cell(side: Side) -> str:
    return " / ".join(_pct(side.share.get(k)) for k in ("speakers", "utterances", "errors"))


def _cohorts_cell(side: Side) -> str:
    """`N: rank1 12, rank2 40†, ...` (speakers per cohort; † under the size floor)."""
    parts = [f"{c['label']} {c['n_speakers']}" + ("†" if c.get("flags") else "") for c in side.cohorts]
    return f"{len(side.cohorts)}: " + ", ".join(parts)


def _mode_label(run: Run) -> str:
    if run.mode == "crossfit":
        return f"{len(run.held_out.cohorts)}-cohort crossfit"
    return run.mode


def results_table(runs: Sequence[Run]) -> List[str]:
    """method | system | held-out cohorts | held-out gap [CI] | p | share, and the in-sample figures beside."""
    header = ["method", "system", "measured on", "held-out cohorts (speakers; † flagged)",
              "held-out WER gap % [95% CI]", "p", "bottom share % (spk / utt / err)",
              "in-sample cohorts", "in-sample gap % [CI]", "in-sample p", "in-sample share %"]
    rows = []
    for run in runs:
        rows.append([run.spec.method, run.spec.system,
                     f"{run.mode}: {run.n_measurement} spk (discovery {run.n_discovery}"
                     f"{', disjoint' if run.disjoint else ', NOT disjoint'})",
                     _cohorts_cell(run.held_out), _gap_cell(run.held_out), _p_cell(run.held_out),
                     _share_cell(run.held_out), _cohorts_cell(run.in_sample), _gap_cell(run.in_sample),
                     _p_cell(run.in_sample), _share_cell(run.in_sample)])
    return _md_table(header, rows)


def cohort_sizes(runs: Sequence[Run]) -> List[str]:
    """Every held-out cohort's size and WER, flagged ones marked."""
    rows = []
    for run in runs:
        for c in run.held_out.cohorts:
            rows.append([run.spec.method, run.spec.system, run.mode, c["label"], c.get("description", ""),
                         str(c["n_speakers"]), str(c["n_utts"]), str(c["n_words"]), str(c["n_errors"]),
                         _pct(c.get("wer"), 2), ", ".join(c.get("flags") or []) or "-"])
    return _md_table(["method", "system", "mode", "cohort", "description", "speakers", "utts", "words", "errors",
                      "WER %", "flags (size floor)"], rows)


def _ci_contains(side: Side, value: float) -> Optional[bool]:
    low, high = side.rel_gap_ci
    return None if low is None or high is None else low <= value <= high


def _overlap(a: Side, b: Side) -> Optional[bool]:
    if None in a.rel_gap_ci or None in b.rel_gap_ci:
        return None
    return not (a.rel_gap_ci[1] < b.rel_gap_ci[0] or b.rel_gap_ci[1] < a.rel_gap_ci[0])


def paper_comparison(runs: Sequence[Run], system: str) -> List[str]:
    """Our held-out (crossfit) auto and geodemographic figures for `system` next to the paper's."""
    chosen = {r.spec.method: r for r in runs if r.spec.system == system and r.mode == "crossfit"
              and r.spec.method in PAPER}
    if not chosen:
        return [f"No crossfit auto or geodemographic run of system {system!r}: nothing to compare."]
    rows, notes = [], []
    for method, paper in PAPER.items():
        run = chosen.get(method)
        if run is None:
            rows.append([paper["label"], _pct(paper["rel_gap"]), _pct(paper["share"]), "not run", "", ""])
            continue
        side = run.held_out
        rows.append([paper["label"], _pct(paper["rel_gap"]), _pct(paper["share"]), _gap_cell(side), _p_cell(side),
                     f"{_pct(side.share.get('speakers'))} / {_pct(side.share.get('utterances'))}"])
        inside = _ci_contains(side, paper["rel_gap"])
        verdict = ("significant" if side.significant else "not significant") + f" at {ALPHA:g}"
        paper_note = ("n/a (no interval)" if inside is None else
                      "inside our 95% CI: consistent with it" if inside else
                      "outside our 95% CI: our gap differs from it significantly")
        notes.append(f"- {paper['label']}: our held-out gap is {_pct(side.rel_gap)}% ({verdict}); the paper's "
                     f"{_pct(paper['rel_gap'])}% is {paper_note}. Bottom-cohort share: ours "
                     f"{_pct(side.share.get('speakers'))}% of speakers, {_pct(side.share.get('utterances'))}% of "
                     f"utterances; the paper's {_pct(paper['share'])}%.")
    if len(chosen) == 2:
        a, b = chosen["auto"].held_out, chosen["geodemographic"].held_out
        overlap = _overlap(a, b)
        notes.append("- automatic vs geodemographic (ours): " + (
            "n/a (an interval is missing)" if overlap is None else
            "the 95% CIs overlap, so this check does not show the gaps differ (no paired test of the two was run)"
            if overlap else "the 95% CIs do not overlap: the gaps differ significantly (a conservative check)")
            + f"; the paper found automatic > geodemographic ({_pct(PAPER['auto']['rel_gap'])}% vs "
            f"{_pct(PAPER['geodemographic']['rel_gap'])}%), here {_pct(a.rel_gap)}% vs {_pct(b.rel_gap)}%.")
    return _md_table(["method", "paper gap %", "paper share %", f"ours ({system}, crossfit) gap % [95% CI]", "p",
                      "ours share % (spk / utt)"], rows) + [""] + notes


def provenance_lines(runs: Sequence[Run]) -> List[str]:
    """One line per distinct provenance of the runs' discovery stages (who made which numbers)."""
    by_line: Dict[str, List[str]] = {}
    for run in runs:
        by_line.setdefault(format_provenance(run.provenance), []).append(
            f"{run.spec.method}:{run.spec.system} ({run.mode})")
    return [f"- {line}: {', '.join(names)}" for line, names in by_line.items()]


def parse_mitigations(spec: str) -> Tuple[str, Path]:
    """`COHORTS=DIR` (an `asrtools mitigate results` directory) -> (COHORTS, DIR)."""
    name, sep, directory = spec.partition("=")
    if not sep or not name or not directory:
        raise ConfigError(f"--mitigations {spec!r}: expected COHORTS=DIR")
    return name, Path(directory)


@dataclasses.dataclass
class Mitigations:
    """The rows of one `asrtools mitigate results` stage (results.json), and where they came from."""

    name: str
    directory: Path
    rows: List[Dict[str, Any]]


def read_mitigations(name: str, directory: Path) -> Mitigations:
    """Read `DIR/results.json`; `DataError` naming the file when absent or malformed."""
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise DataError(f"{path}: no mitigation results (run `asrtools mitigate results` first)")
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise DataError(f"{path}: malformed mitigation results (no 'rows' list)")
    return Mitigations(name, Path(directory), list(document["rows"]))


def mitigation_sections(mitigations: Sequence[Mitigations]) -> List[str]:
    """One table per cohort grouping (`asrtools.fairness.mitigation.results.results_markdown`)."""
    from asrtools.fairness.mitigation.results import results_markdown

    lines: List[str] = []
    for m in mitigations:
        lines += ["", f"## Mitigations, measured by {m.name} cohorts", "",
                  f"From {display_path(m.directory / 'results.json')} (trade-off plot: "
                  f"{display_path(m.directory / 'tradeoff.png')}).", ""]
        lines += results_markdown(m.rows).rstrip("\n").split("\n")
    return lines


def build_fairness_page(runs: Sequence[Run], *, title: str, paper_system: str, command: str, generated: str,
                        mitigations: Sequence[Mitigations] = ()) -> Tuple[str, Dict[str, Any]]:
    """(Markdown page, JSON twin) of the discovery runs, and of the mitigation runs when given."""
    if not runs:
        raise ConfigError("no discovery runs given (--run METHOD:SYSTEM=DIR)")
    lines = [
        f"# {title}", "",
        f"Generated on {generated} by", "", "```", relative_paths(command), "```", "",
        "from the discovery stages' JSON artifacts (Sources below); nothing is recomputed here.", "",
        "**Held-out WER gap**: relative WER gap (bottom - top) / top between the pre-designated bottom cohort "
        "(rank1: the worst cohort on the *discovery* speakers) and the best-ranked eligible cohort of the same "
        "discovery, measured on speakers the discovery never saw (crossfit: pooled over the K held-out folds; "
        "dev-test: discovered on dev, measured on test); signed (negative: the bottom cohort did better on "
        "these speakers), with the 95% speaker-bootstrap interval of log(bottom / top) mapped back; p one-sided "
        "(H1: bottom worse), from permutations of whole speakers: of the whole pipeline in crossfit mode "
        f"(every fold re-discovered), of the labels in dev-test mode; * = significant at {ALPHA:g}. "
        "**Bottom share**: the bottom cohort's "
        "share of the measured speakers / utterances / word errors. **In-sample** columns: the same method "
        "fitted and measured on the same speakers: the cohorts were chosen on these errors, so these figures "
        "are inflated by selection and are shown only for comparison. † = cohort under the size floor "
        "(flagged; never ranked first).", "",
    ]
    lines += results_table(runs) + ["", "## Cohort sizes (held-out)", ""] + cohort_sizes(runs)
    lines += ["", "## Comparison with the paper", ""] + paper_comparison(runs, paper_system)
    lines += mitigation_sections(mitigations)
    lines += ["", "## Sources", ""] + [f"- {r.spec.method}:{r.spec.system} ({r.mode}): "
                                      f"{display_path(r.spec.directory / COHORTS_JSON)}"
                                      for r in runs]
    lines += ["", "## Provenance", "", f"Page built {generated}. The discovery stages ran on:", ""]
    lines += provenance_lines(runs)
    document = {"schema": SCHEMA, "version": SCHEMA_VERSION, "generated": generated,
                "command": relative_paths(command),
                "paper": PAPER, "paper_system": paper_system,
                "runs": [{"method": r.spec.method, "system": r.spec.system, "dir": display_path(r.spec.directory),
                          "mode": r.mode, "disjoint": r.disjoint, "n_discovery_speakers": r.n_discovery,
                          "n_measurement_speakers": r.n_measurement, "held_out": _side_dict(r.held_out),
                          "in_sample": _side_dict(r.in_sample), "provenance": r.provenance} for r in runs],
                "mitigations": [{"name": m.name, "dir": display_path(m.directory), "rows": m.rows}
                                for m in mitigations]}
    return "\n".join(lines) + "\n", document


def _side_dict(side: Side) -> Dict[str, Any]:
    out = dataclasses.asdict(side)
    out["rel_gap_ci"] = list(side.rel_gap_ci)
    out["significant"] = side.significant
    return out
