"""Multi-talker scoring: WERs of timed turns, turn counting and turn-boundary latency.

Per conversation (one line of a decode's `turns.jsonl`: reference turns with speakers,
hypothesis turns with channels, both timed):

- merged WER (speaker-agnostic): all turns of each side, both channels merged, ordered by
  start time and concatenated, then one Levenshtein alignment;
- ORC-WER: optimal reference combination, each reference turn assigned to the hypothesis
  channel that minimises the total errors (channel-agnostic, speaker-agnostic);
- overlap-aware WER (asclite's): the hypothesis words of both channels merged into ONE
  stream in time order (a turn's words spread evenly over the turn) are aligned against
  the reference speakers' word streams, which may interleave word by word (meeteval's
  MIMO WER with one reference segment per word; equal to NIST `sctk asclite` on an STM
  reference and a CTM hypothesis, tests/test_multitalker_scoring.py);
- channel segmentation error: the diarization error rate (missed + false-alarm + confused
  speech time over reference speech time, md-eval's definition, no collar, overlap
  scored) of the hypothesis turns' channels against the reference turns' channels
  (`assign_channels`), with the channel mapping that maximises matched time: how well the
  model segments the conversation into its output channels. Equal to NIST md-eval
  (`sctk`'s md-eval.pl) on RTTM files (tests/test_multitalker_scoring.py);
- turn counting: whether the number of hypothesis turns (both channels) equals the number
  of reference turns; the summaries keep the histograms of both counts and of their
  difference, and the turns per channel, so a failure can be told from a counting bug
  (a hypothesis equal to the reference counts 100% at every overlap ratio,
  tests/test_multitalker_scoring.py);
- latency: hypothesis turns are matched one-to-one to reference turns by maximum temporal
  overlap (Hungarian assignment, scipy; closed intervals, so a one-word turn whose span is
  a point still matches the turn it falls in); for each matched pair, start latency = hyp
  start - ref start and end latency = hyp end - ref end, with two kinds of hypothesis
  boundary: `turn` (as decoded: the `<sot>`/`<eot>` emissions for STS, the first/last
  word for the speaker-change baseline, which emits no turn tokens) and `word` (every
  system's first/last word emission: the like-for-like boundary between the two schemes;
  comparing STS's `<eot>` with the baseline's last word would charge STS the time between
  its last word and its `<eot>`). Systems are compared by the median ABSOLUTE latency (a
  signed median can be near 0 while turns end seconds early and late); the signed median
  is kept as the bias.

cpWER is not reported: it needs speaker-attributed hypothesis streams (meeteval's cpWER and
tcpWER map reference speakers to hypothesis speakers), while these models' output channels
are not tied to speakers: a turn takes the first free channel, so without overlap every
turn is on channel 0 and cpWER charges all but one speaker's words as deletions plus
insertions (> 100% for a perfect transcript). For channel outputs meeteval's documentation
prescribes ORC-WER (and MIMO-WER), which are reported.

The WERs come from meeteval (`siso_word_error_rate`, `orc_word_error_rate`,
`mimo_word_error_rate`), the field's implementation. Summaries pool errors and words, so
each WER is a ratio of sums, per target overlap ratio and over all conversations.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from asrtools.data.turns import NUM_CHANNELS, Turn, assign_channels
from asrtools.errors import DataError

ALL = "all"
WER_KINDS = ("merged", "orc", "overlap")
BOUNDARIES = ("turn", "word")  # hypothesis turn boundaries: as decoded, or first / last word
#: Changes when the rows or summaries change, so `asrtools score multitalker` reruns (its fingerprint).
SCORING_VERSION = 2


def _quiet_meeteval() -> None:
    """meeteval logs a line per call when segments carry no times; we always give times."""
    logging.getLogger("meeteval").setLevel(logging.ERROR)


def merged_text(turns: Sequence[Turn]) -> str:
    """The words of `turns` ordered by start time (then end time), as one string."""
    return " ".join(t.text for t in sorted(turns, key=lambda t: (t.start, t.end)) if t.text)


def merged_word_errors(ref: Sequence[Turn], hyp: Sequence[Turn]) -> Tuple[int, int]:
    """(errors, reference words) of the speaker-agnostic merged transcripts (meeteval SISO)."""
    from meeteval.wer import siso_word_error_rate

    ref_text, hyp_text = merged_text(ref), merged_text(hyp)
    words = len(ref_text.split())
    result = siso_word_error_rate(ref_text, hyp_text)
    return int(result.errors), words


def _seglst(turns: Sequence[Turn], speaker_of: Any, session: str) -> Any:
    from meeteval.io.seglst import SegLST

    return SegLST([{"session_id": session, "speaker": speaker_of(t), "words": t.text,
                    "start_time": t.start, "end_time": t.end} for t in turns if t.text])


def orc_errors(ref: Sequence[Turn], hyp: Sequence[Turn]) -> Tuple[int, int]:
    """(errors, reference words) of ORC-WER: reference turns onto hypothesis channels (meeteval).

    With no hypothesis words every reference word is a deletion (meeteval 0.4.3 fails an
    internal check on an empty hypothesis, so that case is counted here).
    """
    from meeteval.wer import orc_word_error_rate

    _quiet_meeteval()
    words = sum(len(t.text.split()) for t in ref)
    if not any(t.text for t in hyp):
        return words, words
    result = orc_word_error_rate(_seglst(ref, lambda t: "ref", "c"), _seglst(hyp, lambda t: f"channel{t.channel}", "c"))
    return int(result.errors), int(result.length)


def hypothesis_word_times(hyp: Sequence[Turn]) -> List[Tuple[float, str]]:
    """(time, word) of every hypothesis word, a turn's words spread evenly over its span, in time order."""
    timed = []
    for turn in hyp:
        words = turn.text.split()
        step = (turn.end - turn.start) / len(words) if words else 0.0
        timed += [(turn.start + (i + 0.5) * step, w) for i, w in enumerate(words)]
    return sorted(timed, key=lambda x: x[0])


