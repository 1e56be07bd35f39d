"""Multi-talker scoring: ORC-WER against meeteval on hand-computed cases (and why cpWER is
not reported for channel outputs), the overlap-aware WER against NIST asclite, turn counting
(a hypothesis equal to the reference counts 100% at every overlap), turn-count histograms,
absolute and like-for-like latency on hand-made conversations, and the calibration of the
paired conversation bootstrap under the null."""
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


def test_orc_on_a_hand_computed_case_where_cp_would_differ():
    # ORC: A1 -> ch0, B and A2 -> ch1: both channels exact -> 0 errors.
    # cpWER: A = "a b e f", B = "c d" vs ch0 = "a b", ch1 = "c d e f": A->ch0 2 del, B->ch1 2 ins = 4.
    assert orc_errors(REF_SPLIT, HYP_SPLIT) == (0, 6) == _meeteval("orc", REF_SPLIT, HYP_SPLIT)
    assert _meeteval("cp", REF_SPLIT, HYP_SPLIT) == (4, 6)


def test_orc_and_merged_on_a_hand_computed_substitution():
    ref = [R(0.0, 2.0, "A", "a b c"), R(1.0, 3.0, "B", "d e"), R(4.0, 5.0, "A", "f g")]
    hyp = [H(0.2, 2.1, 0, "a b c"), H(1.3, 3.2, 1, "d e"), H(4.1, 5.2, 0, "f x")]
    assert orc_errors(ref, hyp) == (1, 7) == _meeteval("orc", ref, hyp)
    assert merged_word_errors(ref, hyp) == (1, 7)  # "a b c d e f g" vs "a b c d e f x"


def test_cpwer_is_undefined_for_channel_outputs_so_it_is_not_reported():
    """Without overlap every turn takes channel 0 (the first free one): a PERFECT channel output
    has cpWER > 100% (one speaker maps to channel 0, the others' words are deletions and
    insertions), while ORC-WER, the channel-output metric, is 0. So scoring reports no cpWER."""
    from asrtools.data.turns import assign_channels

    ref = assign_channels([R(0.0, 1.0, "A", "a b"), R(1.5, 2.5, "B", "c d"), R(3.0, 4.0, "C", "e f g")])
    assert {t.channel for t in ref} == {0}
    hyp = [H(t.start, t.end, t.channel, t.text) for t in ref]
    errors, words = _meeteval("cp", ref, hyp)
    assert errors / words > 1.0
    assert orc_errors(ref, hyp) == (0, 7)
    record = {"cut_id": "c", "target_overlap": 0.0, "ref": [t.to_dict() for t in ref],
              "hyp": [{**t.to_dict(), "word_start": t.start, "word_end": t.end} for t in hyp]}
    row = conversation_scores(record)
    assert not any(key.startswith("cp") for key in row) and row["orc_errors"] == 0
    assert not any(key.startswith("cp") for key in summarize([row]))


def test_empty_hypothesis_counts_every_reference_word():
    assert orc_errors(REF_SPLIT, []) == (6, 6)
    assert overlap_aware_errors(REF_SPLIT, []) == (6, 6)


