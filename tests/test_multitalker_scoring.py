"""Multi-talker scoring: cpWER / ORC-WER against meeteval on hand-computed cases, the
overlap-aware WER against NIST asclite, turn counting and latency on hand-made
conversations, and the calibration of the paired conversation bootstrap under the null."""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from asrtools.data.turns import Turn
from asrtools.scoring.multitalker import (
    compare_systems,
    channel_segmentation_error,
    conversation_scores,
    cp_errors,
    hypothesis_word_times,
    match_turns,
    merged_word_errors,
    orc_errors,
    overlap_aware_errors,
    summarize,
)


def R(start, end, speaker, text):
    return Turn(start, end, speaker, text)


def H(start, end, channel, text):
    return Turn(start, end, "", text, channel)


def _meeteval(kind, ref, hyp):
    from meeteval.io.seglst import SegLST
    from meeteval.wer import cp_word_error_rate, orc_word_error_rate

    def seg(turns, spk):
        return SegLST([{"session_id": "s", "speaker": spk(t), "words": t.text, "start_time": t.start,
                        "end_time": t.end} for t in turns])

    if kind == "cp":
        r = cp_word_error_rate(seg(ref, lambda t: t.speaker), seg(hyp, lambda t: str(t.channel)))
    else:
        r = orc_word_error_rate(seg(ref, lambda t: "r"), seg(hyp, lambda t: str(t.channel)))
    return r.errors, r.length


REF_SPLIT = [R(0.0, 2.0, "A", "a b"), R(1.0, 3.0, "B", "c d"), R(2.5, 4.0, "A", "e f")]
HYP_SPLIT = [H(0.1, 2.0, 0, "a b"), H(1.2, 3.0, 1, "c d"), H(3.1, 4.1, 1, "e f")]


def test_cp_and_orc_on_a_hand_computed_case_where_they_differ():
    # ORC: A1 -> ch0, B and A2 -> ch1: both channels exact -> 0 errors.
    # cpWER: A = "a b e f", B = "c d" vs ch0 = "a b", ch1 = "c d e f": A->ch0 2 del, B->ch1 2 ins = 4.
    assert orc_errors(REF_SPLIT, HYP_SPLIT) == (0, 6) == _meeteval("orc", REF_SPLIT, HYP_SPLIT)
    assert cp_errors(REF_SPLIT, HYP_SPLIT) == (4, 6) == _meeteval("cp", REF_SPLIT, HYP_SPLIT)


def test_cp_orc_and_merged_on_a_hand_computed_substitution():
    ref = [R(0.0, 2.0, "A", "a b c"), R(1.0, 3.0, "B", "d e"), R(4.0, 5.0, "A", "f g")]
    hyp = [H(0.2, 2.1, 0, "a b c"), H(1.3, 3.2, 1, "d e"), H(4.1, 5.2, 0, "f x")]
    assert orc_errors(ref, hyp) == (1, 7) == _meeteval("orc", ref, hyp)
    assert cp_errors(ref, hyp) == (1, 7) == _meeteval("cp", ref, hyp)
    assert merged_word_errors(ref, hyp) == (1, 7)  # "a b c d e f g" vs "a b c d e f x"


def test_empty_hypothesis_counts_every_reference_word():
    assert orc_errors(REF_SPLIT, []) == (6, 6)
    assert cp_errors(REF_SPLIT, []) == (6, 6)
    assert overlap_aware_errors(REF_SPLIT, []) == (6, 6)


