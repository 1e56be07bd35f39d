"""`asrtools decode --backend onnx | sherpa-onnx`: the decode stage on an exported model directory.

Same outputs, shards and resume as the PyTorch decode stage (`asrtools.decoding.recognize.
DecodeWork`), with the per-cut recognition done by

- `onnx`: the toolkit's onnxruntime decoder (`asrtools.export.runtime`) on the cuts' stored
  features (the training features; tests/test_export.py shows they equal sherpa-onnx's),
  streaming chunk by chunk at the exported chunk size; greedy or modified beam search;
- `sherpa-onnx`: sherpa-onnx's own `OnlineRecognizer` on the cuts' raw audio (it computes
  its features itself); greedy_search or modified_beam_search.

One cut at a time on one thread, so `decode_seconds` is each cut's exact time.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np
from lhotse import CutSet

from asrtools.decoding.recognize import DecodeOptions, DecodeWork, recognition_record
from asrtools.errors import ConfigError, DataError
from asrtools.pipeline import atomic_write_text
from asrtools.pipeline.sharding import Progress, run_sharded_stage

BACKENDS = ("onnx", "sherpa-onnx")


@dataclasses.dataclass
class OnnxDecodeOptions:
    """The exported-model part of a decode: backend, precision, threads.

    Attributes:
      backend: "onnx" (onnxruntime, the toolkit's decoder) or "sherpa-onnx".
      precision: "fp32" or "int8" files of the model directory.
      num_threads: inference threads.
    """

    backend: str = "onnx"
    precision: str = "fp32"
    num_threads: int = 1

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.precision not in ("fp32", "int8") or self.num_threads < 1:
            raise ConfigError("precision must be fp32 or int8 and num_threads >= 1")


def search_method(method: str) -> str:
    """The exported runtime's search for a decode --method (all stream chunk by chunk)."""
    return "modified_beam" if method == "modified_beam" else "greedy"


class ExportedDecodeWork(DecodeWork):
    """`DecodeWork` whose shards are decoded by an exported model (see the module docstring)."""

    def __init__(self, out_dir: Path, cuts: CutSet, options: DecodeOptions, model_dir: Path,
                 onnx_options: OnnxDecodeOptions, tokenizer: Any) -> None:
        super().__init__(out_dir, cuts, options, load=lambda _: (None, tokenizer, None))
        self.model_dir = Path(model_dir)
        self.onnx_options = onnx_options
        self.tokenizer = tokenizer

    def run_units(self, indices: Sequence[int], progress: Progress, processes: int) -> None:
        if not indices:
            return
        recognize = self._recognizer()
        for index in indices:
            records = []
            for cut in self.shards[index]:
                start = time.perf_counter()
                hyp = recognize(cut)
                records.append(recognition_record(cut, hyp, time.perf_counter() - start))
            atomic_write_text(self.part_path(index), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            progress(len(records))

    def _recognizer(self):
        """cut -> hypothesis text, for the chosen backend."""
        from asrtools.export.runtime import OnnxTransducer, decode_features

        opts, method = self.onnx_options, search_method(self.options.method)
        model = OnnxTransducer(self.model_dir, opts.precision, opts.num_threads)
        if opts.backend == "onnx":
            def recognize(cut: Any) -> str:
                feats = _features(cut)
                ids = decode_features(model, feats, method, self.options.beam, self.options.max_sym_per_frame,
                                      self.options.length_norm)
                return self.tokenizer.decode([ids])[0]
            return recognize

        from asrtools.export.sherpa import sherpa_decode, sherpa_recognizer

        recognizer = sherpa_recognizer(self.model_dir, opts.precision, method, self.options.beam, opts.num_threads)

        def recognize_audio(cut: Any) -> str:
            return sherpa_decode(recognizer, _audio(cut, model.fbank.sampling_rate), model.fbank.sampling_rate,
                                 model.chunk_frames).text
        return recognize_audio


def _features(cut: Any) -> np.ndarray:
    try:
        feats = cut.load_features()
    except Exception as err:
        raise DataError(f"cut {cut.id}: cannot load its features ({err})") from None
    if not np.isfinite(feats).all():
        raise DataError(f"cut {cut.id}: its features hold NaN or infinite values")
    return feats


def _audio(cut: Any, sample_rate: int) -> np.ndarray:
    if not cut.has_recording:
        raise DataError(f"cut {cut.id}: has no recording (sherpa-onnx decodes raw audio)")
    try:
        audio = cut.resample(sample_rate).load_audio()
    except Exception as err:
        raise DataError(f"cut {cut.id}: cannot load its audio ({err})") from None
    return audio.mean(axis=0).astype(np.float32)


def run_exported_decode(model_dir: Path, cuts_path: Path, bpe_model: Path, options: DecodeOptions,
                        onnx_options: OnnxDecodeOptions, out_dir: Path, num_jobs: int = 1,
                        force: bool = False) -> None:
    """The decode stage with an exported model (checked at the door: files, vocabulary, cuts)."""
    from asrtools.data.cuts import check_features, load_cuts
    from asrtools.export.runtime import OnnxTransducer, model_files
    from asrtools.text.tokenizer import Tokenizer

    options.validate()
    onnx_options.validate()
    loaded: Dict[str, Any] = {}

    def validate() -> None:
        model = OnnxTransducer(model_dir, onnx_options.precision)
        tokenizer = Tokenizer(bpe_model)
        if tokenizer.vocab_size != model.vocab_size:
            raise ConfigError(f"{bpe_model} has {tokenizer.vocab_size} tokens but {model_dir} has {model.vocab_size}")
        cuts = load_cuts(cuts_path, "cuts")
        if onnx_options.backend == "onnx":
            check_features(cuts, model.feature_dim, "cuts")
        else:
            missing = next((c.id for c in cuts if not c.has_recording), None)
            if missing is not None:
                raise DataError(f"cuts: cut {missing} has no recording (sherpa-onnx decodes raw audio)")
        loaded["tokenizer"] = tokenizer

    def plan(ctx: Any) -> ExportedDecodeWork:
        if "tokenizer" not in loaded:
            loaded["tokenizer"] = Tokenizer(bpe_model)
        return ExportedDecodeWork(ctx.out_dir, load_cuts(cuts_path, "cuts"), options, model_dir, onnx_options,
                                  loaded["tokenizer"])

    files = model_files(model_dir, onnx_options.precision)
    inputs: Dict[str, Path] = {name: path for name, path in files.items()}
    inputs.update(cuts=cuts_path, bpe_model=bpe_model)
    params = {**dataclasses.asdict(options), **dataclasses.asdict(onnx_options)}
    run_sharded_stage(out_dir, "decode", params, inputs, plan, num_jobs, force=force, validate=validate)

