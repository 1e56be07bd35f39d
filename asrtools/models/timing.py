"""Wall-clock encoder time of several models on the same utterances, and the speed-up over a
reference model (e.g. a dense Transformer against its compute-amortized versions).

The measurement behind `asrtools bench encoder` (a recipe stage) and scripts/bench_amortized.py
(the docs/benchmarks.md table). Utterances are sorted by length and grouped into batches of
`batch_size` (1: one at a time, the latency regime; more: several streams served together,
the throughput regime, with little padding thanks to the sorting). For each thread count and
setting, every batch is encoded by every model in turn (interleaved, so slow drifts of a
shared machine hit all models alike):

- `offline`: one `encoder(x, x_lens)` call on the whole (padded) batch;
- `streaming`: `encoder.streaming_forward` on consecutive chunks of `chunk_frames` input
  frames with carried state (what a streaming server runs for its streams).

Each (batch, model, setting) is timed `repeats` times and the fastest repeat is kept
(interference from other jobs only ever adds time); a model's time is the sum over the
batches, and its speed-up is the reference's time over its own. One warm-up batch is encoded
first and not counted. Only the encoder runs (no decoder or joiner). On CUDA the device is
synchronised around every timed call. The executed compute of each model on the same
utterances (asrtools.models.compute; None for encoders that do not count it) is measured in a
separate, untimed pass, so counting costs nothing in the timings.

Why batches matter on CPU: a Transformer layer on one utterance multiplies matrices of a few
dozen rows, where per-call overheads and small-matrix inefficiency dominate and computing
fewer rows saves less than proportionally; with more rows per call the time follows the FLOPs.
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from asrtools.errors import ConfigError
from asrtools.models.compute import summarize_compute
from asrtools.models.encoder import Encoder
from asrtools.utils.encoder_compute import SPEED_SCHEMA as SCHEMA
from asrtools.utils.encoder_compute import SPEED_SCHEMA_VERSION as SCHEMA_VERSION
from asrtools.utils.encoder_compute import relative_compute
from asrtools.utils.provenance import provenance

MODES = ("offline", "streaming")


@dataclasses.dataclass
class TimedModel:
    """A model to time.

    Attributes:
      name: table / JSON key.
      encoder: the encoder (put in eval mode).
      source: where it came from (checkpoint path).
      encoder_name: the registered encoder name.
      feature_dim: F, input feature size.
    """

    name: str
    encoder: Encoder
    source: str
    encoder_name: str
    feature_dim: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setting_name(mode: str, batch_size: int) -> str:
    """The key of one setting, e.g. "offline b1"."""
    return f"{mode} b{batch_size}"


def make_batches(utterances: Sequence[torch.Tensor], batch_size: int,
                 device: torch.device) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Sort (T, F) utterances by length (longest first) and pad groups of `batch_size` into
    ((B, T, F) features, (B,) int64 lengths)."""
    ordered = sorted(utterances, key=lambda u: -u.size(0))
    batches = []
    for start in range(0, len(ordered), batch_size):
        group = ordered[start : start + batch_size]
        lens = torch.tensor([u.size(0) for u in group], dtype=torch.int64)
        x = torch.nn.utils.rnn.pad_sequence(list(group), batch_first=True)
        batches.append((x.to(device), lens.to(device)))
    return batches


def encode(encoder: Encoder, batch: Tuple[torch.Tensor, torch.Tensor], mode: str, chunk_frames: int) -> None:
    """Run `encoder` on one padded batch, offline or chunk by chunk."""
    x, lens = batch
    if mode == "offline":
        encoder(x, lens)
        return
    states = encoder.init_states(x.size(0), x.device)
    for start in range(0, x.size(1), chunk_frames):
        chunk = x[:, start : start + chunk_frames]
        _, _, states = encoder.streaming_forward(chunk, (lens - start).clamp(min=0, max=chunk.size(1)), states)


