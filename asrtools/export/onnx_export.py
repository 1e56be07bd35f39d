"""`asrtools export onnx`: a streaming transducer checkpoint -> sherpa-onnx model directory.

Output directory:
  encoder.onnx, decoder.onnx, joiner.onnx   fp32 graphs (`asrtools.export.graphs`), opset 13,
                                            with the metadata sherpa-onnx reads
  encoder.int8.onnx, ...                    dynamically quantised copies (int8 weights of
                                            MatMul/LSTM; onnxruntime.quantization)
  tokens.txt                                `<piece> <id>` per line (id 0 = blank `<blk>`)
  export.json                               settings, metadata, file sizes, the parity check,
                                            provenance

Encoder metadata (sherpa-onnx's `lstm` type reads model_type, T, decode_chunk_len,
num_encoder_layers, d_model, rnn_hidden_size; the decoder's context_size, vocab_size):
the `asrtools_*` keys describe the state packing and the features for the toolkit's own
runtime (`asrtools.export.runtime`). Every streaming encoder uses the `lstm` protocol (see
graphs.py); an LSTM encoder is exactly icefall's `lstm_transducer_stateless2` layout plus
packed front-end caches.

Before the stage is marked done, onnxruntime runs the fp32 encoder over random chunks and
its output must equal PyTorch's streaming output (`max_abs_diff` in export.json).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch

from asrtools.data.feature_config import FeatureConfig
from asrtools.errors import ConfigError, DataError
from asrtools.export.graphs import DecoderGraph, EncoderGraph, JoinerGraph, StatePacker
from asrtools.models.loading import TRANSDUCER, LoadedModel, load_model
from asrtools.pipeline import StageContext, atomic_path, atomic_write_json, atomic_write_text, run_stage
from asrtools.utils.provenance import provenance

logger = logging.getLogger("asrtools")

GRAPHS = ("encoder", "decoder", "joiner")
OPSET = 13
PARITY_TOLERANCE = 1e-3  # max |onnxruntime - PyTorch| of the encoder output (fp32)


@dataclasses.dataclass
class ExportConfig:
    """How to export.

    Attributes:
      chunk_frames: feature frames per encoder call (T = decode_chunk_len), a multiple of the
        encoder's chunk multiple.
      quantize: also write int8 dynamically quantised copies.
      row_width: packed state row width for encoders other than the LSTM.
      parity_chunks: random chunks of the onnxruntime-vs-PyTorch check.
    """

    chunk_frames: int = 32
    quantize: bool = True
    row_width: int = 256
    parity_chunks: int = 6

    def validate(self) -> None:
        if self.chunk_frames < 1 or self.row_width < 1 or self.parity_chunks < 1:
            raise ConfigError("chunk_frames, row_width and parity_chunks must be >= 1")


def check_exportable(loaded: LoadedModel, config: ExportConfig, tokenizer: Any, features: FeatureConfig) -> None:
    """`ConfigError` unless the model is a streaming transducer that fits the options."""
    from asrtools.decoding.streaming import check_chunk_frames

    encoder, path = loaded.model.encoder, loaded.path
    if not encoder.is_causal:
        raise ConfigError(f"checkpoint {path}: its {loaded.config.encoder} encoder is not streaming "
                          f"(chunked output differs from whole-utterance output); it cannot be exported")
    check_chunk_frames(encoder, config.chunk_frames, "--chunk-frames")
    if tokenizer.vocab_size != loaded.vocab_size:
        raise ConfigError(f"the BPE model has {tokenizer.vocab_size} tokens but checkpoint {path} "
                          f"was trained with {loaded.vocab_size}")
    if loaded.config.feature_dim != features.num_mel_bins:
        raise ConfigError(f"checkpoint {path} reads {loaded.config.feature_dim}-dim features, the Fbank config "
                          f"has {features.num_mel_bins} mel bins")
    if (features.frame_shift, features.frame_length) != (0.01, 0.025):
        raise ConfigError("sherpa-onnx computes 25 ms frames every 10 ms; the Fbank config differs")
    packer = StatePacker(encoder, config.row_width)  # raises if a state has no batch axis
    try:  # a dry run in memory, so that an encoder the exporter cannot trace fails at the door
        with _stdout_silenced():  # the exporter dumps its whole graph to stdout when it fails
            _encoder_onnx(EncoderGraph(loaded.model, packer).eval(), packer, config.chunk_frames,
                          features.num_mel_bins, io.BytesIO())
    except Exception as err:
        reason = str(err).splitlines()[0].split(". Please")[0][:200]
        raise ConfigError(f"checkpoint {path}: its {loaded.config.encoder} encoder's streaming step cannot be "
                          f"exported to ONNX by torch.onnx ({reason})") from None


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Send file descriptor 1 (C++ prints included) to /dev/null for the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def tokens_text(tokenizer: Any) -> str:
    """tokens.txt: `<piece> <id>` for every id (sherpa-onnx's symbol table)."""
    return "".join(f"{tokenizer.sp.id_to_piece(i)} {i}\n" for i in range(tokenizer.vocab_size))


def encoder_metadata(loaded: LoadedModel, packer: StatePacker, config: ExportConfig,
                     features: FeatureConfig) -> Dict[str, str]:
    encoder = loaded.model.encoder
    layout = [{"shape": list(s.shape), "batch_axis": s.batch_axis, "dtype": str(s.dtype).replace("torch.", ""),
               "offset": s.offset} for s in packer.slots]
    return {
        "model_type": "lstm",  # sherpa-onnx's state protocol (see asrtools.export.graphs)
        "version": "1",
        "model_author": "asrtools",
        "comment": f"asrtools {loaded.config.encoder} streaming transducer encoder",
        "T": str(config.chunk_frames),
        "decode_chunk_len": str(config.chunk_frames),
        "num_encoder_layers": str(packer.num_rows),
        "d_model": str(packer.h_width),
        "rnn_hidden_size": str(packer.c_width),
        "asrtools_encoder": loaded.config.encoder,
        "asrtools_lstm_layers": str(packer.num_lstm_layers),
        "asrtools_state_layout": json.dumps(layout),
        "subsampling_factor": str(encoder.subsampling_factor),
        "feature_dim": str(loaded.config.feature_dim),
        "asrtools_fbank": json.dumps(dataclasses.asdict(features)),
    }


def _to_onnx(module: torch.nn.Module, args: tuple, target: Any, inputs: list, outputs: list,
             dynamic: Dict[str, Dict[int, str]]) -> None:
    """torch.onnx.export with the TorchScript exporter (its LSTM and state ops need no onnxscript)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, target, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False)


def _encoder_onnx(graph: EncoderGraph, packer: StatePacker, chunk_frames: int, feature_dim: int, target: Any) -> None:
    """Export the encoder graph for (1, chunk_frames, feature_dim) chunks (batch axis dynamic)."""
    h, c = packer.zero_states(1)
    _to_onnx(graph, (torch.zeros(1, chunk_frames, feature_dim), h, c), target, ["x", "h", "c"],
             ["encoder_out", "next_h", "next_c"],
             {"x": {0: "N"}, "h": {1: "N"}, "c": {1: "N"}, "encoder_out": {0: "N"}, "next_h": {1: "N"},
              "next_c": {1: "N"}})


def _add_metadata(path: Path, metadata: Dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _export_graph(module: torch.nn.Module, args: tuple, path: Path, inputs: list, outputs: list,
                  dynamic: Dict[str, Dict[int, str]], metadata: Dict[str, str]) -> None:
    """Export `module` to `path` atomically, with `metadata`."""
    with atomic_path(path) as tmp:
        _to_onnx(module, args, str(tmp), inputs, outputs, dynamic)
        _add_metadata(tmp, metadata)


def quantize(src: Path, dst: Path) -> None:
    """int8 dynamic quantisation of MatMul and LSTM weights (onnxruntime.quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is for static quantisation
    try:
        with atomic_path(dst) as tmp:
            quantize_dynamic(str(src), str(tmp), op_types_to_quantize=["MatMul", "LSTM"], weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


@torch.no_grad()
def parity_check(graph: EncoderGraph, packer: StatePacker, path: Path, config: ExportConfig,
                 feature_dim: int) -> float:
    """Max |onnxruntime - PyTorch| of the encoder output (and relative, of the state) over
    `parity_chunks` random chunks of 2 streams."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    h, c = packer.zero_states(2)
    ort_h, ort_c = h.numpy(), c.numpy()
    worst = 0.0
    for _ in range(config.parity_chunks):
        x = torch.randn(2, config.chunk_frames, feature_dim, generator=generator) * 3.0 - 5.0
        ref, h, c = graph(x, h, c)
        out, ort_h, ort_c = session.run(None, {"x": x.numpy(), "h": ort_h, "c": ort_c})
        state_error = np.abs(ort_c - c.numpy()) / (1.0 + np.abs(c.numpy()))  # CMN sums grow large
        worst = max(worst, float(np.abs(out - ref.numpy()).max()), float(state_error.max()))
    return worst


def write_export(ctx: StageContext, loaded: LoadedModel, tokenizer: Any, config: ExportConfig,
                 features: FeatureConfig) -> Dict[str, Any]:
    """Stage body: the graphs, their int8 copies, tokens.txt and export.json in `ctx.out_dir`."""
    model, out = loaded.model.cpu().eval(), ctx.out_dir
    packer = StatePacker(model.encoder, config.row_width)
    encoder = EncoderGraph(model, packer).eval()
    batch, chunk, context = 1, config.chunk_frames, model.decoder.context_size
    metadata = encoder_metadata(loaded, packer, config, features)
    with atomic_path(out / "encoder.onnx") as tmp:
        _encoder_onnx(encoder, packer, chunk, loaded.config.feature_dim, str(tmp))
        _add_metadata(tmp, metadata)
    y = torch.tensor([[-1] * (context - 1) + [model.blank_id]], dtype=torch.int64)
    _export_graph(DecoderGraph(model).eval(), (y,), out / "decoder.onnx", ["y"], ["decoder_out"],
                  {"y": {0: "N"}, "decoder_out": {0: "N"}},
                  {"context_size": str(context), "vocab_size": str(model.vocab_size)})
    joiner_dim = model.joiner.output_linear.in_features
    frames = torch.zeros(batch, joiner_dim)
    _export_graph(JoinerGraph(model).eval(), (frames, frames), out / "joiner.onnx", ["encoder_out", "decoder_out"],
                  ["logit"], {"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}},
                  {"joiner_dim": str(joiner_dim)})
    worst = parity_check(encoder, packer, out / "encoder.onnx", config, loaded.config.feature_dim)
    if not worst <= PARITY_TOLERANCE:
        raise DataError(f"checkpoint {loaded.path}: the exported encoder differs from PyTorch by {worst:.3g} "
                        f"(> {PARITY_TOLERANCE}); not exported")
    if config.quantize:
        for name in GRAPHS:
            quantize(out / f"{name}.onnx", out / f"{name}.int8.onnx")
    atomic_write_text(out / "tokens.txt", tokens_text(tokenizer))
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}
    info = {"checkpoint": str(loaded.path), "encoder": loaded.config.encoder, "options": dataclasses.asdict(config),
            "opset": OPSET, "fbank": dataclasses.asdict(features), "encoder_metadata": metadata,
            "vocab_size": model.vocab_size, "context_size": context, "max_abs_diff": worst, "file_bytes": sizes,
            "provenance": provenance()}
    atomic_write_json(out / "export.json", info)
    ctx.log.info("exported %s (%s encoder, chunk %d frames, onnxruntime-PyTorch max |diff| %.2g) to %s",
                 loaded.path, loaded.config.encoder, chunk, worst, out)
    return info


def export_onnx(checkpoint: Path, bpe_model: Path, out_dir: Path, config: ExportConfig,
                fbank_config: Optional[Path] = None, force: bool = False) -> bool:
    """The `asrtools export onnx` stage: validate at the door, then `write_export`.

    Args:
      checkpoint: a transducer checkpoint with a streaming encoder.
      bpe_model: its sentencepiece model (for tokens.txt).
      out_dir: the model directory to write (a stage directory).
      config: export options.
      fbank_config: the Fbank YAML the model's features were made with (None: the defaults,
        which equal egs/synth/asr/conf/fbank.yaml).
      force: rerun even if up to date.

    Returns:
      True if the stage ran.
    """
    from asrtools.config import load_config
    from asrtools.text.tokenizer import Tokenizer

    config.validate()
    features = load_config(FeatureConfig, fbank_config, ()) if fbank_config is not None else FeatureConfig()
    loaded: Dict[str, Any] = {}

    def validate() -> None:
        model = load_model(checkpoint, "cpu", expect=(TRANSDUCER,))
        tokenizer = Tokenizer(bpe_model)
        check_exportable(model, config, tokenizer, features)
        loaded.update(model=model, tokenizer=tokenizer)

    def body(ctx: StageContext) -> None:
        write_export(ctx, loaded["model"], loaded["tokenizer"], config, features)

    inputs = {"checkpoint": Path(checkpoint), "bpe_model": Path(bpe_model)}
    if fbank_config is not None:
        inputs["fbank_config"] = Path(fbank_config)
    params = {**dataclasses.asdict(config), "fbank": dataclasses.asdict(features), "opset": OPSET}
    return run_stage(Path(out_dir), "export onnx", params, inputs, body, force=force, validate=validate)
