"""The mitigation results page: a table and a trade-off plot from evaluation.json files only.

`results_rows` flattens each evaluation (`asrtools.fairness.mitigation.evaluate`) into one
row; `results_markdown` prints

    method | overall WER | worst-region WER | max | variance | relative gap [CI] | Δ vs baseline (p) | fine-tuning minutes

(WERs in %, variance in %², Δ = system - baseline in WER points: overall with its paired
bootstrap p, and the worst-ranked cohort's with its Holm-adjusted p); `plot_tradeoff` draws
overall WER against worst-region WER, one point per system, the EWC points joined in order
of lambda.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from asrtools.pipeline import atomic_path  # noqa: E402
from asrtools.scoring.tables import format_p_value  # noqa: E402

HEADER = ("method", "overall WER", "worst-region WER", "max", "variance", "relative gap [CI]",
          "Δ vs baseline (p)", "fine-tuning minutes")
_METADATA = {"Software": None}  # PNG bytes independent of the matplotlib version


def results_rows(documents: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One flat row per evaluation.json document (the numbers the table and plot show)."""
    return [_row(doc) for doc in documents]


def _row(doc: Dict[str, Any]) -> Dict[str, Any]:
    vs = doc.get("vs_baseline") or {}
    overall_vs, worst_vs = vs.get("overall") or {}, vs.get("worst_ranked") or {}
    gap = doc.get("disparity") or {}
    spread = doc.get("cohort_wer") or {}
    cost = doc["cost"]
    return {
        "name": doc["name"], "method": cost.get("method"),
        "overall_wer": doc["overall"]["wer"], "overall_ci": doc["overall"]["ci_speaker"],
        "worst_cohort": doc["worst_ranked"]["cohort"], "worst_wer": doc["worst_ranked"]["wer"],
        "max_wer": spread.get("max"), "max_cohort": spread.get("max_cohort"),
        "mean_wer": spread.get("mean"), "variance": spread.get("variance"),
        "rel_gap": gap.get("rel_gap"), "rel_gap_ci": gap.get("rel_gap_ci"), "gap_p": gap.get("p_value"),
        "diff_overall": overall_vs.get("diff"), "p_overall": overall_vs.get("p_bootstrap"),
        "diff_worst": worst_vs.get("diff"), "p_worst_holm": worst_vs.get("p_bootstrap_holm"),
        "changed_cohorts": [c["cohort"] for c in vs.get("cohorts", []) if c.get("significant")],
        "train_minutes": cost.get("train_minutes"), "fisher_minutes": cost.get("fisher_minutes"),
        "steps": cost.get("steps"), "cohort_coverage": cost.get("cohort_coverage"),
    }


def _pct(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"




def _gap(row: Dict[str, Any]) -> str:
    if row["rel_gap"] is None:
        return "n/a"
    low, high = row["rel_gap_ci"] or (None, None)
    return f"{_pct(row['rel_gap'], 1)}% [{_pct(low, 1)}, {_pct(high, 1)}]"


def _delta(row: Dict[str, Any]) -> str:
    if row["diff_overall"] is None:
        return "—"
    return (f"{100 * row['diff_overall']:+.2f} ({format_p_value(row['p_overall'])}); "
            f"worst {100 * row['diff_worst']:+.2f} (Holm {format_p_value(row['p_worst_holm'])})")


def _minutes(row: Dict[str, Any]) -> str:
    text = f"{row['train_minutes']:.1f}" if row["train_minutes"] is not None else "n/a"
    if row["fisher_minutes"] is not None:
        text += f" (+{row['fisher_minutes']:.1f} Fisher)"
    return text


def results_markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """The mitigation table (see the module docstring) with a short legend."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = [r["name"], _pct(r["overall_wer"]), f"{_pct(r['worst_wer'])} ({r['worst_cohort']})",
                 f"{_pct(r['max_wer'])} ({r['max_cohort']})" if r["max_wer"] is not None else "n/a",
                 f"{1e4 * r['variance']:.2f}" if r["variance"] is not None else "n/a",
                 _gap(r), _delta(r), _minutes(r)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "WERs in %; variance of the cohort WERs in %²; worst-region = the cohort the discovery "
              "ranked worst (fixed before measuring); max = the largest cohort WER measured; relative gap = "
              "(worst - best) / best over the eligible cohorts with its selection-aware interval; Δ = system - "
              "baseline in WER points with the paired speaker-bootstrap p (worst region: Holm-adjusted over the "
              "cohorts); minutes = wall-clock of the fine-tuning stage (EWC adds its Fisher's)."]
    lines += _unknown_cohort_lines(rows)
    return "\n".join(lines) + "\n"


def _unknown_cohort_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """Per cohort-input system: the training / dev speakers missing from its cohort map (cohort `(unknown)`)."""
    lines = []
    for r in rows:
        coverage = r.get("cohort_coverage")
        if not coverage:
            continue
        parts = [f"{split} {c['unknown_speakers']} of {c['speakers']} speakers ({c['unknown_utterances']} of "
                 f"{c['utterances']} utterances)" for split, c in sorted(coverage.items())]
        lines.append(f"- {r['name']}: speakers missing from the cohort map get the explicit cohort "
                     f"`(unknown)`: {'; '.join(parts)}.")
    return [""] + lines if lines else []


def plot_tradeoff(rows: Sequence[Dict[str, Any]], path: Path) -> None:
    """Overall WER (x) vs worst-region WER (y), %, one labelled point per row, written to `path`.

    Rows whose method has penalty `ewc` are joined by a line in order of lambda.
    """
    fig, ax = plt.subplots(figsize=(6.5, 5.0))
    ewc = sorted((r for r in rows if (r["method"] or {}).get("penalty") == "ewc"),
                 key=lambda r: r["method"].get("lambda") or 0.0)
    if ewc:
        ax.plot([100 * r["overall_wer"] for r in ewc], [100 * r["worst_wer"] for r in ewc], "-o",
                color="tab:blue", label="EWC (λ sweep)")
    for r in rows:
        if r in ewc or r["overall_wer"] is None or r["worst_wer"] is None:
            continue
        marker = "*" if r["method"] is None else "s"
        ax.plot(100 * r["overall_wer"], 100 * r["worst_wer"], marker, markersize=10 if marker == "*" else 7)
    for r in rows:
        if r["overall_wer"] is not None and r["worst_wer"] is not None and math.isfinite(r["worst_wer"]):
            ax.annotate(r["name"], (100 * r["overall_wer"], 100 * r["worst_wer"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_xlabel("overall WER (%)")
    ax.set_ylabel("worst-region WER (%)")
    ax.set_title("Mitigations: overall vs worst-region WER (held-out speakers)")
    ax.grid(True, alpha=0.3)
    if ewc:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_METADATA)
    plt.close(fig)
