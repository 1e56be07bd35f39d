#!/usr/bin/env python3
"""Real-time factor of chunk-wise streaming greedy decoding, one stream on one CPU thread.

For each model it decodes N utterances one at a time (batch 1, as a streaming server
serves one stream) with `asrtools.decoding.streaming.streaming_greedy_search`, the code path
of `asrtools decode --method streaming_greedy`: `encoder.streaming_forward` on consecutive
chunks with carried state, then the greedy decoder/joiner step on each chunk's output.
`torch.set_num_threads(1)`. The script only times that function: it wraps the encoder's
`streaming_forward` to timestamp each call, which splits every chunk's wall time into the
encoder part and the greedy-search part without re-implementing the loop.

Models (default: the three recipe configs, randomly initialised):
  CONF.yaml or NAME=CONF.yaml     build the model of a training config, random weights
                                  (seeded); vocabulary from --bpe-model or --vocab-size
  --checkpoint [NAME=]CKPT.pt     a trained model (architecture and vocabulary from the
                                  checkpoint); NAME defaults to the checkpoint's directory

Input:
  --cuts CUTS.jsonl.gz            N cuts of a lhotse CutSet with precomputed features, a
                                  seeded random sample (all cuts if N exceeds them)
  (no --cuts)                     synthetic 80-dim "log-mel" frames, N(-6, 2^2) i.i.d., of
                                  seeded random durations log-normal with median 6 s and
                                  sigma 0.5, clipped to [1, 20] s (roughly LibriSpeech test
                                  utterances); compute does not depend on the values, only
                                  the number of emitted tokens does (reported as tokens/s)

Chunk: --chunk-frames, else the encoder's smallest valid chunk of >= 32 input frames
(`asrtools.models.flops.streaming_chunk_frames`: 32 frames = 320 ms for the recipe configs;
the Conformer's attention chunk fixes it). Algorithmic latency = chunk + look-ahead beyond
the chunk, which is 0 for these causal encoders (their chunked output equals the offline
output, so nothing past a chunk is needed to emit it); feature-extraction framing and
compute time come on top (compute is the per-chunk column).

Per model: RTF = decode wall seconds / audio seconds per utterance (mean and 90th
percentile over utterances; "total" = all decode time / all audio), CPU-time RTF, wall ms
per chunk (mean, p90; the encoder's share), tokens emitted per audio second. One warm-up
utterance per model is decoded first and not counted. Wall times on a shared machine carry
other jobs' load; the CPU-time RTF is less affected.

Writes the Markdown table into the "## Streaming decoding RTF" section of docs/benchmarks.md
(other sections are kept) and, with --json-out, a JSON file that `asrtools score results`
reads (models keyed by NAME).

Usage:
  .venv/bin/python scripts/bench_streaming.py --num-utts 50 --out docs/benchmarks.md
  .venv/bin/python scripts/bench_streaming.py --checkpoint lstm=egs/synth/asr/exp/lstm/averaged.pt \\
      --checkpoint convrnnt=egs/synth/asr/exp/convrnnt/averaged.pt \\
      --cuts egs/synth/asr/data/fbank/cuts_test.jsonl.gz --num-utts 200 \\
      --json-out egs/synth/asr/exp/bench_streaming.json --out -
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import platform
import random
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from asrtools.decoding.recognize import load_model
from asrtools.decoding.streaming import streaming_greedy_search
from asrtools.errors import AsrtoolsError, ConfigError
from asrtools.models.build import build_model
from asrtools.models.encoder import Encoder
from asrtools.models.flops import streaming_chunk_frames
from asrtools.models.transducer import Transducer
from asrtools.pipeline import atomic_write_json
from asrtools.utils import write_markdown_section

SECTION = "## Streaming decoding RTF"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = tuple(f"egs/synth/asr/conf/train_{name}.yaml" for name in ("lstm", "convrnnt", "conformer"))
JSON_SCHEMA, JSON_VERSION = "asrtools.bench_streaming", 1
RTF_TARGET = 0.1
FRAME_SHIFT = 0.01  # seconds per input frame (fbank); cuts give their own


@dataclasses.dataclass
class BenchModel:
    """A model to benchmark.

    Attributes:
      name: table / JSON key.
      model: the transducer in eval mode.
      source: where it came from (config or checkpoint path).
      weights: "random" or "checkpoint".
      encoder_name: the registered encoder name.
      feature_dim: F, input feature size.
    """

    name: str
    model: Transducer
    source: str
    weights: str
    encoder_name: str
    feature_dim: int


@dataclasses.dataclass
class UttTiming:
    """Timings of one decoded utterance.

    Attributes:
      audio_seconds: utterance duration.
      wall_seconds: wall time of the whole `streaming_greedy_search` call.
      cpu_seconds: process CPU time of the call.
      chunk_seconds: (n_chunks,) wall time of each chunk (encoder + greedy step).
      encoder_seconds: (n_chunks,) the encoder part of each chunk.
      tokens: emitted tokens.
    """

    audio_seconds: float
    wall_seconds: float
    cpu_seconds: float
    chunk_seconds: List[float]
    encoder_seconds: List[float]
    tokens: int


class ChunkClock:
    """Timestamp every `encoder.streaming_forward` call while active (a context manager).

    The wrapper is an instance attribute shadowing the method, so the decoding code runs
    unchanged; leaving the context removes it.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.calls: List[Tuple[float, float]] = []  # (start, end) of each call

    def __enter__(self) -> "ChunkClock":
        original = self.encoder.streaming_forward

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            self.calls.append((start, time.perf_counter()))
            return result

        self.encoder.streaming_forward = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.encoder.streaming_forward


