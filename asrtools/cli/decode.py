"""`asrtools decode`: decode cuts with a trained transducer (a resumable stage)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from asrtools.cli.options import force_option


@click.command("decode")
@click.option("--exp-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Experiment directory of `asrtools train`.")
@click.option("--checkpoint", default="averaged.pt", show_default=True,
              help="Checkpoint file, relative to --exp-dir unless it is an existing path.")
@click.option("--cuts", "cuts_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CutSet with precomputed features to decode.")
@click.option("--bpe-model", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The sentencepiece model the system was trained with.")
@click.option("--method", type=click.Choice(["greedy", "modified_beam", "streaming_greedy"]), default="greedy",
              show_default=True, help="Search method.")
@click.option("--beam", type=int, default=4, show_default=True, help="Beam of modified_beam.")
@click.option("--max-sym-per-frame", type=int, default=1, show_default=True,
              help="Greedy methods: most symbols emitted per encoder frame.")
@click.option("--chunk-frames", type=int, default=32, show_default=True,
              help="streaming_greedy: input frames per chunk (multiple of the subsampling factor).")
@click.option("--max-duration", type=float, default=100.0, show_default=True,
              help="Seconds of audio per batch; 0 decodes one cut at a time (exact per-cut times).")
@click.option("--shard-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Cuts per resumable shard (part of the stage fingerprint).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tasks that decode the shards: local processes (or SLURM array tasks, "
                   "`asrtools --task I`); the result does not depend on it.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for recogs.jsonl, ref.trn, hyp.trn, summary.json.")
@force_option
def decode(exp_dir: Path, checkpoint: str, cuts_path: Path, bpe_model: Path, method: str, beam: int,
           max_sym_per_frame: int, chunk_frames: int, max_duration: float, shard_size: int, device: str,
           num_jobs: int, out_dir: Path, force: bool) -> None:
    """Decode --cuts and write recogs.jsonl plus sclite ref.trn / hyp.trn.

    Utterance ids in the trn files are `<speaker>-<cut id>` (sclite -i rm). Score them with
    `asrtools score wer`.

    \b
    Example:
      asrtools decode --exp-dir exp/lstm --checkpoint averaged.pt \\
        --cuts data/fbank/cuts_test.jsonl.gz --bpe-model data/lang_bpe/bpe.model \\
        --method streaming_greedy --chunk-frames 32 --out-dir exp/lstm/decode_test_streaming -j 4
    """
    import torch

    from asrtools.data.cuts import check_features, load_cuts
    from asrtools.decoding.recognize import DecodeOptions, DecodeWork, load_model
    from asrtools.errors import ConfigError
    from asrtools.pipeline.sharding import run_sharded_stage
    from asrtools.text.tokenizer import Tokenizer

    options = DecodeOptions(method=method, beam=beam, max_sym_per_frame=max_sym_per_frame,
                            chunk_frames=chunk_frames, max_duration=max_duration, shard_size=shard_size)
    options.validate()
    ckpt_path = Path(checkpoint) if Path(checkpoint).is_file() else exp_dir / checkpoint

    def load(cuts):  # in the process that decodes (a merge-only run loads nothing)
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        torch_device = torch.device(device)
        tokenizer = Tokenizer(bpe_model)
        model, model_config = load_model(ckpt_path, torch_device)
        if model.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"{bpe_model} has {tokenizer.vocab_size} tokens but {ckpt_path} was trained "
                              f"with {model.vocab_size}")
        check_features(cuts, model_config.feature_dim, "cuts")
        return model, tokenizer, torch_device

    def plan(ctx) -> DecodeWork:
        return DecodeWork(ctx.out_dir, load_cuts(cuts_path, "cuts"), options, load)

    inputs = {"checkpoint": ckpt_path, "cuts": cuts_path, "bpe_model": bpe_model}
    run_sharded_stage(out_dir, "decode", dataclasses.asdict(options), inputs, plan, num_jobs, force=force)
