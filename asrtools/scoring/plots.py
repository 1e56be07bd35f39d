"""PNG plots of cohort WERs and system comparisons (matplotlib, Agg backend).

- `plot_cohort_wer`: horizontal bars of pooled WER per cohort, worst on top, with the
  speaker-bootstrap CI as whiskers; cohorts below the size thresholds are hatched; the
  dashed line is the overall WER.
- `plot_comparison`: per cohort, system A and B side by side with their CIs; cohorts that
  changed significantly are marked with ``*``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from asrtools.pipeline import atomic_path  # noqa: E402
from asrtools.scoring.cohorts import CohortGrouping, CohortStats  # noqa: E402
from asrtools.scoring.compare import ComparisonGrouping  # noqa: E402

_METADATA = {"Software": None}  # keep PNG bytes independent of the matplotlib version


def _pct(value: Optional[float]) -> float:
    return 100.0 * value if value is not None else float("nan")


def _whiskers(centres: Sequence[float], bounds: Sequence[Tuple[float, float]]) -> List[List[float]]:
    low, high = [], []
    for centre, (lo, hi) in zip(centres, bounds):
        ok = math.isfinite(centre) and math.isfinite(lo) and math.isfinite(hi)
        low.append(max(centre - 100 * lo, 0.0) if ok else 0.0)
        high.append(max(100 * hi - centre, 0.0) if ok else 0.0)
    return [low, high]


def _save(fig: "plt.Figure", path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_METADATA)
    plt.close(fig)


def plot_cohort_wer(grouping: CohortGrouping, overall: CohortStats, path: Path, level: float = 0.95) -> None:
    """Bar chart of one grouping's cohort WERs with CI whiskers, written to `path`.

    Args:
      grouping: the cohort table (cohorts already worst-first).
      overall: the all-utterance statistics (dashed reference line).
      path: the PNG file to write (atomically).
      level: the CI level, for the axis label.
    """
    cohorts = [c for c in grouping.cohorts if c.wer is not None][::-1]  # barh draws bottom-up
    labels = [f"{c.label} ({c.n_speakers} spk)" for c in cohorts]
    wers = [_pct(c.wer) for c in cohorts]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.35 * max(len(cohorts), 1)))
    bars = ax.barh(range(len(cohorts)), wers, xerr=_whiskers(wers, [c.ci_speaker for c in cohorts]),
                   color="tab:blue", ecolor="black", capsize=3)
    for bar, cohort in zip(bars, cohorts):
        if cohort.flags:
            bar.set_facecolor("lightsteelblue")
            bar.set_hatch("//")
    if overall.wer is not None:
        ax.axvline(_pct(overall.wer), color="tab:red", linestyle="--", linewidth=1, label="overall")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(cohorts)), labels, fontsize=8)
    ax.set_xlabel(f"WER % (whiskers: {100 * level:g}% speaker-bootstrap CI; hatched: below size thresholds)",
                  fontsize=8)
    ax.set_title(f"WER by {grouping.name}")
    ax.set_xlim(left=0)
    fig.tight_layout()
    _save(fig, path)


def plot_comparison(grouping: ComparisonGrouping, path: Path, names: Tuple[str, str] = ("A", "B"),
                    level: float = 0.95) -> None:
    """Before/after bars per cohort (A vs B) with CI whiskers, written to `path`.

    Args:
      grouping: the per-cohort comparison.
      path: the PNG file to write (atomically).
      names: legend names of A and B.
      level: the CI level, for the axis label.
    """
    cohorts = sorted((c for c in grouping.cohorts if c.wer_a is not None),
                     key=lambda c: (c.wer_a, c.label))
    labels = [c.label + (" *" if c.significant else "") for c in cohorts]
    wer_a = [_pct(c.wer_a) for c in cohorts]
    wer_b = [_pct(c.wer_b) for c in cohorts]
    positions = list(range(len(cohorts)))
    height = 0.38
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.5 * max(len(cohorts), 1)))
    ax.barh([p + height / 2 for p in positions], wer_a, height, xerr=_whiskers(wer_a, [c.ci_a for c in cohorts]),
            color="tab:gray", ecolor="black", capsize=2, label=f"A: {names[0]}")
    ax.barh([p - height / 2 for p in positions], wer_b, height, xerr=_whiskers(wer_b, [c.ci_b for c in cohorts]),
            color="tab:green", ecolor="black", capsize=2, label=f"B: {names[1]}")
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel(f"WER % (whiskers: {100 * level:g}% speaker-bootstrap CI; *: significant change)", fontsize=8)
    ax.set_title(f"Before/after by {grouping.name}")
    ax.set_xlim(left=0)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
