"""Find and load every artifact a page needs, before the page stage runs.

For each system, each of its runs and each per-run artifact of the config, the JSON file
`<run dir>/<path>` is read and schema-checked by its kind; a shared artifact (`--input
NAME=PATH`) is read once and each system's entry taken from it. Everything found becomes an
input of the page stage (so a changed artifact rebuilds the page). A missing file or entry
is an error naming it, or, with `allow_missing`, a line in the page's "missing" list and n/a
in its tables. A file that exists but is not what the config says (wrong schema, a failed
`require`) is always an error.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from asrtools.errors import DataError
from asrtools.report.artifacts import Artifact
from asrtools.report.config import ReportConfig, SystemSpec


@dataclasses.dataclass
class SystemData:
    """The loaded artifacts of one system.

    Attributes:
      name: the system's name.
      runs: its run directories.
      artifacts: artifact name -> one entry per run (None where missing); a shared
        artifact has one entry for the whole system.
    """

    name: str
    runs: List[Path]
    artifacts: Dict[str, List[Optional[Artifact]]]

    def found(self, artifact: str) -> List[Artifact]:
        """The loaded instances of `artifact` (missing runs left out)."""
        return [a for a in self.artifacts.get(artifact, []) if a is not None]

    def complete(self, artifact: str) -> bool:
        """Whether `artifact` was found for every run (or, if shared, at all)."""
        entries = self.artifacts.get(artifact, [])
        return bool(entries) and all(a is not None for a in entries)

    def values(self, artifact: str, field: str) -> List[Any]:
        """The field's value in each loaded instance of `artifact` (None where the document lacks it)."""
        return [a.value(field) for a in self.found(artifact)]


@dataclasses.dataclass
class ReportData:
    """Everything a page is built from.

    Attributes:
      config: the report config.
      systems: per system, its loaded artifacts (page order).
      missing: one line per missing file or entry (only with `allow_missing`).
      files: stage input name -> file (every artifact and related document read).
    """

    config: ReportConfig
    systems: List[SystemData]
    missing: List[str]
    files: Dict[str, Path]

    def system(self, name: str) -> Optional[SystemData]:
        """The system called `name`, or None."""
        return next((s for s in self.systems if s.name == name), None)


def load_report_data(config: ReportConfig, systems: Sequence[SystemSpec], inputs: Mapping[str, Path],
                     allow_missing: bool = False) -> ReportData:
    """Locate, read and check every artifact of every system.

    Args:
      config: the report config.
      systems: the systems (`--system`), in page order.
      inputs: shared artifact name -> file (`--input`).
      allow_missing: record missing files/entries instead of failing.

    Raises:
      DataError: naming the system, run and file, for a missing run directory, a missing
        artifact (unless `allow_missing`), an unreadable or wrong-kind file, or a failed
        `require`.
    """
    data = ReportData(config, [SystemData(s.name, list(s.runs), {}) for s in systems], [], {})

    def missing(message: str) -> None:
        if not allow_missing:
            raise DataError(message + " (--allow-missing shows n/a instead)")
        data.missing.append(message)

    for system in data.systems:
        for run in system.runs:
            if not run.is_dir():
                raise DataError(f"system {system.name}: run directory {run} does not exist")
    for name, spec in config.artifacts.items():
        kind = config.kinds()[name]
        if spec.shared:
            document = None
            path = inputs.get(name)
            if path is None:
                missing(f"{name}: no --input {name}=PATH given (a {kind.schema} file made by `{kind.made_by}`)")
            elif not path.is_file():
                missing(f"{name}: {path} does not exist (made by `{kind.made_by}`)")
            else:
                document = kind.read(path)
                data.files[f"shared.{name}"] = path
            for system in data.systems:
                artifact = None
                if document is not None:
                    if system.name in kind.system_names(document):
                        artifact = kind.load(name, path, system.name, document)
                        _check_required(system.name, artifact, spec.require)
                    else:
                        missing(f"system {system.name}: {name}: {path} has no entry {system.name!r} "
                                f"(entries: {', '.join(kind.system_names(document)) or 'none'})")
                system.artifacts[name] = [artifact]
            continue
        for system in data.systems:
            found: List[Optional[Artifact]] = []
            for index, run in enumerate(system.runs):
                path = run / spec.path
                if not path.is_file():
                    missing(f"system {system.name}: {name}: {path} does not exist (made by `{kind.made_by}`)")
                    found.append(None)
                    continue
                artifact = kind.load(name, path)
                _check_required(system.name, artifact, spec.require)
                key = f"{system.name}.run{index}.{name}"
                data.files[key] = path
                data.files.update({f"{key}.{role}": related for role, (related, _) in artifact.related.items()})
                found.append(artifact)
            system.artifacts[name] = found
    return data


def _check_required(system: str, artifact: Artifact, require: Mapping[str, Any]) -> None:
    for field, wanted in require.items():
        value = artifact.value(field)
        if value != wanted:
            why = "" if value is not None else " (not recorded: e.g. the summary.json of its decode was not found)"
            raise DataError(f"system {system}: {artifact.name}: {artifact.path} has {field} {value!r}, "
                            f"the report config requires {wanted!r}{why}")
