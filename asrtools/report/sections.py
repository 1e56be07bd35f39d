"""Page sections: each turns the loaded artifacts into a Markdown block and its JSON twin.

A section kind is a `Section` subclass registered with `register_section`; the report
config picks kinds by name and passes their options (a dataclass per kind, checked like any
config: unknown keys and wrong types name the file and key). Sections read artifacts only
(`asrtools.report.data.ReportData`); a recipe adds a kind for its own comparison here, in
the report layer, without touching scoring or the stages.

Built-in kinds: `metrics` (one row per system, one column per `ARTIFACT.FIELD`) and
`pairwise` (two systems compared with a paired speaker bootstrap, `asrtools.report.pairwise`).
"""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type

from asrtools.config import from_dict
from asrtools.errors import ConfigError
from asrtools.report.artifacts import Field, field_reference
from asrtools.report.config import ReportConfig
from asrtools.report.data import ReportData, SystemData
from asrtools.utils.paths import display_path


@dataclasses.dataclass
class SectionOutput:
    """What a section contributes to the page.

    Attributes:
      markdown: the section's lines below its heading.
      document: its JSON form (in results.json).
      summary: one line for the stage log.
    """

    markdown: List[str]
    document: Dict[str, Any]
    summary: str = ""


class Section:
    """A page section of kind `kind` with options of type `Options` (a dataclass).

    Subclasses check their options against the config in `check`, may name extra input
    files in `inputs` (they become inputs of the page stage) and build the section from the
    loaded artifacts in `build`.
    """

    kind: ClassVar[str]
    Options: ClassVar[type]
    default_title: ClassVar[str] = ""

    def __init__(self, title: str, options: Any, config: ReportConfig) -> None:
        self.title = title or self.default_title
        self.options = options
        self.config = config

    def check(self, where: str) -> None:
        """Raise `ConfigError` naming `where` when the options do not fit the config."""

    def inputs(self, data: ReportData) -> Dict[str, Path]:
        """Files read by `build` besides the artifacts (stage input name -> file)."""
        return {}

    def build(self, data: ReportData) -> SectionOutput:
        """The section, from the loaded artifacts."""
        raise NotImplementedError


SECTION_KINDS: Dict[str, Type[Section]] = {}


def register_section(cls: Type[Section]) -> Type[Section]:
    """Class decorator: make a `Section` subclass available by its `kind`."""
    if cls.kind in SECTION_KINDS:
        raise ValueError(f"section kind {cls.kind!r} is registered twice")
    SECTION_KINDS[cls.kind] = cls
    return cls


def make_sections(config: ReportConfig, source: str) -> List[Section]:
    """The configured sections, options parsed and checked.

    Args:
      config: the report config.
      source: the config file, for messages.
    """
    import asrtools.report.pairwise  # noqa: F401  (registers the `pairwise` kind)

    sections = []
    for index, spec in enumerate(config.sections):
        where = f"{source}: sections[{index}]"
        if spec.kind not in SECTION_KINDS:
            raise ConfigError(f"{where}: unknown section kind {spec.kind!r} (known: {', '.join(sorted(SECTION_KINDS))})")
        cls = SECTION_KINDS[spec.kind]
        section = cls(spec.title, from_dict(cls.Options, spec.options, f"{where}.options"), config)
        section.check(f"{where} ({spec.kind})")
        sections.append(section)
    return sections


# ----------------------------------------------------------------------------- metrics


def summarize(values: List[Any], expected: int, field: Field) -> Tuple[str, Dict[str, Any]]:
    """A table cell for one field of one system, and its JSON form.

    Args:
      values: the field's value in each loaded run (None where the document lacks it).
      expected: how many runs there should be (fewer values: some runs are missing).
      field: the field (format; numeric values of several runs give "mean ± SD").

    Returns:
      `(text, {"values", "n_runs", "mean", "sd"})`: "mean ± SD" when numeric values differ
      between runs, "n/a" when nothing is known.
    """
    present = [v for v in values if v is not None]
    summary: Dict[str, Any] = {"values": values, "n_runs": len(present), "mean": None, "sd": None}
    if not present:
        return "n/a", summary
    if field.numeric:
        summary.update(mean=statistics.fmean(present), sd=statistics.stdev(present) if len(present) > 1 else None)
    if field.numeric and len(set(present)) > 1:
        text = f"{field.fmt(summary['mean'])} ± {field.fmt(summary['sd'])}"
    else:  # one run, the same value in every run, or text values
        text = " / ".join(dict.fromkeys(field.fmt(v) for v in present))
    if len(present) < expected:
        text += f" ({len(present)} of {expected} runs)"
    return text, summary


@dataclasses.dataclass
class Column:
    """A column of a metrics table.

    Attributes:
      value: `ARTIFACT.FIELD`, e.g. `test.wer`.
      title: the column heading (default: the artifact name and the field's title).
    """

    value: str
    title: Optional[str] = None


@dataclasses.dataclass
class MetricsOptions:
    """Options of a `metrics` section: its columns, in order."""

    columns: List[Column] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if not self.columns:
            raise ValueError("columns: give at least one column (value: ARTIFACT.FIELD)")


@register_section
class MetricsSection(Section):
    """One row per system, one column per artifact field; several runs: mean ± SD."""

    kind = "metrics"
    Options = MetricsOptions
    default_title = "Systems"

    def check(self, where: str) -> None:
        kinds = self.config.kinds()
        self.fields: List[Tuple[str, str, Field, str]] = []  # (artifact, field name, field, title)
        for index, column in enumerate(self.options.columns):
            artifact, field = field_reference(column.value, kinds, f"{where}: columns[{index}]")
            self.fields.append((artifact, column.value.partition(".")[2], field,
                                column.title or f"{artifact} {field.title}"))

    def _expected(self, system: SystemData, artifact: str) -> int:
        return 1 if self.config.artifacts[artifact].shared else len(system.runs)

    def build(self, data: ReportData) -> SectionOutput:
        several = any(len(s.runs) > 1 for s in data.systems)
        header = ["system"] + (["runs"] if several else []) + [title for *_, title in self.fields]
        align = ["---"] + (["---:"] if several else []) + ["---:" if f.numeric else "---" for _, _, f, _ in self.fields]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
        rows = []
        for system in data.systems:
            cells, cell_docs = [], {}
            for artifact, name, field, _ in self.fields:
                text, cell_docs[f"{artifact}.{name}"] = summarize(system.values(artifact, name),
                                                                  self._expected(system, artifact), field)
                cells.append(text)
            lines.append("| " + " | ".join([system.name] + ([str(len(system.runs))] if several else []) + cells) + " |")
            rows.append({"system": system.name, "runs": [display_path(r) for r in system.runs], "cells": cell_docs})
        if several:
            lines += ["", "A system with several runs (e.g. seeds) shows the mean ± standard deviation over its runs."]
        columns = [{"value": f"{artifact}.{name}", "title": title} for artifact, name, _, title in self.fields]
        return SectionOutput(lines, {"columns": columns, "rows": rows}, f"{self.title}: {len(rows)} systems")
