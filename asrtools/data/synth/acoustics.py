"""Acoustic variety for synthetic speech: microphone/channel chains (sox) and noise (numpy).

Per speaker: a "microphone" (high-pass, low-pass, a peaking EQ, bass/treble) and a
channel: `close` (nothing more), `far` (sox reverb) or `telephone` (300–3400 Hz band,
8 kHz, GSM codec round trip). Per utterance: additive noise (white, pink, brown, or babble
from background talkers) at a drawn SNR, and a drawn level. sox runs in repeatable mode
without dither (`-R -D`) and noise comes from a per-utterance seeded generator, so the
same plan always gives byte-identical audio.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional

import numpy as np
import soundfile as sf

from asrtools.data.synth.speakers import Speaker
from asrtools.errors import ToolError

NOISE_TYPES = ("none", "white", "pink", "brown", "babble")


def _sox(args: List[str], what: str) -> None:
    try:
        proc = subprocess.run(["sox", "-R", "-D", "-V1", *args], capture_output=True, timeout=120)
    except FileNotFoundError:
        raise ToolError("sox: not installed (run scripts/setup_env.sh)") from None
    if proc.returncode != 0:
        raise ToolError(f"{what}: sox failed: {proc.stderr.decode('utf-8', 'replace').strip()[:300]}")


def mic_effects(speaker: Speaker) -> List[str]:
    """The speaker's microphone colouring as a sox effects chain (with 8 dB headroom)."""
    return [
        "gain", "-8",
        "highpass", str(speaker.mic_highpass),
        "lowpass", str(speaker.mic_lowpass),
        "equalizer", str(speaker.mic_eq_freq), "1q", str(speaker.mic_eq_gain),
        "bass", str(speaker.mic_bass),
        "treble", str(speaker.mic_treble),
    ]


def apply_channel(speaker: Speaker, tts_wav: Path, out_wav: Path, sample_rate: int, level_db: float) -> None:
    """Microphone + channel + level: `tts_wav` (any rate) -> `out_wav` (16-bit, `sample_rate`)."""
    what = f"speaker {speaker.id}"
    level = ["gain", "-n", f"{level_db:.1f}"]
    if speaker.channel == "telephone":
        gsm = out_wav.with_name(out_wav.name + ".gsm")
        try:
            _sox([str(tts_wav), "-t", "gsm", "-r", "8000", "-c", "1", str(gsm),
                  *mic_effects(speaker), "sinc", "300-3400", "gain", "-n", "-3"], what)
            _sox(["-t", "gsm", "-r", "8000", str(gsm), "-b", "16", str(out_wav),
                  "rate", str(sample_rate), *level], what)
        finally:
            gsm.unlink(missing_ok=True)
        return
    effects = mic_effects(speaker)
    if speaker.channel == "far":
        effects += ["reverb", str(speaker.reverberance), "50", "100"]
    _sox([str(tts_wav), "-b", "16", "-c", "1", str(out_wav), *effects, "rate", str(sample_rate), *level], what)


def coloured_noise(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power white, pink (1/f) or brown (1/f²) noise, shape (num_samples,)."""
    white = rng.standard_normal(num_samples)
    if kind == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(num_samples)
        freqs[0] = freqs[1] if num_samples > 1 else 1.0
        exponent = 0.5 if kind == "pink" else 1.0
        noise = np.fft.irfft(spectrum / freqs ** exponent, n=num_samples)
    noise = noise - noise.mean()
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def add_noise(
    speech: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator,
    babble: Optional[np.ndarray] = None,
) -> np.ndarray:
    """`speech` (T,) float plus `kind` noise at `snr_db` (speech power over the whole clip)."""
    if kind == "none":
        return speech
    if kind == "babble":
        if babble is None or len(babble) < len(speech):
            raise ValueError("babble bed missing or shorter than the utterance")
        start = int(rng.integers(0, len(babble) - len(speech) + 1))
        noise = babble[start:start + len(speech)].astype(np.float64)
        noise = noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
    else:
        noise = coloured_noise(kind, len(speech), rng)
    speech_power = np.mean(speech.astype(np.float64) ** 2)
    mixed = speech + noise * np.sqrt(speech_power / 10 ** (snr_db / 10))
    peak = np.max(np.abs(mixed))
    if peak > 0.99:
        mixed = mixed * (0.99 / peak)
    return mixed


def read_wav(path: Path) -> np.ndarray:
    """Mono float64 samples of a wav file."""
    samples, _ = sf.read(str(path), dtype="float64", always_2d=False)
    return samples


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM mono wav."""
    sf.write(str(path), samples, sample_rate, subtype="PCM_16", format="WAV")