def time_utterance(model: Transducer, features: torch.Tensor, chunk_frames: int, frame_shift: float) -> UttTiming:
    """Decode one utterance with `streaming_greedy_search` and time it.

    Args:
      model: the transducer in eval mode.
      features: (T, F) input features of one utterance.
      chunk_frames: input frames per chunk.
      frame_shift: seconds per input frame.

    Returns:
      The timings; chunk i lasts from the start of encoder call i to the start of call
      i + 1 (the last one to the end of the search), so it includes its greedy step.
    """
    x, x_lens = features.unsqueeze(0), torch.tensor([features.size(0)], dtype=torch.int64)
    with ChunkClock(model.encoder) as clock:
        cpu_start, start = time.process_time(), time.perf_counter()
        hyps = streaming_greedy_search(model, x, x_lens, chunk_frames)
        end, cpu_end = time.perf_counter(), time.process_time()
    starts = [s for s, _ in clock.calls] + [end]
    return UttTiming(
        audio_seconds=features.size(0) * frame_shift,
        wall_seconds=end - start,
        cpu_seconds=cpu_end - cpu_start,
        chunk_seconds=[b - a for a, b in zip(starts[:-1], starts[1:])],
        encoder_seconds=[e - s for s, e in clock.calls],
        tokens=len(hyps[0]),
    )


# ----------------------------------------------------------------------------- models


def _split_name(spec: str) -> Tuple[Optional[str], str]:
    """`NAME=PATH` -> (NAME, PATH); a bare path -> (None, PATH)."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name and not name.endswith((".yaml", ".pt")):
        return name, path
    return None, spec


def _vocab_size(args: argparse.Namespace) -> int:
    if args.bpe_model:
        from asrtools.text.tokenizer import Tokenizer

        return Tokenizer(Path(args.bpe_model)).vocab_size
    return args.vocab_size


def load_models(args: argparse.Namespace) -> List[BenchModel]:
    """The models named on the command line (the recipe configs when none is)."""
    from asrtools.training.config import load_train_config

    configs = list(args.configs) or ([] if args.checkpoint else list(DEFAULT_CONFIGS))
    models: List[BenchModel] = []
    for spec in configs:
        name, path = _split_name(spec)
        config = load_train_config(_resolve(path)).model
        torch.manual_seed(args.seed)
        model = build_model(config, _vocab_size(args)).eval()
        default = re.sub(r"^train_", "", Path(path).stem)
        models.append(BenchModel(name or default, model, path, "random", config.encoder, config.feature_dim))
    for spec in args.checkpoint:
        name, path = _split_name(spec)
        model, config = load_model(_resolve(path))
        models.append(BenchModel(name or _resolve(path).parent.name, model, path, "checkpoint", config.encoder,
                                 config.feature_dim))
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"model names must be unique (give NAME=PATH): {', '.join(duplicates)}")
    return models


def common_feature_dim(models: Sequence[BenchModel]) -> int:
    """The input feature size all `models` share (they decode the same utterances)."""
    dims = {m.feature_dim for m in models}
    if len(dims) != 1:
        raise ConfigError(f"models take different feature sizes {sorted(dims)}; benchmark them in separate runs")
    return dims.pop()


def chunk_frames_for(encoder: Encoder, override: int) -> int:
    """Input frames per chunk: `override` if > 0, else the encoder's default streaming chunk."""
    if override <= 0:
        return streaming_chunk_frames(encoder)
    multiple = int(getattr(encoder, "chunk_frames_multiple", encoder.subsampling_factor))
    if override % multiple:
        raise ConfigError(f"--chunk-frames {override} is not a multiple of {multiple} for this encoder")
    return override