def test_turn_counting_and_latency_on_hand_made_conversations():
    ref = [{"start": 0.0, "end": 2.0, "speaker": "A", "text": "a b", "channel": 0},
           {"start": 1.0, "end": 3.0, "speaker": "B", "text": "c d", "channel": 1},
           {"start": 4.0, "end": 5.0, "speaker": "A", "text": "e", "channel": 0}]
    good = {"cut_id": "c1", "target_overlap": 0.2, "ref": ref,
            "hyp": [{"start": 0.3, "end": 2.2, "text": "a b", "channel": 0},
                    {"start": 1.4, "end": 3.1, "text": "c d", "channel": 1},
                    {"start": 4.2, "end": 5.5, "text": "e", "channel": 0}]}
    missed = {"cut_id": "c2", "target_overlap": 0.2, "ref": ref,
              "hyp": [{"start": 0.5, "end": 3.4, "text": "a b c d", "channel": 0},
                      {"start": 4.1, "end": 4.9, "text": "e", "channel": 0}]}
    row_good, row_missed = conversation_scores(good), conversation_scores(missed)
    assert row_good["turn_count_correct"] and not row_missed["turn_count_correct"]
    assert row_good["start_latency"] == pytest.approx([0.3, 0.4, 0.2])
    assert row_good["end_latency"] == pytest.approx([0.2, 0.1, 0.5])
    # the long hypothesis turn overlaps ref turn 1 (1.5 s) more than ref turn 0 (1.5 s? no: 0.5-2.0 = 1.5,
    # 1.0-3.0 = 2.0): it is matched to turn 1; turn 0 stays unmatched
    assert match_turns([Turn.from_dict(t) for t in ref], [Turn.from_dict(t) for t in missed["hyp"]]) == [(1, 0), (2, 1)]
    assert row_missed["start_latency"] == pytest.approx([-0.5, 0.1])
    summary = summarize([row_good, row_missed])
    assert summary["turn_count_accuracy"] == 0.5
    assert summary["start_latency_median"] == pytest.approx(np.median([0.3, 0.4, 0.2, -0.5, 0.1]))
    assert summary["end_latency_p90"] == pytest.approx(np.quantile([0.2, 0.1, 0.5, 0.4, -0.1], 0.9))
    assert summary["merged_errors"] == 0 and summary["words"] == 10


needs_asclite = pytest.mark.skipif(shutil.which("sctk") is None,
                                   reason="NIST sctk not installed (Debian package 'sctk' provides `sctk asclite`)")

VOCAB = ["a", "b", "c", "d", "e", "f", "g", "h"]


def _random_case(rng: random.Random):
    """Two speakers whose turns form one chain of overlaps, and a noisy single-stream hypothesis."""
    ref, t = [], 0.0
    for k in range(rng.randint(2, 4)):
        n = rng.randint(1, 5)
        duration = 0.5 * n + 0.5
        ref.append(R(t, t + duration, "AB"[k % 2], " ".join(rng.choice(VOCAB) for _ in range(n))))
        t += duration * rng.uniform(0.4, 0.9)  # the next turn starts before this one ends
    hyp = []
    for turn in ref:
        words = [w for w in turn.text.split() if rng.random() > 0.15]
        words = [rng.choice(VOCAB) if rng.random() < 0.15 else w for w in words]
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), rng.choice(VOCAB))
        if words:
            hyp.append(H(turn.start + rng.uniform(0.0, 0.2), turn.end, 0, " ".join(words)))
    return ref, hyp


def _asclite_errors(ref, hyp, workdir: Path) -> int:
    stm = workdir / "ref.stm"
    ctm = workdir / "hyp.ctm"
    stm.write_text("".join(f"conv 1 spk{t.speaker} {t.start:.3f} {t.end:.3f} {t.text}\n" for t in ref))
    ctm.write_text("".join(f"conv 1 {time:.3f} 0.010 {word}\n" for time, word in hypothesis_word_times(hyp)))
    out = subprocess.run(["sctk", "asclite", "-r", str(stm), "stm", "-h", str(ctm), "ctm", "-o", "sum", "stdout",
                          "-f", "0"], capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if "Sum/Avg" in line)
    numbers = [float(x) for x in re.findall(r"-?\d+\.?\d*", row)]
    words, err_pct = numbers[1], numbers[6]
    return round(err_pct * words / 100.0)


@needs_asclite
def test_overlap_aware_wer_equals_asclite(tmp_path: Path):
    rng = random.Random(7)
    for case in range(25):
        ref, hyp = _random_case(rng)
        ours, words = overlap_aware_errors(ref, hyp)
        assert ours == _asclite_errors(ref, hyp, tmp_path), f"case {case}: {ref} / {hyp}"


