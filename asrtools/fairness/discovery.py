"""What every cohort-discovery method returns: a fitted `Discovery` that labels speakers.

A method (`geo`, `geodemographic`, `auto`) is fitted on a `SpeakerTable` of *discovery*
speakers. Its cohorts are ranked by their pooled WER on those speakers, worst first, and
labelled `rank1`, `rank2`, ... in that order. Cohorts under the size floor (`Thresholds`:
speakers, words) are flagged and ranked after every cohort that meets it, so a cohort too
small to trust is never ranked first. `Discovery.assign` labels any speakers by that rank
(geo: by lat/lon, geodemographic: by zip, auto: by nearest centroid of the embedding), which
is how cohorts found on some speakers are measured on others.

JSON form (`discovery.json`): `{"method", "params", "model": {... method's model ...,
"cohorts": [CohortSummary, ... worst first]}}`; `discovery_from_dict` reads it back.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np

from asrtools.errors import DataError
from asrtools.fairness.speakers import SpeakerTable
from asrtools.scoring.disparity import Thresholds

RANK_PREFIX = "rank"


def rank_label(rank: int) -> str:
    """`rank1` for the worst cohort on the discovery speakers, `rank2` next, ..."""
    return f"{RANK_PREFIX}{rank}"


def rank_number(label: str) -> int:
    """The rank of a `rankN` label (labels without a rank sort last)."""
    tail = label[len(RANK_PREFIX):] if label.startswith(RANK_PREFIX) else ""
    return int(tail) if tail.isdigit() else 1 << 30


@dataclasses.dataclass
class CohortSummary:
    """One discovered cohort as measured on the discovery speakers (counts, pooled WER, flags)."""

    key: str
    description: str
    n_speakers: int
    n_utts: int
    n_words: int
    n_errors: int
    wer: Optional[float]
    flags: List[str]
    eligible: bool

    def to_dict(self) -> Dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CohortSummary":
        """Inverse of `to_dict`."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def summarise_cohorts(table: SpeakerTable, keys: Sequence[str], descriptions: Mapping[str, str],
                      thresholds: Thresholds) -> List[CohortSummary]:
    """Per-cohort sizes and WER of `table`, ranked: eligible cohorts by WER (worst first), then the rest.

    Args:
      table: the discovery speakers.
      keys: each speaker's cohort key `(S,)`.
      descriptions: `{key: description}` of every cohort the method defines (also empty ones).
      thresholds: the size floor (eligibility) and error flag.
    """
    keys = np.asarray(keys, dtype=object)
    out = []
    for key, description in descriptions.items():
        rows = keys == key
        n_spk, n_words, n_errors = int(rows.sum()), int(table.words[rows].sum()), int(table.errors[rows].sum())
        out.append(CohortSummary(
            key=key, description=description, n_speakers=n_spk, n_utts=int(table.utterances[rows].sum()),
            n_words=n_words, n_errors=n_errors, wer=n_errors / n_words if n_words else None,
            flags=thresholds.flags(n_spk, n_words, n_errors), eligible=thresholds.eligible(n_spk, n_words),
        ))
    return sorted(out, key=lambda c: (not c.eligible, c.wer is None, -(c.wer or 0.0), c.key))


class Discovery(abc.ABC):
    """A fitted discovery method: ranked cohorts plus the rule that puts a speaker in one.

    Attributes:
      params: the method's configuration (JSON-serialisable).
      cohorts: the cohorts, worst first on the discovery speakers (`rank1` first).
    """

    method: ClassVar[str]

    def __init__(self, params: Mapping[str, Any], cohorts: List[CohortSummary]) -> None:
        self.params = dict(params)
        self.cohorts = list(cohorts)

    @property
    def labels(self) -> Dict[str, str]:
        """`{cohort key: rank label}`."""
        return {c.key: rank_label(i + 1) for i, c in enumerate(self.cohorts)}

    @property
    def ranking(self) -> List[str]:
        """Rank labels, worst first."""
        return [rank_label(i + 1) for i in range(len(self.cohorts))]

    def designated(self) -> Tuple[str, Optional[str]]:
        """The pre-designated comparison `(bottom, top)`: rank1 and the best-ranked eligible cohort.

        `top` falls back to the best-ranked cohort with words when fewer than two are
        eligible, and is None when there is no second cohort.
        """
        labels = self.ranking
        pool = [i for i, c in enumerate(self.cohorts) if c.eligible]
        if len(pool) < 2:
            pool = [i for i, c in enumerate(self.cohorts) if c.n_words > 0]
        return labels[0], labels[pool[-1]] if len(pool) >= 2 else None

    def assign(self, inputs: Mapping[str, Any]) -> Dict[str, str]:
        """`{speaker: rank label}` for the speakers of `inputs` (what `inputs_of` gives)."""
        labels = self.labels
        return {speaker: labels[key] for speaker, key in self.assign_keys(inputs).items()}

    def assign_table(self, table: SpeakerTable) -> Dict[str, str]:
        """`assign` for the speakers of a table."""
        return self.assign(self.inputs_of(table))

    @staticmethod
    @abc.abstractmethod
    def inputs_of(table: SpeakerTable) -> Mapping[str, Any]:
        """What `assign` needs per speaker: attributes (geo, geodemographic) or embeddings (auto)."""

    @abc.abstractmethod
    def assign_keys(self, inputs: Mapping[str, Any]) -> Dict[str, str]:
        """`{speaker: cohort key}`; `DataError` naming a speaker that cannot be placed."""

    @abc.abstractmethod
    def model_dict(self) -> Dict[str, Any]:
        """The method's model as JSON (without the cohorts)."""

    @classmethod
    @abc.abstractmethod
    def from_model(cls, params: Mapping[str, Any], model: Mapping[str, Any],
                   cohorts: List[CohortSummary]) -> "Discovery":
        """Inverse of `model_dict`."""

    def to_dict(self) -> Dict[str, Any]:
        """`{"method", "params", "model"}` (the model includes the ranked cohorts)."""
        model = self.model_dict()
        model["cohorts"] = [c.to_dict() for c in self.cohorts]
        return {"method": self.method, "params": dict(self.params), "model": model}


_METHODS: Dict[str, Type[Discovery]] = {}


def register(cls: Type[Discovery]) -> Type[Discovery]:
    """Class decorator: make a method readable by `discovery_from_dict`."""
    _METHODS[cls.method] = cls
    return cls


def discovery_from_dict(data: Mapping[str, Any], source: str = "discovery.json") -> Discovery:
    """Read back `Discovery.to_dict()`; one-line `DataError` naming `source` when malformed."""
    import asrtools.fairness.auto  # noqa: F401  (registers the methods)
    import asrtools.fairness.geo  # noqa: F401
    import asrtools.fairness.geodemographic  # noqa: F401
    import asrtools.fairness.scan  # noqa: F401

    if not isinstance(data, Mapping) or data.get("method") not in _METHODS:
        method = data.get("method") if isinstance(data, Mapping) else None
        raise DataError(f"{source}: unknown discovery method {method!r} (known: {', '.join(sorted(_METHODS))})")
    try:
        model = data["model"]
        cohorts = [CohortSummary.from_dict(c) for c in model["cohorts"]]
        return _METHODS[data["method"]].from_model(data.get("params", {}), model, cohorts)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{source}: malformed {data['method']} model ({type(err).__name__}: {err})") from None
