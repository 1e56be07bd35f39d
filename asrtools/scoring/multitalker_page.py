"""The multi-talker results page: Markdown from the `results.json` of `asrtools score multitalker-results`.

Self-contained (standard library only) so it can move to a shared report package: every
number comes from the JSON document, which the results stage builds from the stage
artifacts of each system (training marker, decode summary, scores, paired comparisons).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

PAPER = ("Sklyar et al. (Interspeech 2022) report on LibriCSS, against their multi-turn RNN-T baseline, "
         "+4.6% absolute turn-counting accuracy and 17% relative lower WER.")

_LABELS = {
    "merged_wer": "merged WER",
    "cp_wer": "cpWER",
    "orc_wer": "ORC-WER",
    "overlap_wer": "overlap-aware WER",
    "segmentation_error": "channel segmentation error",
    "turn_count_accuracy": "turn counting accuracy",
    "start_latency_median": "median start (<sot>) latency",
    "end_latency_median": "median end (<eot>) latency",
}


def _pct(value: Optional[float], digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _sec(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


def _signed(value: Optional[float], scale: float, digits: int) -> str:
    return "–" if value is None else f"{scale * value:+.{digits}f}"


def _overlap_name(key: str) -> str:
    return "all" if key == "all" else f"{100 * float(key):.0f}%" if key != "unknown" else key


def system_table(doc: Dict[str, Any]) -> List[str]:
    """One row per system and overlap bucket."""
    lines = ["| system | overlap | conv. | merged WER % | overlap-aware WER % | cpWER % | ORC-WER % | "
             "channel seg. error % | turn count acc. % | start latency med / p90 s | end latency med / p90 s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in doc["order"]:
        metrics = doc["systems"][name]["metrics"]
        keys = [k for k in metrics if k != "all"] + ["all"]
        for key in keys:
            m = metrics[key]
            label = f"**{name}**" if key == "all" else name
            lines.append(
                f"| {label} | {_overlap_name(key)} | {m['conversations']} | {_pct(m['merged_wer'])} | "
                f"{_pct(m['overlap_wer'])} | "
                f"{_pct(m['cp_wer'])} | {_pct(m['orc_wer'])} | {_pct(m['segmentation_error'])} | "
                f"{_pct(m['turn_count_accuracy'])} | "
                f"{_sec(m['start_latency_median'])} / {_sec(m['start_latency_p90'])} | "
                f"{_sec(m['end_latency_median'])} / {_sec(m['end_latency_p90'])} |")
    return lines


def _diff_cell(metric: str, entry: Dict[str, Any]) -> str:
    latency = metric.endswith("latency_median")
    scale, digits, unit = (1.0, 2, " s") if latency else (100.0, 1, "")
    low, high = entry["ci"]
    p = entry["p_value"]
    star = " *" if p is not None and p < 0.05 else ""
    return (f"{_signed(entry['diff'], scale, digits)}{unit} [{_signed(low, scale, digits)}, "
            f"{_signed(high, scale, digits)}] p={'–' if p is None else f'{p:.3f}'}{star}")


def comparison_table(doc: Dict[str, Any]) -> List[str]:
    """B minus A with bootstrap CIs and p-values, one row per comparison."""
    metrics = ["orc_wer", "merged_wer", "cp_wer", "segmentation_error", "turn_count_accuracy", "end_latency_median"]
    lines = ["| B vs A | " + " | ".join(f"Δ {_LABELS[m]}" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for comp in doc["comparisons"]:
        cells = [_diff_cell(m, comp["metrics"][m]) for m in metrics]
        lines.append(f"| {comp['b']} vs {comp['a']} | " + " | ".join(cells) + " |")
    return lines


def paper_lines(doc: Dict[str, Any]) -> List[str]:
    """Our STS-vs-baseline numbers beside the paper's claims."""
    comp = next((c for c in doc["comparisons"] if c["a"] == doc.get("baseline") and c["b"] == doc.get("main")), None)
    if comp is None:
        return []
    tca, orc, merged = comp["metrics"]["turn_count_accuracy"], comp["metrics"]["orc_wer"], comp["metrics"]["merged_wer"]

    def verdict(entry: Dict[str, Any]) -> str:
        p = entry["p_value"]
        return "significant" if p is not None and p < 0.05 else "not significant"

    return [
        f"{PAPER} Here, {comp['b']} vs {comp['a']}: turn counting accuracy "
        f"{_signed(tca['diff'], 100, 1)} points absolute (95% CI {_signed(tca['ci'][0], 100, 1)} to "
        f"{_signed(tca['ci'][1], 100, 1)}, p={tca['p_value']:.3f}, {verdict(tca)}); ORC-WER "
        f"{_signed(orc['rel_diff'], 100, 1)}% relative ({_signed(orc['diff'], 100, 1)} points, p={orc['p_value']:.3f}, "
        f"{verdict(orc)}); merged WER {_signed(merged['rel_diff'], 100, 1)}% relative "
        f"(p={merged['p_value']:.3f}, {verdict(merged)}).",
    ]


def setup_lines(doc: Dict[str, Any]) -> List[str]:
    """Where the numbers come from: commit, torch, CPU, threads, training time per system."""
    env = doc["environment"]
    lines = [f"Generated by `{doc.get('command', 'asrtools score multitalker-results')}` from stage artifacts; "
             f"commit {env.get('commit') or 'unknown'}, torch {env.get('torch')}, {env.get('cpu')} "
             f"({env.get('cpu_count')} logical CPUs).", "",
             "| system | description | train threads | steps (epochs) | train time | decode | decode RTF |",
             "|---|---|---|---|---|---|---|"]
    for name in doc["order"]:
        s = doc["systems"][name]
        train, decode = s.get("train", {}), s.get("decode", {})
        seconds = train.get("seconds")
        lines.append(f"| {name} | {s.get('description', '')} | {train.get('num_threads', '–')} | "
                     f"{train.get('steps', '–')} ({train.get('epochs_reached', '–')}) | "
                     f"{'–' if seconds is None else f'{seconds / 60:.1f} min'} | "
                     f"{decode.get('method', '–')} (chunk {decode.get('chunk_frames', '–')}) | "
                     f"{decode.get('real_time_factor', '–')} |")
    return lines


def results_markdown(doc: Dict[str, Any]) -> str:
    """The whole page."""
    lines = [f"# {doc['title']}", "", *setup_lines(doc), "",
             "## Test results by target overlap ratio", "",
             "WERs pool errors over words; latency = hypothesis minus reference turn boundary for "
             "turns matched by overlap (negative = early). Start/end latencies of the speaker-change "
             "baseline are those of its first/last word (it emits no turn tokens).", "",
             *system_table(doc), "",
             "## Differences (B - A), paired conversation-level bootstrap", "",
             f"{doc['n_boot']} resamples of the {doc['comparisons'][0]['metrics']['orc_wer']['n_conversations'] if doc['comparisons'] else 0} "
             "test conversations; 95% percentile intervals; two-sided p-values; * = p < 0.05. WER and "
             "latency differences below 0 favour B, turn-count differences above 0 favour B.", "",
             *comparison_table(doc), ""]
    paper = paper_lines(doc)
    if paper:
        lines += ["## Against the paper", "", *paper, ""]
    notes = doc.get("notes") or []
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
