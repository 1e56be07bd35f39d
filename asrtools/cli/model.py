"""`asrtools model ...`: inspect model configs (parameters, FLOPs per second of audio)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Tuple

import click


@click.group("model")
def model() -> None:
    """Inspect model configs."""


@model.command("info")
@click.argument("config_path", metavar="CONF.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config value, e.g. --set model.encoder_params.num_layers=2 (repeatable).")
@click.option("--vocab-size", type=click.IntRange(min=2), default=500, show_default=True,
              help="Output vocabulary size V (sizes the decoder and joiner).")
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Deepest module level listed in the table.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Duration of the random utterance the FLOPs are measured on.")
@click.option("--frame-shift", type=click.FloatRange(min=1e-4), default=0.01, show_default=True,
              help="Seconds per input feature frame.")
@click.option("--chunk-frames", type=click.IntRange(min=0), default=0,
              help="Streaming chunk in input frames (0: the smallest valid chunk >= 32 frames).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(config_path: Path, overrides: Tuple[str, ...], vocab_size: int, depth: int, seconds: float,
         frame_shift: float, chunk_frames: int, as_json: bool) -> None:
    """Parameters per module and encoder GFLOPs per second of audio for a training config.

    FLOPs are 2 x multiply-adds, counted with torch's FlopCounterMode (LSTM layers
    analytically) on a random utterance; a streaming encoder is measured through
    `streaming_forward` chunk by chunk, and its whole-utterance cost is printed as well.

    \b
    Example:
      asrtools model info egs/synth/asr/conf/train_convrnnt.yaml --vocab-size 256
      asrtools model info conf/train_conformer.yaml --set model.encoder_params.chunk_size=16
    """
    import torch

    from asrtools.models.build import build_model
    from asrtools.models.flops import cost_table, format_table, measure_encoder_flops
    from asrtools.training.config import load_train_config

    torch.manual_seed(0)
    config = load_train_config(config_path, overrides).model
    transducer = build_model(config, vocab_size)
    flops = measure_encoder_flops(
        transducer.encoder, config.feature_dim, seconds, frame_shift, chunk_frames or None
    )
    rows = cost_table(transducer, flops, depth=depth)
    if as_json:
        summary = {
            "config": str(config_path),
            "encoder": config.encoder,
            "vocab_size": vocab_size,
            "mode": flops.mode,
            "chunk_frames": flops.chunk_frames,
            "encoder_flops_per_second": flops.total,
            "offline_flops_per_second": flops.offline_total,
            "modules": [dataclasses.asdict(row) for row in rows],
        }
        click.echo(json.dumps(summary, indent=2))
        return
    how = (f"streaming_forward in {flops.chunk_frames}-frame chunks" if flops.mode == "streaming"
           else "whole-utterance forward")
    click.echo(f"{config_path}: encoder {config.encoder}, feature_dim {config.feature_dim}, vocab {vocab_size}")
    click.echo(f"GFLOPs/s: encoder FLOPs (2 x MACs) per second of audio, {how} on a {seconds:g} s input")
    click.echo(format_table(rows))
    click.echo(f"encoder whole-utterance forward: {flops.offline_total / 1e9:.3f} GFLOPs/s")
