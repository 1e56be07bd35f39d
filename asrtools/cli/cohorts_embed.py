"""`asrtools cohorts embed`: speaker embeddings for automatic cohort discovery (a stage).

The command is registered on the `cohorts` group (asrtools/cli/cohorts.py); the work is in
`asrtools.fairness.embeddings`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import click

from asrtools.cli.options import force_option

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)


@click.command()
@click.option("--cuts", "cuts_paths", type=_FILE, multiple=True,
              help="Cuts whose speakers to embed (repeatable, e.g. dev and test); audio for resemblyzer, "
                   "Fbank features for sv:. With file: optional: the file must then cover their speakers, "
                   "and only those are kept.")
@click.option("--encoder", "encoder_spec", default="resemblyzer", show_default=True,
              help="resemblyzer (GE2E weights in the PyPI wheel; scripts/setup_sv_ref_env.sh), "
                   "sv:<checkpoint> (a `task: speaker` checkpoint), or file:<path> (.npz or JSON {speaker: [floats]}).")
@click.option("--utts-per-speaker", type=click.IntRange(min=0), default=0, show_default=True,
              help="Utterances averaged per speaker, drawn with --seed (0: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the utterance draw.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Device of an sv: checkpoint (Resemblyzer runs on the CPU).")
@click.option("--shard-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Cuts per resumable shard.")
@click.option("--num-threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="torch CPU threads of each embedding process (0: torch's default).")
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tasks that embed the shards (local processes or SLURM array tasks); the result does not depend on it.")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def embed(cuts_paths: Tuple[Path, ...], encoder_spec: str, utts_per_speaker: int, seed: int, device: str,
          shard_size: int, num_threads: int, num_jobs: int, out_dir: Path, force: bool) -> None:
    """Speaker-averaged, L2-normalised embeddings (embeddings.npz, info.json) keyed by speaker id.

    \b
    Example:
      asrtools cohorts embed --cuts data/fbank/cuts_dev.jsonl.gz --cuts data/fbank/cuts_test.jsonl.gz \\
        --encoder resemblyzer --utts-per-speaker 16 --out-dir exp/embed_resemblyzer -j 2
    """
    from asrtools.errors import ConfigError
    from asrtools.fairness.embeddings import parse_encoder

    encoder = parse_encoder(encoder_spec)
    if encoder.kind != "file" and not cuts_paths:
        raise ConfigError(f"--encoder {encoder}: give the cuts to embed (--cuts)")
    if encoder.kind == "file":
        _embed_file(encoder.path, list(cuts_paths), out_dir, force)
    else:
        _embed_cuts(encoder_spec, list(cuts_paths), utts_per_speaker, seed, device, shard_size, num_threads,
                    num_jobs, out_dir, force)


def _load_all(paths: List[Path]) -> List[Any]:
    from asrtools.data.cuts import load_cuts

    return [cut for path in paths for cut in load_cuts(path, "cuts")]


def _embed_file(source: Path, cuts_paths: List[Path], out_dir: Path, force: bool) -> None:
    from asrtools.data.cuts import cut_speaker
    from asrtools.fairness.embeddings import embed_from_file, load_embeddings
    from asrtools.pipeline import run_stage

    inputs: Dict[str, Path] = {"file": source, **{f"cuts{i}": p for i, p in enumerate(cuts_paths)}}

    def body(ctx: Any) -> None:
        speakers = sorted({cut_speaker(c) for c in _load_all(cuts_paths)}) if cuts_paths else None
        count = embed_from_file(ctx.out_dir, source, speakers)
        ctx.log.info("stored %d speakers' vectors from %s", count, source)

    run_stage(out_dir, "cohorts embed", {"encoder": "file"}, inputs, body, force=force,
              validate=lambda: load_embeddings(source))


def _embed_cuts(encoder_spec: str, cuts_paths: List[Path], utts_per_speaker: int, seed: int, device: str,
                shard_size: int, num_threads: int, num_jobs: int, out_dir: Path, force: bool) -> None:
    from asrtools.errors import ConfigError
    from asrtools.fairness.embeddings import CohortEmbedWork, check_encoder, encoder_loader, parse_encoder, select_cuts
    from asrtools.pipeline.sharding import run_sharded_stage

    encoder = parse_encoder(encoder_spec)
    inputs: Dict[str, Path] = {f"cuts{i}": p for i, p in enumerate(cuts_paths)}
    if encoder.kind == "sv":
        inputs["checkpoint"] = encoder.path
    selection = {"utts_per_speaker": utts_per_speaker, "seed": seed}
    params = {"encoder": encoder.kind, **selection, "shard_size": shard_size}
    load, describe = encoder_loader(encoder, device, num_threads)

    def validate() -> None:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        _load_all(cuts_paths)
        check_encoder(encoder)

    def plan(ctx: Any) -> CohortEmbedWork:
        cuts = select_cuts(_load_all(cuts_paths), utts_per_speaker, seed)
        return CohortEmbedWork(ctx.out_dir, cuts, shard_size, load, describe, cuts_paths, selection)

    run_sharded_stage(out_dir, "cohorts embed", params, inputs, plan, num_jobs, force=force, validate=validate)
