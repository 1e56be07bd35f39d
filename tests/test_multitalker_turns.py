"""Turns, channel assignment, per-channel targets and turn reconstruction (asrtools.data.turns)."""
from __future__ import annotations

import pytest
import torch

from asrtools.data.turns import (
    Turn,
    activity_targets,
    assign_channels,
    channel_token_ids,
    overlap_ratio,
    turns_from_tokens,
)
from asrtools.errors import DataError

SOT, EOT = 3, 4


def _turns(*spans):
    return [Turn(s, e, spk, text) for s, e, spk, text in spans]


def _channels(turns):
    return [t.channel for t in assign_channels(turns)]


def test_sequential_turns_all_take_channel_0():
    turns = _turns((0.0, 1.0, "a", "x"), (1.5, 2.0, "b", "y"), (2.0, 3.0, "a", "z"))
    # a channel is free again exactly when its turn has ended
    assert _channels(turns) == [0, 0, 0]


def test_overlapping_turns_alternate_and_reuse_the_first_free_channel():
    turns = _turns((0.0, 2.0, "a", "x"), (1.0, 3.0, "b", "y"), (2.5, 4.0, "c", "z"), (3.5, 5.0, "a", "w"),
                   (6.0, 7.0, "b", "v"))
    # b overlaps a -> ch1; c starts after a ended (ch0 free, ch1 busy) -> ch0;
    # a starts after b ended -> ch1; v after everything -> ch0 again
    assert _channels(turns) == [0, 1, 0, 1, 0]


def test_a_turn_inside_a_long_turn_goes_to_channel_1_and_frees_it():
    turns = _turns((0.0, 10.0, "a", "x"), (2.0, 3.0, "b", "y"), (4.0, 5.0, "c", "z"))
    assert _channels(turns) == [0, 1, 1]


def test_channels_follow_start_times_not_input_order():
    turns = _turns((1.0, 3.0, "b", "y"), (0.0, 2.0, "a", "x"))
    assigned = assign_channels(turns)
    assert [(t.speaker, t.channel) for t in assigned] == [("a", 0), ("b", 1)]


def test_three_simultaneous_talkers_are_an_error_naming_the_conversation():
    turns = _turns((0.0, 3.0, "a", "x"), (1.0, 3.0, "b", "y"), (2.0, 4.0, "c", "z"))
    with pytest.raises(DataError, match="conv7: 3 talkers at once at 2.000 s"):
        assign_channels(turns, name="conv7")


def _encode(texts):
    vocab = {"x": 10, "y": 11, "z": 12, "w": 13}
    return [[vocab[w] for w in t.split()] for t in texts]


def test_sot_eot_targets_wrap_every_turn_and_record_eot_deadlines():
    turns = assign_channels(_turns((0.0, 2.0, "a", "x y"), (1.0, 3.0, "b", "z"), (2.5, 4.0, "c", "w")))
    ch0, ch1 = channel_token_ids(turns, _encode, SOT, EOT, "sot_eot")
    assert ch0.token_ids == [SOT, 10, 11, EOT, SOT, 13, EOT]
    assert ch0.eot_positions == [3, 6] and ch0.eot_times == [2.0, 4.0]
    assert ch1.token_ids == [SOT, 12, EOT] and ch1.eot_positions == [2] and ch1.eot_times == [3.0]


def test_speaker_change_targets_separate_turns_without_turn_tokens():
    turns = assign_channels(_turns((0.0, 1.0, "a", "x y"), (1.5, 2.0, "b", "z"), (2.5, 3.0, "a", "w")))
    ch0, ch1 = channel_token_ids(turns, _encode, SOT, EOT, "speaker_change")
    assert ch0.token_ids == [10, 11, SOT, 12, SOT, 13]
    assert ch0.eot_positions == [] and ch1.token_ids == []


def test_activity_targets_mark_frame_centres_inside_each_channels_turns():
    turns = assign_channels(_turns((0.0, 0.2, "a", "x"), (0.1, 0.3, "b", "y")))
    act = activity_targets(turns, num_frames=8, frame_seconds=0.04)  # centres 0.02, 0.06, ..., 0.30
    assert act.shape == (2, 8)
    assert act[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert act[1].tolist() == [0, 0, 1, 1, 1, 1, 1, 0]  # 0.10 <= centre < 0.30


def test_overlap_ratio_is_overlapped_over_total_speech():
    assert overlap_ratio(_turns((0.0, 2.0, "a", ""), (3.0, 4.0, "b", ""))) == 0.0
    # speech 0..3 = 3 s, overlap 1..2 = 1 s
    assert overlap_ratio(_turns((0.0, 2.0, "a", ""), (1.0, 3.0, "b", ""))) == pytest.approx(1 / 3)


def _decode(id_lists):
    names = {10: "x", 11: "y", 12: "z"}
    return [" ".join(names[i] for i in ids) for ids in id_lists]


def test_turns_from_sot_eot_tokens_use_emission_times():
    tokens = [SOT, 10, 11, EOT, SOT, 12, EOT]
    frames = [2, 5, 9, 12, 20, 22, 30]
    turns = turns_from_tokens(tokens, frames, 0.04, _decode, SOT, EOT, "sot_eot", channel=1)
    assert [(round(t.start, 2), round(t.end, 2), t.text, t.channel) for t in turns] == [
        (0.12, 0.52, "x y", 1), (0.84, 1.24, "z", 1)]


def test_turns_from_tokens_close_open_turns_and_open_implicit_ones():
    # words before any <sot>, a <sot> inside an open turn, a turn left open at the end
    tokens = [10, EOT, SOT, 11, SOT, 12]
    frames = [0, 4, 6, 7, 10, 11]
    turns = turns_from_tokens(tokens, frames, 0.1, _decode, SOT, EOT, "sot_eot", 0, end_time=2.0)
    assert [(round(t.start, 2), round(t.end, 2), t.text) for t in turns] == [
        (0.1, 0.5, "x"), (0.7, 1.1, "y"), (1.1, 2.0, "z")]


def test_turns_from_speaker_change_tokens_span_first_to_last_word():
    tokens = [10, 11, SOT, 12]
    frames = [1, 3, 6, 8]
    turns = turns_from_tokens(tokens, frames, 0.1, _decode, SOT, EOT, "speaker_change", 0)
    assert [(round(t.start, 2), round(t.end, 2), t.text) for t in turns] == [(0.2, 0.4, "x y"), (0.9, 0.9, "z")]


def test_empty_turns_are_dropped():
    turns = turns_from_tokens([SOT, EOT, SOT, EOT], [0, 1, 2, 3], 0.1, _decode, SOT, EOT, "sot_eot", 0)
    assert turns == []
