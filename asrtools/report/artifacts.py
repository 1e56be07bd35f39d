"""Artifact kinds: the JSON documents stages write and result pages read.

A kind describes one stage's JSON document: its schema name and accepted versions, the
command that writes it, the fields a table can show (title, format, whether numeric), the
documents found beside it (a WER's decode summary), where it records its provenance, and a
one-line description for the page's Sources table. Pages compute nothing from models or
data; every number comes from these documents. A stage that writes a new document
registers its kind with `register_kind`; any section can then show its fields.

Built-in kinds:

- `wer`: wer.json of `asrtools score wer`, with the summary.json of the decode it scored;
- `model_info`: info.json of `asrtools model info --out-dir`;
- `streaming_rtf`: rtf.json of `asrtools model rtf`, one entry per system (by name): a
  *shared* artifact, given once for all systems.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

from asrtools.errors import ConfigError, DataError
from asrtools.scoring.report import WER_SCHEMA, WER_SCHEMA_VERSION, decode_summary_path, read_json

# ----------------------------------------------------------------------------- value formats


def fmt_percent(value: Any) -> str:
    """A fraction as a percentage with two decimals (0.4517 -> "45.17")."""
    return f"{100 * value:.2f}"


def fmt_millions(value: Any) -> str:
    """A count in millions ("2.90 M")."""
    return f"{value / 1e6:.2f} M"


def fmt_fixed(digits: int) -> Callable[[Any], str]:
    """A number with `digits` decimals."""
    return lambda value: f"{value:.{digits}f}"


def fmt_text(value: Any) -> str:
    """Any value as text."""
    return str(value)


@dataclasses.dataclass(frozen=True)
class Field:
    """A value a table can show.

    Attributes:
      title: the default column title.
      get: `Artifact -> value` (None when the document does not hold it).
      fmt: `value -> table text` (never called with None).
      numeric: whether values of several runs are summarised by mean and spread.
    """

    title: str
    get: Callable[["Artifact"], Any]
    fmt: Callable[[Any], str] = fmt_text
    numeric: bool = True


def _path(*keys: str) -> Callable[["Artifact"], Any]:
    """A getter of `entry[k1][k2]...` (None if any level is missing)."""

    def get(artifact: "Artifact") -> Any:
        node: Any = artifact.entry
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node

    return get


# ----------------------------------------------------------------------------- artifacts


@dataclasses.dataclass
class Artifact:
    """One loaded artifact: a run's document, or one system's entry of a shared document.

    Attributes:
      name: the artifact's name in the report config (e.g. `test`).
      kind: its kind.
      path: the JSON file.
      document: the whole document.
      entry: the part describing this system (the whole document unless the kind is shared).
      related: documents found beside it, by role (e.g. `decode` -> (summary.json, document)).
    """

    name: str
    kind: "ArtifactKind"
    path: Path
    document: Dict[str, Any]
    entry: Dict[str, Any]
    related: Dict[str, Tuple[Path, Dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def value(self, field: str) -> Any:
        """The value of one of the kind's fields (None when the document lacks it)."""
        return self.kind.field(field).get(self)

    def provenance(self) -> List[Tuple[str, Optional[Dict[str, Any]]]]:
        """(role, provenance record or None) of every run behind this artifact."""
        return self.kind.provenance(self)

    def describe(self) -> str:
        """How the artifact was made, for the Sources table."""
        return self.kind.describe(self)


class ArtifactKind:
    """A JSON document kind (see the module docstring); subclass and `register_kind` it.

    Class attributes:
      name: the kind's name in report configs.
      schema: the document's `schema` value.
      versions: accepted `version` values.
      made_by: the command that writes it (for messages).
      entries: for a shared document, the key of its `{system name: entry}` mapping.
      fields: the values tables can show.
    """

    name: ClassVar[str]
    schema: ClassVar[str]
    versions: ClassVar[Tuple[int, ...]]
    made_by: ClassVar[str]
    entries: ClassVar[Optional[str]] = None
    fields: ClassVar[Dict[str, Field]] = {}

    @property
    def shared(self) -> bool:
        """Whether one document holds an entry per system."""
        return self.entries is not None

    def field(self, name: str) -> Field:
        """The field called `name`; `ConfigError` listing the known ones otherwise."""
        if name not in self.fields:
            raise ConfigError(f"artifact kind {self.name!r} has no field {name!r} "
                              f"(known: {', '.join(sorted(self.fields))})")
        return self.fields[name]

    def read(self, path: Path) -> Dict[str, Any]:
        """The document in `path`, schema-checked; `DataError` naming the file otherwise."""
        document = read_json(path)
        if not isinstance(document, dict) or document.get("schema") != self.schema:
            raise DataError(f"{path}: not an {self.schema} file (made by `{self.made_by}`)")
        if document.get("version") not in self.versions:
            raise DataError(f"{path}: {self.schema} version {document.get('version')!r} is not supported "
                            f"(supported: {', '.join(map(str, self.versions))})")
        if self.entries is not None and not isinstance(document.get(self.entries), dict):
            raise DataError(f"{path}: has no {self.entries!r} mapping")
        return document

    def system_names(self, document: Mapping[str, Any]) -> List[str]:
        """The systems a shared document has entries for."""
        return list(document[self.entries]) if self.entries is not None else []

    def load(self, name: str, path: Path, system: Optional[str] = None,
             document: Optional[Dict[str, Any]] = None) -> Artifact:
        """Load artifact `name` from `path` (for a shared kind: the entry of `system`).

        Args:
          name: the artifact's name in the report config.
          path: the JSON file.
          system: the system whose entry to take (shared kinds only; it must exist).
          document: the already read document of `path`, if any.
        """
        document = document if document is not None else self.read(path)
        entry = document[self.entries][system] if self.entries is not None else document
        if not isinstance(entry, dict):
            raise DataError(f"{path}: entry {system!r} is not an object")
        return Artifact(name, self, Path(path), document, entry, self.find_related(Path(path), document))

    def find_related(self, path: Path, document: Mapping[str, Any]) -> Dict[str, Tuple[Path, Dict[str, Any]]]:
        """Documents beside `path` that describe how it was made (none by default)."""
        return {}

    def provenance(self, artifact: Artifact) -> List[Tuple[str, Optional[Dict[str, Any]]]]:
        """The document's own `provenance` record, as made by `made_by`."""
        return [(self.made_by, artifact.document.get("provenance"))]

    def describe(self, artifact: Artifact) -> str:
        """One line for the Sources table."""
        return f"`{self.made_by}`"


