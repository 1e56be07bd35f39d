"""The `pairwise` section: does system B beat system A? (e.g. ConvRNN-T vs the LSTM RNN-T)

Options (`PairwiseOptions`): the systems `a` (baseline) and `b`, the WER artifacts `wers`
to compare them on (kind `wer`, e.g. `[test, test_streaming]`), optionally a size field
(`size: info.params`) whose ratio B/A must lie within `1 ± size_tolerance` for a verdict,
and the bootstrap settings.

For each WER artifact, every run's WER directory (utts.jsonl beside wer.json) is read and
the systems are compared with `asrtools.scoring.multirun.compare_run_averaged`: a system
with several runs (seeds) enters with its run-averaged errors per utterance; the paired
speaker bootstrap gives the CI of WER_B − WER_A and a two-sided p-value. p-values are
Holm-adjusted over the section's WERs, and a WER "changed significantly" when its adjusted
p-value is below alpha. The answer is `yes` when B is significantly better on every WER,
`no` when it is significantly worse on any, `not shown` otherwise; `not comparable` when
the sizes differ too much, `undecided` when nothing could be tested (missing utts.jsonl,
different test sets), `n/a` when a system is not on the page.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from asrtools.errors import ConfigError, DataError
from asrtools.report.artifacts import field_reference
from asrtools.report.data import ReportData, SystemData
from asrtools.report.sections import Section, SectionOutput, register_section
from asrtools.scoring.compare import BETTER, UNCHANGED, WORSE
from asrtools.scoring.report import UTTS_JSONL

NOT_TESTED = "not tested"


@dataclasses.dataclass
class PairwiseOptions:
    """Options of a `pairwise` section.

    Attributes:
      a: the baseline system's name.
      b: the system compared with it (differences are B − A).
      wers: WER artifacts (kind `wer`) to compare on.
      size: `ARTIFACT.FIELD` of the systems' size (e.g. `info.params`); empty: no size condition.
      size_tolerance: a verdict needs `|size_B / size_A − 1| <= size_tolerance`.
      n_boot: bootstrap replicates.
      seed: bootstrap seed.
      alpha: significance level (of the Holm-adjusted p-values).
      ci: confidence level of the intervals.
    """

    a: str
    b: str
    wers: List[str]
    size: str = ""
    size_tolerance: float = 0.25
    n_boot: int = 1000
    seed: int = 0
    alpha: float = 0.05
    ci: float = 0.95

    def validate(self) -> None:
        if self.a == self.b:
            raise ValueError(f"a and b are the same system {self.a!r}")
        if not self.wers:
            raise ValueError("wers: give at least one WER artifact")
        if self.n_boot < 1:
            raise ValueError("n_boot must be >= 1 (the test is a bootstrap)")
        if not 0.0 < self.alpha < 1.0 or not 0.5 <= self.ci < 1.0 or self.size_tolerance < 0:
            raise ValueError("need 0 < alpha < 1, 0.5 <= ci < 1 and size_tolerance >= 0")


@dataclasses.dataclass
class WerComparison:
    """B vs A on one WER artifact.

    Attributes:
      wer: the WER artifact (its name in the config).
      result: the run-averaged comparison (None when not tested).
      p_holm: Holm-adjusted p-value over the section's tested WERs.
      verdict: `better` / `worse` (B relative to A) / `no significant change` / `not tested`.
      note: why it was not tested.
    """

    wer: str
    result: Any = None
    p_holm: Optional[float] = None
    verdict: str = NOT_TESTED
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"wer": self.wer, **(self.result.to_dict() if self.result else {}), "p_holm": self.p_holm,
                "verdict": self.verdict, "note": self.note}


def _pct(value: Optional[float]) -> str:
    return f"{100 * value:.2f}" if value is not None else "n/a"


def _signed_pct(value: float) -> str:
    return f"{100 * value:+.2f}"


def _p(value: Optional[float]) -> str:
    return f"{value:.3g}" if value is not None and math.isfinite(value) else "n/a"


@register_section
class PairwiseSection(Section):
    """System B against system A on one or more WERs (see the module docstring)."""

    kind = "pairwise"
    Options = PairwiseOptions
    default_title = "Pairwise comparison"

    def check(self, where: str) -> None:
        artifacts = self.config.artifacts
        for name in self.options.wers:
            spec = artifacts.get(name)
            if spec is None or spec.kind != "wer":
                raise ConfigError(f"{where}: wers: {name!r} is not a wer artifact of the config "
                                  f"(wer artifacts: {', '.join(n for n, a in artifacts.items() if a.kind == 'wer')})")
        if self.options.size:
            _, field = field_reference(self.options.size, self.config.kinds(), f"{where}: size")
            if not field.numeric:
                raise ConfigError(f"{where}: size: {self.options.size!r} is not a number")

    def _utts_paths(self, system: SystemData, on: str) -> List[Optional[Path]]:
        """utts.jsonl of each run's WER directory for artifact `on` (None where missing)."""
        paths: List[Optional[Path]] = []
        for artifact in system.artifacts.get(on, []):
            utts = artifact.path.parent / UTTS_JSONL if artifact is not None else None
            paths.append(utts if utts is not None and utts.is_file() else None)
        return paths

    def inputs(self, data: ReportData) -> Dict[str, Path]:
        found = {}
        for system in filter(None, (data.system(self.options.a), data.system(self.options.b))):
            for on in self.options.wers:
                for index, path in enumerate(self._utts_paths(system, on)):
                    if path is not None:
                        found[f"{system.name}.run{index}.{on}.utts"] = path
        return found

    def _size(self, system: SystemData) -> Optional[float]:
        artifact, _, field = self.options.size.partition(".")
        values = [v for v in system.values(artifact, field) if v is not None]
        return sum(values) / len(values) if values else None

    def _compare(self, a: SystemData, b: SystemData, on: str) -> WerComparison:
        from asrtools.scoring.cohorts import UtteranceTable
        from asrtools.scoring.multirun import compare_run_averaged
        from asrtools.scoring.report import read_wer_dir

        paths_a, paths_b = self._utts_paths(a, on), self._utts_paths(b, on)
        if not paths_a or not paths_b or None in paths_a + paths_b:
            return WerComparison(on, note=f"a run has no {on} WER directory with {UTTS_JSONL}")
        runs = [[UtteranceTable.from_report(read_wer_dir(p.parent)) for p in paths] for paths in (paths_a, paths_b)]
        o = self.options
        try:
            result = compare_run_averaged(runs[0], runs[1], o.n_boot, o.seed, o.ci, (a.name, b.name))
        except DataError as err:  # different utterances or references
            return WerComparison(on, note=str(err))
        return WerComparison(on, result)

    def build(self, data: ReportData) -> SectionOutput:
        o = self.options
        a, b = data.system(o.a), data.system(o.b)
        if a is None or b is None:
            absent = o.a if a is None else o.b
            text = f"Not applicable: no system named {absent!r} on this page."
            return SectionOutput([text], {"a": o.a, "b": o.b, "answer": "n/a", "text": text}, text)
        size = self._size_line(a, b)
        comparisons = [self._compare(a, b, on) for on in o.wers]
        self._adjust(comparisons)
        answer, text = self._answer(a.name, b.name, comparisons, size)
        lines = [size[2], "", *self._table(a, b, comparisons), "", f"**Answer: {answer}**: {text}", "",
                 self._method_note(a, b, comparisons)]
        document = {"a": a.name, "b": b.name, "size": {"field": o.size or None, "a": size[0], "b": size[1],
                                                        "ratio": size[3], "tolerance": o.size_tolerance},
                    "comparisons": [c.to_dict() for c in comparisons], "alpha": o.alpha, "answer": answer, "text": text}
        return SectionOutput(lines, document, f"{self.title} {answer}: {text}")

    def _size_line(self, a: SystemData, b: SystemData) -> Tuple[Optional[float], Optional[float], str, Optional[float]]:
        """(size A, size B, description, ratio B/A)."""
        o = self.options
        head = f"{b.name} (B) against {a.name} (A); differences are B − A in WER points (negative: B is better)."
        if not o.size:
            return None, None, head, None
        size_a, size_b = self._size(a), self._size(b)
        if not size_a or size_b is None:
            return size_a, size_b, f"{head} Size ({o.size}) unknown.", None
        ratio = size_b / size_a
        similar = "similar" if abs(ratio - 1) <= o.size_tolerance else "NOT similar"
        return size_a, size_b, (f"{head} Size ({o.size}): {size_b:,.0f} vs {size_a:,.0f}, ratio {ratio:.2f} "
                                f"({similar}: a verdict needs a ratio within 1 ± {o.size_tolerance:g})."), ratio

    def _adjust(self, comparisons: List[WerComparison]) -> None:
        """Holm-adjust the tested p-values and set each verdict."""
        from asrtools.scoring.significance import holm

        tested = [c for c in comparisons if c.result is not None]
        adjusted = holm([c.result.p_bootstrap for c in tested])
        for c, p in zip(tested, adjusted):
            c.p_holm = p if math.isfinite(p) else None
            diff = c.result.diff
            if c.p_holm is None or diff is None:
                c.verdict, c.note = NOT_TESTED, c.note or "no reference words"
            elif c.p_holm < self.options.alpha and diff != 0:
                c.verdict = BETTER if diff < 0 else WORSE
            else:
                c.verdict = UNCHANGED

    def _answer(self, a: str, b: str, comparisons: List[WerComparison],
                size: Tuple[Optional[float], Optional[float], str, Optional[float]]) -> Tuple[str, str]:
        o = self.options
        verdicts = {c.wer: c.verdict for c in comparisons}
        tested = {on: v for on, v in verdicts.items() if v != NOT_TESTED}
        if o.size and size[3] is None:
            return "undecided", f"the size of {a} or {b} ({o.size}) is unknown."
        if o.size and abs(size[3] - 1) > o.size_tolerance:
            return "not comparable", (f"{b} and {a} differ in size (ratio {size[3]:.2f}, outside 1 ± "
                                      f"{o.size_tolerance:g}); no verdict.")
        if not tested:
            notes = "; ".join(f"{c.wer}: {c.note}" for c in comparisons)
            return "undecided", f"no comparison could be tested ({notes})."
        worse = [on for on, v in tested.items() if v == WORSE]
        if worse:
            return "no", f"{b} is significantly worse than {a} on {', '.join(worse)} (Holm-adjusted p < {o.alpha:g})."
        if len(tested) == len(verdicts) and all(v == BETTER for v in tested.values()):
            return "yes", f"{b} is significantly better than {a} on {', '.join(tested)} (Holm-adjusted p < {o.alpha:g})."
        unchanged = [on for on, v in tested.items() if v != BETTER]
        untested = [on for on, v in verdicts.items() if v == NOT_TESTED]
        text = (f"no significant improvement of {b} over {a} on {', '.join(unchanged)} at alpha {o.alpha:g} "
                "(Holm-adjusted)" if unchanged else f"{b} is significantly better than {a} on {', '.join(tested)}")
        return "not shown", text + (f"; not tested: {', '.join(untested)}." if untested else ".")

    def _table(self, a: SystemData, b: SystemData, comparisons: List[WerComparison]) -> List[str]:
        level = f"{100 * self.options.ci:g}%"
        tested = sum(c.result is not None for c in comparisons)
        lines = [f"| WER | {a.name} % | {b.name} % | B − A ({level} CI) | p | p (Holm, {tested} tests) "
                 "| verdict |", "|---|---:|---:|---:|---:|---:|---|"]
        for c in comparisons:
            r = c.result
            if r is None:
                lines.append(f"| {c.wer} | n/a | n/a | n/a | n/a | n/a | {NOT_TESTED}: {c.note} |")
                continue
            diff = "n/a" if r.diff is None else _signed_pct(r.diff)
            if all(math.isfinite(x) for x in r.ci_diff):
                diff += f" [{_signed_pct(r.ci_diff[0])}, {_signed_pct(r.ci_diff[1])}]"
            lines.append(f"| {c.wer} | {_pct(r.wer_a)} | {_pct(r.wer_b)} | {diff} | {_p(r.p_bootstrap)} | "
                         f"{_p(c.p_holm)} | {c.verdict} |")
        return lines

    def _method_note(self, a: SystemData, b: SystemData, comparisons: List[WerComparison]) -> str:
        o = self.options
        sizes = next((f"{c.result.n_utts} utterances of {c.result.n_speakers} speakers, {c.result.n_words} words"
                      for c in comparisons if c.result is not None), "")
        runs = ""
        if len(a.runs) > 1 or len(b.runs) > 1:
            runs = (f" {a.name} has {len(a.runs)} run(s), {b.name} {len(b.runs)}: each system enters with its "
                    "run-averaged errors per utterance; the interval covers speaker sampling for these runs, "
                    "not run-to-run (seed) variation, whose spread the systems table shows.")
        tested = sum(c.result is not None for c in comparisons)
        return (f"Paired speaker bootstrap ({o.n_boot} replicates, seed {o.seed}{'; ' + sizes if sizes else ''}): "
                "whole speakers are resampled, the same ones for both systems; p is two-sided, Holm-adjusted "
                f"over the {tested} tested WERs of this section.{runs}")
