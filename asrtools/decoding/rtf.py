"""Real-time factor of chunk-wise streaming greedy decoding: one stream on one CPU thread.

The measurement behind `asrtools model rtf` (a recipe stage) and scripts/bench_streaming.py
(the docs/benchmarks.md table). Each model decodes N utterances one at a time (batch 1, as
a streaming server serves one stream) with `asrtools.decoding.streaming.streaming_greedy_search`,
the code path of `asrtools decode --method streaming_greedy`: `encoder.streaming_forward` on
consecutive chunks with carried state, then the greedy decoder/joiner step on each chunk's
output. Only that function is timed: `ChunkClock` wraps the encoder's `streaming_forward` to
timestamp each call, which splits every chunk's wall time into the encoder part and the
greedy-search part without re-implementing the loop.

Algorithmic latency = chunk + look-ahead beyond the chunk, which is 0 for the causal encoders
(their chunked output equals the offline output, so nothing past a chunk is needed to emit
it); feature-extraction framing and compute time come on top.

Per model (`measure_streaming_rtf`): RTF = decode wall seconds / audio seconds per utterance
(mean and 90th percentile; "total" = all decode time / all audio), CPU-time RTF, wall ms per
chunk (mean, p90; the encoder's share), tokens emitted per audio second. One warm-up
utterance is decoded first and not counted.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from asrtools.decoding.streaming import check_chunk_frames, streaming_greedy_search
from asrtools.errors import ConfigError
from asrtools.models.build import ModelConfig, build_model
from asrtools.models.encoder import Encoder
from asrtools.models.flops import streaming_chunk_frames
from asrtools.models.transducer import Transducer
from asrtools.utils.provenance import format_provenance, provenance

#: The JSON document of `asrtools model rtf` (rtf.json), read by `asrtools report results`.
#: Version 2 replaced the `torch`, `python` and `machine` facts by a `provenance` record.
RTF_SCHEMA, RTF_SCHEMA_VERSION = "asrtools.streaming_rtf", 2
#: ConvRNN-T's target (METHODS.md section 1): streaming RTF <= 0.1 on one CPU thread.
RTF_TARGET = 0.1
#: Seconds per input frame of synthetic features (cuts carry their own).
FRAME_SHIFT = 0.01
SECTION = "## Streaming decoding RTF"


@dataclasses.dataclass
class RtfModel:
    """A model to measure.

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


def checkpoint_model(name: str, path: Path) -> RtfModel:
    """A trained model (architecture and vocabulary from the checkpoint)."""
    from asrtools.decoding.recognize import load_model

    model, config = load_model(path)
    return RtfModel(name, model, str(path), "checkpoint", config.encoder, config.feature_dim)


def random_model(name: str, config: ModelConfig, source: str, vocab_size: int, seed: int) -> RtfModel:
    """The model of an architecture config with seeded random weights.

    Args:
      config: the `model` section of a training config (`load_train_config(path).model`; the
        caller reads it, since decoding sits below training).
      source: where the config came from (the training YAML), shown in the results.
    """
    torch.manual_seed(seed)
    model = build_model(config, vocab_size).eval()
    return RtfModel(name, model, source, "random", config.encoder, config.feature_dim)


def check_unique_names(models: Sequence[RtfModel]) -> None:
    """`ConfigError` when two models share a name (they key the results)."""
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"model names must be unique (give NAME=PATH): {', '.join(duplicates)}")


def common_feature_dim(models: Sequence[RtfModel]) -> int:
    """The input feature size all `models` share (they decode the same utterances)."""
    dims = {m.feature_dim for m in models}
    if len(dims) != 1:
        raise ConfigError(f"models take different feature sizes {sorted(dims)}; measure them in separate runs")
    return dims.pop()


def chunk_frames_for(encoder: Encoder, override: int) -> int:
    """Input frames per chunk: `override` if > 0, else the encoder's default streaming chunk."""
    if override <= 0:
        return streaming_chunk_frames(encoder)
    return check_chunk_frames(encoder, override, "--chunk-frames")


def lookahead_frames(encoder: Encoder) -> int:
    """Input frames past a chunk needed to emit it: 0 for a causal (exactly streaming) encoder."""
    if not encoder.is_causal:
        raise ConfigError("the encoder is not causal (e.g. se_mode: utterance_mean) and cannot stream")
    return 0


# ----------------------------------------------------------------------------- inputs


def synthetic_features(num: int, seed: int, feature_dim: int) -> List[torch.Tensor]:
    """`num` seeded (T, F) utterances of i.i.d. N(-6, 2^2) "log-mel" frames.

    Durations are log-normal with median 6 s and sigma 0.5, clipped to [1, 20] s (roughly
    LibriSpeech test utterances). Compute does not depend on the values, only the number of
    emitted tokens does (reported as tokens/s).
    """
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(math.log(6.0), 0.5, size=num), 1.0, 20.0)
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(int(round(s / FRAME_SHIFT)), feature_dim, generator=generator) * 2.0 - 6.0 for s in seconds
    ]


def cut_features(path: Path, num: int, seed: int, feature_dim: int) -> Tuple[List[torch.Tensor], float]:
    """Features of a seeded sample of `num` cuts of `path` (all if fewer), and their frame shift."""
    from asrtools.data.cuts import check_features, load_cuts

    cuts = list(load_cuts(path, "--cuts"))
    chosen = sorted(random.Random(seed).sample(range(len(cuts)), min(num, len(cuts))))
    sample = [cuts[i] for i in chosen]
    check_features(sample, feature_dim, "--cuts")
    shifts = {cut.frame_shift for cut in sample}
    if len(shifts) != 1:
        raise ConfigError(f"--cuts {path}: cuts have different frame shifts {sorted(shifts)}")
    return [torch.from_numpy(np.asarray(cut.load_features(), dtype=np.float32)) for cut in sample], shifts.pop()


