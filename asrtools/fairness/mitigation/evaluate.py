"""Before/after measurement of a mitigation on held-out speakers, by cohort (`mitigate evaluate`).

Input: the mitigated system's decode, the baseline's decode of the same utterances, and
held-out cohort assignments of the evaluation speakers (labels and ranking from a discovery
that did not see these speakers: `crossfit`, `dev-test` or `applied` mode). Everything is
computed by the existing scoring code:

- overall WER and per-cohort tables (`asrtools.scoring.cohorts`: pooled WER, speaker
  bootstrap CIs);
- the worst-ranked cohort's WER: the cohort the *discovery* ranked worst (`ranking[0]`),
  fixed before measuring, so it carries no selection bias; `max` is the largest cohort WER
  measured here;
- mean / max / variance of cohort WER and the relative best-worst gap with its
  selection-aware interval and permutation p (`speaker_disparity`, eligible cohorts);
- per-cohort paired comparison with the baseline (`compare_systems`: paired speaker
  bootstrap, Holm-adjusted over the cohorts, NIST tests);
- the cost: the train stage's wall-clock minutes (its `.done.json`, the run that finished
  it) and steps, plus the Fisher stage's minutes for EWC.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from asrtools.data.assignments import Assignments
from asrtools.errors import DataError
from asrtools.pipeline import read_marker
from asrtools.scoring.cohorts import UtteranceTable, cohort_table, overall_stats
from asrtools.scoring.compare import compare_systems
from asrtools.scoring.disparity import Thresholds
from asrtools.scoring.wer import WerReport

COHORT = "cohort"
EVALUATION_NAME = "evaluation.json"


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """Statistics settings (as `asrtools score cohorts` / `score compare`).

    Attributes:
      n_boot: bootstrap replicates of the CIs and paired tests.
      n_permutations: label permutations of the disparity test and interval.
      seed: base seed.
      level: confidence level.
      alpha: significance level of the per-cohort verdicts (Holm-adjusted).
      thresholds: cohort sizes eligible for the gap.
    """

    n_boot: int = 1000
    n_permutations: int = 1000
    seed: int = 0
    level: float = 0.95
    alpha: float = 0.05
    thresholds: Thresholds = Thresholds()


def cohort_table_of(report: WerReport, assignments: Assignments, source: str) -> UtteranceTable:
    """The scored utterances with each speaker's cohort as the field `cohort`.

    Raises:
      DataError: a scored speaker has no cohort in the assignments.
    """
    speakers = sorted({u.speaker for u in report.utterances})
    missing = [s for s in speakers if s not in assignments.cohorts]
    if missing:
        raise DataError(f"{source}: speaker {missing[0]} has no cohort in {assignments.source} "
                        f"({len(missing)} of {len(speakers)} speakers missing)")
    return UtteranceTable.from_report(report, {s: {COHORT: assignments.cohorts[s]} for s in speakers})


def _worst_ranked(assignments: Assignments, present: Sequence[str]) -> str:
    return next(label for label in assignments.ranking if label in set(present))


def measure(table: UtteranceTable, assignments: Assignments, options: EvalOptions) -> Dict[str, Any]:
    """Overall and per-cohort WER, worst-ranked cohort, cohort-WER spread and the gap of one system."""
    o = options
    overall = overall_stats(table, o.n_boot, o.seed, o.level, o.thresholds)
    grouping = cohort_table(table, (COHORT,), o.n_boot, o.seed, o.level, o.thresholds, o.n_permutations)
    by_label = {c.label: c for c in grouping.cohorts}
    worst = _worst_ranked(assignments, list(by_label))
    gap = grouping.disparity
    spread = None
    if gap is not None:
        spread = {"mean": gap.mean_across, "max": gap.wer_worst, "max_cohort": gap.worst,
                  "variance": gap.std_across ** 2, "n_cohorts": gap.n_cohorts, "basis": gap.basis}
    ranked = [label for label in assignments.ranking if label in by_label]
    return {
        "overall": overall.to_dict(),
        "cohorts": [{**by_label[label].to_dict(), "rank": assignments.ranking.index(label) + 1} for label in ranked],
        "worst_ranked": {"cohort": worst, "wer": by_label[worst].wer,
                         "ci_speaker": by_label[worst].to_dict()["ci_speaker"]},
        "cohort_wer": spread,
        "disparity": gap.to_dict() if gap is not None else None,
    }


def versus_baseline(baseline: UtteranceTable, system: UtteranceTable, worst: str, name: str,
                    options: EvalOptions) -> Dict[str, Any]:
    """Paired comparison (system - baseline) overall and per cohort, Holm-adjusted over cohorts."""
    o = options
    result = compare_systems(baseline, system, [(COHORT,)], o.n_boot, o.seed, o.level, o.alpha, o.thresholds,
                             ("baseline", name))
    cohorts = [c.to_dict() for c in result.groupings[0].cohorts]
    return {"overall": result.overall.to_dict(), "cohorts": cohorts,
            "worst_ranked": next(c for c in cohorts if c["cohort"] == worst)}


def training_cost(train_dir: Optional[Path], fisher_dir: Optional[Path]) -> Dict[str, Any]:
    """What a mitigation was (data, penalty, lambda, ...) and what it cost (minutes, steps).

    Raises:
      DataError: a given directory is not a finished stage.
    """
    if train_dir is None:
        return {"method": None, "train_minutes": 0.0, "steps": 0, "fisher_minutes": None}
    marker = _finished(train_dir)
    config = marker["params"]["config"]
    summary = json.loads((Path(train_dir) / "train_summary.json").read_text())
    penalties = marker["params"].get("regularizers", {})
    name, settings = next(iter(penalties.items()), ("none", {}))
    mitigation = config.get("mitigation", {})
    method = {"data": mitigation.get("data", "general"), "worst_k": mitigation.get("worst_k"),
              "oversample_factor": mitigation.get("oversample_factor", 1.0), "penalty": name,
              "lambda": settings.get("lambda"), "cohort_input": config["model"]["encoder"] == "cohort_input",
              "max_steps": config.get("max_steps")}
    fisher_minutes = _finished(fisher_dir)["seconds"] / 60.0 if fisher_dir is not None else None
    coverage = _cohort_coverage(Path(train_dir)) if method["cohort_input"] else None
    if "train_seconds" not in summary:
        raise DataError(f"{train_dir}/train_summary.json: no train_seconds (trained by an older asrtools); train it again")
    return {"method": method, "train_minutes": summary["train_seconds"] / 60.0, "steps": summary["steps"],
            "fisher_minutes": fisher_minutes, "cohort_coverage": coverage,
            "note": "the trainer's own training time, summed over resumed runs (train_summary.json)"}


def _cohort_coverage(train_dir: Path) -> Dict[str, Any]:
    """A cohort-input run's count of training / dev speakers that got the `(unknown)` cohort."""
    from asrtools.training.tasks.mitigation import COVERAGE_NAME

    path = train_dir / COVERAGE_NAME
    if not path.is_file():
        raise DataError(f"{train_dir}: a cohort-input run without {COVERAGE_NAME} (trained before speakers "
                        "missing from the cohort map were counted); train it again")
    return json.loads(path.read_text())


