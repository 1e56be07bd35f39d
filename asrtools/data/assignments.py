"""A cohort discovery's `assignments.json`: which cohort each speaker is in, worst first.

    {"method": "geo", "mode": "crossfit" | "dev-test" | "in-sample" | "applied",
     "cohorts": {speaker: label}, "ranking": [label, ...]}   # ranking: worst cohort first

(written by `asrtools cohorts geo|geodemographic|auto|assign`). Mitigations read it to pick
the training speakers of the worst k cohorts, to give a model its speakers' cohorts, and to
measure held-out speakers by cohort.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Set

from asrtools.errors import DataError


@dataclasses.dataclass(frozen=True)
class Assignments:
    """Speaker -> cohort labels and the cohorts' ranking (worst first).

    Attributes:
      method: the discovery method that made them.
      mode: how the labels were obtained ("crossfit", "dev-test", "in-sample", "applied").
      cohorts: speaker -> cohort label.
      ranking: every label, worst cohort first (by the discovery's WER).
      source: the file, for messages.
    """

    method: str
    mode: str
    cohorts: Dict[str, str]
    ranking: List[str]
    source: str = "assignments"

    def worst(self, k: int) -> List[str]:
        """The labels of the `k` worst cohorts."""
        if not 1 <= k <= len(self.ranking):
            raise DataError(f"{self.source}: worst_k {k} must be between 1 and the {len(self.ranking)} ranked cohorts")
        return list(self.ranking[:k])

    def speakers_in(self, labels: List[str]) -> Set[str]:
        """The speakers whose cohort is one of `labels`."""
        wanted = set(labels)
        return {spk for spk, label in self.cohorts.items() if label in wanted}


def read_assignments(path: Path) -> Assignments:
    """Read and check an assignments.json.

    Raises:
      DataError: one line naming the file and the problem (not JSON, a missing key, a
        label outside the ranking, a ranked label twice).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable assignments JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with cohorts and ranking")
    for key, kind in (("cohorts", dict), ("ranking", list)):
        if not isinstance(data.get(key), kind):
            raise DataError(f"{path}: missing or malformed {key!r} (expected a {kind.__name__})")
    cohorts = {str(k): str(v) for k, v in data["cohorts"].items()}
    ranking = [str(label) for label in data["ranking"]]
    if not cohorts or not ranking:
        raise DataError(f"{path}: no speakers or no ranked cohorts")
    if len(set(ranking)) != len(ranking):
        raise DataError(f"{path}: the ranking names a cohort twice")
    unranked = sorted(set(cohorts.values()) - set(ranking))
    if unranked:
        speaker = next(s for s, label in sorted(cohorts.items()) if label == unranked[0])
        raise DataError(f"{path}: speaker {speaker}'s cohort {unranked[0]!r} is not in the ranking")
    return Assignments(str(data.get("method", "")), str(data.get("mode", "")), cohorts, ranking, str(path))