def _null_rows(rng: np.random.Generator, n: int):
    """Two exchangeable systems: per conversation the same error rate, independent draws."""
    rows_a, rows_b = [], []
    for i in range(n):
        words = int(rng.integers(10, 60))
        p = rng.uniform(0.05, 0.5)
        turns = int(rng.integers(2, 6))
        for rows in (rows_a, rows_b):
            errors = int(rng.binomial(words, p))
            rows.append({"cut_id": f"c{i}", "words": words, "merged_errors": errors, "cp_errors": errors,
                         "orc_errors": errors, "overlap_errors": errors,
                         "segmentation_error_seconds": float(rng.uniform(0, 2)), "speech_seconds": 10.0,
                         "turn_count_correct": bool(rng.random() < 0.6),
                         "start_latency": rng.normal(0.3, 0.2, turns).tolist(),
                         "end_latency": rng.normal(0.5, 0.3, turns).tolist()})
    return rows_a, rows_b


def test_paired_conversation_bootstrap_is_calibrated_under_the_null():
    rng = np.random.default_rng(11)
    rejections = {"orc_wer": 0, "turn_count_accuracy": 0, "end_latency_median": 0}
    trials = 120
    for trial in range(trials):
        a, b = _null_rows(rng, 50)
        result = compare_systems(a, b, n_boot=200, seed=trial)
        for metric in rejections:
            rejections[metric] += result[metric]["p_value"] < 0.05
    for metric, count in rejections.items():
        assert count / trials <= 0.11, f"{metric}: rejected {count} of {trials} null comparisons at 5%"


def test_paired_bootstrap_detects_a_real_difference():
    rng = np.random.default_rng(5)
    a, b = _null_rows(rng, 60)
    for row in b:
        row["orc_errors"] = max(0, row["orc_errors"] - int(0.3 * row["words"]))
    result = compare_systems(a, b, n_boot=500)["orc_wer"]
    assert result["diff"] < 0 and result["ci"][1] < 0 and result["p_value"] < 0.01


def _md_eval_error(ref, hyp, workdir: Path) -> float:
    """md-eval's missed + false alarm + speaker error time (s) of channel RTTMs, no collar."""
    def rttm(turns, path):
        path.write_text("".join(f"SPEAKER conv 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> ch{t.channel} <NA> <NA>\n"
                                for t in turns))
    rttm(ref, workdir / "ref.rttm")
    rttm(hyp, workdir / "hyp.rttm")
    out = subprocess.run(["perl", MD_EVAL, "-c", "0", "-r", str(workdir / "ref.rttm"), "-s", str(workdir / "hyp.rttm")],
                         capture_output=True, text=True, check=True).stdout
    total = 0.0
    for name in ("MISSED SPEAKER TIME", "FALARM SPEAKER TIME", "SPEAKER ERROR TIME"):
        total += float(re.search(name + r" =\s+([0-9.]+) secs", out).group(1))
    return total


MD_EVAL = "/usr/lib/sctk/bin/md-eval.pl"


@pytest.mark.skipif(not Path(MD_EVAL).is_file(), reason="NIST md-eval.pl not installed (Debian package 'sctk')")
def test_channel_segmentation_error_equals_md_eval(tmp_path: Path):
    from asrtools.data.turns import assign_channels
    from asrtools.errors import DataError

    rng = random.Random(3)
    checked = 0
    for case in range(200):
        ref, hyp = _random_case(rng)
        try:
            ref = assign_channels(ref)
        except DataError:  # three talkers at once: not a two-channel reference
            continue
        hyp = [H(max(0.0, t.start + rng.uniform(-0.3, 0.3)), t.end + rng.uniform(-0.3, 0.6), rng.randint(0, 1), t.text)
               for t in hyp]
        ours, _ = channel_segmentation_error(ref, hyp)
        assert ours == pytest.approx(_md_eval_error(ref, hyp, tmp_path), abs=0.011), f"case {case}"
        checked += 1
        if checked == 25:
            break
    assert checked == 25


def test_channel_segmentation_error_by_hand():
    ref = [Turn(0.0, 2.0, "A", "", 0), Turn(1.0, 3.0, "B", "", 1), Turn(4.0, 5.0, "A", "", 0)]
    hyp = [H(0.2, 2.2, 1, "x"), H(1.3, 2.8, 0, "y"), H(4.1, 5.6, 1, "z")]
    # mapping ref ch0 -> hyp ch1, ref ch1 -> hyp ch0; missed 0.2 + 0.3 + 0.2 + 0.1, false alarm
    # 2.0-2.2 (hyp ch1 past ref ch0's end); 5.0-5.6 lies after the last reference end (unscored)
    error, speech = channel_segmentation_error(ref, hyp)
    assert error == pytest.approx(1.0) and speech == pytest.approx(5.0)
