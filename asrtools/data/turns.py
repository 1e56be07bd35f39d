"""Speaker turns of a conversation, their output channels, and the per-channel training targets.

A conversation cut (made by `asrtools data mix`) carries one supervision per turn. The
separator-transducer-segmenter (METHODS.md §3) transcribes such a conversation on a fixed
number of output channels (two):

- `assign_channels`: turns sorted by start time each take the *first free* channel (a
  channel is free once its previous turn has ended). A turn that finds every channel busy
  (a third simultaneous talker) is an error; the conversation simulator never makes one.
- `channel_token_ids`: each channel's target is its turns' BPE tokens in time order, either
  each turn wrapped in `<sot> ... <eot>` (scheme `sot_eot`, the STS model) or consecutive
  turns separated by a plain speaker-change token (scheme `speaker_change`, the multi-turn
  RNN-T baseline; the reserved `<sot>` id serves as that token). With `sot_eot` the end
  time of every `<eot>` token's turn is returned as well (the latency penalty needs it).
- `activity_targets`: per channel and encoder frame, 1 while one of the channel's turns
  covers the frame's centre (the speech-activity auxiliary task).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from asrtools.errors import DataError

SOT_EOT = "sot_eot"
SPEAKER_CHANGE = "speaker_change"
TURN_SCHEMES = (SOT_EOT, SPEAKER_CHANGE)
NUM_CHANNELS = 2
#: Version of the hypothesis turns' JSON (2: with first/last word times), part of the decode fingerprint.
TURNS_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class Turn:
    """One speaker turn.

    Attributes:
      start: start time in seconds from the start of the conversation.
      end: end time in seconds (> start).
      speaker: speaker id ("" for a hypothesis turn: the model does not name speakers).
      text: the transcript.
      channel: output channel (-1 until assigned).
      word_start, word_end: a hypothesis turn's first and last word emission times (s);
        for a `sot_eot` turn they lie inside [start, end] (which are its `<sot>`/`<eot>`
        times), for a `speaker_change` turn they equal them. None for reference turns.
    """

    start: float
    end: float
    speaker: str
    text: str
    channel: int = -1
    word_start: Optional[float] = None
    word_end: Optional[float] = None

    def to_dict(self) -> dict:
        """JSON form (times rounded to 1 ms; word times only when known)."""
        out = {"start": round(self.start, 3), "end": round(self.end, 3), "speaker": self.speaker,
               "text": self.text, "channel": self.channel}
        if self.word_start is not None and self.word_end is not None:
            out.update(word_start=round(self.word_start, 3), word_end=round(self.word_end, 3))
        return out

    @staticmethod
    def from_dict(data: dict) -> "Turn":
        """Inverse of `to_dict`."""
        word_start, word_end = data.get("word_start"), data.get("word_end")
        return Turn(float(data["start"]), float(data["end"]), str(data.get("speaker", "")),
                    str(data.get("text", "")), int(data.get("channel", -1)),
                    None if word_start is None else float(word_start), None if word_end is None else float(word_end))


def turns_of_cut(cut) -> List[Turn]:
    """The reference turns of a conversation cut: one per supervision, sorted by (start, end).

    Raises:
      DataError: naming the cut when it has no supervisions.
    """
    if not cut.supervisions:
        raise DataError(f"cut {cut.id}: no supervisions (a conversation cut holds one per turn)")
    turns = [Turn(float(s.start), float(s.end), s.speaker or "unknown", " ".join((s.text or "").split()))
             for s in cut.supervisions]
    return sorted(turns, key=lambda t: (t.start, t.end))


def assign_channels(turns: Sequence[Turn], num_channels: int = NUM_CHANNELS, name: str = "conversation",
                    overflow: bool = False) -> List[Turn]:
    """Give each turn the first channel that is free at its start (turns taken by start time).

    A channel is free at time t when its last turn ended at or before t.

    Args:
      turns: the turns (any order).
      num_channels: number of output channels.
      name: what the turns belong to, for the error message.
      overflow: instead of raising, give a turn that finds every channel busy the channel
        that frees first (reference turns of a recorded conversation scored against a
        two-channel model: LibriCSS has rare three-talker moments, which no output channel
        assignment can separate; training and simulation keep the error).

    Returns:
      The turns sorted by (start, end), each with its `channel`.

    Raises:
      DataError: when a turn starts while every channel is busy (more simultaneous
        talkers than channels), naming `name` and the time.
    """
    busy_until = [float("-inf")] * num_channels
    out = []
    for turn in sorted(turns, key=lambda t: (t.start, t.end)):
        if turn.end <= turn.start:
            raise DataError(f"{name}: turn of {turn.speaker} at {turn.start:.3f} s has no duration")
        free = [c for c in range(num_channels) if busy_until[c] <= turn.start]
        if not free and overflow:
            free = [min(range(num_channels), key=lambda c: busy_until[c])]
        if not free:
            raise DataError(f"{name}: {num_channels + 1} talkers at once at {turn.start:.3f} s "
                            f"(the model has {num_channels} output channels)")
        channel = free[0]
        busy_until[channel] = max(busy_until[channel], turn.end)
        out.append(dataclasses.replace(turn, channel=channel))
    return out


@dataclasses.dataclass
class ChannelTargets:
    """The token targets of one channel.

    Attributes:
      token_ids: the channel's target ids (turn tokens included).
      eot_positions: index in `token_ids` of every `<eot>` (scheme sot_eot; empty otherwise).
      eot_times: the reference end time (s) of the turn each of those `<eot>` closes.
    """

    token_ids: List[int]
    eot_positions: List[int]
    eot_times: List[float]


def channel_token_ids(
    turns: Sequence[Turn],
    encode: Callable[[List[str]], List[List[int]]],
    sot_id: int,
    eot_id: int,
    scheme: str = SOT_EOT,
    num_channels: int = NUM_CHANNELS,
) -> List[ChannelTargets]:
    """Per-channel target token sequences of channel-assigned turns.

    Args:
      turns: turns with `channel` set (`assign_channels`).
      encode: texts -> BPE ids (`Tokenizer.encode`).
      sot_id: id of `<sot>` (also the speaker-change token of scheme `speaker_change`).
      eot_id: id of `<eot>`.
      scheme: "sot_eot" (`<sot> words <eot>` per turn) or "speaker_change" (turns joined
        by the speaker-change token).
      num_channels: number of channels.

    Returns:
      One `ChannelTargets` per channel (a channel without turns gets an empty sequence).
    """
    if scheme not in TURN_SCHEMES:
        raise ValueError(f"turn scheme {scheme!r} is unknown (known: {', '.join(TURN_SCHEMES)})")
    ordered = sorted(turns, key=lambda t: (t.start, t.end))
    pieces = encode([t.text for t in ordered])
    out = [ChannelTargets([], [], []) for _ in range(num_channels)]
    for turn, ids in zip(ordered, pieces):
        if not 0 <= turn.channel < num_channels:
            raise ValueError(f"turn at {turn.start:.3f} s has no channel (call assign_channels first)")
        target = out[turn.channel]
        if scheme == SOT_EOT:
            target.token_ids.extend([sot_id, *ids, eot_id])
            target.eot_positions.append(len(target.token_ids) - 1)
            target.eot_times.append(turn.end)
        else:
            if target.token_ids:
                target.token_ids.append(sot_id)
            target.token_ids.extend(ids)
    return out


def frame_centres(num_frames: int, frame_seconds: float) -> torch.Tensor:
    """(T,) float64 centre time (s) of each of `num_frames` frames of `frame_seconds`."""
    return (torch.arange(num_frames, dtype=torch.float64) + 0.5) * frame_seconds


def activity_targets(turns: Sequence[Turn], num_frames: int, frame_seconds: float,
                     num_channels: int = NUM_CHANNELS) -> torch.Tensor:
    """Per-channel speech activity at the encoder frame rate.

    Args:
      turns: channel-assigned turns.
      num_frames: T, encoder frames.
      frame_seconds: duration of one encoder frame (subsampling factor x frame shift).
      num_channels: K.

    Returns:
      (K, T) float32, 1 where a turn of that channel covers the frame's centre.
    """
    centres = frame_centres(num_frames, frame_seconds)
    out = torch.zeros(num_channels, num_frames, dtype=torch.float32)
    for turn in turns:
        inside = (centres >= turn.start) & (centres < turn.end)
        out[turn.channel, inside] = 1.0
    return out


def overlap_ratio(turns: Sequence[Turn]) -> float:
    """Overlapped speech over total speech: time with >= 2 talkers / time with >= 1 talker.

    LibriCSS's definition; 0 for turns that never overlap.
    """
    events: List[Tuple[float, int]] = []
    for t in turns:
        events += [(t.start, 1), (t.end, -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    active, last, speech, overlap = 0, 0.0, 0.0, 0.0
    for time, delta in events:
        if active >= 1:
            speech += time - last
        if active >= 2:
            overlap += time - last
        active += delta
        last = time
    return overlap / speech if speech > 0 else 0.0


def turns_from_tokens(
    token_ids: Sequence[int],
    frames: Sequence[int],
    frame_seconds: float,
    decode: Callable[[List[List[int]]], List[str]],
    sot_id: int,
    eot_id: int,
    scheme: str,
    channel: int,
    end_time: Optional[float] = None,
) -> List[Turn]:
    """Rebuild one channel's turns from its emitted tokens and their emission frames.

    A token emitted on encoder frame t is stamped `(t + 1) * frame_seconds` (the time by
    which its frame has been heard).

    Scheme `sot_eot`: `<sot>` opens a turn at its emission time, `<eot>` closes it. Tokens
    outside an open turn open one implicitly (at their own time), a `<sot>` inside an open
    turn closes it there, and a turn still open at the end closes at `end_time` (or at its
    last token). Scheme `speaker_change`: turns are the runs of words between
    speaker-change tokens, from the first to the last word's emission time.
    Turns without words are dropped. Every turn records its first and last word's emission
    times (`word_start`, `word_end`), so latencies can be compared like for like between
    the schemes.

    Args:
      token_ids: the channel's emitted ids (no blanks).
      frames: (same length) the encoder frame of each emission.
      frame_seconds: duration of one encoder frame.
      decode: id lists -> texts (`Tokenizer.decode`).
      sot_id, eot_id: the turn token ids (`sot_id` is the speaker-change token).
      scheme: "sot_eot" or "speaker_change".
      channel: the channel number stored in the turns.
      end_time: when the stream ended (closes a turn left open).

    Returns:
      The channel's turns in order, `speaker` empty.
    """
    if len(token_ids) != len(frames):
        raise ValueError(f"{len(token_ids)} tokens but {len(frames)} emission frames")
    times = [(f + 1) * frame_seconds for f in frames]
    spans: List[Tuple[float, float, List[int], List[float]]] = []
    open_start: Optional[float] = None
    words: List[int] = []
    word_times: List[float] = []
    last_time: Optional[float] = None

    def close(at: float) -> None:
        nonlocal open_start, words, word_times
        if open_start is not None and words:
            spans.append((open_start, max(at, open_start), words, word_times))
        open_start, words, word_times = None, [], []

    for token, time in zip(token_ids, times):
        if scheme == SOT_EOT:
            if token == sot_id:
                close(time)
                open_start = time
            elif token == eot_id:
                close(time)
            else:
                if open_start is None:
                    open_start = time
                words.append(token)
                word_times.append(time)
        else:
            if token in (sot_id, eot_id):
                close(last_time if last_time is not None else time)
            else:
                if open_start is None:
                    open_start = time
                words.append(token)
                word_times.append(time)
                last_time = time
    if open_start is not None:
        if scheme == SOT_EOT:
            close(end_time if end_time is not None else times[-1])
        else:
            close(last_time if last_time is not None else times[-1])
    texts = decode([span[2] for span in spans]) if spans else []
    return [Turn(start, end, "", " ".join(text.split()), channel, times[0], times[-1])
            for (start, end, _, times), text in zip(spans, texts)]
