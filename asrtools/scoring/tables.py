"""JSON, CSV and Markdown renderings of cohort tables and system comparisons.

JSON documents carry a schema name and version (``asrtools.cohorts`` / ``asrtools.compare``,
version 2) and WERs as fractions; CSV and Markdown show the same numbers (Markdown in
percent). Rows are in a fixed order, so outputs are byte-identical for the same inputs
and seed.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from asrtools.scoring.cohorts import MISSING, CohortGrouping, CohortStats, Grouping, describe_missing
from asrtools.scoring.disparity import Disparity
from asrtools.scoring.compare import NIST_TESTS, CohortChange, Comparison

COHORTS_SCHEMA = "asrtools.cohorts"
COMPARE_SCHEMA = "asrtools.compare"
SCHEMA_VERSION = 2


def cohorts_json(overall: CohortStats, groupings: Sequence[CohortGrouping], params: Dict[str, Any]) -> Dict[str, Any]:
    """The `cohorts.json` document."""
    return {
        "schema": COHORTS_SCHEMA,
        "version": SCHEMA_VERSION,
        "units": "WER and rates are fractions of reference words (0.1 = 10%)",
        "params": params,
        "overall": overall.to_dict(),
        "groupings": [g.to_dict() for g in groupings],
    }


def compare_json(comparison: Comparison, params: Dict[str, Any]) -> Dict[str, Any]:
    """The `compare.json` document."""
    return {
        "schema": COMPARE_SCHEMA,
        "version": SCHEMA_VERSION,
        "units": "WER and differences are fractions of reference words; diff = WER_B - WER_A",
        "params": params,
        "systems": {"a": comparison.name_a, "b": comparison.name_b},
        "overall": comparison.overall.to_dict(),
        "groupings": [g.to_dict() for g in comparison.groupings],
    }


def _num(value: Optional[float], digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.{digits}f}"


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


COHORT_CSV_HEADER = (
    "by", "cohort", "n_speakers", "n_utts", "n_words", "n_errors", "wer", "ci_speaker_low", "ci_speaker_high",
    "ci_utterance_low", "ci_utterance_high", "sub_rate", "del_rate", "ins_rate", "speaker_wer_mean",
    "speaker_wer_median", "speaker_wer_sd", "share_speakers", "share_utts", "share_errors", "flags", "not_tested",
)


def _cohort_csv_row(by: str, c: CohortStats) -> List[Any]:
    return [
        by, c.label, c.n_speakers, c.n_utts, c.n_words, c.n_errors, _num(c.wer),
        _num(c.ci_speaker[0]), _num(c.ci_speaker[1]), _num(c.ci_utterance[0]), _num(c.ci_utterance[1]),
        _num(c.sub_rate), _num(c.del_rate), _num(c.ins_rate), _num(c.speaker_wer_mean),
        _num(c.speaker_wer_median), _num(c.speaker_wer_sd), _num(c.share_speakers), _num(c.share_utts),
        _num(c.share_errors), ";".join(_flags(c)), c.not_tested or "",
    ]


def _flags(c: Any) -> List[str]:
    """A cohort's size flags, plus `attribute missing` for the `(missing)` cohort."""
    return list(c.flags) + (["attribute missing"] if MISSING in c.values.values() else [])


def cohorts_csv(overall: CohortStats, groupings: Sequence[CohortGrouping]) -> str:
    """One CSV row per cohort (column `by` names the grouping; the first row is `all`)."""
    rows = [_cohort_csv_row("", overall)]
    for grouping in groupings:
        rows.extend(_cohort_csv_row(grouping.name, c) for c in grouping.cohorts)
    return _csv(COHORT_CSV_HEADER, rows)


def _pct(value: Optional[float], digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def _ci(bounds: Tuple[float, float], digits: int = 2) -> str:
    if not all(math.isfinite(b) for b in bounds):
        return "n/a"
    return f"[{100 * bounds[0]:.{digits}f}, {100 * bounds[1]:.{digits}f}]"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in rows]
    return lines


def _cohort_md_row(c: CohortStats) -> List[str]:
    return [
        c.label, str(c.n_speakers), str(c.n_utts), str(c.n_words), _pct(c.wer), c.not_tested or _ci(c.ci_speaker),
        c.not_tested or _ci(c.ci_utterance), f"{_pct(c.sub_rate)} / {_pct(c.del_rate)} / {_pct(c.ins_rate)}",
        f"{_pct(c.speaker_wer_mean)} / {_pct(c.speaker_wer_median)} / {_pct(c.speaker_wer_sd)}",
        ", ".join(_flags(c)),
    ]