def overlap_aware_errors(ref: Sequence[Turn], hyp: Sequence[Turn]) -> Tuple[int, int]:
    """(errors, reference words) of the overlap-aware WER (see the module doc; meeteval MIMO)."""
    from meeteval.wer import mimo_word_error_rate

    _quiet_meeteval()
    streams: Dict[str, List[str]] = {}
    for turn in sorted(ref, key=lambda t: (t.start, t.end)):
        streams.setdefault(turn.speaker, []).extend(turn.text.split())
    words = sum(len(v) for v in streams.values())
    hyp_words = [w for _, w in hypothesis_word_times(hyp)]
    if not hyp_words or not words:  # all deletions or all insertions
        return words + len(hyp_words), words
    result = mimo_word_error_rate({s: list(v) for s, v in streams.items() if v}, {"hyp": [" ".join(hyp_words)]})
    return int(result.errors), words


def channel_segmentation_error(ref: Sequence[Turn], hyp: Sequence[Turn]) -> Tuple[float, float]:
    """(error seconds, reference speech seconds) of the channel segmentation (see the module doc).

    `ref` turns carry their reference channels, `hyp` turns their output channels. Like
    md-eval without a UEM file, only the span from the first reference start to the last
    reference end is scored.
    """
    from scipy.optimize import linear_sum_assignment

    if not ref:
        return 0.0, 0.0
    ref_labels = sorted({t.channel for t in ref})
    hyp_labels = sorted({t.channel for t in hyp})
    begin, end = min(t.start for t in ref), max(t.end for t in ref)
    times = sorted({min(max(x, begin), end) for t in (*ref, *hyp) for x in (t.start, t.end)})
    spans = []  # (duration, active ref labels, active hyp labels) of each elementary interval
    for a, b in zip(times, times[1:]):
        mid = (a + b) / 2
        spans.append((b - a, {t.channel for t in ref if t.start <= mid < t.end},
                      {t.channel for t in hyp if t.start <= mid < t.end}))
    mapping: Dict[int, int] = {}
    if ref_labels and hyp_labels:
        together = np.zeros((len(ref_labels), len(hyp_labels)))
        for duration, r, h in spans:
            for i, rl in enumerate(ref_labels):
                for j, hl in enumerate(hyp_labels):
                    if rl in r and hl in h:
                        together[i, j] += duration
        rows, cols = linear_sum_assignment(together, maximize=True)
        mapping = {ref_labels[i]: hyp_labels[j] for i, j in zip(rows, cols)}
    error = speech = 0.0
    for duration, r, h in spans:
        correct = sum(1 for label in r if mapping.get(label) in h)
        error += duration * (max(len(r), len(h)) - correct)
        speech += duration * len(r)
    return error, speech