def test_turn_counting_and_latency_on_hand_made_conversations():
    ref = [{"start": 0.0, "end": 2.0, "speaker": "A", "text": "a b", "channel": 0},
           {"start": 1.0, "end": 3.0, "speaker": "B", "text": "c d", "channel": 1},
           {"start": 4.0, "end": 5.0, "speaker": "A", "text": "e", "channel": 0}]
    # STS-like turns: <sot> before the first word, <eot> after the last
    good = {"cut_id": "c1", "target_overlap": 0.2, "ref": ref,
            "hyp": [{"start": 0.3, "end": 2.2, "text": "a b", "channel": 0, "word_start": 0.5, "word_end": 1.9},
                    {"start": 1.4, "end": 3.1, "text": "c d", "channel": 1, "word_start": 1.5, "word_end": 2.8},
                    {"start": 4.2, "end": 5.5, "text": "e", "channel": 0, "word_start": 4.6, "word_end": 4.6}]}
    missed = {"cut_id": "c2", "target_overlap": 0.2, "ref": ref,
              "hyp": [{"start": 0.5, "end": 3.4, "text": "a b c d", "channel": 0, "word_start": 0.5, "word_end": 3.4},
                      {"start": 4.1, "end": 4.9, "text": "e", "channel": 0, "word_start": 4.1, "word_end": 4.9}]}
    row_good, row_missed = conversation_scores(good), conversation_scores(missed)
    assert row_good["turn_count_correct"] and not row_missed["turn_count_correct"]
    assert row_good["start_latency"] == pytest.approx([0.3, 0.4, 0.2])
    assert row_good["end_latency"] == pytest.approx([0.2, 0.1, 0.5])
    # like for like: the same pairs, at the first / last word
    assert row_good["word_start_latency"] == pytest.approx([0.5, 0.5, 0.6])
    assert row_good["word_end_latency"] == pytest.approx([-0.1, -0.2, -0.4])
    # the long hypothesis turn overlaps ref turn 1 (1.5 s) more than ref turn 0 (1.5 s? no: 0.5-2.0 = 1.5,
    # 1.0-3.0 = 2.0): it is matched to turn 1; turn 0 stays unmatched
    assert match_turns([Turn.from_dict(t) for t in ref], [Turn.from_dict(t) for t in missed["hyp"]]) == [(1, 0), (2, 1)]
    assert row_missed["start_latency"] == pytest.approx([-0.5, 0.1])
    summary = summarize([row_good, row_missed])
    assert summary["turn_count_accuracy"] == 0.5
    assert summary["start_latency_median"] == pytest.approx(np.median([0.3, 0.4, 0.2, -0.5, 0.1]))
    assert summary["start_latency_abs_median"] == pytest.approx(np.median([0.3, 0.4, 0.2, 0.5, 0.1]))
    assert summary["end_latency_abs_p90"] == pytest.approx(np.quantile([0.2, 0.1, 0.5, 0.4, 0.1], 0.9))
    assert summary["word_end_latency_abs_median"] == pytest.approx(np.median([0.1, 0.2, 0.4, 0.4, 0.1]))
    assert summary["merged_errors"] == 0 and summary["words"] == 10
    counts = summary["turn_counts"]
    assert counts["ref"] == {"3": 2} and counts["hyp"] == {"2": 1, "3": 1}
    assert counts["hyp_minus_ref"] == {"-1": 1, "0": 1} and (counts["fewer"], counts["equal"], counts["more"]) == (1, 1, 0)
    assert counts["ref_by_channel"] == [4, 2] and counts["hyp_by_channel"] == [4, 1]


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
            latency = {f"{prefix}{which}_latency": rng.normal(0.0, 0.4, turns).tolist()
                       for prefix in ("", "word_") for which in ("start", "end")}
            rows.append({"cut_id": f"c{i}", "words": words, "merged_errors": errors,
                         "orc_errors": errors, "overlap_errors": errors,
                         "segmentation_error_seconds": float(rng.uniform(0, 2)), "speech_seconds": 10.0,
                         "turn_count_correct": bool(rng.random() < 0.6), **latency})
    return rows_a, rows_b


def test_paired_conversation_bootstrap_is_calibrated_under_the_null():
    rng = np.random.default_rng(11)
    rejections = {"orc_wer": 0, "turn_count_accuracy": 0, "end_latency_abs_median": 0,
                  "word_start_latency_abs_median": 0}
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


# ------------------------------------------------------- a perfect model counts every turn

WORD_IDS = {w: 10 + i for i, w in enumerate(VOCAB)}
SOT_ID, EOT_ID, FRAME = 3, 4, 0.04


def _encode(texts):
    return [[WORD_IDS[w] for w in text.split()] for text in texts]


def _decode(id_lists):
    names = {i: w for w, i in WORD_IDS.items()}
    return [" ".join(names[i] for i in ids) for ids in id_lists]


