"""A tiny LibriCSS (`for_release/`) in the real on-disk layout, for tests.

    for_release/<COND>/overlap_ratio_<R>_sil<A>_<B>_session<K>_actual<X>/
        record/raw_recording.wav       7-channel far-field recording (16 kHz, 16-bit PCM)
        clean/mix.wav                  the digital mixture that was played back (1 channel)
        clean/each_spk.wav             one channel per loudspeaker (8 channels)
        transcription/meeting_info.txt tab-separated, header row:
                                       start_time end_time speaker utterance_id transcription

COND is one of 0L, 0S, OV10, OV20, OV30, OV40 (no overlap with long / short silences, then
the target overlap ratio in %), R the target ratio in %, A-B the silence range between turns,
X the realised overlap ratio in % (the real sessions' names look like
`overlap_ratio_10.0_sil0.1_1.0_session3_actual10.1`). Speakers are LibriSpeech test-clean
speaker ids and utterance ids LibriSpeech's `SPK-CHAPTER-NNNN`, transcripts upper case as
LibriSpeech's. The speech is espeak-ng TTS (a voice per speaker), a few seconds per
utterance; the "room" channels are delayed, attenuated copies of the mixture plus noise.

Real LibriCSS has, rarely (0.15% of the eval speech time), three talkers at once, because
each played utterance keeps LibriSpeech's leading and trailing silence; the session
`THREE_TALKER_SESSION` reproduces that.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile as sf

from fake_corpora_voxceleb import speech

SAMPLE_RATE = 16000
CONDITIONS = {  # condition -> (target overlap ratio, silence range) as in the real session names
    "0L": (0.0, (2.9, 3.0)),
    "0S": (0.0, (0.1, 0.5)),
    "OV10": (0.1, (0.1, 1.0)),
    "OV20": (0.2, (0.1, 1.0)),
    "OV30": (0.3, (0.1, 1.0)),
    "OV40": (0.4, (0.1, 1.0)),
}
SPEAKERS = {  # LibriSpeech test-clean speaker -> (espeak-ng voice, pitch)
    "1089": ("en-us+m3", 40), "1320": ("en-gb+m1", 55), "4970": ("en-us+f2", 70), "6829": ("en-gb+f4", 60),
}
TEXTS = [
    "HE HOPED THERE WOULD BE STEW FOR DINNER",
    "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM",
    "THE NIGHT WAS COLD AND THE ROAD WAS LONG",
    "SHE LOOKED AT THE OLD HOUSE ON THE HILL",
    "WE WALKED ALONG THE RIVER UNTIL EVENING",
    "THE CAPTAIN GAVE HIS ORDERS IN A LOW VOICE",
    "A LETTER CAME FROM THE CITY THAT MORNING",
    "THEY SANG TOGETHER BY THE WARM FIRE",
]
THREE_TALKER_SESSION = ("OV40", 1)


def session_name(condition: str, session: int, actual: float) -> str:
    ratio, (low, high) = CONDITIONS[condition]
    return f"overlap_ratio_{100 * ratio:.1f}_sil{low:.1f}_{high:.1f}_session{session}_actual{100 * actual:.1f}"


def _place(durations: Sequence[float], ratio: float, silence: Tuple[float, float], rng: np.random.Generator,
           three_talkers: bool) -> List[float]:
    """Start times: consecutive turns overlap so that overlap / speech is about `ratio`."""
    overlap_each = ratio / (1.0 + ratio) * sum(durations) / max(len(durations) - 1, 1)
    starts, end = [0.5], 0.5 + durations[0]
    for k, duration in enumerate(durations[1:], 1):
        if ratio > 0:
            start = end - min(overlap_each, 0.6 * min(durations[k - 1], duration))
        else:
            start = end + float(rng.uniform(*silence))
        if three_talkers and k == 2:  # starts while turns 0 and 1 still talk
            start = starts[1] + 0.1
            assert start < starts[0] + durations[0]
        starts.append(start)
        end = max(end, start + duration)
    return starts


def _overlap_ratio(intervals: Sequence[Tuple[float, float]]) -> float:
    """Overlapped speech time / speech time (LibriCSS's definition), on a 10 ms grid."""
    grid = np.zeros(int(100 * max(e for _, e in intervals)) + 1, dtype=np.int32)
    for start, end in intervals:
        grid[int(100 * start):int(100 * end)] += 1
    speech_frames = int((grid > 0).sum())
    return float((grid > 1).sum()) / speech_frames if speech_frames else 0.0


def write_session(directory: Path, turns: Sequence[Tuple[str, str, str, np.ndarray]], starts: Sequence[float]) -> None:
    """Audio and transcription of one session: `turns` are (speaker, utterance id, text, audio)."""
    speakers = sorted({spk for spk, _, _, _ in turns})
    length = int(SAMPLE_RATE * (max(s + len(a) / SAMPLE_RATE for (_, _, _, a), s in zip(turns, starts)) + 0.5))
    each = np.zeros((length, 8), dtype=np.float32)
    lines = ["start_time\tend_time\tspeaker\tutterance_id\ttranscription"]
    for (spk, utt_id, text, audio), start in zip(turns, starts):
        offset = int(round(start * SAMPLE_RATE))
        each[offset:offset + len(audio), speakers.index(spk)] += audio
        lines.append(f"{start:.4f}\t{start + len(audio) / SAMPLE_RATE:.4f}\t{spk}\t{utt_id}\t{text}")
    mix = each.sum(axis=1) * 0.7
    rng = np.random.default_rng(len(lines))
    room = np.stack([0.8 ** m * np.roll(mix, 3 * m) + 0.003 * rng.standard_normal(length) for m in range(7)], axis=1)
    for sub in ("record", "clean", "transcription"):
        (directory / sub).mkdir(parents=True)
    sf.write(directory / "record" / "raw_recording.wav", room.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    sf.write(directory / "clean" / "mix.wav", mix, SAMPLE_RATE, subtype="PCM_16")
    sf.write(directory / "clean" / "each_spk.wav", each, SAMPLE_RATE, subtype="PCM_16")
    (directory / "transcription" / "meeting_info.txt").write_text("\n".join(lines) + "\n")


def write_fake_libricss(root: Path, sessions: int = 2, turns_per_session: int = 4) -> Path:
    """Write `root/for_release` with `sessions` sessions per condition; returns `root/for_release`.

    Session 0 of each condition is the one LibriCSS users keep for development.
    """
    release = Path(root) / "for_release"
    texts = itertools.cycle(TEXTS)
    utterance_numbers: Dict[str, int] = {spk: 0 for spk in SPEAKERS}
    rng = np.random.default_rng(0)
    for condition, (ratio, silence) in CONDITIONS.items():
        for session in range(sessions):
            order = list(SPEAKERS)
            rng.shuffle(order)
            turns = []
            for k in range(turns_per_session):
                spk = order[k % len(order)]
                voice, pitch = SPEAKERS[spk]
                text = next(texts)
                utt_id = f"{spk}-{134686 + int(spk) % 7}-{utterance_numbers[spk]:04d}"
                utterance_numbers[spk] += 1
                turns.append((spk, utt_id, text, speech(text.lower(), voice, pitch, SAMPLE_RATE, speed=190)))
            durations = [len(a) / SAMPLE_RATE for _, _, _, a in turns]
            starts = _place(durations, ratio, silence, rng, (condition, session) == THREE_TALKER_SESSION)
            actual = _overlap_ratio([(s, s + d) for s, d in zip(starts, durations)])
            write_session(release / condition / session_name(condition, session, actual), turns, starts)
    return release
