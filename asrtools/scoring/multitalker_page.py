"""The multi-talker results page: Markdown from the `results.json` of `asrtools score multitalker-results`.

Self-contained (standard library and `asrtools.utils.paths`) so it can move to a shared report
package: every number comes from the JSON document, which the results stage builds from the
stage artifacts of each system (training marker, decode summary, scores, paired comparisons).
Paths in the recipe's notes are shown relative to the working directory.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from asrtools.utils.paths import relative_paths

PAPER = ("Sklyar et al. (Interspeech 2022) report on LibriCSS, against their multi-turn RNN-T baseline, "
         "+4.6% absolute turn-counting accuracy and 17% relative lower WER.")

_LABELS = {
    "merged_wer": "merged WER",
    "orc_wer": "ORC-WER",
    "overlap_wer": "overlap-aware WER",
    "segmentation_error": "channel segmentation error",
    "turn_count_accuracy": "turn counting accuracy",
    "word_start_latency_abs_median": "median abs. start latency (words)",
    "word_end_latency_abs_median": "median abs. end latency (words)",
    "start_latency_abs_median": "median abs. start latency (turn boundaries)",
    "end_latency_abs_median": "median abs. end latency (turn boundaries)",
}

METHOD_NOTES = (
    "cpWER is not reported: it needs speaker-attributed hypothesis streams (meeteval's cpWER/tcpWER map "
    "reference speakers to hypothesis speakers), while these models' output channels are not tied to "
    "speakers (a turn takes the first free channel, so without overlap every turn is on channel 0 and cpWER "
    "exceeds 100% even for a perfect transcript). ORC-WER and the overlap-aware (MIMO) WER are meeteval's "
    "metrics for channel outputs.",
    "Latency, like for like: *words* = every system's turn boundaries at its first and last word's emission "
    "(the only boundaries the speaker-change baseline has); *turn boundaries* = as decoded, STS's `<sot>`/`<eot>` "
    "emissions (for the baseline the same as words). Comparing STS's `<eot>` with the baseline's last word would "
    "charge STS the time between its last word and its `<eot>`, so systems of different schemes are compared on "
    "words. Systems are compared by the median absolute latency; the signed median is shown as the bias.",
)


def _pct(value: Optional[float], digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _sec(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


def _signed(value: Optional[float], scale: float, digits: int) -> str:
    return "–" if value is None else f"{scale * value:+.{digits}f}"


def _overlap_name(key: str) -> str:
    return "all" if key == "all" else f"{100 * float(key):.0f}%" if key != "unknown" else key


def _buckets(metrics: Dict[str, Any]) -> List[str]:
    return [k for k in metrics if k != "all"] + ["all"]


def system_table(doc: Dict[str, Any]) -> List[str]:
    """One row per system and overlap bucket."""
    lines = ["| system | overlap | conv. | merged WER % | overlap-aware WER % | ORC-WER % | channel seg. error % | "
             "turn count acc. % | turns ref / hyp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in doc["order"]:
        metrics = doc["systems"][name]["metrics"]
        for key in _buckets(metrics):
            m = metrics[key]
            label = f"**{name}**" if key == "all" else name
            lines.append(
                f"| {label} | {_overlap_name(key)} | {m['conversations']} | {_pct(m['merged_wer'])} | "
                f"{_pct(m['overlap_wer'])} | {_pct(m['orc_wer'])} | {_pct(m['segmentation_error'])} | "
                f"{_pct(m['turn_count_accuracy'])} | {m['ref_turns']} / {m['hyp_turns']} |")
    return lines


def _histogram_cell(histogram: Dict[str, int], signed: bool = False) -> str:
    """`3:12 4:20 5:18` (value:conversations)."""
    return " ".join(f"{int(k):+d}:{v}" if signed else f"{k}:{v}" for k, v in histogram.items()) or "–"


def _overlapped(metrics: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [metrics[k] for k in metrics if k not in ("all", "unknown") and float(k) > 0]


def turn_count_lines(doc: Dict[str, Any]) -> List[str]:
    """Histograms of reference and hypothesis turn counts per overlap bucket, and what they say."""
    lines = ["Per overlap bucket: how many conversations have each number of reference turns, of hypothesis "
             "turns (both channels), and each difference hyp - ref; and the turns on each output channel "
             "(reference turns take the first free channel, so channel 1 holds only turns that start while "
             "channel 0 is busy). A hypothesis equal to the reference counts 100% in every bucket "
             "(tests/test_multitalker_scoring.py), so a 0% bucket is the model's, not the counting's.", ""]
    for name in doc["order"]:
        metrics = doc["systems"][name]["metrics"]
        lines += [f"**{name}**", "", "| overlap | conv. | ref turns | hyp turns | hyp - ref | fewer / equal / more | "
                  "ref turns ch0 / ch1 | hyp turns ch0 / ch1 |", "|---|---|---|---|---|---|---|---|"]
        for key in _buckets(metrics):
            m, counts = metrics[key], metrics[key]["turn_counts"]
            lines.append(f"| {_overlap_name(key)} | {m['conversations']} | {_histogram_cell(counts['ref'])} | "
                         f"{_histogram_cell(counts['hyp'])} | {_histogram_cell(counts['hyp_minus_ref'], True)} | "
                         f"{counts['fewer']} / {counts['equal']} / {counts['more']} | "
                         f"{' / '.join(map(str, counts['ref_by_channel']))} | "
                         f"{' / '.join(map(str, counts['hyp_by_channel']))} |")
        lines += ["", _turn_count_reading(name, metrics), ""]
    return lines


def _turn_count_reading(name: str, metrics: Dict[str, Any]) -> str:
    """One sentence: in the overlapped buckets, fewer / more hypothesis turns, and channel 1's share."""
    buckets = _overlapped(metrics)
    if not buckets:
        return f"{name}: no overlapped bucket."
    total = sum(m["conversations"] for m in buckets)
    fewer, equal, more = (sum(m["turn_counts"][k] for m in buckets) for k in ("fewer", "equal", "more"))

    def share_ch1(side: str) -> str:
        by_channel = [sum(m["turn_counts"][f"{side}_by_channel"][c] for m in buckets) for c in range(2)]
        return "–" if not sum(by_channel) else f"{100 * by_channel[1] / sum(by_channel):.0f}%"

    return (f"{name}, overlapped buckets ({total} conversations): the hypothesis has fewer turns than the reference "
            f"in {fewer}, as many in {equal}, more in {more}; channel 1 holds {share_ch1('hyp')} of the hypothesis "
            f"turns against {share_ch1('ref')} of the reference turns.")