def _conversation(rng: random.Random, ratio: float):
    """Reference turns laid out by the simulator's own placement (`asrtools data mix`)."""
    from asrtools.data.conversations import MixConfig, _place

    n = rng.randint(3, 6)
    durations = [rng.uniform(1.5, 4.0) for _ in range(n)]
    starts = _place(durations, ratio, MixConfig(), rng)
    speakers = ["A", "B", "C"]
    return [R(s, s + d, speakers[k % 3], " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 5))))
            for k, (s, d) in enumerate(zip(starts, durations))]


def _perfect_emissions(ref, scheme):
    """Each channel's target tokens (what the model is trained to emit) at the times a perfect model would
    emit them: `<sot>` / the speaker-change token at the turn's start, words spread over the turn, `<eot>`
    at its end; then the hypothesis turns the decoder rebuilds from them."""
    from asrtools.data.turns import assign_channels, channel_token_ids, turns_from_tokens

    assigned = assign_channels(ref)
    targets = channel_token_ids(assigned, _encode, SOT_ID, EOT_ID, scheme)
    hyp = []
    for channel, target in enumerate(targets):
        frames = []
        for turn in (t for t in assigned if t.channel == channel):
            n = len(turn.text.split())
            first, last = int(turn.start / FRAME), int(turn.end / FRAME) - 1
            word_frames = [first + 1 + round(i * (last - first - 2) / max(n - 1, 1)) for i in range(n)]
            if scheme == "sot_eot":
                frames += [first, *word_frames, last]
            else:
                frames += ([first] if frames else []) + word_frames
        assert len(frames) == len(target.token_ids)
        hyp += turns_from_tokens(target.token_ids, frames, FRAME, _decode, SOT_ID, EOT_ID, scheme, channel,
                                 end_time=max(t.end for t in ref) + 1.0)
    return assigned, sorted(hyp, key=lambda t: (t.start, t.end))


@pytest.mark.parametrize("scheme", ["sot_eot", "speaker_change"])
def test_a_hypothesis_equal_to_the_reference_counts_every_turn_at_every_overlap(scheme):
    """Reference turns are counted one per turn, hypothesis turns one per `<sot>..<eot>` (or per run of
    words between speaker changes) on both channels: a perfect model scores 100% turn counting in every
    overlap bucket, no WER, and latencies within a frame or two. (The 0% turn counting of the overlapped
    buckets on the page is therefore the models', which the turn-count histograms show.)"""
    from asrtools.scoring.multitalker import score_conversations

    rng = random.Random(3)
    records = []
    for i in range(40):
        ratio = [0.0, 0.1, 0.2, 0.3, 0.4][i % 5]
        assigned, hyp = _perfect_emissions(_conversation(rng, ratio), scheme)
        records.append({"cut_id": f"c{i}", "target_overlap": ratio, "ref": [t.to_dict() for t in assigned],
                        "hyp": [t.to_dict() for t in hyp]})
    rows, summary = score_conversations(records)
    assert any(r["ref_turns_by_channel"][1] > 0 for r in rows), "some conversations use channel 1"
    for bucket in ("0.00", "0.10", "0.20", "0.30", "0.40", "all"):
        m = summary[bucket]
        assert m["turn_count_accuracy"] == 1.0, (bucket, m["turn_counts"])
        assert m["turn_counts"]["hyp_minus_ref"] == {"0": m["conversations"]}
        assert m["turn_counts"]["ref_by_channel"] == m["turn_counts"]["hyp_by_channel"]
        assert m["merged_wer"] == m["orc_wer"] == 0.0
        assert m["word_end_latency_abs_p90"] < 3 * FRAME
    assert summary["0.00"]["turn_counts"]["ref_by_channel"][1] == 0  # no overlap: everything on channel 0


def test_latency_is_compared_by_absolute_deviation():
    """B's turns end about 1 s early or late, A's about 0.1 s: both signed medians are 0 (the old,
    signed comparison saw no difference), the absolute medians differ by ~0.9 s, and that is what the
    comparison reports."""
    rng = np.random.default_rng(0)
    a, b = _null_rows(rng, 60)
    for row_a, row_b in zip(a, b):
        for row, scale in ((row_a, 0.1), (row_b, 1.0)):
            u = scale * rng.uniform(0.8, 1.2)
            row["end_latency"] = [u, -u]
    signed = compare_systems(a, b, n_boot=300)
    for rows in (a, b):
        assert np.median([x for r in rows for x in r["end_latency"]]) == 0.0
    result = signed["end_latency_abs_median"]
    assert result["diff"] == pytest.approx(0.9, abs=0.05) and result["ci"][0] > 0.7 and result["p_value"] < 0.01


def test_word_boundaries_compare_the_two_turn_schemes_like_for_like():
    """The same words at the same frames: STS's turn ends at its `<eot>` (late by design), the
    speaker-change baseline's at its last word. At word boundaries both latencies are the same."""
    from asrtools.data.turns import turns_from_tokens

    ref = [R(0.0, 2.0, "A", "a b")]
    sts = turns_from_tokens([SOT_ID, 10, 11, EOT_ID], [2, 10, 40, 55], FRAME, _decode, SOT_ID, EOT_ID, "sot_eot", 0)
    base = turns_from_tokens([10, 11], [10, 40], FRAME, _decode, SOT_ID, EOT_ID, "speaker_change", 0)
    rows = [conversation_scores({"cut_id": "c", "target_overlap": 0.0, "ref": [t.to_dict() for t in ref],
                                 "hyp": [t.to_dict() for t in hyp]}) for hyp in (sts, base)]
    assert rows[0]["word_end_latency"] == pytest.approx([41 * FRAME - 2.0])
    assert rows[1]["word_end_latency"] == pytest.approx(rows[0]["word_end_latency"])
    assert rows[0]["end_latency"][0] == pytest.approx(56 * FRAME - 2.0)
    assert rows[0]["end_latency"][0] > rows[1]["end_latency"][0]
    assert rows[1]["end_latency"] == rows[1]["word_end_latency"]


def test_word_latency_of_turns_decoded_without_word_times_is_an_error():
    from asrtools.errors import DataError

    record = {"cut_id": "old", "target_overlap": 0.0, "ref": [R(0.0, 1.0, "A", "a").to_dict()],
              "hyp": [{"start": 0.1, "end": 0.9, "text": "a", "channel": 0}]}
    with pytest.raises(DataError, match="old: hypothesis turns carry no word times"):
        conversation_scores(record)


def test_results_page_shows_turn_count_histograms_latency_and_no_cpwer():
    from asrtools.scoring.multitalker import score_conversations
    from asrtools.scoring.multitalker_page import results_markdown

    rng = random.Random(5)
    perfect, weak = [], []
    for i in range(10):
        ratio = [0.0, 0.2][i % 2]
        assigned, hyp = _perfect_emissions(_conversation(rng, ratio), "sot_eot")
        record = {"cut_id": f"c{i}", "target_overlap": ratio, "ref": [t.to_dict() for t in assigned]}
        perfect.append({**record, "hyp": [t.to_dict() for t in hyp]})
        weak.append({**record, "hyp": [t.to_dict() for t in hyp if t.channel == 0]})  # channel 1 silent
    scored = {name: score_conversations(recs) for name, recs in (("sts", perfect), ("weak", weak))}
    doc = {"title": "t", "environment": {}, "order": ["sts", "weak"], "n_boot": 100, "notes": [],
           "baseline": "weak", "main": "sts",
           "systems": {n: {"metrics": summary, "train": {}, "decode": {}} for n, (_, summary) in scored.items()},
           "comparisons": [{"a": "weak", "b": "sts", "metrics": compare_systems(scored["weak"][0], scored["sts"][0],
                                                                             n_boot=100)}]}
    page = results_markdown(doc)
    assert "## Turn counts" in page and "| 20% | 5 |" in page
    assert "cpWER %" not in page and "cpWER is not reported" in page
    assert "| sts | words |" in page and "| sts | turn boundaries |" in page
    weak_ch = scored["weak"][1]["0.20"]["turn_counts"]
    assert weak_ch["hyp_by_channel"][1] == 0 and weak_ch["equal"] == 0
    assert (f"weak, overlapped buckets (5 conversations): the hypothesis has fewer turns than the reference in 5, "
            f"as many in 0, more in 0; channel 1 holds 0% of the hypothesis turns") in page
    assert "Δ median abs. end latency (words)" in page
