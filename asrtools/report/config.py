"""What a result page shows: its YAML config and the systems it compares.

A report config (e.g. egs/synth/asr/conf/report.yaml) names the artifacts of a system run
and the sections of the page:

    title: "egs/synth/asr: streaming transducers"
    artifacts:                       # NAME: where a run keeps it, and its kind
      info: {kind: model_info, path: info/info.json}
      test: {kind: wer, path: decode_test_greedy/wer/wer.json}
      test_streaming: {kind: wer, path: decode_test_streaming/wer/wer.json,
                       require: {decode_method: streaming_greedy}}
      rtf: {kind: streaming_rtf, shared: true}     # one file for all systems: --input rtf=PATH
    sections:
      - kind: metrics
        title: Systems
        options: {columns: [{value: info.params}, {value: test.wer, title: test WER %}]}
      - kind: pairwise
        title: Does ConvRNN-T beat the LSTM RNN-T at similar size?
        options: {a: lstm, b: convrnnt, wers: [test, test_streaming], size: info.params}

`path` is relative to each run directory of a system. `require` lists field values an
artifact must have (a streaming column must come from a streaming decode). Section options
are checked by the section kind (`asrtools.report.sections`).

A system is `NAME=RUN_DIR[,RUN_DIR...]`: one run, or several runs of the same recipe
(seeds), whose numbers the page summarises by mean and spread.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Sequence

from asrtools.config import load_config
from asrtools.errors import ConfigError
from asrtools.report.artifacts import ArtifactKind, artifact_kind


@dataclasses.dataclass
class ArtifactSpec:
    """One artifact of a run (or one shared file).

    Attributes:
      kind: a registered artifact kind (`wer`, `model_info`, `streaming_rtf`, ...).
      path: the JSON file relative to a run directory (empty for a shared artifact).
      shared: one file holding an entry per system, given as `--input NAME=PATH`.
      require: field -> value the artifact must have, e.g. `{decode_method: streaming_greedy}`.
    """

    kind: str
    path: str = ""
    shared: bool = False
    require: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        try:
            kind = artifact_kind(self.kind)
            for field in self.require:
                kind.field(field)
        except ConfigError as err:  # as ValueError, the config loader names the file and key
            raise ValueError(str(err)) from None
        if self.shared != kind.shared:
            raise ValueError(f"kind {self.kind!r} is {'a shared' if kind.shared else 'a per-run'} artifact: "
                             f"set shared: {str(kind.shared).lower()}")
        if self.shared and self.path:
            raise ValueError("a shared artifact has no path (give it as --input NAME=PATH)")
        if not self.shared and not self.path:
            raise ValueError("path is required (the JSON file relative to a run directory)")


@dataclasses.dataclass
class SectionSpec:
    """One section of the page.

    Attributes:
      kind: a registered section kind (`metrics`, `pairwise`, ...).
      title: its heading.
      options: the section kind's options (checked by it).
    """

    kind: str
    title: str = ""
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ReportConfig:
    """A result page: title, named artifacts and sections (see the module docstring)."""

    title: str = "Results"
    artifacts: Dict[str, ArtifactSpec] = dataclasses.field(default_factory=dict)
    sections: List[SectionSpec] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if not self.sections:
            raise ValueError("sections: the page needs at least one section")
        for name in self.artifacts:
            if not name or "." in name or "=" in name:
                raise ValueError(f"artifacts: name {name!r} must be non-empty without '.' or '='")

    def kinds(self) -> Dict[str, ArtifactKind]:
        """artifact name -> its kind."""
        return {name: artifact_kind(spec.kind) for name, spec in self.artifacts.items()}


def load_report_config(path: Path, overrides: Sequence[str] = ()) -> ReportConfig:
    """Read a report config (strict: unknown keys and wrong types name the file and key)."""
    return load_config(ReportConfig, path, overrides)


@dataclasses.dataclass
class SystemSpec:
    """A system of the page: its name and its run directories (several: seeds)."""

    name: str
    runs: List[Path]


def parse_system(spec: str) -> SystemSpec:
    """`NAME=RUN_DIR[,RUN_DIR...]` (or a bare `RUN_DIR`, named after it) -> `SystemSpec`.

    Raises:
      ConfigError: naming the value when it is malformed or lists a run twice.
    """
    name, sep, runs_text = spec.partition("=")
    if not sep:
        name, runs_text = Path(spec.rstrip("/")).name, spec
    runs = [part.strip() for part in runs_text.split(",")]
    if not name or not all(runs):
        raise ConfigError(f"--system {spec!r}: expected NAME=RUN_DIR[,RUN_DIR...]")
    if not sep and len(runs) > 1:
        raise ConfigError(f"--system {spec!r}: several runs need a name (NAME=RUN_DIR,RUN_DIR...)")
    duplicate = next((r for i, r in enumerate(runs) if r in runs[:i]), None)
    if duplicate is not None:
        raise ConfigError(f"--system {spec!r}: run {duplicate} is listed twice")
    return SystemSpec(name, [Path(r) for r in runs])


def parse_systems(specs: Sequence[str]) -> List[SystemSpec]:
    """Every `--system` value, in page order; names must be unique."""
    systems = [parse_system(s) for s in specs]
    names = [s.name for s in systems]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"--system names must be unique: {', '.join(duplicates)}")
    return systems


def parse_inputs(specs: Sequence[str], config: ReportConfig) -> Dict[str, Path]:
    """`--input NAME=PATH` values for the config's shared artifacts.

    Raises:
      ConfigError: naming the value when it is malformed, given twice, or names no shared artifact.
    """
    inputs: Dict[str, Path] = {}
    shared = [n for n, a in config.artifacts.items() if a.shared]
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"--input {spec!r}: expected NAME=PATH")
        if name not in shared:
            raise ConfigError(f"--input {spec!r}: {name!r} is not a shared artifact of the config "
                              f"(shared: {', '.join(shared) or 'none'})")
        if name in inputs:
            raise ConfigError(f"--input {name}=...: given twice")
        inputs[name] = Path(value)
    return inputs
