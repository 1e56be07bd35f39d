"""Verification trial lists: VoxCeleb-format reading/writing and balanced trials for a corpus.

A trial list is a text file of `label enroll test` lines (VoxCeleb's format): label 1 for a
target trial (same speaker), 0 for a non-target trial; enroll and test are utterance
(cut) ids. `#` starts a comment line.

`make_trials` builds a balanced, seeded list from the utterances of an evaluation split:

- target trials: for every speaker, `targets_per_speaker` distinct pairs of two of its
  utterances (every target trial lies within every group of its speaker);
- within-group non-target trials: for every grouping (e.g. gender, region, engine) and every
  speaker, `nontargets_per_speaker` trials against other speakers of the *same* group value
  (the hard, same-gender / same-accent comparisons whose EER is the per-group EER);
- cross-group non-target trials: per grouping and speaker, `cross_per_speaker` trials
  against speakers of *another* group value (so the overall EER also sees easy ones).

Every speaker contributes the same numbers, so groups are balanced by speaker; partners and
utterances are drawn with `random.Random(seed)`; duplicate trials (either order) are kept
once. The list is sorted, so the file depends only on the inputs and the seed.
"""
from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from asrtools.errors import DataError
from asrtools.pipeline import atomic_write_text
from asrtools.scoring.sv import Trial  # defined in scoring, below sv, which scores trials


def read_trials(path: Path, known_ids: Optional[Set[str]] = None) -> List[Trial]:
    """Read a `label enroll test` trial list.

    Args:
      path: the trial file.
      known_ids: utterance ids that may appear (e.g. those with an embedding); None = any.

    Raises:
      DataError: naming the file and line for a malformed line (not three fields, a label
        other than 0/1, enroll == test), an unknown id, a repeated trial; or the file for
        a list without target or without non-target trials.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"trial list {path} does not exist")
    trials: List[Trial] = []
    seen: Dict[Tuple[str, str], int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise DataError(f"{path}:{lineno}: expected 'label enroll test' with label 0 or 1, got {line[:80]!r}")
            label, enroll, test = int(fields[0]), fields[1], fields[2]
            if enroll == test:
                raise DataError(f"{path}:{lineno}: enroll and test are the same utterance {enroll!r}")
            for utt in (enroll, test):
                if known_ids is not None and utt not in known_ids:
                    raise DataError(f"{path}:{lineno}: unknown utterance id {utt!r} (no embedding for it)")
            key = (enroll, test) if enroll < test else (test, enroll)
            if key in seen:
                raise DataError(f"{path}:{lineno}: trial {enroll} {test} repeats line {seen[key]}")
            seen[key] = lineno
            trials.append(Trial(label, enroll, test))
    if not trials:
        raise DataError(f"{path}: the trial list is empty")
    if not any(t.label == 1 for t in trials):
        raise DataError(f"{path}: no target trials (label 1): an EER needs both kinds")
    if all(t.label == 1 for t in trials):
        raise DataError(f"{path}: no non-target trials (label 0): an EER needs both kinds")
    return trials


def write_trials(path: Path, trials: Iterable[Trial]) -> None:
    """Write `label enroll test` lines atomically."""
    atomic_write_text(path, "".join(t.line() + "\n" for t in trials))


@dataclasses.dataclass
class TrialPlan:
    """How many trials `make_trials` draws per speaker.

    Attributes:
      groupings: speaker attributes to balance within and across (e.g. gender, region, engine).
      targets_per_speaker: target trials per speaker.
      nontargets_per_speaker: same-group non-target trials per speaker and grouping.
      cross_per_speaker: other-group non-target trials per speaker and grouping.
      seed: the random seed.
    """

    groupings: List[str]
    targets_per_speaker: int = 20
    nontargets_per_speaker: int = 20
    cross_per_speaker: int = 10
    seed: int = 0


def make_trials(utterances: Mapping[str, str], attributes: Mapping[str, Mapping[str, Any]],
                plan: TrialPlan) -> Tuple[List[Trial], Dict[str, Any]]:
    """Balanced target / within-group / cross-group trials (see the module docstring).

    Args:
      utterances: utterance id -> speaker id.
      attributes: speaker id -> {attribute: value} (must hold every grouping of `plan`).
      plan: counts and seed.

    Returns:
      The sorted trials and statistics (counts per grouping and group).
    """
    rng = random.Random(plan.seed)
    by_speaker: Dict[str, List[str]] = defaultdict(list)
    for utt, spk in sorted(utterances.items()):
        by_speaker[spk].append(utt)
    speakers = sorted(by_speaker)
    if len(speakers) < 2:
        raise DataError(f"trials need at least two speakers, got {len(speakers)}")
    for spk in speakers:
        for field in plan.groupings:
            if attributes.get(spk, {}).get(field) is None:
                raise DataError(f"speaker {spk} has no {field!r} attribute (needed to group trials)")
    chosen: Dict[Tuple[str, str], int] = {}

    def add(label: int, a: str, b: str) -> None:
        chosen[(a, b) if a < b else (b, a)] = label

    for spk in speakers:
        utts = by_speaker[spk]
        pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:]]
        for a, b in rng.sample(pairs, min(plan.targets_per_speaker, len(pairs))):
            add(1, a, b)
    values = {field: {s: str(attributes[s][field]) for s in speakers} for field in plan.groupings}
    for field in plan.groupings:
        value = values[field]
        for spk in speakers:
            same = [o for o in speakers if o != spk and value[o] == value[spk]]
            other = [o for o in speakers if value[o] != value[spk]]
            for pool, count in ((same, plan.nontargets_per_speaker), (other, plan.cross_per_speaker)):
                for partner in _draw(rng, pool, count):
                    add(0, rng.choice(by_speaker[spk]), rng.choice(by_speaker[partner]))
    stats: Dict[str, Any] = {field: _group_counts(chosen, utterances, values[field]) for field in plan.groupings}
    trials = [Trial(label, a, b) for (a, b), label in sorted(chosen.items())]
    stats["total"] = {"trials": len(trials), "target": sum(t.label for t in trials),
                      "nontarget": sum(1 - t.label for t in trials), "speakers": len(speakers),
                      "utterances": len(utterances)}
    return trials, stats


def _draw(rng: random.Random, pool: Sequence[str], count: int) -> List[str]:
    """`count` partners: without replacement while the pool lasts, then again from the start."""
    if not pool or count <= 0:
        return []
    out: List[str] = []
    while len(out) < count:
        out += rng.sample(list(pool), min(len(pool), count - len(out)))
    return out


def _group_counts(chosen: Mapping[Tuple[str, str], int], utterances: Mapping[str, str],
                  value: Mapping[str, str]) -> Dict[str, Dict[str, int]]:
    counts: Dict[str, Counter] = defaultdict(Counter)
    for (a, b), label in chosen.items():
        ga, gb = value[utterances[a]], value[utterances[b]]
        if ga == gb:
            counts[ga]["target" if label else "nontarget"] += 1
        else:
            counts["(cross)"]["nontarget"] += 1
    speakers = Counter(value.values())
    return {g: {"target": c["target"], "nontarget": c["nontarget"], "speakers": speakers.get(g, 0)}
            for g, c in sorted(counts.items())}