def match_turns(ref: Sequence[Turn], hyp: Sequence[Turn]) -> List[Tuple[int, int]]:
    """One-to-one (ref index, hyp index) pairs maximising the total temporal overlap.

    Intervals are closed: a hypothesis span that is a single instant (a one-word turn
    whose first and last word are the same emission) overlaps the turn it falls in by a
    tie-breaking epsilon. Pairs whose intervals do not meet are dropped.
    """
    from scipy.optimize import linear_sum_assignment

    if not ref or not hyp:
        return []
    overlap = np.zeros((len(ref), len(hyp)))
    for i, r in enumerate(ref):
        for j, h in enumerate(hyp):
            if h.start <= r.end and r.start <= h.end:
                overlap[i, j] = min(r.end, h.end) - max(r.start, h.start) + 1e-6
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if overlap[i, j] > 0.0]


def hypothesis_boundaries(hyp: Sequence[Turn], boundary: str, name: str = "conversation") -> List[Turn]:
    """The hypothesis turns with their `turn` boundaries (as decoded) or their `word` boundaries.

    Raises:
      DataError: `word` boundaries of turns decoded without word times (naming `name`).
    """
    if boundary == "turn":
        return list(hyp)
    if any(t.word_start is None or t.word_end is None for t in hyp):
        raise DataError(f"{name}: hypothesis turns carry no word times (decoded before asrtools recorded "
                        "them): decode again (asrtools decode ... --force), then score")
    return [dataclasses.replace(t, start=t.word_start, end=t.word_end) for t in hyp]


def turn_latencies(ref: Sequence[Turn], hyp: Sequence[Turn], boundary: str = "turn",
                   name: str = "conversation") -> Tuple[List[float], List[float]]:
    """(start latencies, end latencies) in seconds of the matched turns (hyp - ref).

    Args:
      ref, hyp: the reference and hypothesis turns.
      boundary: the hypothesis boundary, "turn" or "word" (`hypothesis_boundaries`); the
        turns are matched on their decoded (turn) spans either way, so both kinds measure
        the same pairs.
      name: for messages.
    """
    pairs = match_turns(ref, hyp)
    spans = hypothesis_boundaries(hyp, boundary, name)
    return ([spans[j].start - ref[i].start for i, j in pairs], [spans[j].end - ref[i].end for i, j in pairs])


def turns_by_channel(turns: Sequence[Turn]) -> List[int]:
    """Turns on each channel (at least `NUM_CHANNELS` entries)."""
    count = Counter(t.channel for t in turns)
    width = max([NUM_CHANNELS] + [c + 1 for c in count])
    return [count.get(c, 0) for c in range(width)]


def conversation_scores(record: Dict[str, Any]) -> Dict[str, Any]:
    """Every per-conversation quantity of one `turns.jsonl` record (see the module doc)."""
    try:
        ref = [Turn.from_dict(t) for t in record["ref"]]
        hyp = [Turn.from_dict(t) for t in record["hyp"]]
        cut_id = record["cut_id"]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"turns record {record.get('cut_id', '?')}: malformed ({err})") from None
    merged = merged_word_errors(ref, hyp)
    orc = orc_errors(ref, hyp)
    overlap = overlap_aware_errors(ref, hyp)
    seg_error, seg_speech = channel_segmentation_error(assign_channels(ref, overflow=True), hyp)
    latencies = {b: turn_latencies(ref, hyp, b, name=f"turns record {cut_id}") for b in BOUNDARIES}
    target = record.get("target_overlap")
    return {
        "cut_id": cut_id,
        "target_overlap": target,
        "overlap_ratio": record.get("overlap_ratio"),
        "words": merged[1],
        "merged_errors": merged[0],
        "orc_errors": orc[0],
        "overlap_errors": overlap[0],
        "segmentation_error_seconds": round(seg_error, 4),
        "speech_seconds": round(seg_speech, 4),
        "ref_turns": len(ref),
        "hyp_turns": len(hyp),
        "ref_turns_by_channel": turns_by_channel(ref),
        "hyp_turns_by_channel": turns_by_channel(hyp),
        "turn_count_correct": len(ref) == len(hyp),
        **{f"{_prefix(b)}{which}_latency": [round(x, 4) for x in latencies[b][k]]
           for b in BOUNDARIES for k, which in enumerate(("start", "end"))},
    }