# ----------------------------------------------------------------------------- registry

ARTIFACT_KINDS: Dict[str, ArtifactKind] = {}


def register_kind(kind: type) -> type:
    """Class decorator: make an `ArtifactKind` subclass available by its `name`."""
    instance = kind()
    if instance.name in ARTIFACT_KINDS:
        raise ValueError(f"artifact kind {instance.name!r} is registered twice")
    ARTIFACT_KINDS[instance.name] = instance
    return kind


def artifact_kind(name: str) -> ArtifactKind:
    """The registered kind `name`; `ConfigError` listing the known ones otherwise."""
    if name not in ARTIFACT_KINDS:
        raise ConfigError(f"unknown artifact kind {name!r} (known: {', '.join(sorted(ARTIFACT_KINDS))})")
    return ARTIFACT_KINDS[name]


# ----------------------------------------------------------------------------- built-in kinds


def _decode_option(key: str) -> Callable[[Artifact], Any]:
    def get(artifact: Artifact) -> Any:
        summary = artifact.related.get("decode")
        options = (summary[1].get("options") or {}) if summary else {}
        return options.get(key) if isinstance(options, dict) else None

    return get


def _streaming_chunk(artifact: Artifact) -> Any:
    return _decode_option("chunk_frames")(artifact) if _decode_option("method")(artifact) == "streaming_greedy" else None


@register_kind
class WerKind(ArtifactKind):
    """wer.json of `asrtools score wer`; its decode's summary.json is found beside it."""

    name = "wer"
    schema = WER_SCHEMA
    versions = (WER_SCHEMA_VERSION,)
    made_by = "asrtools score wer"
    fields = {
        "wer": Field("WER %", _path("total", "wer"), fmt_percent),
        "words": Field("words", _path("total", "words"), fmt_fixed(0)),
        "errors": Field("errors", _path("total", "err"), fmt_fixed(0)),
        "sents": Field("utterances", _path("total", "sents"), fmt_fixed(0)),
        "mode": Field("alignment", _path("mode"), numeric=False),
        "decode_method": Field("decoding", _decode_option("method"), numeric=False),
        "chunk_frames": Field("chunk frames", _streaming_chunk, fmt_fixed(0), numeric=False),
    }

    def read(self, path: Path) -> Dict[str, Any]:
        document = super().read(path)
        if not isinstance(document.get("total"), dict) or "words" not in document["total"]:
            raise DataError(f"{path}: has no total counts")
        return document

    def find_related(self, path: Path, document: Mapping[str, Any]) -> Dict[str, Tuple[Path, Dict[str, Any]]]:
        summary = decode_summary_path(path)
        if summary is None:
            return {}
        content = read_json(summary)
        if not isinstance(content, dict) or not isinstance(content.get("options"), dict):
            raise DataError(f"{summary}: not a decode summary.json (made by `asrtools decode`)")
        return {"decode": (summary, content)}

    def provenance(self, artifact: Artifact) -> List[Tuple[str, Optional[Dict[str, Any]]]]:
        decode = artifact.related.get("decode")
        found = [("asrtools decode", decode[1].get("provenance"))] if decode else []
        return found + super().provenance(artifact)

    def describe(self, artifact: Artifact) -> str:
        method = artifact.value("decode_method")
        if method is None:
            decode = "`asrtools decode` (its summary.json was not found)"
        else:
            chunk = artifact.value("chunk_frames")
            decode = f"`asrtools decode --method {method}{f' --chunk-frames {chunk}' if chunk else ''}`"
        total = artifact.entry["total"]
        return (f"`asrtools score wer --mode {artifact.value('mode')}` on {decode}; "
                f"{total.get('sents')} utterances, {total.get('words')} words")


