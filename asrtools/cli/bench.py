"""`asrtools bench ...`: measurements that recipes record as stages (e.g. encoder wall-clock speed)."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import List, Optional, Tuple

import click

from asrtools.cli.options import force_option, split_named


@click.group("bench")
def bench() -> None:
    """Timing measurements written as JSON stage artifacts."""


def named_checkpoints(specs: Tuple[str, ...]) -> List[Tuple[str, Path]]:
    """`NAME=CKPT` values; a bare path is named after its directory."""
    named = []
    for spec in specs:
        name, path = split_named("--checkpoint", spec, allow_bare=True)
        named.append((name or Path(path).parent.name, Path(path)))
    return named


def thread_counts(values: Tuple[int, ...]) -> List[int]:
    """Thread counts with 0 meaning every core (`os.cpu_count()`), duplicates dropped."""
    counts: List[int] = []
    for value in values or (1, 0):
        count = value if value > 0 else (os.cpu_count() or 1)
        if count not in counts:
            counts.append(count)
    return counts


@bench.command("encoder")
@click.option("--checkpoint", "checkpoints", multiple=True, required=True, metavar="NAME=CKPT",
              help="A trained model whose encoder is timed (repeatable).")
@click.option("--reference", default=None, help="NAME of the model speed-ups are relative to (default: the first).")
@click.option("--cuts", "cuts_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CutSet with precomputed features; a seeded sample of --num-utts cuts is encoded.")
@click.option("--num-utts", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--threads", "threads", multiple=True, type=click.IntRange(min=0),
              help="torch thread counts to time (repeatable; 0 = every core) [default: 1 and every core].")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["offline", "streaming"]),
              help="offline (whole utterance) and/or streaming (chunks with state) [default: both].")
@click.option("--batch-size", "batch_sizes", multiple=True, type=click.IntRange(min=1),
              help="Utterances (streams) per call, sorted by length (repeatable) [default: 1 and 16].")
@click.option("--chunk-frames", type=click.IntRange(min=1), default=32, show_default=True,
              help="Streaming chunk in input frames.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timings per utterance and model; the fastest counts.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the cut sample.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for encoder_speed.json and encoder_speed.md.")
@force_option
def encoder(checkpoints: Tuple[str, ...], reference: Optional[str], cuts_path: Path, num_utts: int,
            threads: Tuple[int, ...], modes: Tuple[str, ...], batch_sizes: Tuple[int, ...], chunk_frames: int,
            repeats: int, seed: int, device: str, out_dir: Path, force: bool) -> None:
    """Wall-clock encoder time of several checkpoints on the same cuts, and speed-ups.

    Cuts are sorted by length and encoded in batches of each --batch-size (1: one at a time),
    by every model in turn, offline and chunk by chunk (streaming), at each thread count; the
    fastest of --repeats timings counts. The executed
    compute fraction of each encoder on the same cuts is counted in an untimed pass (see
    asrtools.models.timing). Measure on idle cores (e.g. under `flock /work/cpu.lock`).

    \b
    Example:
      asrtools bench encoder --checkpoint dense=exp/dense/averaged.pt \\
        --checkpoint arb=exp/arb_l1/averaged.pt --cuts data/fbank/cuts_test.jsonl.gz \\
        --num-utts 100 --threads 1 --threads 0 --out-dir exp/encoder_speed
    """
    import torch

    from asrtools.decoding.rtf import cut_features
    from asrtools.errors import ConfigError
    from asrtools.models import timing
    from asrtools.pipeline import atomic_write_json, atomic_write_text, run_stage

    named = named_checkpoints(checkpoints)
    counts = thread_counts(threads)
    mode_list = list(modes) or list(timing.MODES)
    sizes = sorted(set(batch_sizes or (1, 16)))
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    inputs = {f"checkpoint.{name}": path for name, path in named}
    inputs["cuts"] = cuts_path
    params = {"checkpoints": [[n, str(p)] for n, p in named], "reference": reference, "num_utts": num_utts,
              "threads": counts, "modes": mode_list, "batch_sizes": sizes, "chunk_frames": chunk_frames,
              "repeats": repeats,
              "seed": seed, "device": device}
    command = "asrtools bench encoder " + " ".join(
        [f"--checkpoint {shlex.quote(c)}" for c in checkpoints]
        + ([f"--reference {shlex.quote(reference)}"] if reference else [])
        + [f"--cuts {shlex.quote(str(cuts_path))}", f"--num-utts {num_utts}"]
        + [f"--threads {t}" for t in threads] + [f"--mode {m}" for m in modes]
        + [f"--batch-size {b}" for b in batch_sizes]
        + [f"--chunk-frames {chunk_frames}", f"--repeats {repeats}", f"--seed {seed}", f"--device {device}",
           f"--out-dir {shlex.quote(str(out_dir))}"])

    def body(ctx) -> None:
        torch_device = torch.device(device)
        models = timing.load_timed_models(named, torch_device)
        feature_dims = {m.feature_dim for m in models}
        if len(feature_dims) != 1:
            raise ConfigError(f"the encoders take different feature sizes {sorted(feature_dims)}; time them separately")
        utterances, frame_shift = cut_features(cuts_path, num_utts, seed, feature_dims.pop())
        audio = sum(u.size(0) for u in utterances) * frame_shift
        input_text = f"{len(utterances)} cuts ({audio:.1f} s) of {cuts_path} (seed {seed})"
        results = timing.measure_encoder_speed(models, utterances, frame_shift, counts, mode_list, sizes,
                                               chunk_frames, repeats, reference, torch_device,
                                               report=lambda line: ctx.log.info("%s", line))
        doc = timing.speed_document(results, command=command, input_text=input_text,
                                    reference=reference or named[0][0], thread_counts=counts, modes=mode_list,
                                    batch_sizes=sizes, chunk_frames=chunk_frames, repeats=repeats, device=device)
        atomic_write_json(ctx.out_dir / "encoder_speed.json", doc)
        atomic_write_text(ctx.out_dir / "encoder_speed.md", timing.speed_markdown(doc, "## Encoder speed"))

    run_stage(out_dir, "bench encoder", params, inputs, body, force=force)
    click.echo(f"wrote {out_dir / 'encoder_speed.json'}")