def load_utterances(cuts_path: Optional[Path], num: int, seed: int,
                    feature_dim: int) -> Tuple[List[torch.Tensor], float, str]:
    """The utterances to decode: `cut_features` of `cuts_path`, or `synthetic_features` without.

    Returns:
      (T, F) features of each utterance, the frame shift in seconds, and a description
      of the input for the tables.
    """
    if cuts_path is not None:
        utterances, frame_shift = cut_features(cuts_path, num, seed, feature_dim)
        source = str(cuts_path)
    else:
        utterances, frame_shift = synthetic_features(num, seed, feature_dim), FRAME_SHIFT
        source = f"synthetic {feature_dim}-dim features (log-normal durations, median 6 s, seed {seed})"
    audio = sum(u.size(0) for u in utterances) * frame_shift
    return utterances, frame_shift, f"{len(utterances)} utterances ({audio:.1f} s) of {source}"


# ----------------------------------------------------------------------------- measuring


def use_one_thread() -> None:
    """Intra- and inter-op parallelism off: the RTF is "on one CPU thread"."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def measure_streaming_rtf(entry: RtfModel, utterances: List[torch.Tensor], chunk_override: int,
                          frame_shift: float) -> Dict[str, Any]:
    """Decode every utterance with one model (after one warm-up) and summarise the timings.

    Args:
      entry: the model.
      utterances: (T, F) features of each utterance.
      chunk_override: input frames per chunk (0: the encoder's default streaming chunk).
      frame_shift: seconds per input frame.

    Returns:
      The JSON entry of the model (keys listed in the module docstring, plus parameters,
      chunk, look-ahead and latency in ms).
    """
    encoder = entry.model.encoder
    chunk = chunk_frames_for(encoder, chunk_override)
    lookahead = lookahead_frames(encoder)
    time_utterance(entry.model, utterances[0], chunk, frame_shift)  # warm-up, not counted
    timings = [time_utterance(entry.model, feats, chunk, frame_shift) for feats in utterances]
    rtfs = [t.wall_seconds / t.audio_seconds for t in timings]
    chunks = [c for t in timings for c in t.chunk_seconds]
    audio = sum(t.audio_seconds for t in timings)
    wall = sum(t.wall_seconds for t in timings)
    return {
        "source": entry.source,
        "weights": entry.weights,
        "encoder": entry.encoder_name,
        "params": sum(p.numel() for p in entry.model.parameters()),
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


def measure_all(models: Sequence[RtfModel], utterances: List[torch.Tensor], chunk_override: int,
                frame_shift: float, report: Optional[Callable[[str], None]] = None) -> Dict[str, Dict[str, Any]]:
    """`measure_streaming_rtf` of each model (on one thread), keyed by name; `report` gets a line each."""
    check_unique_names(models)
    use_one_thread()
    results: Dict[str, Dict[str, Any]] = {}
    for entry in models:
        r = results[entry.name] = measure_streaming_rtf(entry, utterances, chunk_override, frame_shift)
        if report is not None:
            report(f"{entry.name}: RTF mean {r['rtf_mean']:.4f} p90 {r['rtf_p90']:.4f}, "
                   f"{r['chunk_wall_ms_mean']:.2f} ms per {r['chunk_ms']:.0f} ms chunk")
    return results


# ----------------------------------------------------------------------------- reporting


def run_facts(command: str, input_text: str, models: Sequence[RtfModel]) -> Dict[str, Any]:
    """What a table states about its run: command, input, weights, date and provenance.

    Call it after `measure_all` (in the measuring process) so the provenance records the
    one thread the decoding ran on.
    """
    weights = sorted({m.weights for m in models})
    return {
        "command": command,
        "input": input_text,
        "weights": " and ".join(f"{w} weights" for w in weights),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "provenance": provenance(),
    }


def rtf_document(results: Dict[str, Dict[str, Any]], facts: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON document (`RTF_SCHEMA`) of one run."""
    return {"schema": RTF_SCHEMA, "version": RTF_SCHEMA_VERSION, "threads": 1, **facts, "models": results}


def rtf_markdown(results: Dict[str, Dict[str, Any]], facts: Dict[str, Any]) -> str:
    """The "## Streaming decoding RTF" Markdown section of one run."""
    lines = [
        SECTION,
        "",
        "Command:",
        "",
        "```",
        facts["command"],
        "```",
        "",
        f"{facts['input']}; {facts['weights']}. One stream at a time (batch 1) through "
        "`streaming_greedy_search` (= `asrtools decode --method streaming_greedy`), "
        f"`torch.set_num_threads(1)`; {facts['date']}. Latency = chunk + look-ahead (algorithmic; compute is the per-chunk column). "
        "RTF = decode wall time / audio time per utterance; CPU RTF = process CPU time / audio time "
        "(total); per-chunk = wall ms per chunk, encoder's share in brackets. Wall times on a shared "
        "machine carry other jobs' load; the CPU RTF is less affected.",
        "",
        f"Provenance: {format_provenance(facts.get('provenance'))}.",
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
