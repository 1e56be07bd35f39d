"""Text-to-speech with Debian's espeak-ng and flite, one speaker = one voice setting.

espeak-ng speakers get their own small data directory (symlinks to the shared
espeak-ng-data files plus that speaker's variant file): with more than ~349 variant files
in one directory espeak-ng silently falls back to its default voice. Both engines also
fall back silently (exit 0, no message) for an unknown voice, so voices are checked
against the engines' own lists, any stderr output is an error, and `check_speakers_distinct`
proves that every speaker's voice really differs.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List

from asrtools.data.synth.speakers import Speaker, espeak_variant, mean_f0_for_flite
from asrtools.errors import DataError, ToolError

ESPEAK_SHARED = ("phondata", "phonindex", "phontab", "intonations", "en_dict", "lang")
# espeak-ng applies a "+variant" only when -v names the voice file: "en-gb" is the file "en".
ESPEAK_VOICE_FILE = {"en-gb": "en"}
PROBE_TEXT = "the quick brown fox jumps over the lazy dog while seven wise men watch"


def _run(args: List[str], what: str, stdin: bytes = b"") -> None:
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, timeout=120)
    except FileNotFoundError:
        raise ToolError(f"{args[0]}: not installed (run scripts/setup_env.sh)") from None
    message = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or message:
        first = message.splitlines()[0] if message else f"exit status {proc.returncode}"
        raise ToolError(f"{what}: {args[0]} failed: {first}")


def espeak_data_dir() -> Path:
    """The system espeak-ng-data directory (as reported by espeak-ng itself)."""
    if shutil.which("espeak-ng") is None:
        raise ToolError("espeak-ng: not installed (run scripts/setup_env.sh)")
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/x86_64-linux-gnu/espeak-ng-data"
    return Path(out.split("Data at:")[-1].strip())


def available_voices() -> Dict[str, set]:
    """{"espeak-ng": {language codes}, "flite": {voice names}} as the engines list them."""
    voices: Dict[str, set] = {"espeak-ng": set(), "flite": set()}
    if shutil.which("espeak-ng"):
        out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout
        voices["espeak-ng"] = {line.split()[1] for line in out.splitlines()[1:] if line.split()}
    if shutil.which("flite"):
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        voices["flite"] = set(out.split(":", 1)[-1].split())
    return voices


def check_voices_exist(speakers: Iterable[Speaker]) -> None:
    """Raise a one-line error naming the first speaker whose engine or voice is missing."""
    voices = available_voices()
    for speaker in speakers:
        if speaker.voice not in voices[speaker.engine]:
            have = ", ".join(sorted(voices[speaker.engine])) or "none (engine not installed)"
            raise ToolError(f"speaker {speaker.id}: TTS voice {speaker.engine}/{speaker.voice} "
                            f"is not installed (available: {have})")


def prepare_espeak_voice(speaker: Speaker, voices_dir: Path, data_dir: Path) -> Path:
    """Create `voices_dir/<speaker>/` holding the speaker's variant; return that data path."""
    root = voices_dir / speaker.id
    variant_dir = root / "voices" / "!v"
    variant_dir.mkdir(parents=True, exist_ok=True)
    for name in ESPEAK_SHARED:
        link = root / name
        if not link.exists():
            link.symlink_to(data_dir / name)
    (variant_dir / speaker.id).write_text(espeak_variant(speaker))
    return root


def synthesize(speaker: Speaker, text: str, rate_factor: float, wav_path: Path, voices_dir: Path) -> None:
    """Speak `text` with `speaker`'s voice into `wav_path` (engine's native rate, mono).

    Args:
      speaker: the speaker (engine, voice, variant settings).
      text: what to say (lower-case words).
      rate_factor: per-utterance speaking-rate jitter around the speaker's rate.
      wav_path: output wav.
      voices_dir: where `prepare_espeak_voice` put the speakers' data directories.
    """
    what = f"speaker {speaker.id}"
    if speaker.engine == "espeak-ng":
        rate = int(round(speaker.rate_wpm * rate_factor))
        _run(["espeak-ng", f"--path={voices_dir / speaker.id}", "-v", f"{ESPEAK_VOICE_FILE.get(speaker.voice, speaker.voice)}+{speaker.id}",
              "-s", str(rate), "--stdin", "-w", str(wav_path)], what, stdin=text.encode("utf-8"))
    elif speaker.engine == "flite":
        stretch = 170.0 / (speaker.rate_wpm * rate_factor)
        _run(["flite", "-voice", speaker.voice,
              "--setf", f"duration_stretch={stretch:.3f}",
              "--setf", f"int_f0_target_mean={mean_f0_for_flite(speaker)}",
              "--setf", f"int_f0_target_stddev={max(5, speaker.pitch_range // 4)}",
              "-t", text, "-o", str(wav_path)], what)
    else:
        raise DataError(f"speaker {speaker.id}: unknown TTS engine {speaker.engine!r}")
    if not wav_path.is_file() or wav_path.stat().st_size <= 44:
        raise ToolError(f"{what}: {speaker.engine} wrote no audio for {text!r}")


def check_speakers_distinct(speakers: List[Speaker], voices_dir: Path, work_dir: Path) -> None:
    """Prove every speaker's voice settings take effect and differ from every other's.

    Each speaker speaks a probe sentence; the audio must differ from the plain accent
    voice (the variant was applied) and from every other speaker's probe.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    seen: Dict[str, str] = {}
    plain: Dict[str, str] = {}
    for speaker in speakers:
        probe = work_dir / f"{speaker.id}.wav"
        synthesize(speaker, PROBE_TEXT, 1.0, probe, voices_dir)
        digest = hashlib.sha256(probe.read_bytes()).hexdigest()
        if speaker.engine == "espeak-ng" and speaker.voice not in plain:
            base = work_dir / f"plain-{speaker.voice}.wav"
            _run(["espeak-ng", "-v", speaker.voice, "-s", str(speaker.rate_wpm), "--stdin", "-w", str(base)],
                 f"voice {speaker.voice}", stdin=PROBE_TEXT.encode())
            plain[speaker.voice] = hashlib.sha256(base.read_bytes()).hexdigest()
        if digest == plain.get(speaker.voice):
            raise DataError(f"speaker {speaker.id}: voice variant was not applied "
                            f"(audio equals the plain {speaker.voice} voice)")
        if digest in seen:
            raise DataError(f"speakers {seen[digest]} and {speaker.id} produce identical audio")
        seen[digest] = speaker.id
        os.unlink(probe)