def _prefix(boundary: str) -> str:
    """Row-key prefix of a boundary kind: "" for turn boundaries, "word_" for word boundaries."""
    return "" if boundary == "turn" else f"{boundary}_"


def read_turns(path: Path) -> List[Dict[str, Any]]:
    """The records of a `turns.jsonl` (or of a decode directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "turns.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no turns.jsonl (decode a multi-talker model first)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise DataError(f"{path}:{number}: not JSON") from None
    if not records:
        raise DataError(f"{path}: no conversations")
    return records


def _quantile(values: Sequence[float], q: float) -> Optional[float]:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def _histogram(values: Iterable[int]) -> Dict[str, int]:
    """{value: count} in increasing value order, keys as strings (JSON)."""
    return {str(k): v for k, v in sorted(Counter(values).items())}


def _channel_totals(rows: Sequence[Dict[str, Any]], key: str) -> List[int]:
    width = max([NUM_CHANNELS] + [len(r[key]) for r in rows])
    return [sum(r[key][c] for r in rows if c < len(r[key])) for c in range(width)]


def summarize(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Pooled metrics of a set of per-conversation rows."""
    words = sum(r["words"] for r in rows)
    out: Dict[str, Any] = {"conversations": len(rows), "words": words,
                           "ref_turns": sum(r["ref_turns"] for r in rows),
                           "hyp_turns": sum(r["hyp_turns"] for r in rows)}
    for kind in WER_KINDS:
        errors = sum(r[f"{kind}_errors"] for r in rows)
        out[f"{kind}_errors"] = errors
        out[f"{kind}_wer"] = errors / words if words else None
    speech = sum(r["speech_seconds"] for r in rows)
    out["segmentation_error"] = sum(r["segmentation_error_seconds"] for r in rows) / speech if speech else None
    out["turn_count_accuracy"] = sum(r["turn_count_correct"] for r in rows) / len(rows) if rows else None
    differences = [r["hyp_turns"] - r["ref_turns"] for r in rows]
    out["turn_counts"] = {
        "ref": _histogram(r["ref_turns"] for r in rows),
        "hyp": _histogram(r["hyp_turns"] for r in rows),
        "hyp_minus_ref": _histogram(differences),
        "fewer": sum(d < 0 for d in differences), "equal": sum(d == 0 for d in differences),
        "more": sum(d > 0 for d in differences),
        "ref_by_channel": _channel_totals(rows, "ref_turns_by_channel"),
        "hyp_by_channel": _channel_totals(rows, "hyp_turns_by_channel"),
    }
    for boundary in BOUNDARIES:
        for which in ("start", "end"):
            key = f"{_prefix(boundary)}{which}_latency"
            values = np.asarray([x for r in rows for x in r[key]], dtype=np.float64)
            out[f"{key}_median"] = _quantile(values, 0.5)
            out[f"{key}_abs_median"] = _quantile(np.abs(values), 0.5)
            out[f"{key}_abs_p90"] = _quantile(np.abs(values), 0.9)
            out[f"{key}_count"] = len(values)
    return out


def overlap_key(target: Any) -> str:
    """The bucket name of a target overlap ratio ("0.20"), or "unknown"."""
    return f"{float(target):.2f}" if isinstance(target, (int, float)) and math.isfinite(float(target)) else "unknown"


