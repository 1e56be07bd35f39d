"""Tiny fake corpora in the real on-disk layouts and metadata formats, for the `data prepare` tests.

`write_audio` writes a short signal in the file format the suffix names (flac, wav, ogg, mp3
where libsndfile has it): one tone burst per word of the transcript, pitched by the word, so
the audio depends on the text (a few training steps see text-correlated features), plus a
little noise. Writers for other corpora live in tests/fake_corpora_<name>.py.

- `write_librispeech(root, parts)`: LibriSpeech/PART/SPK/CHAP/SPK-CHAP-NNNN.flac,
  SPK-CHAP.trans.txt and SPEAKERS.TXT (with the real file's header and a name holding `|`).
- `write_kaldi_dir(root, utterances, ...)`: a Kaldi data dir (wav.scp, text, utt2spk,
  spk2utt, spk2gender, spk2<attr>, optional segments and utt2dur) over wav files.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

WORDS = ("the cat sat on a mat while seven quiet birds sang over green hills and every small river "
         "ran down to meet the wide grey sea near our old town").split()


def sentence(seed: int, length: int = 6) -> str:
    """A deterministic upper-case sentence of `length` words (LibriSpeech writes upper case)."""
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), length)).upper()


def _word_pitch(word: str) -> float:
    return 150.0 + int(hashlib.md5(word.lower().encode()).hexdigest()[:4], 16) % 400


def speech_like(text: str, sample_rate: int = 16000, seed: int = 0, word_seconds: float = 0.25) -> np.ndarray:
    """Float32 samples `(N,)`: per word a harmonic tone burst at the word's pitch, then a short gap."""
    rng = np.random.default_rng(seed)
    pieces = [np.zeros(int(0.1 * sample_rate), dtype=np.float32)]
    for word in text.split():
        t = np.arange(int(word_seconds * sample_rate)) / sample_rate
        f0 = _word_pitch(word)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * np.hanning(len(t))
        pieces += [0.2 * tone.astype(np.float32), np.zeros(int(0.05 * sample_rate), dtype=np.float32)]
    pieces.append(np.zeros(int(0.1 * sample_rate), dtype=np.float32))
    audio = np.concatenate(pieces)
    return (audio + 0.003 * rng.standard_normal(len(audio))).astype(np.float32)


