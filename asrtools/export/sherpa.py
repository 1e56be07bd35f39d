"""Decoding with sherpa-onnx's own Python `OnlineRecognizer` (PyPI `sherpa-onnx`).

sherpa-onnx computes the features itself (kaldi-native-fbank) from the raw audio, with the
options of `asrtools.export.features.sherpa_feature_kwargs`. It decodes a chunk only when
more frames than a chunk are ready, so a stream's end is flushed with `tail_padding`
seconds of zeros: (chunk + 2) frames, enough for every real frame to be decoded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List

import numpy as np

from asrtools.errors import ToolError
from asrtools.export.features import sherpa_feature_kwargs
from asrtools.export.runtime import OnnxTransducer, model_files

SHERPA_METHODS = {"greedy": "greedy_search", "modified_beam": "modified_beam_search"}


@dataclass
class SherpaResult:
    """What sherpa-onnx recognised: text, pieces and their emission times (seconds)."""

    text: str
    tokens: List[str]
    timestamps: List[float]


def sherpa_recognizer(model_dir: Path, precision: str = "fp32", method: str = "greedy", beam: int = 4,
                      num_threads: int = 1) -> Any:
    """A `sherpa_onnx.OnlineRecognizer` for an `asrtools export onnx` directory."""
    try:
        import sherpa_onnx
    except ImportError as err:
        raise ToolError(f"sherpa-onnx is not installed (pip install sherpa-onnx): {err}") from None
    files = model_files(model_dir, precision)
    meta = OnnxTransducer(model_dir, precision)  # checks the metadata, gives the feature options
    return sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=str(files["tokens"]), encoder=str(files["encoder"]), decoder=str(files["decoder"]),
        joiner=str(files["joiner"]), num_threads=num_threads, decoding_method=SHERPA_METHODS[method],
        max_active_paths=beam, **sherpa_feature_kwargs(meta.fbank))


def tail_padding(chunk_frames: int, sample_rate: int, frame_shift: float = 0.01) -> np.ndarray:
    """Zeros that flush a stream's last chunk: (chunk + 2) frames."""
    return np.zeros(int(round((chunk_frames + 2) * frame_shift * sample_rate)), dtype=np.float32)


def sherpa_decode(recognizer: Any, samples: np.ndarray, sample_rate: int, chunk_frames: int) -> SherpaResult:
    """Decode one mono float signal in [-1, 1] with sherpa-onnx (flushed with `tail_padding`)."""
    stream = recognizer.create_stream()
    stream.accept_waveform(sample_rate, np.asarray(samples, dtype=np.float32))
    stream.accept_waveform(sample_rate, tail_padding(chunk_frames, sample_rate))
    stream.input_finished()
    while recognizer.is_ready(stream):
        recognizer.decode_stream(stream)
    result = recognizer.get_result_all(stream)
    return SherpaResult(" ".join(result.text.split()), list(result.tokens), list(result.timestamps))