def latency_table(doc: Dict[str, Any]) -> List[str]:
    """Start / end latency of every system over all conversations, at word and at turn boundaries."""
    lines = ["| system | boundary | matched turns | start: signed median s | start: abs. median / p90 s | "
             "end: signed median s | end: abs. median / p90 s |", "|---|---|---|---|---|---|---|"]
    for name in doc["order"]:
        m = doc["systems"][name]["metrics"]["all"]
        for prefix, label in (("word_", "words"), ("", "turn boundaries")):
            lines.append(f"| {name} | {label} | {m[f'{prefix}start_latency_count']} | "
                         f"{_signed(m[f'{prefix}start_latency_median'], 1.0, 2)} | "
                         f"{_sec(m[f'{prefix}start_latency_abs_median'])} / {_sec(m[f'{prefix}start_latency_abs_p90'])} | "
                         f"{_signed(m[f'{prefix}end_latency_median'], 1.0, 2)} | "
                         f"{_sec(m[f'{prefix}end_latency_abs_median'])} / {_sec(m[f'{prefix}end_latency_abs_p90'])} |")
    return lines


def _diff_cell(metric: str, entry: Dict[str, Any]) -> str:
    latency = "latency" in metric
    scale, digits, unit = (1.0, 2, " s") if latency else (100.0, 1, "")
    low, high = entry["ci"]
    p = entry["p_value"]
    star = " *" if p is not None and p < 0.05 else ""
    return (f"{_signed(entry['diff'], scale, digits)}{unit} [{_signed(low, scale, digits)}, "
            f"{_signed(high, scale, digits)}] p={'–' if p is None else f'{p:.3f}'}{star}")


COMPARED_ON_PAGE = ("orc_wer", "merged_wer", "segmentation_error", "turn_count_accuracy",
                    "word_end_latency_abs_median", "end_latency_abs_median")


def comparison_table(doc: Dict[str, Any]) -> List[str]:
    """B minus A with bootstrap CIs and p-values, one row per comparison."""
    lines = ["| B vs A | " + " | ".join(f"Δ {_LABELS[m]}" for m in COMPARED_ON_PAGE) + " |",
             "|---|" + "---|" * len(COMPARED_ON_PAGE)]
    for comp in doc["comparisons"]:
        cells = [_diff_cell(m, comp["metrics"][m]) for m in COMPARED_ON_PAGE]
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
    n_conv = doc["comparisons"][0]["metrics"]["orc_wer"]["n_conversations"] if doc["comparisons"] else 0
    lines = [f"# {doc['title']}", "", *setup_lines(doc), "",
             "## Test results by target overlap ratio", "",
             "WERs pool errors over words; turns ref / hyp = reference and hypothesis turns summed over the "
             "bucket's conversations.", "",
             *system_table(doc), "",
             "## Turn counts", "", *turn_count_lines(doc),
             "## Turn-boundary latency (all conversations)", "",
             "Latency = hypothesis minus reference turn boundary, for turns matched one-to-one by temporal overlap "
             "(negative = early).", "",
             *latency_table(doc), "",
             "## Differences (B - A), paired conversation-level bootstrap", "",
             f"{doc['n_boot']} resamples of the {n_conv} test conversations; 95% percentile intervals; two-sided "
             "p-values; * = p < 0.05. WER and absolute-latency differences below 0 favour B, turn-count "
             "differences above 0 favour B.", "",
             *comparison_table(doc), ""]
    paper = paper_lines(doc)
    if paper:
        lines += ["## Against the paper", "", *paper, ""]
    notes = [*METHOD_NOTES, *(relative_paths(n) for n in doc.get("notes") or [])]  # no machine paths
    lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
