"""`asrtools transcribe`: a user's audio files -> text with an exported model (onnxruntime).

Each file is read with soundfile (WAV, FLAC, OGG, ...), downmixed to mono (channel mean)
and resampled to the model's rate (torchaudio's band-limited sinc resampler) when needed,
both said in the log. The audio is then streamed in `block_seconds` blocks through
kaldi-native-fbank (`asrtools.export.features.StreamingFbank`, the features sherpa-onnx
computes) and the onnxruntime decoder (`asrtools.export.runtime.OnnxStream`), which
decodes every full chunk as it arrives; `on_partial` sees the running hypothesis after each
block (the CLI prints it in place on a terminal). A file that cannot be read is a
`DataError` naming it; every file is checked before any is decoded.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from asrtools.errors import DataError
from asrtools.export.features import StreamingFbank
from asrtools.export.runtime import OnnxStream, OnnxTransducer, word_timings

logger = logging.getLogger("asrtools")


@dataclasses.dataclass
class Transcript:
    """One file's result: text, words with times (seconds), and the input's format."""

    file: str
    text: str
    words: List[Dict[str, object]]
    duration: float
    sample_rate: int
    channels: int


def check_audio(path: Path) -> None:
    """`DataError` naming `path` unless soundfile can read its header and it holds samples."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as err:
        raise DataError(f"audio file {path} cannot be read ({str(err).splitlines()[0]})") from None
    if info.frames <= 0:
        raise DataError(f"audio file {path} holds no samples")


def read_mono(path: Path, sample_rate: int) -> tuple:
    """(mono float32 samples at `sample_rate`, original rate, channels); logs what it changed."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as err:
        raise DataError(f"audio file {path} cannot be read ({str(err).splitlines()[0]})") from None
    channels = audio.shape[1]
    mono = audio.mean(axis=1)
    changes = []
    if channels > 1:
        changes.append(f"downmixed {channels} channels to mono")
    if rate != sample_rate:
        import torch
        import torchaudio.functional as AF

        mono = AF.resample(torch.from_numpy(mono), rate, sample_rate).numpy()
        changes.append(f"resampled {rate} Hz -> {sample_rate} Hz")
    if changes:
        logger.info("%s: %s", path, ", ".join(changes))
    return mono.astype(np.float32), rate, channels


def transcribe_file(model: OnnxTransducer, path: Path, method: str = "greedy", beam: int = 4,
                    block_seconds: float = 0.32,
                    on_partial: Optional[Callable[[str], None]] = None) -> Transcript:
    """Stream one file through the model (see the module docstring)."""
    rate = model.fbank.sampling_rate
    samples, original_rate, channels = read_mono(path, rate)
    fbank = StreamingFbank(model.fbank)
    stream = OnnxStream(model, method, beam)
    block = max(1, int(block_seconds * rate))
    shown = ""
    for start in range(0, len(samples), block):
        fbank.accept(samples[start : start + block])
        stream.accept_features(fbank.take())
        text = model.text(stream.tokens())
        if on_partial is not None and text != shown:
            on_partial(text)
            shown = text
    fbank.finish()
    stream.accept_features(fbank.take())
    stream.finish()
    tokens = stream.tokens()
    return Transcript(str(path), model.text(tokens), word_timings(model, tokens, stream.token_frames()),
                      round(len(samples) / rate, 3), original_rate, channels)


def transcribe(paths: Sequence[Path], model_dir: Path, precision: str = "fp32", method: str = "greedy",
               beam: int = 4, num_threads: int = 1,
               on_partial: Optional[Callable[[Path, str], None]] = None,
               on_result: Optional[Callable[[Transcript], None]] = None) -> List[Transcript]:
    """Transcribe `paths` in order; every file is checked before any is decoded.

    Args:
      paths: audio files (any rate, any channel count).
      model_dir: an `asrtools export onnx` directory.
      precision: "fp32" or "int8".
      method: "greedy" or "modified_beam".
      beam: modified beam search's beam.
      num_threads: onnxruntime threads.
      on_partial: called with (file, running text) while a file is decoded.
      on_result: called with each file's `Transcript` when it is done.
    """
    if not paths:
        raise DataError("no audio files given")
    for path in paths:
        check_audio(Path(path))
    model = OnnxTransducer(model_dir, precision, num_threads)
    results = []
    for path in paths:
        partial = (lambda text, p=path: on_partial(Path(p), text)) if on_partial is not None else None
        result = transcribe_file(model, Path(path), method, beam, on_partial=partial)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results
