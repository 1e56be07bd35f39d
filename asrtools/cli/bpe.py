"""`asrtools bpe ...`: sentencepiece BPE models."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from asrtools.cli.options import config_options, force_option
from asrtools.config import load_config, to_dict
from asrtools.pipeline import run_stage


@click.group()
def bpe() -> None:
    """Train and inspect sentencepiece BPE models."""


@bpe.command()
@click.option("--supervisions", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Training SupervisionSet manifest (its texts train the model).")
@config_options("asrtools.text.bpe_config:BpeConfig")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@force_option
def train(supervisions: Path, config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path,
          force: bool) -> None:
    """Train a BPE model with blank id 0 and reserved <sot>/<eot> symbols.

    Example: asrtools bpe train --supervisions data/manifests/supervisions_train.jsonl.gz --config conf/bpe.yaml --out-dir data/lang_bpe
    """
    from asrtools.text.bpe_config import BpeConfig

    cfg = load_config(BpeConfig, config_path, overrides)

    from asrtools.text.bpe import build_bpe, read_transcripts

    loaded = {}

    def load() -> None:
        loaded["texts"] = read_transcripts(supervisions)

    def body(ctx) -> None:
        ctx.log.info("BPE: %s", build_bpe(loaded["texts"], ctx.out_dir, cfg))

    run_stage(out_dir, "bpe train", to_dict(cfg), {"supervisions": supervisions}, body, force=force, validate=load)


@bpe.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("text", nargs=-1, required=True)
def encode(model: Path, text: Tuple[str, ...]) -> None:
    """Show the pieces and ids of TEXT.  Example: asrtools bpe encode data/lang_bpe/bpe.model HELLO WORLD"""
    from asrtools.text.tokenizer import Tokenizer

    tokenizer = Tokenizer(model)
    sentence = " ".join(text)
    click.echo(" ".join(tokenizer.pieces(sentence)))
    click.echo(" ".join(map(str, tokenizer.encode([sentence])[0])))