def score_conversations(records: Iterable[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Per-conversation rows and summaries by target overlap ratio (and "all")."""
    rows = [conversation_scores(r) for r in records]
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(overlap_key(row["target_overlap"]), []).append(row)
    summary = {key: summarize(groups[key]) for key in sorted(groups)}
    summary[ALL] = summarize(rows)
    return rows, summary


# ------------------------------------------------------------------- system comparison

RATIO_METRICS = ("merged_wer", "orc_wer", "overlap_wer", "segmentation_error")
MEAN_METRICS = ("turn_count_accuracy",)
#: median |latency| (the compared latency statistic), word boundaries (like for like) and turn boundaries
ABS_LATENCY_METRICS = ("word_start_latency_abs_median", "word_end_latency_abs_median",
                       "start_latency_abs_median", "end_latency_abs_median")
COMPARED_METRICS = RATIO_METRICS + MEAN_METRICS + ABS_LATENCY_METRICS


def _pair_rows(rows_a: Sequence[Dict[str, Any]], rows_b: Sequence[Dict[str, Any]]) -> List[Tuple[Dict, Dict]]:
    """Rows of the same conversations, in a's order; the two sets must be equal."""
    index_b = {r["cut_id"]: r for r in rows_b}
    ids_a = [r["cut_id"] for r in rows_a]
    if set(ids_a) != set(index_b) or len(ids_a) != len(rows_b):
        missing = sorted(set(ids_a) ^ set(index_b))
        raise DataError(f"the systems were scored on different conversations (e.g. {missing[0] if missing else '?'})")
    return [(r, index_b[r["cut_id"]]) for r in rows_a]


def _metric_replicates(rows: Sequence[Dict[str, Any]], metric: str, index: np.ndarray) -> Tuple[float, np.ndarray]:
    """Observed value of `metric` over `rows` and its value on each resample `index` (n_boot, n)."""
    if metric in RATIO_METRICS:
        if metric == "segmentation_error":
            errors = np.array([r["segmentation_error_seconds"] for r in rows], dtype=np.float64)
            words = np.array([r["speech_seconds"] for r in rows], dtype=np.float64)
        else:
            errors = np.array([r[f"{metric[: -len('_wer')]}_errors"] for r in rows], dtype=np.float64)
            words = np.array([r["words"] for r in rows], dtype=np.float64)
        observed = errors.sum() / words.sum() if words.sum() else float("nan")
        sums_w = words[index].sum(axis=1)
        return observed, np.divide(errors[index].sum(axis=1), sums_w, out=np.full(len(index), np.nan),
                                   where=sums_w > 0)
    if metric in MEAN_METRICS:
        correct = np.array([float(r["turn_count_correct"]) for r in rows])
        return float(correct.mean()), correct[index].mean(axis=1)
    values = [np.abs(np.asarray(r[metric[: -len("_abs_median")]], dtype=np.float64)) for r in rows]
    pooled = np.concatenate(values) if values else np.zeros(0)
    observed = float(np.median(pooled)) if pooled.size else float("nan")
    replicates = np.full(len(index), np.nan)
    for b, row in enumerate(index):
        sample = np.concatenate([values[i] for i in row])
        if sample.size:
            replicates[b] = np.median(sample)
    return observed, replicates


def compare_systems(rows_a: Sequence[Dict[str, Any]], rows_b: Sequence[Dict[str, Any]], n_boot: int = 1000,
                    seed: int = 0, level: float = 0.95, name: str = "") -> Dict[str, Dict[str, Any]]:
    """B minus A on every compared metric, with a paired conversation-level bootstrap.

    Both systems are resampled with the same conversations (clusters of turns and words),
    so the interval and the two-sided p-value (`asrtools.scoring.bootstrap`) account for
    the pairing. Speakers recur across conversations; resampling conversations treats
    them as independent (see docs/ARCHITECTURE.md).

    Args:
      rows_a, rows_b: per-conversation rows (`conversation_scores`) of the same conversations.
      n_boot: bootstrap replicates.
      seed: seed (with `name` and the metric) of the resampling.
      level: confidence level.
      name: identifies the comparison in the seed (stable across runs).

    Returns:
      metric -> {a, b, diff, rel_diff, ci: [low, high], p_value, n_conversations}.
    """
    from asrtools.scoring.bootstrap import bootstrap_p_value, percentile_ci, rng_for

    pairs = _pair_rows(rows_a, rows_b)
    a_rows, b_rows = [p[0] for p in pairs], [p[1] for p in pairs]
    index = rng_for(seed, "multitalker", name).integers(0, len(pairs), size=(n_boot, len(pairs)))
    out = {}
    for metric in COMPARED_METRICS:
        a, rep_a = _metric_replicates(a_rows, metric, index)
        b, rep_b = _metric_replicates(b_rows, metric, index)
        diff = b - a
        low, high = percentile_ci(rep_b - rep_a, level)
        out[metric] = {"a": _finite(a), "b": _finite(b), "diff": _finite(diff),
                       "rel_diff": _finite(diff / a) if a and math.isfinite(a) else None,
                       "ci": [_finite(low), _finite(high)], "p_value": _finite(bootstrap_p_value(rep_b - rep_a, diff)),
                       "n_conversations": len(pairs), "level": level}
    return out


def _finite(value: float) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None
