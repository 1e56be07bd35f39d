"""`asrtools data ...`: build the synthetic corpus, Lhotse manifests, validation, features."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import click

from asrtools.cli.options import config_options, force_option
from asrtools.config import load_config, to_dict
from asrtools.data.synth.config import PRESETS
from asrtools.errors import ConfigError
from asrtools.pipeline import run_stage


# -j of the sharded feature stages
feature_tasks_option = click.option(
    "-j", "--num-jobs", type=click.IntRange(min=1), default=2, show_default=True,
    help="Tasks that compute the shards: local processes (or SLURM array tasks, `asrtools --task I`); "
         "the result does not depend on it.")


@click.group()
def data() -> None:
    """Build, validate and featurise corpora."""


@data.command()
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="default", show_default=True,
              help="Corpus size preset; --config and --set override its values.")
@config_options
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Tasks that synthesise the utterances: local processes (or SLURM array tasks, "
                   "`asrtools --task I`); the corpus does not depend on it.")
@force_option
def synth(preset: str, config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path, num_jobs: int,
          force: bool) -> None:
    """Synthesise the offline multi-accent English corpus with Debian TTS voices.

    Example: asrtools data synth --preset default --config conf/synth.yaml --out-dir data/synth -j 2
    """
    from asrtools.data.synth.config import SynthConfig
    from asrtools.data.synth.corpus import CorpusWork
    from asrtools.pipeline.sharding import run_sharded_stage

    cfg = load_config(SynthConfig, config_path, overrides, defaults=PRESETS[preset])
    run_sharded_stage(out_dir, "data synth", to_dict(cfg), {}, lambda ctx: CorpusWork(cfg, ctx.out_dir), num_jobs,
                      force=force)


@data.command()
@click.option("--corpus-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A directory made by `asrtools data synth`.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--sample-rate", type=int, default=16000, show_default=True)
@force_option
def manifests(corpus_dir: Path, out_dir: Path, sample_rate: int, force: bool) -> None:
    """Write Lhotse recordings/supervisions manifests per split, then validate them.

    Example: asrtools data manifests --corpus-dir data/synth --out-dir data/manifests
    """
    from asrtools.data.manifests import format_statistics, read_synth_corpus, validate_manifest_dir, write_manifests

    loaded = {}

    def load() -> None:
        loaded["splits"] = read_synth_corpus(corpus_dir, sample_rate)

    def body(ctx) -> None:
        from asrtools.pipeline import atomic_write_json

        write_manifests(loaded["splits"], ctx.out_dir)
        stats = validate_manifest_dir(ctx.out_dir, sample_rate, check_audio=False)
        atomic_write_json(ctx.out_dir / "stats.json", stats)
        ctx.log.info("manifests:\n%s", format_statistics(stats))

    run_stage(out_dir, "data manifests", {"sample_rate": sample_rate}, {"corpus": corpus_dir}, body, force=force,
              validate=load)


@data.command()
@click.argument("manifest_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sample-rate", type=int, default=16000, show_default=True)
@click.option("--no-audio-check", is_flag=True, help="Do not try to read every audio file.")
@click.option("--json", "as_json", is_flag=True, help="Print statistics as JSON.")
def validate(manifest_dir: Path, sample_rate: int, no_audio_check: bool, as_json: bool) -> None:
    """Check manifests (audio present/readable, sample rates, durations, texts) and print statistics.

    Example: asrtools data validate data/manifests
    """
    import json

    from asrtools.data.manifests import format_statistics, validate_manifest_dir

    if not manifest_dir.is_dir():
        raise ConfigError(f"{manifest_dir}: not a directory")
    stats = validate_manifest_dir(manifest_dir, sample_rate, check_audio=not no_audio_check)
    click.echo(json.dumps(stats, indent=2) if as_json else format_statistics(stats))


@data.command()
@click.option("--manifest-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@config_options
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@feature_tasks_option
@force_option
def features(manifest_dir: Path, config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path,
             num_jobs: int, force: bool) -> None:
    """Compute Fbank features (lhotse) into cuts_<split>.jsonl.gz, resumable per shard.

    Example: asrtools data features --manifest-dir data/manifests --config conf/fbank.yaml --out-dir data/fbank -j 4
    """
    from asrtools.data.feature_config import FeatureConfig
    from asrtools.pipeline.sharding import run_sharded_stage

    cfg = load_config(FeatureConfig, config_path, overrides)

    def plan(ctx):
        from asrtools.data.features import FeatureWork

        return FeatureWork(manifest_dir, ctx.out_dir, cfg)

    run_sharded_stage(out_dir, "data features", to_dict(cfg), {"manifests": manifest_dir}, plan, num_jobs,
                      force=force)


def _speed_factors(ctx: click.Context, param: click.Parameter, value: str) -> List[float]:
    try:
        return [float(f) for f in value.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected numbers, e.g. '0.9 1.1'") from None


@data.command()
@click.option("--cuts", "cuts_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Featurised cuts to perturb, e.g. data/fbank/cuts_train.jsonl.gz.")
@click.option("--factors", callback=_speed_factors, default="0.9 1.1", show_default=True,
              help="Speed factors (space- or comma-separated); 1.1 = 10% faster.")
@config_options
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@feature_tasks_option
@force_option
def perturb(cuts_path: Path, factors: List[float], config_path: Optional[Path], overrides: Tuple[str, ...],
            out_dir: Path, num_jobs: int, force: bool) -> None:
    """Speed perturbation: Fbank features of speed-perturbed copies of featurised cuts.

    Writes <name>_sp.jsonl.gz (cuts_train_sp.jsonl.gz for cuts_train.jsonl.gz): the source cuts
    (their features stay where they are) followed by each factor's copies, ids <id>_sp<factor>.
    Use the Fbank config the source was computed with. Resumable per feature shard.

    Example: asrtools data perturb --cuts data/fbank/cuts_train.jsonl.gz --factors "0.9 1.1" \
      --config conf/fbank.yaml --out-dir data/fbank_sp -j 2
    """
    from asrtools.data.feature_config import FeatureConfig
    from asrtools.data.features import check_speed_factors
    from asrtools.pipeline.sharding import run_sharded_stage

    check_speed_factors(factors)  # before the stage directory is made
    cfg = load_config(FeatureConfig, config_path, overrides)

    def plan(ctx):
        from asrtools.data.features import SpeedPerturbWork

        return SpeedPerturbWork(cuts_path, factors, ctx.out_dir, cfg)

    run_sharded_stage(out_dir, "data perturb", {**to_dict(cfg), "factors": factors}, {"cuts": cuts_path}, plan,
                      num_jobs, force=force)


@data.command()
@click.option("--source-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory with source cuts_<split>.jsonl.gz (e.g. from `asrtools data features`).")
@config_options
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("-j", "--num-jobs", type=int, default=2, show_default=True, help="Feature processes.")
@force_option
def mix(source_dir: Path, config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path, num_jobs: int,
        force: bool) -> None:
    """Simulate multi-talker conversations (2-4 speakers, controlled overlap) and featurise them.

    Writes cuts_<split>.jsonl.gz (one cut per conversation, one supervision per turn),
    conversations_<split>.jsonl (the plan, target and realised overlap ratio) and stats.json;
    speakers of different splits are never mixed. Resumable per feature shard.

    Example: asrtools data mix --source-dir ../asr/data/fbank --config conf/mix.yaml --out-dir data/mix
    """
    from asrtools.data.conversations import MixConfig, simulate

    cfg = load_config(MixConfig, config_path, overrides)
    sources = {f"cuts_{s}": source_dir / f"cuts_{s}.jsonl.gz" for s in sorted(cfg.conversations)}
    run_stage(out_dir, "data mix", to_dict(cfg), sources,
              lambda ctx: simulate(source_dir, ctx.out_dir, cfg, num_jobs, ctx.log), force=force)