def time_call(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Fastest of `repeats` wall-clock times of `fn()` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def executed_compute(encoder: Encoder, batches: Sequence[Tuple[torch.Tensor, torch.Tensor]], mode: str,
                     chunk_frames: int) -> Optional[Dict[str, Any]]:
    """`summarize_compute` of `encoder` on the batches (an untimed pass; None if not counted)."""
    records: List[Any] = []
    for batch in batches:
        encoder.reset_compute(batch[0].size(0))
        encode(encoder, batch, mode, chunk_frames)
        records += encoder.compute_counts() or [None]
    encoder.stop_counting()
    return summarize_compute(records)


@torch.no_grad()
def measure_encoder_speed(
    models: Sequence[TimedModel],
    utterances: Sequence[torch.Tensor],
    frame_shift: float,
    thread_counts: Sequence[int],
    modes: Sequence[str] = MODES,
    batch_sizes: Sequence[int] = (1,),
    chunk_frames: int = 32,
    repeats: int = 3,
    reference: Optional[str] = None,
    device: torch.device = torch.device("cpu"),
    report: Optional[Callable[[str], None]] = None,
) -> Dict[str, Dict[str, Any]]:
    """Time every model on every batch (module docstring) and compute speed-ups.

    Args:
      models: the encoders (distinct names).
      utterances: (T, F) features of each utterance.
      frame_shift: seconds per input frame.
      thread_counts: torch intra-op thread counts to measure (e.g. [1, 2]).
      modes: "offline" and/or "streaming".
      batch_sizes: utterances (streams) per call, e.g. [1, 16].
      chunk_frames: streaming chunk in input frames (a multiple of every encoder's
        `chunk_frames_multiple`).
      repeats: timings per (batch, model, setting); the fastest counts.
      reference: the model the speed-ups are relative to (default: the first).
      device: where to run.
      report: called with a progress line per (setting, threads).

    Returns:
      name -> {"source", "encoder", "params", "compute": {mode: summary or None},
      "seconds", "rtf", "speedup": {setting: {threads: value}}} with settings named by
      `setting_name` and thread counts as strings; rtf = seconds / audio seconds.
    """
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique: {', '.join(names)}")
    reference = reference or names[0]
    if reference not in names:
        raise ConfigError(f"reference model {reference!r} is not among {', '.join(names)}")
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"mode {mode!r} is unknown (known: {', '.join(MODES)})")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ConfigError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    for m in models:
        if "streaming" in modes and chunk_frames % m.encoder.chunk_frames_multiple:
            raise ConfigError(f"--chunk-frames {chunk_frames} is not a multiple of {m.encoder.chunk_frames_multiple} "
                              f"({m.name})")
        m.encoder.eval().to(device)
    audio = sum(u.size(0) for u in utterances) * frame_shift
    batched = {size: make_batches(utterances, size, device) for size in batch_sizes}
    results: Dict[str, Dict[str, Any]] = {
        m.name: {"source": m.source, "encoder": m.encoder_name,
                 "params": sum(p.numel() for p in m.encoder.parameters()),
                 "compute": {mode: executed_compute(m.encoder, batched[min(batch_sizes)], mode, chunk_frames)
                             for mode in modes},
                 "seconds": {}, "rtf": {}, "speedup": {}}
        for m in models
    }
    default_threads = torch.get_num_threads()
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for mode in modes:
                for size in batch_sizes:
                    setting, batches = setting_name(mode, size), batched[size]
                    totals = {m.name: 0.0 for m in models}
                    for m in models:  # warm-up
                        encode(m.encoder, batches[0], mode, chunk_frames)
                    for batch in batches:
                        for m in models:
                            totals[m.name] += time_call(lambda: encode(m.encoder, batch, mode, chunk_frames),
                                                        repeats, device)
                    for name, seconds in totals.items():
                        entry = results[name]
                        entry["seconds"].setdefault(setting, {})[str(threads)] = seconds
                        entry["rtf"].setdefault(setting, {})[str(threads)] = seconds / audio
                        entry["speedup"].setdefault(setting, {})[str(threads)] = totals[reference] / seconds
                    if report is not None:
                        report(f"{setting}, {threads} thread(s): " + ", ".join(
                            f"{n} {totals[n]:.3f} s ({totals[reference] / totals[n]:.2f}x)" for n in names))
    finally:
        torch.set_num_threads(default_threads)
    return results