def _finished(stage_dir: Path) -> Dict[str, Any]:
    marker = read_marker(Path(stage_dir))
    if "seconds" not in marker:
        raise DataError(f"{stage_dir}: not a finished stage directory (no .done.json)")
    return marker


def evaluation(name: str, system: WerReport, baseline: Optional[WerReport], assignments: Assignments,
               cost: Dict[str, Any], options: EvalOptions, sources: Dict[str, str]) -> Dict[str, Any]:
    """The evaluation.json document of one system (baseline: `baseline` None)."""
    table = cohort_table_of(system, assignments, sources["decode"])
    doc: Dict[str, Any] = {"name": name, "sources": sources,
                           "assignments": {"method": assignments.method, "mode": assignments.mode,
                                           "ranking": list(assignments.ranking)},
                           **measure(table, assignments, options), "cost": cost,
                           "options": {**dataclasses.asdict(options)}}
    if assignments.mode == "in-sample":
        doc["caution"] = "in-sample: the cohorts were found on these speakers"
    doc["vs_baseline"] = None
    if baseline is not None:
        base_table = cohort_table_of(baseline, assignments, sources["baseline_decode"])
        doc["vs_baseline"] = versus_baseline(base_table, table, doc["worst_ranked"]["cohort"], name, options)
    return doc

