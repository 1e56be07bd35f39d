#!/usr/bin/env python
"""Streaming speed of one model in three runtimes on one CPU thread; prints a Markdown table.

For the same audio, the same checkpoint and its `asrtools export onnx` directory:

- PyTorch: chunk-wise streaming greedy search (`encoder.streaming_forward` + `greedy_search_step`);
- onnxruntime: the toolkit's decoder (`asrtools.export.runtime.OnnxStream`), fp32 and int8;
- sherpa-onnx: its `OnlineRecognizer` fed one chunk of audio at a time, fp32 and int8.

Features are computed beforehand (kaldi-native-fbank) for PyTorch and onnxruntime and are not
timed; sherpa-onnx computes its own inside the timed calls (as deployed). Per runtime: the
real-time factor (decode seconds / audio seconds), the per-chunk latency (median and p95 of
one chunk's encoder + search time) and the model files' size on disk.

    python scripts/bench_deploy.py --checkpoint exp/lstm/averaged.pt --model-dir exp/lstm/onnx \\
        --cuts egs/synth/asr/data/fbank/cuts_test.jsonl.gz --num-utts 50
    python scripts/bench_deploy.py --checkpoint tiny.pt --model-dir onnx --audio a.wav b.wav
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable, List, Tuple

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def load_audio(args: argparse.Namespace, sample_rate: int) -> List[np.ndarray]:
    """Mono float32 signals at `sample_rate` from --audio files or the first --num-utts cuts."""
    from asrtools.export.transcribe import read_mono

    if args.audio:
        return [read_mono(Path(p), sample_rate)[0] for p in args.audio]
    from lhotse import CutSet

    cuts = list(CutSet.from_file(args.cuts))[: args.num_utts]
    return [c.resample(sample_rate).load_audio().mean(axis=0).astype(np.float32) for c in cuts]


def time_chunks(run_chunk: Callable[[int], None], num_chunks: int) -> List[float]:
    """Seconds of each `run_chunk(k)` call."""
    spent = []
    for k in range(num_chunks):
        start = time.perf_counter()
        run_chunk(k)
        spent.append(time.perf_counter() - start)
    return spent


@torch.no_grad()
def bench_pytorch(checkpoint: Path, features: List[np.ndarray], chunk: int) -> List[float]:
    from asrtools.decoding.greedy import greedy_search_step, init_greedy_state
    from asrtools.models.loading import load_model

    model = load_model(checkpoint).model
    spent: List[float] = []
    for feats in features:
        x = torch.from_numpy(feats)[None]
        states = model.encoder.init_states(1, torch.device("cpu"))
        decoder_state = init_greedy_state(model, 1, torch.device("cpu"))

        def step(k: int) -> None:
            nonlocal states
            piece = x[:, k * chunk : (k + 1) * chunk]
            out, lens, states = model.encoder.streaming_forward(piece, torch.tensor([piece.size(1)]), states)
            greedy_search_step(model, out, lens, decoder_state)

        spent += time_chunks(step, -(-len(feats) // chunk))
    return spent


def bench_onnxruntime(model_dir: Path, precision: str, features: List[np.ndarray]) -> List[float]:
    from asrtools.export.runtime import OnnxStream, OnnxTransducer

    model = OnnxTransducer(model_dir, precision, num_threads=1)
    chunk = model.chunk_frames
    spent: List[float] = []
    for feats in features:
        stream = OnnxStream(model)
        spent += time_chunks(lambda k: stream.accept_features(feats[k * chunk : (k + 1) * chunk]), len(feats) // chunk)
        start = time.perf_counter()
        stream.finish()
        spent.append(time.perf_counter() - start)
    return spent


def bench_sherpa(model_dir: Path, precision: str, signals: List[np.ndarray], chunk: int, rate: int) -> List[float]:
    from asrtools.export.sherpa import sherpa_recognizer, tail_padding

    recognizer = sherpa_recognizer(model_dir, precision, num_threads=1)
    block = int(chunk * 0.01 * rate)
    spent: List[float] = []
    for signal in signals:
        stream = recognizer.create_stream()
        padded = np.concatenate([signal, tail_padding(chunk, rate)])

        def step(k: int) -> None:
            stream.accept_waveform(rate, padded[k * block : (k + 1) * block])
            if (k + 1) * block >= len(padded):
                stream.input_finished()
            while recognizer.is_ready(stream):
                recognizer.decode_stream(stream)

        spent += time_chunks(step, -(-len(padded) // block))
    return spent


def size_mb(paths: List[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True, help="its `asrtools export onnx` directory")
    parser.add_argument("--audio", nargs="*", default=[], help="audio files (else --cuts)")
    parser.add_argument("--cuts", type=Path, help="a CutSet with recordings")
    parser.add_argument("--num-utts", type=int, default=50)
    args = parser.parse_args()
    if not args.audio and args.cuts is None:
        parser.error("give --audio files or --cuts")
    torch.set_num_threads(1)

    from asrtools.export.features import compute_fbank
    from asrtools.export.runtime import OnnxTransducer

    meta = OnnxTransducer(args.model_dir)
    rate, chunk = meta.fbank.sampling_rate, meta.chunk_frames
    signals = load_audio(args, rate)
    features = [compute_fbank(s, meta.fbank) for s in signals]
    audio_seconds = sum(len(s) for s in signals) / rate
    files = {p: sorted(args.model_dir.glob(f"*{'.int8' if p == 'int8' else ''}.onnx")) for p in ("fp32", "int8")}
    files["fp32"] = [f for f in files["fp32"] if ".int8." not in f.name]
    rows: List[Tuple[str, str, List[float], float]] = [("PyTorch", "fp32", bench_pytorch(args.checkpoint, features, chunk),
                                                        size_mb([args.checkpoint]))]
    for precision in ("fp32", "int8"):
        rows.append(("onnxruntime", precision, bench_onnxruntime(args.model_dir, precision, features),
                     size_mb(files[precision])))
    for precision in ("fp32", "int8"):
        rows.append(("sherpa-onnx", precision, bench_sherpa(args.model_dir, precision, signals, chunk, rate),
                     size_mb(files[precision])))
    print(f"{len(signals)} utterances, {audio_seconds:.1f} s of audio, {chunk}-frame chunks "
          f"({10 * chunk} ms), 1 thread, encoder {meta.encoder_name}\n")
    print("| runtime | precision | RTF | chunk latency median (ms) | p95 (ms) | model size (MB) |")
    print("|---|---|---|---|---|---|")
    for runtime, precision, spent, size in rows:
        ms = 1000 * np.array(spent)
        print(f"| {runtime} | {precision} | {sum(spent) / audio_seconds:.4f} | {np.median(ms):.2f} | "
              f"{np.percentile(ms, 95):.2f} | {size:.2f} |")


if __name__ == "__main__":
    main()