def _info_training(artifact: Artifact) -> str:
    training = (artifact.entry.get("source") or {}).get("training") or {}
    parts = [f"{key} {training[key]}" for key in ("epoch", "step") if key in training]
    if training.get("averaged_from"):
        parts.append("mean of " + ", ".join(map(str, training["averaged_from"])))
    return "; ".join(parts)


@register_kind
class ModelInfoKind(ArtifactKind):
    """info.json of `asrtools model info --out-dir` (a checkpoint's or a config's model)."""

    name = "model_info"
    schema = "asrtools.model_info"  # asrtools.models.flops.INFO_SCHEMA (not imported: it loads torch)
    versions = (1,)
    made_by = "asrtools model info"
    fields = {
        "encoder": Field("encoder", _path("encoder"), numeric=False),
        "params": Field("params", _path("params"), fmt_millions),
        "encoder_params": Field("encoder params", _path("encoder_params"), fmt_millions),
        "gflops_per_second": Field("GFLOPs/s", _path("gflops_per_second"), fmt_fixed(3)),
        "offline_gflops_per_second": Field("offline GFLOPs/s", _path("offline_gflops_per_second"), fmt_fixed(3)),
        "flops_chunk_frames": Field("FLOPs chunk frames", _path("flops", "chunk_frames"), fmt_fixed(0),
                                    numeric=False),
        "vocab_size": Field("vocabulary", _path("vocab_size"), fmt_fixed(0), numeric=False),
        "epoch": Field("epoch", _path("source", "training", "epoch"), fmt_fixed(0)),
        "step": Field("step", _path("source", "training", "step"), fmt_fixed(0)),
    }

    def provenance(self, artifact: Artifact) -> List[Tuple[str, Optional[Dict[str, Any]]]]:
        training = (artifact.entry.get("source") or {}).get("training") or {}
        trained = [("asrtools train", training["provenance"])] if "provenance" in training else []
        return trained + super().provenance(artifact)

    def describe(self, artifact: Artifact) -> str:
        source = artifact.entry.get("source") or {}
        model = source.get("checkpoint") or f"{source.get('config')} (random weights)"
        training = _info_training(artifact)
        flops = artifact.entry.get("flops") or {}
        how = (f"{flops.get('chunk_frames')}-frame chunks" if flops.get("mode") == "streaming"
               else "whole-utterance forward")
        return (f"`asrtools model info` of {model}{f' ({training})' if training else ''}; FLOPs in {how} "
                f"on a {flops.get('seconds')} s random input")


@register_kind
class StreamingRtfKind(ArtifactKind):
    """rtf.json of `asrtools model rtf` (or scripts/bench_streaming.py --json-out), one entry per system."""

    name = "streaming_rtf"
    schema = "asrtools.streaming_rtf"  # asrtools.decoding.rtf.RTF_SCHEMA (not imported: it loads torch)
    versions = (1, 2)
    made_by = "asrtools model rtf"
    entries = "models"
    fields = {
        "rtf_mean": Field("RTF (1 thread)", _path("rtf_mean"), fmt_fixed(4)),
        "rtf_p90": Field("RTF p90", _path("rtf_p90"), fmt_fixed(4)),
        "rtf_total": Field("RTF total", _path("rtf_total"), fmt_fixed(4)),
        "rtf_cpu_total": Field("CPU RTF", _path("rtf_cpu_total"), fmt_fixed(4)),
        "latency_ms": Field("latency ms", _path("latency_ms"), fmt_fixed(0)),
        "chunk_ms": Field("chunk ms", _path("chunk_ms"), fmt_fixed(0)),
        "num_utterances": Field("utterances", _path("num_utterances"), fmt_fixed(0), numeric=False),
        "encoder": Field("encoder", _path("encoder"), numeric=False),
        "params": Field("params", _path("params"), fmt_millions),
    }

    def describe(self, artifact: Artifact) -> str:
        entry = artifact.entry
        chunk = entry.get("chunk_ms")
        p90 = entry.get("rtf_p90")
        return (f"`{artifact.document.get('command', self.made_by)}`: {entry.get('num_utterances')} utterance(s), "
                f"{entry.get('weights')} weights, chunk {chunk:.0f} ms, RTF p90 {p90:.4f}"
                if chunk is not None and p90 is not None else f"`{self.made_by}`")


def field_reference(reference: str, kinds: Mapping[str, ArtifactKind], where: str) -> Tuple[str, Field]:
    """Resolve `ARTIFACT.FIELD` against the config's artifacts (name -> kind).

    Raises:
      ConfigError: naming `where` when the artifact or the field is unknown.
    """
    artifact, dot, field = reference.partition(".")
    if not dot or not artifact or not field:
        raise ConfigError(f"{where}: {reference!r} is not ARTIFACT.FIELD")
    if artifact not in kinds:
        raise ConfigError(f"{where}: {reference!r} names no artifact of the config "
                          f"(artifacts: {', '.join(sorted(kinds)) or 'none'})")
    try:
        return artifact, kinds[artifact].field(field)
    except ConfigError as err:
        raise ConfigError(f"{where}: {reference!r}: {err}") from None

