"""`asrtools export ...`: deployable copies of trained models."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from asrtools.cli.options import force_option


@click.group()
def export() -> None:
    """Export trained models for deployment."""


@export.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="A streaming transducer checkpoint (e.g. exp/lstm/averaged.pt).")
@click.option("--bpe-model", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The model's sentencepiece model (tokens.txt is written from it).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The model directory to write (encoder/decoder/joiner .onnx, .int8.onnx, tokens.txt).")
@click.option("--chunk-frames", type=click.IntRange(min=1), default=32, show_default=True,
              help="Feature frames (10 ms) per encoder call: the streaming chunk of the exported model.")
@click.option("--fbank-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The Fbank YAML the training features were made with (default: the toolkit's defaults).")
@click.option("--no-int8", is_flag=True, help="Do not write the int8 dynamically quantised copies.")
@force_option
def onnx(checkpoint: Path, bpe_model: Path, out_dir: Path, chunk_frames: int, fbank_config: Optional[Path],
         no_int8: bool, force: bool) -> None:
    """Export a streaming transducer to ONNX for sherpa-onnx and onnxruntime.

    The encoder takes explicit streaming state in sherpa-onnx's `lstm` layout (x, h, c);
    export.json records the metadata and an onnxruntime-vs-PyTorch check.

    \b
    Example:
      asrtools export onnx --checkpoint exp/lstm/averaged.pt --bpe-model data/lang_bpe/bpe.model \\
        --fbank-config conf/fbank.yaml --chunk-frames 32 --out-dir exp/lstm/onnx
    """
    from asrtools.export.onnx_export import ExportConfig, export_onnx

    export_onnx(checkpoint, bpe_model, out_dir, ExportConfig(chunk_frames=chunk_frames, quantize=not no_int8),
                fbank_config, force=force)


@export.command()
@click.option("--reference", type=click.Path(path_type=Path), required=True,
              help="The PyTorch streaming decode (stage directory or recogs.jsonl).")
@click.option("--candidate", "candidates", multiple=True, required=True, metavar="NAME=DECODE",
              help="A deployed runtime's decode of the same cuts (repeatable), e.g. sherpa_fp32=exp/lstm/decode_x.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for verify.json and verify.md.")
@force_option
def verify(reference: Path, candidates: Tuple[str, ...], out_dir: Path, force: bool) -> None:
    """Identical-hypothesis rate and WER difference (speaker-bootstrap 95% CI) of deployed decodes.

    \b
    Example:
      asrtools export verify --reference exp/lstm/decode_test_streaming \\
        --candidate sherpa_fp32=exp/lstm/decode_test_sherpa_fp32 --out-dir exp/lstm/deploy_verify
    """
    from asrtools.cli.options import split_named
    from asrtools.errors import ConfigError
    from asrtools.export.verify import verify_decodes

    named = dict(split_named("--candidate", spec) for spec in candidates)
    if len(named) != len(candidates):
        raise ConfigError("--candidate: two candidates share a name")
    verify_decodes(reference, {name: Path(path) for name, path in named.items()}, out_dir, force=force)
