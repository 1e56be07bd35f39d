"""LibriCSS (`asrtools data prepare libricss`): re-recorded LibriSpeech meetings as conversation manifests.

The layout it reads is the released archive `for_release.zip` unpacked (CORPUS_DIR is the
directory holding `for_release/`, or `for_release/` itself):

    for_release/<COND>/overlap_ratio_<R>_sil<A>_<B>_session<K>_actual<X>/
        record/raw_recording.wav         7-channel far-field recording (16 kHz)
        clean/mix.wav                    the digital mixture that was played back
        transcription/meeting_info.txt   start_time, end_time, speaker, utterance_id, transcription

with COND one of 0L, 0S (no overlap; long / short silences), OV10 ... OV40 (target overlap
ratio in %). Parsing is lhotse's `prepare_libricss` (its `parse_transcript` reads
meeting_info.txt): one recording per session (`OV10_session3`), one supervision per played
LibriSpeech utterance with its speaker, text and exact playback times. The toolkit keeps
`type` `sdm` (channel 0 of the room recording, the default) or `ihm-mix` (the clean
mixture): both give one audio channel per session, so `asrtools data features` makes one
conversation cut per session with a supervision per turn, exactly the shape of the
simulated conversations of `asrtools data mix`, and `asrtools decode` / `score multitalker`
read it unchanged. (lhotse's `mdm` and `ihm` keep 7 or 8 channels; a two-channel
multi-talker model takes one.)

Each supervision also carries, in `custom`, its session's `condition` (0L ... OV40),
`session` (session0 ... session9), `target_overlap` (the design ratio: 0 for 0L/0S, 0.1 for
OV10, ...), which `asrtools decode` uses to report WERs by overlap ratio as for simulated
conversations, and the realised `actual_overlap` from the session's name. Trailing newlines
lhotse leaves on the transcripts are stripped.

Splits: every session's speakers are LibriSpeech test-clean speakers, reused across sessions,
so the sessions form one split: `test` (all sessions, default, or `--option sessions=eval`:
sessions 1-9) or `dev` (`--option sessions=dev`: session 0 of each condition, LibriCSS's
usual development subset). Parts are the conditions. LibriCSS gives no speaker attributes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Sequence, Tuple

from lhotse import SupervisionSet
from lhotse.utils import fastcopy

from asrtools.data.corpora.base import (
    CorpusRecipe,
    PreparedCorpus,
    PrepareOptions,
    call_lhotse,
    register_corpus,
    require_dir,
    require_file,
)
from asrtools.errors import ConfigError, DataError

CONDITIONS = ("0L", "0S", "OV10", "OV20", "OV30", "OV40")  # lhotse's OVERLAP_RATIOS, in its order
TYPES = {"sdm": "record/raw_recording.wav", "ihm-mix": "clean/mix.wav"}
TRANSCRIPT = "transcription/meeting_info.txt"
SESSION_SETS = ("all", "eval", "dev")
# overlap_ratio_10.0_sil0.1_1.0_session3_actual10.1 (lhotse splits it on "_" into 7 fields)
SESSION_NAME = re.compile(r"^overlap_ratio_([0-9.]+)_sil[0-9.]+_[0-9.]+_(session[0-9]+)_actual([0-9.]+)$")


def release_dir(corpus_dir: Path) -> Path:
    """`for_release/` itself or under `corpus_dir` (lhotse's rule)."""
    corpus_dir = Path(corpus_dir)
    return corpus_dir if corpus_dir.name == "for_release" else corpus_dir / "for_release"


def target_overlap(condition: str) -> float:
    """The design overlap ratio of a condition: 0.0 for 0L / 0S, 0.1 for OV10, ..."""
    return int(condition[2:]) / 100.0 if condition.startswith("OV") else 0.0


@register_corpus
class LibriCSS(CorpusRecipe):
    """LibriCSS through lhotse's `prepare_libricss` (see the module docstring)."""

    name = "libricss"
    description = "LibriCSS: for_release/{0L,0S,OV10..OV40}/<session>/ meetings (parts: the conditions)"
    default_parts = CONDITIONS
    option_help = {
        "type": "sdm (channel 0 of the 7-channel room recording, default) or ihm-mix (the clean played-back mixture)",
        "sessions": "all (default, split test), eval (sessions 1-9, split test) or dev (session 0, split dev)",
    }

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        unknown = [p for p in parts if p not in CONDITIONS]
        if unknown:
            raise ConfigError(f"--parts {unknown[0]}: LibriCSS has the conditions {', '.join(CONDITIONS)}")
        release = release_dir(corpus_dir)
        if not release.is_dir():
            raise DataError(f"for_release/ not found under {corpus_dir}")
        for condition in CONDITIONS:  # lhotse reads every condition, whatever --parts says
            sessions = sorted(p for p in require_dir(release, condition).iterdir() if p.is_dir())
            if not sessions:
                raise DataError(f"{condition}/ under {release} holds no session directories")
            for session in sessions:
                if not SESSION_NAME.match(session.name):
                    raise DataError(f"{condition}/{session.name}/ under {release}: not a LibriCSS session name "
                                    f"(overlap_ratio_R_silA_B_sessionK_actualX)")
                require_file(release, f"{condition}/{session.name}/{TRANSCRIPT}")

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        from lhotse.recipes.libricss import prepare_libricss

        kind = options.get("type", "sdm")
        if kind not in TYPES:
            raise ConfigError(f"--option type={kind}: expected one of {', '.join(TYPES)}")
        which = options.get("sessions", "all")
        if which not in SESSION_SETS:
            raise ConfigError(f"--option sessions={which}: expected one of {', '.join(SESSION_SETS)}")
        release = release_dir(corpus_dir)
        info = self._sessions(release, kind)
        parsed = call_lhotse(prepare_libricss, corpus_dir, release, type=kind)
        keep = {rid for rid, (condition, session, _) in info.items() if condition in parts and (
            which == "all" or (which == "dev") == (session == "session0"))}
        if not keep:
            raise DataError(f"{release}: no session of {', '.join(parts)} is in the {which} sessions")
        recordings = parsed["recordings"].filter(lambda r: r.id in keep).to_eager()
        supervisions = []
        for sup in parsed["supervisions"]:
            if sup.recording_id not in keep:
                continue
            condition, session, actual = info[sup.recording_id]
            custom = {"condition": condition, "session": session, "target_overlap": target_overlap(condition),
                      "actual_overlap": actual}
            supervisions.append(fastcopy(sup, text=" ".join((sup.text or "").split()), custom=custom))
        split = "dev" if which == "dev" else "test"
        speakers = [{"id": spk, "split": split} for spk in sorted({s.speaker for s in supervisions})]
        notes = [f"{len(recordings)} sessions ({kind}, {which}) in split {split}; WERs are reported by target "
                 f"overlap ratio (0L and 0S both count as 0.00)"]
        return PreparedCorpus(splits={split: (recordings, SupervisionSet.from_segments(supervisions))},
                              speakers=speakers, notes=notes)

    @staticmethod
    def _sessions(release: Path, kind: str) -> Dict[str, Tuple[str, str, float]]:
        """lhotse's recording id (`OV10_session3`) -> (condition, session, realised overlap ratio),
        after checking that each session has the audio file `kind` reads."""
        out: Dict[str, Tuple[str, str, float]] = {}
        for condition in CONDITIONS:
            for directory in sorted((release / condition).iterdir()):
                match = SESSION_NAME.match(directory.name)
                if not directory.is_dir() or match is None:
                    continue
                require_file(release, f"{condition}/{directory.name}/{TYPES[kind]}")
                recording_id = f"{condition}_{match.group(2)}"
                if recording_id in out:
                    raise DataError(f"{condition}/ under {release}: two directories of {match.group(2)}")
                out[recording_id] = (condition, match.group(2), float(match.group(3)) / 100.0)
        return out

