"""`asrtools transcribe AUDIO... --model DIR`: transcribe audio files with an exported model."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional, Tuple

import click


@click.command("transcribe")
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="An `asrtools export onnx` directory.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per file: text, words with start/end seconds, duration, input format.")
@click.option("--method", type=click.Choice(["greedy", "modified_beam"]), default="greedy", show_default=True)
@click.option("--beam", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--int8", "use_int8", is_flag=True, help="Use the int8 quantised files.")
@click.option("--num-threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--partial/--no-partial", default=None,
              help="Print the running hypothesis while decoding (default: when stdout is a terminal).")
def transcribe(audio: Tuple[Path, ...], model_dir: Path, as_json: bool, method: str, beam: int, use_int8: bool,
               num_threads: int, partial: Optional[bool]) -> None:
    """Transcribe AUDIO files (any sample rate or channel count) chunk by chunk.

    Prints `FILE: text` per file (or JSON lines with --json). Files are downmixed and
    resampled to the model's rate as needed (said in the log).

    \b
    Example:
      asrtools transcribe recording.wav --model exp/lstm/onnx --json
    """
    from asrtools.export.transcribe import transcribe as run

    show_partial = sys.stdout.isatty() if partial is None else partial
    in_place = sys.stdout.isatty()

    def on_partial(path: Path, text: str) -> None:
        if in_place:
            click.echo(f"\r\033[K{path}: {text}", nl=False)
        else:
            click.echo(f"{path} (partial): {text}")

    def on_result(result) -> None:
        if in_place and show_partial:
            click.echo("\r\033[K", nl=False)
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(result), ensure_ascii=False))
        else:
            click.echo(f"{result.file}: {result.text}")

    run(list(audio), model_dir, "int8" if use_int8 else "fp32", method, beam, num_threads,
        on_partial if show_partial else None, on_result)
