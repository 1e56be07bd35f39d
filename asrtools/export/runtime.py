"""The toolkit's onnxruntime decoder of an exported model directory (`asrtools export onnx`).

`OnnxTransducer` loads encoder/decoder/joiner (fp32 or int8) and the metadata;
`OnnxStream` decodes one stream chunk by chunk with the same per-frame rules as the
PyTorch decoders: streaming greedy search (`asrtools.decoding.greedy`) and modified beam
search (`asrtools.decoding.beam_search`, icefall's semantics). Features are fed as frames
(`accept_features`); `asrtools.export.features.StreamingFbank` makes them from audio the
way sherpa-onnx does. A stream's last partial chunk is zero-padded and only its valid
output frames are decoded, as the PyTorch streaming decoder does with `chunk_lens`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from asrtools.data.feature_config import FeatureConfig
from asrtools.errors import DataError

PRECISIONS = ("fp32", "int8")
METHODS = ("greedy", "modified_beam")
FILES = ("encoder", "decoder", "joiner")


def model_files(model_dir: Path, precision: str = "fp32") -> Dict[str, Path]:
    """Paths of the three graphs and tokens.txt; `DataError` naming a missing one."""
    suffix = ".onnx" if precision == "fp32" else ".int8.onnx"
    files = {name: Path(model_dir) / f"{name}{suffix}" for name in FILES}
    files["tokens"] = Path(model_dir) / "tokens.txt"
    for path in files.values():
        if not path.is_file():
            raise DataError(f"model directory {model_dir}: {path.name} is missing (made by `asrtools export onnx`?)")
    return files


def read_tokens(path: Path) -> List[str]:
    """tokens.txt (`<piece> <id>` lines) -> pieces by id."""
    pieces: Dict[int, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(f"{path}:{number}: expected `<piece> <id>`, got {line!r}")
        pieces[int(parts[1])] = parts[0]
    return [pieces[i] for i in range(len(pieces))]


class OnnxTransducer:
    """An exported streaming transducer run by onnxruntime.

    Args:
      model_dir: the `asrtools export onnx` directory.
      precision: "fp32" or "int8".
      num_threads: onnxruntime intra-op threads.
    """

    def __init__(self, model_dir: Path, precision: str = "fp32", num_threads: int = 1) -> None:
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise DataError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.files = model_files(model_dir, precision)
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        sessions = {}
        for name in FILES:
            try:
                sessions[name] = ort.InferenceSession(str(self.files[name]), options, providers=["CPUExecutionProvider"])
            except Exception as err:
                raise DataError(f"{self.files[name]}: onnxruntime cannot load it ({str(err).splitlines()[0]})") from None
        self.encoder, self.decoder, self.joiner = sessions["encoder"], sessions["decoder"], sessions["joiner"]
        meta = self.encoder.get_modelmeta().custom_metadata_map
        if "asrtools_fbank" not in meta:
            raise DataError(f"{self.files['encoder']}: no asrtools metadata (not made by `asrtools export onnx`)")
        self.chunk_frames = int(meta["decode_chunk_len"])
        self.num_rows = int(meta["num_encoder_layers"])
        self.h_width, self.c_width = int(meta["d_model"]), int(meta["rnn_hidden_size"])
        self.subsampling_factor = int(meta["subsampling_factor"])
        self.feature_dim = int(meta["feature_dim"])
        self.fbank = FeatureConfig(**json.loads(meta["asrtools_fbank"]))
        self.encoder_name = meta.get("asrtools_encoder", "")
        decoder_meta = self.decoder.get_modelmeta().custom_metadata_map
        self.context_size = int(decoder_meta["context_size"])
        self.vocab_size = int(decoder_meta["vocab_size"])
        self.pieces = read_tokens(self.files["tokens"])
        self.blank_id = 0
        self._decoder_cache: Dict[Tuple[int, ...], np.ndarray] = {}

    @property
    def frame_seconds(self) -> float:
        """Duration of one encoder output frame."""
        return self.fbank.frame_shift * self.subsampling_factor

    def zero_states(self) -> Tuple[np.ndarray, np.ndarray]:
        return (np.zeros((self.num_rows, 1, self.h_width), dtype=np.float32),
                np.zeros((self.num_rows, 1, self.c_width), dtype=np.float32))

    def run_encoder(self, chunk: np.ndarray, h: np.ndarray, c: np.ndarray):
        """(1, T, F) chunk -> ((T', J) projected encoder frames, next h, next c)."""
        out, h, c = self.encoder.run(None, {"x": chunk, "h": h, "c": c})
        return out[0], h, c

    def decoder_out(self, contexts: List[Tuple[int, ...]]) -> np.ndarray:
        """(N, J) projected decoder output of N contexts (the last `context_size` tokens each), cached."""
        missing = sorted({ctx for ctx in contexts if ctx not in self._decoder_cache})
        if missing:
            outs = self.decoder.run(None, {"y": np.array(missing, dtype=np.int64)})[0]
            self._decoder_cache.update(zip(missing, outs))
        return np.stack([self._decoder_cache[ctx] for ctx in contexts])

    def logits(self, encoder_frames: np.ndarray, decoder_out: np.ndarray) -> np.ndarray:
        """(N, V) joiner logits of N (encoder frame, decoder output) pairs."""
        return self.joiner.run(None, {"encoder_out": encoder_frames, "decoder_out": decoder_out})[0]

    def text(self, tokens: List[int]) -> str:
        """Pieces joined, `▁` as word boundaries (what sherpa-onnx prints)."""
        return " ".join("".join(self.pieces[t] for t in tokens).replace("\u2581", " ").split())

    def initial_context(self) -> List[int]:
        return [-1] * (self.context_size - 1) + [self.blank_id]


@dataclass
class BeamEntry:
    """One modified-beam-search hypothesis: start context + tokens, their frames, log-prob."""

    context: List[int]
    frames: List[int]
    log_prob: float


def _log_add(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


@dataclass
class OnnxStream:
    """One stream being decoded by an `OnnxTransducer`.

    Args (fields):
      model: the runtime model.
      method: "greedy" (streaming greedy search) or "modified_beam".
      beam: modified beam search's beam.
      max_sym_per_frame: greedy's symbols per frame limit.
      length_norm: modified beam search ranks final hypotheses by log_prob / length.
    """

    model: OnnxTransducer
    method: str = "greedy"
    beam: int = 4
    max_sym_per_frame: int = 1
    length_norm: bool = True
    frames_done: int = 0
    pending: np.ndarray = field(default=None)  # type: ignore[assignment]
    beams: List[BeamEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DataError(f"decoding method {self.method!r} is not one of {', '.join(METHODS)}")
        self.h, self.c = self.model.zero_states()
        self.pending = np.zeros((0, self.model.feature_dim), dtype=np.float32)
        self.beams = [BeamEntry(self.model.initial_context(), [], 0.0)]

    def accept_features(self, frames: np.ndarray) -> None:
        """Append (T, F) feature frames and decode every full chunk."""
        self.pending = np.concatenate([self.pending, np.asarray(frames, dtype=np.float32)])
        size = self.model.chunk_frames
        while self.pending.shape[0] >= size:
            self._run_chunk(self.pending[:size], size)
            self.pending = self.pending[size:]

    def finish(self) -> None:
        """Decode the last partial chunk (zero-padded; only its valid output frames count)."""
        valid = self.pending.shape[0]
        if valid:
            padded = np.zeros((self.model.chunk_frames, self.model.feature_dim), dtype=np.float32)
            padded[:valid] = self.pending
            self._run_chunk(padded, valid)
            self.pending = self.pending[:0]

    def _run_chunk(self, chunk: np.ndarray, valid_frames: int) -> None:
        out, self.h, self.c = self.model.run_encoder(chunk[None], self.h, self.c)
        out = out[: valid_frames // self.model.subsampling_factor]
        for frame in out:
            if self.method == "greedy":
                self._greedy_frame(frame)
            else:
                self._beam_frame(frame)
            self.frames_done += 1

    def _greedy_frame(self, frame: np.ndarray) -> None:
        best = self.beams[0]
        size = self.model.context_size
        for _ in range(self.max_sym_per_frame):
            decoder_out = self.model.decoder_out([tuple(best.context[-size:])])
            token = int(self.model.logits(frame[None], decoder_out)[0].argmax())
            if token == self.model.blank_id:
                break
            best.context.append(token)
            best.frames.append(self.frames_done)

    def _beam_frame(self, frame: np.ndarray) -> None:
        size, vocab = self.model.context_size, self.model.vocab_size
        decoder_out = self.model.decoder_out([tuple(h.context[-size:]) for h in self.beams])
        logits = self.model.logits(np.repeat(frame[None], len(self.beams), 0), decoder_out).astype(np.float64)
        log_probs = logits - logits.max(1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
        scores = (log_probs + np.array([h.log_prob for h in self.beams])[:, None]).reshape(-1)
        count = min(self.beam, scores.size)
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        merged: Dict[Tuple[int, ...], BeamEntry] = {}
        for index in top.tolist():
            source, token = divmod(index, vocab)
            hyp, score = self.beams[source], float(scores[index])
            if token == self.model.blank_id:
                context, frames = hyp.context, hyp.frames
            else:
                context, frames = hyp.context + [token], hyp.frames + [self.frames_done]
            key = tuple(context)
            if key in merged:
                merged[key].log_prob = _log_add(merged[key].log_prob, score)
            else:
                merged[key] = BeamEntry(context, frames, score)
        self.beams = list(merged.values())

    def best(self) -> BeamEntry:
        if self.method == "greedy":
            return self.beams[0]
        key = (lambda h: h.log_prob / len(h.context)) if self.length_norm else (lambda h: h.log_prob)
        return max(self.beams, key=key)

    def tokens(self) -> List[int]:
        """The current best hypothesis's tokens (no blanks, start context removed)."""
        return self.best().context[self.model.context_size:]

    def token_frames(self) -> List[int]:
        """The encoder frame of each token of `tokens()`."""
        return list(self.best().frames)


def decode_features(model: OnnxTransducer, features: np.ndarray, method: str = "greedy", beam: int = 4,
                    max_sym_per_frame: int = 1, length_norm: bool = True) -> List[int]:
    """Token ids of one utterance's (T, F) features, streamed chunk by chunk."""
    stream = OnnxStream(model, method, beam, max_sym_per_frame, length_norm)
    stream.accept_features(features)
    stream.finish()
    return stream.tokens()


def word_timings(model: OnnxTransducer, tokens: List[int], frames: List[int]) -> List[Dict[str, object]]:
    """Words with start/end seconds from their pieces' emission frames.

    A word starts at the emission frame of its first piece (one beginning with `▁`) and ends
    one encoder frame after the emission of its last piece.
    """
    words: List[Dict[str, object]] = []
    step = model.frame_seconds
    for token, frame in zip(tokens, frames):
        piece = model.pieces[token]
        if piece.startswith("\u2581") or not words:
            words.append({"word": piece.lstrip("\u2581"), "start": round(frame * step, 3)})
        else:
            words[-1]["word"] = str(words[-1]["word"]) + piece
        words[-1]["end"] = round((frame + 1) * step, 3)
    return [w for w in words if w["word"]]