def lookahead_frames(encoder: Encoder) -> int:
    """Input frames past a chunk needed to emit it: 0 for a causal (exactly streaming) encoder."""
    if not encoder.is_causal:
        raise ConfigError("the encoder is not causal (e.g. se_mode: utterance_mean) and cannot stream")
    return 0


# ----------------------------------------------------------------------------- inputs


def synthetic_features(num: int, seed: int, feature_dim: int) -> List[torch.Tensor]:
    """`num` seeded (T, F) utterances (see the module docstring for the distribution)."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(math.log(6.0), 0.5, size=num), 1.0, 20.0)
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(int(round(s / FRAME_SHIFT)), feature_dim, generator=generator) * 2.0 - 6.0 for s in seconds
    ]


def cut_features(path: Path, num: int, seed: int, feature_dim: int) -> Tuple[List[torch.Tensor], float]:
    """Features of a seeded sample of `num` cuts of `path`, and their frame shift."""
    from asrtools.training.data import check_features, load_cuts

    cuts = list(load_cuts(path, "--cuts"))
    chosen = sorted(random.Random(seed).sample(range(len(cuts)), min(num, len(cuts))))
    sample = [cuts[i] for i in chosen]
    check_features(sample, feature_dim, "--cuts")
    shifts = {cut.frame_shift for cut in sample}
    if len(shifts) != 1:
        raise ConfigError(f"--cuts {path}: cuts have different frame shifts {sorted(shifts)}")
    return [torch.from_numpy(np.asarray(cut.load_features(), dtype=np.float32)) for cut in sample], shifts.pop()


# ----------------------------------------------------------------------------- run + report


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def bench_model(bench: BenchModel, utterances: List[torch.Tensor], chunk_override: int,
                frame_shift: float) -> Dict[str, Any]:
    """Decode every utterance with one model (after one warm-up) and summarise the timings."""
    encoder = bench.model.encoder
    chunk = chunk_frames_for(encoder, chunk_override)
    lookahead = lookahead_frames(encoder)
    time_utterance(bench.model, utterances[0], chunk, frame_shift)  # warm-up, not counted
    timings = [time_utterance(bench.model, feats, chunk, frame_shift) for feats in utterances]
    rtfs = [t.wall_seconds / t.audio_seconds for t in timings]
    chunks = [c for t in timings for c in t.chunk_seconds]
    audio = sum(t.audio_seconds for t in timings)
    wall = sum(t.wall_seconds for t in timings)
    return {
        "source": bench.source,
        "weights": bench.weights,
        "encoder": bench.encoder_name,
        "params": sum(p.numel() for p in bench.model.parameters()),
        "encoder_params": sum(p.numel() for p in encoder.parameters()),
        "chunk_frames": chunk,
        "chunk_ms": 1000 * chunk * frame_shift,
        "lookahead_ms": 1000 * lookahead * frame_shift,
        "latency_ms": 1000 * (chunk + lookahead) * frame_shift,
        "num_utterances": len(timings),
        "audio_seconds": audio,
        "decode_seconds": wall,
        "rtf_total": wall / audio,
        "rtf_mean": float(np.mean(rtfs)),
        "rtf_p90": _percentile(rtfs, 90),
        "rtf_cpu_total": sum(t.cpu_seconds for t in timings) / audio,
        "num_chunks": len(chunks),
        "chunk_wall_ms_mean": 1000 * float(np.mean(chunks)),
        "chunk_wall_ms_p90": 1000 * _percentile(chunks, 90),
        "encoder_share": sum(sum(t.encoder_seconds) for t in timings) / sum(chunks),
        "tokens_per_second": sum(t.tokens for t in timings) / audio,
    }


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared with other jobs)"


def markdown(results: Dict[str, Dict[str, Any]], facts: Dict[str, Any]) -> str:
    """The "## Streaming decoding RTF" section."""
    lines = [
        SECTION,
        "",
        "Written by `scripts/bench_streaming.py` (see its docstring); command:",
        "",
        "```",
        facts["command"],
        "```",
        "",
        f"{facts['input']}; {facts['weights']}. One stream at a time (batch 1) through "
        "`streaming_greedy_search` (= `asrtools decode --method streaming_greedy`), "
        f"`torch.set_num_threads(1)`, torch {facts['torch']}, Python {facts['python']}, {facts['machine']}; "
        f"{facts['date']}. Latency = chunk + look-ahead (algorithmic; compute is the per-chunk column). "
        "RTF = decode wall time / audio time per utterance; CPU RTF = process CPU time / audio time "
        "(total); per-chunk = wall ms per chunk, encoder's share in brackets.",
        "",
        "| model | encoder | params | chunk ms | look-ahead ms | latency ms | RTF mean | RTF p90 | CPU RTF "
        "| per-chunk ms mean (enc.) | per-chunk ms p90 | tokens/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['encoder']} | {r['params'] / 1e6:.2f} M | {r['chunk_ms']:.0f} | {r['lookahead_ms']:.0f} "
            f"| {r['latency_ms']:.0f} "
            f"| {r['rtf_mean']:.4f} | {r['rtf_p90']:.4f} | {r['rtf_cpu_total']:.4f} "
            f"| {r['chunk_wall_ms_mean']:.2f} ({100 * r['encoder_share']:.0f}%) | {r['chunk_wall_ms_p90']:.2f} "
            f"| {r['tokens_per_second']:.1f} |"
        )
    lines += ["", target_line(results)]
    return "\n".join(lines) + "\n"


def target_line(results: Dict[str, Dict[str, Any]]) -> str:
    """Whether every ConvRNN-T model meets RTF <= 0.1 (mean over utterances)."""
    checked = [(n, r) for n, r in results.items() if r["encoder"] == "convrnnt"]
    if not checked:
        return f"Target RTF <= {RTF_TARGET} for ConvRNN-T: no convrnnt model in this run."
    parts = [f"{n} RTF mean {r['rtf_mean']:.4f}, p90 {r['rtf_p90']:.4f} "
             f"({'met' if r['rtf_mean'] <= RTF_TARGET else 'NOT met'})" for n, r in checked]
    return f"Target RTF <= {RTF_TARGET} for ConvRNN-T: " + "; ".join(parts) + "."


def write_section(path: Path, body: str) -> None:
    """Replace (or append) the "## Streaming decoding RTF" section of `path`, keeping the others."""
    write_markdown_section(path, SECTION, body)


def _resolve(path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() or candidate.exists() else REPO / candidate


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", metavar="[NAME=]CONF.yaml",
                        help="training configs to build with random weights (default: the three recipe configs "
                             "unless --checkpoint is given)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]CKPT.pt",
                        help="a trained model (repeatable)")
    parser.add_argument("--cuts", type=Path, help="CutSet with precomputed features (default: synthetic features)")
    parser.add_argument("--num-utts", type=int, default=20, help="utterances per model")
    parser.add_argument("--chunk-frames", type=int, default=0,
                        help="input frames per chunk (0: each encoder's default streaming chunk)")
    parser.add_argument("--vocab-size", type=int, default=256, help="vocabulary of randomly initialised models")
    parser.add_argument("--bpe-model", help="take the vocabulary size of random models from this BPE model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights, features and cut sample")
    parser.add_argument("--json-out", type=Path,
                        help="also write the results as JSON (read by `asrtools score results`)")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown file to update, or - to print only")
    args = parser.parse_args(argv)
    if args.num_utts < 1:
        parser.error("--num-utts must be >= 1")
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass
    command = ".venv/bin/python scripts/bench_streaming.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        models = load_models(args)
        feature_dim = common_feature_dim(models)
        if args.cuts:
            utterances, frame_shift = cut_features(_resolve(str(args.cuts)), args.num_utts, args.seed, feature_dim)
            audio = sum(u.size(0) for u in utterances) * frame_shift
            input_text = f"{len(utterances)} utterances ({audio:.1f} s) of {args.cuts}"
        else:
            utterances, frame_shift = synthetic_features(args.num_utts, args.seed, feature_dim), FRAME_SHIFT
            audio = sum(u.size(0) for u in utterances) * frame_shift
            input_text = (f"{len(utterances)} synthetic {feature_dim}-dim utterances ({audio:.1f} s, "
                          f"log-normal durations, median 6 s, seed {args.seed})")
        results = {}
        for bench in models:
            results[bench.name] = bench_model(bench, utterances, args.chunk_frames, frame_shift)
            r = results[bench.name]
            print(f"{bench.name}: RTF mean {r['rtf_mean']:.4f} p90 {r['rtf_p90']:.4f}, "
                  f"{r['chunk_wall_ms_mean']:.2f} ms per {r['chunk_ms']:.0f} ms chunk", file=sys.stderr)
    except AsrtoolsError as err:
        sys.exit(f"bench_streaming: error: {err}")
    weights = sorted({m.weights for m in models})
    facts = {
        "command": command,
        "input": input_text,
        "weights": " and ".join(f"{w} weights" for w in weights),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": _machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    body = markdown(results, facts)
    print(body)
    if args.out != "-":
        write_section(_resolve(args.out) if not Path(args.out).is_absolute() else Path(args.out), body)
    if args.json_out:
        atomic_write_json(args.json_out, {"schema": JSON_SCHEMA, "version": JSON_VERSION, "threads": 1,
                                          **facts, "models": results})


if __name__ == "__main__":
    main()