def speed_document(results: Dict[str, Dict[str, Any]], *, command: str, input_text: str, reference: str,
                   thread_counts: Sequence[int], modes: Sequence[str], batch_sizes: Sequence[int], chunk_frames: int,
                   repeats: int, device: str) -> Dict[str, Any]:
    """The JSON document of one run: the results and what they were measured on."""
    made_by = provenance()
    commit = (made_by["git_commit"] or "unknown")[:12] + ("+dirty" if made_by["git_dirty"] else "")
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "command": command,
        "input": input_text,
        "reference": reference,
        "threads": [int(t) for t in thread_counts],
        "modes": list(modes),
        "batch_sizes": [int(b) for b in batch_sizes],
        "settings": [setting_name(m, b) for m in modes for b in batch_sizes],
        "chunk_frames": chunk_frames,
        "repeats": repeats,
        "device": device,
        "provenance": made_by,
        "commit": commit,
        "torch": made_by["torch"],
        "python": made_by["python"],
        "machine": f"{made_by['cpu']}, {made_by['cpu_count']} cores" if device == "cpu" else made_by["gpu"],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "models": results,
    }


def speed_markdown(doc: Dict[str, Any], heading: str) -> str:
    """A Markdown section (starting with `heading`) of a `speed_document`."""
    threads = [str(t) for t in doc["threads"]]
    columns = [(setting, t) for setting in doc["settings"] for t in threads]
    lines = [
        heading,
        "",
        "Command:",
        "",
        "```",
        doc["command"],
        "```",
        "",
        f"{doc['input']}; encoder only. Settings: offline = one forward over the (padded) batch; streaming = "
        f"`streaming_forward` on {doc['chunk_frames']}-frame chunks with carried state; bN = N utterances "
        "(streams) per call, sorted by length. Fastest of "
        f"{doc['repeats']} repeats per batch, models interleaved; time = sum over batches (wall clock); "
        f"speed-up = {doc['reference']}'s time / the model's; ms/s = encoder milliseconds per second of audio. "
        f"Compute = executed encoder FLOPs / {doc['reference']}'s dense FLOPs on these utterances (front end "
        "included; keys/values of every frame counted, `kv_all`; in brackets `kv_skipped`: a skipped attention "
        f"query would pay nothing). Commit {doc['commit']}, torch {doc['torch']}, Python {doc['python']}, "
        f"{doc['device']}: {doc['machine']}, thread counts {', '.join(threads)}; {doc['date']}. Wall times on a "
        "shared machine carry other jobs' load; ratios measured in the same run are the meaningful numbers.",
        "",
        "| model | compute % | " + " | ".join(f"{s}, {t} thr.: ms/s (speed-up)" for s, t in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    reference = doc["models"].get(doc["reference"], {}).get("compute", {})
    # the reference first, then by name: the same table from a fresh measurement or its saved JSON
    names = sorted(doc["models"], key=lambda name: (name != doc["reference"], name))
    for name in names:
        r = doc["models"][name]
        mode = next((m for m in ("offline", "streaming") if r["compute"].get(m) and reference.get(m)), None)
        fractions = relative_compute(r["compute"][mode], reference[mode]) if mode else {}
        if fractions.get("encoder_fraction") is not None:
            cell = f"{100 * fractions['encoder_fraction']:.1f} ({100 * fractions['encoder_fraction_kv_skipped']:.1f})"
        else:
            cell = "n/a"
        timings = " | ".join(f"{1000 * r['rtf'][s][t]:.2f} ({r['speedup'][s][t]:.2f}x)" for s, t in columns)
        lines.append(f"| {name} | {cell} | {timings} |")
    return "\n".join(lines) + "\n"


def load_timed_models(specs: Sequence[tuple], device: torch.device = torch.device("cpu")) -> List[TimedModel]:
    """`TimedModel`s of `(name, checkpoint path)` pairs (encoder only)."""
    from asrtools.models.loading import TRANSDUCER, load_model

    models = []
    for name, path in specs:
        loaded = load_model(Path(path), device, expect=(TRANSDUCER,))
        models.append(TimedModel(name, loaded.model.encoder, str(path), loaded.config.encoder,
                                 loaded.config.feature_dim))
    return models