def write_audio(path: Path, text: str, sample_rate: int = 16000, seed: int = 0) -> Path:
    """Write `speech_like(text)` to `path` in the format of its suffix (.flac, .wav, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speech_like(text, sample_rate, seed), sample_rate, subtype=None if path.suffix != ".wav" else "PCM_16")
    return path


SPEAKERS_TXT_HEADER = """\
; Fake speaker table in the format of LibriSpeech's SPEAKERS.TXT (comment lines start with ';')
;ID  |SEX| SUBSET           |MINUTES| NAME
"""

# part -> speakers (id, sex); speaker 60's name holds '|' as in the real SPEAKERS.TXT.
LIBRISPEECH_SPEAKERS: Dict[str, List[Tuple[str, str]]] = {
    "train-clean-100": [("60", "M"), ("103", "F"), ("1034", "M"), ("1040", "F")],
    "dev-clean": [("84", "F"), ("174", "M")],
    "test-clean": [("121", "F"), ("237", "M")],
}


def write_librispeech(root: Path, parts: Optional[Mapping[str, Sequence[Tuple[str, str]]]] = None,
                      chapters: int = 1, utterances: int = 3, sample_rate: int = 16000,
                      speakers_txt: bool = True) -> Path:
    """A tiny LibriSpeech tree under `root/LibriSpeech`; returns that directory (the corpus dir).

    Args:
      parts: part -> [(speaker, sex)]; default `LIBRISPEECH_SPEAKERS` (8 speakers in 3 parts).
      chapters, utterances: chapters per speaker, utterances per chapter.
      speakers_txt: write SPEAKERS.TXT (every tarball has it).
    """
    corpus = Path(root) / "LibriSpeech"
    parts = parts or LIBRISPEECH_SPEAKERS
    lines = []
    seed = 0
    for part, speakers in parts.items():
        for speaker, sex in speakers:
            name = "|CBW|Simon" if speaker == "60" else f"Reader {speaker}"
            lines.append(f"{speaker:<5}| {sex} | {part:<17}| 25.03 | {name}")
            for c in range(chapters):
                chapter = f"{1000 + c}"
                chapter_dir = corpus / part / speaker / chapter
                trans = []
                for u in range(utterances):
                    utt_id = f"{speaker}-{chapter}-{u:04d}"
                    text = sentence(seed)
                    write_audio(chapter_dir / f"{utt_id}.flac", text, sample_rate, seed)
                    trans.append(f"{utt_id} {text}")
                    seed += 1
                (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
    if speakers_txt:
        (corpus / "SPEAKERS.TXT").write_text(SPEAKERS_TXT_HEADER + "\n".join(lines) + "\n")
    return corpus


def write_kaldi_dir(data_dir: Path, utterances: Iterable[Tuple[str, str, str]], audio_dir: Path,
                    speaker_attributes: Optional[Mapping[str, Mapping[str, str]]] = None,
                    segments: bool = False, utt2dur: bool = False, sample_rate: int = 16000,
                    seed: int = 0) -> Path:
    """A Kaldi data directory over wav files in `audio_dir`.

    Args:
      utterances: (utterance id, speaker, text).
      speaker_attributes: attribute -> {speaker: value}, written as `spk2<attribute>`
        (e.g. {"gender": {"s1": "f"}, "accent": {...}}).
      segments: one wav per speaker holding all its utterances, cut by a `segments` file;
        otherwise one wav per utterance.
      utt2dur: also write utt2dur.
    """
    data_dir, audio_dir = Path(data_dir), Path(audio_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    utterances = list(utterances)
    wav_scp, text, utt2spk, seg_lines, durations = {}, [], [], [], []
    by_speaker: Dict[str, List[Tuple[str, str]]] = {}
    for utt, speaker, words in utterances:
        by_speaker.setdefault(speaker, []).append((utt, words))
        text.append(f"{utt} {words}")
        utt2spk.append(f"{utt} {speaker}")
    for n, (speaker, utts) in enumerate(sorted(by_speaker.items())):
        if segments:
            audio, start = [], 0.0
            for i, (utt, words) in enumerate(utts):
                piece = speech_like(words, sample_rate, seed + 100 * n + i)
                seg_lines.append(f"{utt} rec_{speaker} {start:.3f} {start + len(piece) / sample_rate:.3f}")
                durations.append(f"{utt} {len(piece) / sample_rate:.3f}")
                audio.append(piece)
                start += len(piece) / sample_rate
            path = audio_dir / f"rec_{speaker}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.concatenate(audio), sample_rate, subtype="PCM_16")
            wav_scp[f"rec_{speaker}"] = path
        else:
            for i, (utt, words) in enumerate(utts):
                path = write_audio(audio_dir / f"{utt}.wav", words, sample_rate, seed + 100 * n + i)
                wav_scp[utt] = path
                durations.append(f"{utt} {sf.info(str(path)).duration:.3f}")
    (data_dir / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in sorted(wav_scp.items())))
    (data_dir / "text").write_text("\n".join(sorted(text)) + "\n")
    (data_dir / "utt2spk").write_text("\n".join(sorted(utt2spk)) + "\n")
    (data_dir / "spk2utt").write_text("".join(f"{s} {' '.join(u for u, _ in us)}\n"
                                              for s, us in sorted(by_speaker.items())))
    if segments:
        (data_dir / "segments").write_text("\n".join(sorted(seg_lines)) + "\n")
    if utt2dur:
        (data_dir / "utt2dur").write_text("\n".join(sorted(durations)) + "\n")
    for attribute, values in (speaker_attributes or {}).items():
        (data_dir / f"spk2{attribute}").write_text("".join(f"{s} {v}\n" for s, v in sorted(values.items())))
    return data_dir


def run_prepare(corpus: str, corpus_dir: Path, out_dir: Path, *extra: str):
    """`asrtools data prepare CORPUS --corpus-dir DIR --out-dir OUT ...` in-process (click's CliRunner)."""
    from click.testing import CliRunner

    from asrtools.cli import cli

    return CliRunner().invoke(cli, ["data", "prepare", corpus, "--corpus-dir", str(corpus_dir),
                                    "--out-dir", str(out_dir), *extra])


def assert_one_line_error(result, out_dir: Path, *words: str, layout: bool = False) -> str:
    """The command failed with exactly one `asrtools: error:` line holding `words`, and wrote nothing.

    The tests always point at a fresh `out_dir`. A layout error (`layout=True`: missing part,
    file or option) is found before the stage directory is made, so `out_dir` must not exist;
    a content error (unreadable audio, bad line) is found at the stage's door, with the stage
    lock held: `out_dir` may exist holding only its lock, no output, no marker.
    """
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("asrtools: error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], (word, errors[0])
    if layout:
        assert not Path(out_dir).exists(), sorted(Path(out_dir).rglob("*"))
    elif Path(out_dir).exists():
        assert [p.name for p in Path(out_dir).iterdir()] == [".lock"], sorted(Path(out_dir).rglob("*"))
        assert not (Path(out_dir).parent / "log" / f"{Path(out_dir).name}.log").exists()
    return errors[0]


def read_speakers_csv(path: Path) -> Dict[str, Dict[str, str]]:
    """speakers.csv as `{id: row}`."""
    import csv

    with open(path, newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}
