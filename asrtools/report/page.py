"""Assemble a result page (Markdown + JSON twin) from its sections and the artifacts' provenance.

The page names, for every number, the file it came from (Sources) and the run that made
that file (Provenance: commit and tree state, torch, CPU/GPU, threads, as recorded by the
stage in its JSON output). The page build's own provenance is stated once in the header;
it is not the provenance of the numbers.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from asrtools.report.data import ReportData
from asrtools.report.sections import Section, SectionOutput
from asrtools.utils.paths import display_path, relative_paths
from asrtools.utils.provenance import SHORT_COMMIT, format_provenance

REPORT_SCHEMA, REPORT_SCHEMA_VERSION = "asrtools.report", 1
NOT_RECORDED = "not recorded"


class ProvenanceIndex:
    """Distinct provenance records, numbered P1, P2, ... in order of first use."""

    def __init__(self) -> None:
        self.records: Dict[str, Dict[str, Any]] = {}
        self._ids: Dict[str, str] = {}

    def tag(self, record: Optional[Dict[str, Any]]) -> str:
        """The id of `record` (`not recorded` for an artifact written before provenance was recorded)."""
        if not record:
            return NOT_RECORDED
        key = json.dumps(record, sort_keys=True)
        if key not in self._ids:
            self._ids[key] = f"P{len(self._ids) + 1}"
            self.records[self._ids[key]] = record
        return self._ids[key]


def _sources(data: ReportData, index: ProvenanceIndex) -> Tuple[List[str], List[Dict[str, Any]]]:
    """The Sources table (one row per loaded artifact) and its JSON rows."""
    lines = ["| system | run | artifact | file | produced by | provenance |", "|---|---|---|---|---|---|"]
    rows = []
    for system in data.systems:
        for name, artifacts in system.artifacts.items():
            shared = data.config.artifacts[name].shared
            for run_index, artifact in enumerate(artifacts):
                if artifact is None:
                    continue
                run = "all" if shared else str(run_index + 1)
                made = [(role, index.tag(record)) for role, record in artifact.provenance()]
                cell = ", ".join(f"{role}: {tag}" for role, tag in made)
                path, produced_by = display_path(artifact.path), relative_paths(artifact.describe())
                lines.append(f"| {system.name} | {run} | {name} | {path} | {produced_by} | {cell} |")
                rows.append({"system": system.name, "run": run, "artifact": name, "file": path,
                             "produced_by": produced_by, "provenance": dict(made)})
    return lines, rows


def _provenance_table(index: ProvenanceIndex) -> List[str]:
    lines = ["| id | asrtools | git commit | tree | Python | torch | CPU | GPU | threads |",
             "|---|---|---|---|---|---|---|---|---:|"]
    for tag, p in index.records.items():
        commit = (p.get("git_commit") or "not a git checkout")[:SHORT_COMMIT]
        tree = {True: "dirty", False: "clean"}.get(p.get("git_dirty"), "unknown")
        cpu = f"{p.get('cpu')} ({p.get('cpu_count')} cores)"
        threads = p.get("threads") if p.get("threads") is not None else "n/a"
        lines.append(f"| {tag} | {p.get('asrtools')} | {commit} | {tree} | {p.get('python')} | {p.get('torch') or 'none'} "
                     f"| {cpu} | {p.get('gpu') or 'none'} | {threads} |")
    return lines


def build_page(data: ReportData, sections: Sequence[Section], outputs: Sequence[SectionOutput], command: str,
               generated: str, page_provenance: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page (Markdown) and its JSON twin (`REPORT_SCHEMA`).

    Args:
      data: the loaded artifacts.
      sections: the sections, in page order.
      outputs: what each section built.
      command: the command that built the page (shown in the header).
      generated: when, e.g. "2026-11-25 18:00 UTC".
      page_provenance: the page build's provenance (header only).
    """
    index = ProvenanceIndex()
    source_lines, source_rows = _sources(data, index)
    lines = [
        f"# {data.config.title}",
        "",
        f"Generated on {generated} by",
        "",
        "```",
        relative_paths(command),
        "```",
        "",
        "from the stage artifacts (JSON files) listed under Sources; the page computes nothing from "
        "models or data. Each number's Provenance entry names the run that made it (git commit, torch, "
        f"CPU/GPU, threads); the page itself was built by {format_provenance(page_provenance)}.",
    ]
    for section, output in zip(sections, outputs):
        lines += ["", f"## {section.title}", "", *output.markdown]
    if data.missing:
        lines += ["", "## Missing inputs", "", "Shown as n/a:", ""] + [f"- {m}" for m in data.missing]
    lines += ["", "## Sources", "", *source_lines]
    lines += ["", "## Provenance", "", "The runs that made the artifacts (as recorded in them):", "",
              *_provenance_table(index)]
    if any(NOT_RECORDED in row["provenance"].values() for row in source_rows):
        lines += ["", f"{NOT_RECORDED}: the run was made before asrtools recorded provenance (a rerun of its "
                      "stage records it)."]
    document = {
        "schema": REPORT_SCHEMA,
        "version": REPORT_SCHEMA_VERSION,
        "title": data.config.title,
        "generated": generated,
        "command": relative_paths(command),
        "provenance": page_provenance,
        "systems": [{"name": s.name, "runs": [display_path(r) for r in s.runs]} for s in data.systems],
        "sections": [{"kind": s.kind, "title": s.title, **o.document} for s, o in zip(sections, outputs)],
        "sources": source_rows,
        "provenances": index.records,
        "missing": list(data.missing),
    }
    return "\n".join(lines) + "\n", document