def missing_markdown(grouping: Grouping, n_speakers: int) -> List[str]:
    """Lines saying which speakers lack a grouping field (nothing when none does)."""
    if not grouping.missing:
        return []
    lines = [f"- {line}; they form the cohort {MISSING}, shown but left out of the gap test."
             for line in describe_missing(grouping.missing, n_speakers)]
    return ["Missing attributes:", "", *lines, ""]


def format_p_value(value: Optional[float]) -> str:
    """A p-value for a table: three decimals, "< 0.001" below that, "n/a" when missing or NaN."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if value >= 0.001 else "< 0.001"



def disparity_markdown(d: Disparity) -> List[str]:
    """The disparity summary of one grouping: the numbers, then one line on what they mean."""
    level_pct = f"{100 * d.level:g}%"
    rel = f"{_pct(d.rel_gap, 1)}% {_ci(d.rel_gap_ci, 1)}" if d.rel_gap is not None else "n/a (best WER is 0)"
    ratio = f"{d.ratio:.2f}" if d.ratio is not None else "n/a"
    if math.isfinite(d.p_value):
        verdict = "significant" if d.p_value < 1.0 - d.level else "not significant"
        test = (f"permutation p = {format_p_value(d.p_value)} ({verdict} at {1.0 - d.level:g}; studentised max-t "
                f"p = {format_p_value(d.p_value_max_t)}; {d.n_permutations} permutations)")
    else:
        test = "no permutation test (--permutations 0)"
    low_errors = (f" Few errors (flagged, still compared): {', '.join(d.low_error_cohorts)}."
                  if d.low_error_cohorts else "")
    return [
        f"Disparity over {d.n_cohorts} {d.basis}: worst **{d.worst}** ({_pct(d.wer_worst)}%), "
        f"best **{d.best}** ({_pct(d.wer_best)}%); absolute gap {_pct(d.abs_gap)} points "
        f"{_ci(d.abs_gap_ci)}, relative gap {rel}, ratio {ratio}; {test}; cohort WER mean "
        f"{_pct(d.mean_across)}%, SD {_pct(d.std_across)} points. Worst cohort's share: "
        f"{_pct(d.worst_share_speakers, 1)}% of speakers, {_pct(d.worst_share_utts, 1)}% of utterances, "
        f"{_pct(d.worst_share_errors, 1)}% of errors.{low_errors}",
        "",
        f"*The {level_pct} interval is for the gap between the best and worst cohort of the population these "
        "speakers come from (best and worst re-chosen, not these two labels; simultaneous over all pairs, so "
        "it is 0 at the low end unless some pair differs); the p-value is the share of random relabellings of "
        "whole speakers that give a gap at least this large (small = the cohorts really differ). "
        "Details: docs/statistics.md.*",
    ]


def cohorts_markdown(overall: CohortStats, groupings: Sequence[CohortGrouping], level: float) -> str:
    """Markdown: one table per grouping (worst WER first) plus its disparity summary."""
    level_pct = f"{100 * level:g}%"
    header = [
        "cohort", "speakers", "utts", "words", "WER %", f"{level_pct} CI (speakers)", f"{level_pct} CI (utts)",
        "sub / del / ins %", "speaker WER mean / median / SD %", "flags",
    ]
    lines = ["# WER by cohort", "", f"Overall WER {_pct(overall.wer)}% "
             f"{f'(no interval: {overall.not_tested})' if overall.not_tested else _ci(overall.ci_speaker)} "
             f"({overall.n_speakers} speakers, {overall.n_utts} utterances, {overall.n_words} words).", ""]
    for grouping in groupings:
        lines += [f"## By {grouping.name}", ""]
        lines += _md_table(header, [_cohort_md_row(c) for c in grouping.cohorts])
        lines.append("")
        lines += missing_markdown(grouping, overall.n_speakers)
        d = grouping.disparity
        if d is None:
            untested = [f"{c.label} ({c.n_speakers})" for c in grouping.cohorts if c.not_tested is not None]
            reason = f"; too few speakers: {', '.join(untested)}" if untested else ""
            lines += [f"No gap test: fewer than two cohorts with enough speakers and reference words{reason}.", ""]
            continue
        lines += disparity_markdown(d) + [""]
    return "\n".join(lines)


COMPARE_CSV_HEADER = (
    "by", "cohort", "n_speakers", "n_utts", "n_words", "wer_a", "wer_b", "diff", "rel_diff", "ci_diff_low",
    "ci_diff_high", "ci_a_low", "ci_a_high", "ci_b_low", "ci_b_high", "p_bootstrap", "p_bootstrap_holm",
    "mapsswe_segments", "mapsswe_z", *(f"p_{name}{suffix}" for name in NIST_TESTS for suffix in ("", "_holm")),
    "significant", "significant_mapsswe", "verdict", "flags",
)


def _change_csv_row(by: str, c: CohortChange) -> List[Any]:
    p_values = c.p_values()
    mapsswe = c.mapsswe
    return [
        by, c.label, c.n_speakers, c.n_utts, c.n_words, _num(c.wer_a), _num(c.wer_b), _num(c.diff),
        _num(c.rel_diff), _num(c.ci_diff[0]), _num(c.ci_diff[1]), _num(c.ci_a[0]), _num(c.ci_a[1]),
        _num(c.ci_b[0]), _num(c.ci_b[1]), _num(c.p_bootstrap), _num(c.p_bootstrap_holm),
        mapsswe.n_segments if mapsswe is not None else "", _num(mapsswe.z) if mapsswe is not None else "",
        *(_num(v) for name in NIST_TESTS for v in (p_values[name], c.p_tests_holm.get(name, float("nan")))),
        int(c.significant), int(c.significant_mapsswe), c.verdict, ";".join(_flags(c)),
    ]


def compare_csv(comparison: Comparison) -> str:
    """One CSV row per cohort and grouping (the first row is `all`)."""
    rows = [_change_csv_row("", comparison.overall)]
    for grouping in comparison.groupings:
        rows.extend(_change_csv_row(grouping.name, c) for c in grouping.cohorts)
    return _csv(COMPARE_CSV_HEADER, rows)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _change_md_row(c: CohortChange) -> List[str]:
    interval = "(no interval)" if c.not_tested is not None else _ci(c.ci_diff)
    diff = f"{100 * c.diff:+.2f} {interval}" if c.diff is not None else "n/a"
    rel = f"{100 * c.rel_diff:+.1f}" if c.rel_diff is not None else "n/a"
    mark = " *" if c.significant else ""
    p = c.p_values()
    return [
        c.label + mark, str(c.n_speakers), str(c.n_words), _pct(c.wer_a), _pct(c.wer_b), diff, rel,
        _p(c.p_bootstrap), _p(c.p_bootstrap_holm), f"{_p(p['mapsswe'])} / {_p(c.p_tests_holm.get('mapsswe', float('nan')))}",
        " / ".join(_p(p[name]) for name in ("sign", "wilcoxon", "mcnemar")), c.verdict, ", ".join(_flags(c)),
    ]


def compare_markdown(comparison: Comparison, level: float, alpha: float) -> str:
    """Markdown: the overall comparison and one table per grouping."""
    level_pct = f"{100 * level:g}%"
    header = [
        "cohort", "speakers", "words", "WER A %", "WER B %", f"B-A points {level_pct} CI", "rel. %",
        "p boot", "p boot (Holm)", "p MAPSSWE / Holm", "p sign / Wilcoxon / McNemar", "verdict", "flags",
    ]
    lines = [
        "# System comparison",
        "",
        f"A = `{comparison.name_a}`, B = `{comparison.name_b}`; differences are WER_B - WER_A "
        f"(negative = B better). `*` and the verdict: paired speaker-bootstrap p < {alpha:g} after Holm's "
        "adjustment over the cohorts of the grouping that were tested (raw p beside it). MAPSSWE, sign, Wilcoxon "
        "and McNemar are NIST sc_stats' tests (matched-pairs segments, speaker WER, utterance errors). A cohort "
        "with fewer speakers than the size floor (--min-speakers) gets no interval, p-value or verdict.",
        "",
    ]
    lines += _md_table(header, [_change_md_row(comparison.overall)])
    lines.append("")
    for grouping in comparison.groupings:
        lines += [f"## By {grouping.name}", ""]
        lines += _md_table(header, [_change_md_row(c) for c in grouping.cohorts])
        changed = [c.label for c in grouping.cohorts if c.significant]
        n_tests = sum(c.not_tested is None for c in grouping.cohorts)
        untested = [c.label for c in grouping.cohorts if c.not_tested is not None]
        lines += ["", f"Changed significantly: {', '.join(changed) if changed else 'none'} "
                      f"({n_tests} cohort(s) tested, Holm over these)."]
        if untested:
            lines.append(f"Not tested (fewer speakers than the size floor): {', '.join(untested)}.")
        lines.append("")
        lines += missing_markdown(grouping, comparison.overall.n_speakers)
    return "\n".join(lines)
