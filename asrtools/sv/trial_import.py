"""`asrtools sv import-trials`: an official VoxCeleb trial list in the toolkit's trial format.

The list's lines (`label id/VIDEO/NNNNN.wav id/VIDEO/NNNNN.wav`, read by
`asrtools.data.corpora.voxceleb.read_official_trials`) become trials of toolkit cut ids (lhotse's
`id10270-x6uYqmx31kE-00001`), checked against the prepared supervisions, in an `sv trials`-shaped
directory (trials.txt + trials.json) that `asrtools sv score --trials` reads unchanged. It lives
in `sv` rather than beside the corpus parser because it builds `sv` trials (layers: .importlinter).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Tuple

from asrtools.data.corpora.voxceleb import read_official_trials, trial_utterance_id
from asrtools.errors import DataError
from asrtools.pipeline import atomic_write_json, run_stage
from asrtools.scoring.sv import Trial
from asrtools.scoring.sv_report import utterance_speakers
from asrtools.sv.trials import write_trials


@dataclasses.dataclass(frozen=True)
class TrialImportConfig:
    """`asrtools sv import-trials`: an official VoxCeleb trial list in the toolkit's trial format.

    Attributes:
      trial_list: the official list (`label id/VIDEO/NNNNN.wav id/VIDEO/NNNNN.wav`; plain utterance
        ids are accepted too).
      supervisions: the SupervisionSet of the trial utterances (e.g. supervisions_test.jsonl.gz).
    """

    trial_list: Path
    supervisions: Path


def convert_trials(config: TrialImportConfig) -> Tuple[List[Any], Dict[str, Any]]:
    """The list's trials with toolkit utterance ids, and their statistics.

    Raises:
      DataError: naming the list and line of a malformed line, an utterance not in the
        supervisions, or a repeated trial (`asrtools.sv.trials.read_trials` checks the result).
    """
    path = Path(config.trial_list)
    if not path.is_file():
        raise DataError(f"trial list {path} does not exist")
    utt2spk = utterance_speakers(Path(config.supervisions))
    trials, seen = [], {}
    for label, enroll, test, lineno in read_official_trials(path):
        ids = []
        for field in (enroll, test):
            utt = trial_utterance_id(field)
            if utt not in utt2spk:
                raise DataError(f"{path}:{lineno}: utterance {field} ({utt}) is not in {config.supervisions}")
            ids.append(utt)
        if ids[0] == ids[1]:
            raise DataError(f"{path}:{lineno}: enroll and test are the same utterance {enroll}")
        key = tuple(sorted(ids))
        if key in seen:
            raise DataError(f"{path}:{lineno}: trial {enroll} {test} repeats line {seen[key]}")
        seen[key] = lineno
        trials.append(Trial(label, ids[0], ids[1]))
    labels = Counter(t.label for t in trials)
    if not labels[1] or not labels[0]:
        raise DataError(f"{path}: needs both target (1) and non-target (0) trials for an EER")
    speakers = {utt2spk[u] for t in trials for u in (t.enroll, t.test)}
    stats = {"total": {"trials": len(trials), "target": labels[1], "nontarget": labels[0],
                       "speakers": len(speakers), "utterances": len({u for t in trials for u in (t.enroll, t.test)})}}
    return trials, stats


def import_trials(config: TrialImportConfig, out_dir: Path, force: bool = False) -> bool:
    """Stage body of `asrtools sv import-trials`: trials.txt (in list order) and trials.json in `out_dir`.

    Returns:
      True if the stage ran, False if it was up to date.
    """
    converted: Dict[str, Any] = {}

    def validate() -> None:  # at the door: a bad list leaves out_dir untouched
        converted["trials"], converted["stats"] = convert_trials(config)

    def body(ctx: Any) -> None:
        if "trials" not in converted:
            validate()
        write_trials(ctx.out_dir / "trials.txt", converted["trials"])
        atomic_write_json(ctx.out_dir / "trials.json", {"source": Path(config.trial_list).name,
                                                        "supervisions": str(config.supervisions),
                                                        "stats": converted["stats"]})
        total = converted["stats"]["total"]
        ctx.log.info("%d trials (%d target) of %d speakers from %s", total["trials"], total["target"],
                     total["speakers"], Path(config.trial_list).name)

    return run_stage(Path(out_dir), "sv import-trials", {"list": Path(config.trial_list).name},
                     {"trial_list": Path(config.trial_list), "supervisions": Path(config.supervisions)}, body,
                     force=force, validate=validate)
