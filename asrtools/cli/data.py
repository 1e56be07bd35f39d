"""`asrtools data ...`: build the synthetic corpus, Lhotse manifests, validation, features."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

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
@config_options("asrtools.data.synth.config:SynthConfig",
                defaults=lambda opts: PRESETS[click.Choice(sorted(PRESETS)).convert(opts.get("preset", "default"),
                                                                                     None, None)])
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Tasks that synthesise the utterances: local processes (or SLURM array tasks, "
                   "`asrtools --task I`); the corpus does not depend on it.")
@force_option
def synth(preset: str, config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path, num_jobs: int,
          force: bool) -> None:
    """Synthesise the offline multi-accent English corpus with Debian TTS voices.

    \b
    Examples:
      asrtools data synth --preset default --config conf/synth.yaml --out-dir data/synth -j 2
      asrtools data synth --preset tiny --set utts_per_speaker=2 --out-dir data/synth_small
      asrtools data synth --preset tiny --show-config
    """
    from asrtools.data.synth.config import SynthConfig
    from asrtools.data.synth.corpus import CorpusWork
    from asrtools.pipeline.sharding import run_sharded_stage

    cfg = load_config(SynthConfig, config_path, overrides, defaults=PRESETS[preset])
    run_sharded_stage(out_dir, "data synth", to_dict(cfg), {}, lambda ctx: CorpusWork(cfg, ctx.out_dir), num_jobs,
                      force=force)


@data.command()
@click.option("--corpus-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A directory made by `asrtools data synth` (or written in its layout by hand).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--sample-rate", type=int, default=None, help="Required sample rate of every recording [16000].")
@click.option("--resample", type=click.IntRange(min=1), default=None, metavar="RATE",
              help="Resample audio at another rate to RATE (e.g. 16000) instead of refusing it.")
@force_option
def manifests(corpus_dir: Path, out_dir: Path, sample_rate: Optional[int], resample: Optional[int],
              force: bool) -> None:
    """Write Lhotse recordings/supervisions manifests per split, then validate them.

    Example: asrtools data manifests --corpus-dir data/synth --out-dir data/manifests
    """
    from asrtools.data.manifests import ManifestsConfig, make_manifests

    make_manifests(ManifestsConfig(sample_rate=_target_rate(sample_rate, resample), resample=resample is not None),
                   corpus_dir, out_dir, force=force)


def _target_rate(sample_rate: Optional[int], resample: Optional[int]) -> int:
    if sample_rate is not None and resample is not None and sample_rate != resample:
        raise ConfigError(f"--resample {resample} and --sample-rate {sample_rate} disagree; give one of them")
    return resample or sample_rate or 16000


def _key_values(ctx: click.Context, param: click.Parameter, values: Tuple[str, ...]) -> Dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r}: expected KEY=VALUE, e.g. text_column=sentence")
        pairs[key.strip()] = val.strip()
    return pairs


@data.command()
@click.argument("corpus")
@click.option("--corpus-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The corpus as you have it on disk (read only; nothing is downloaded).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--parts", default="", metavar="'P1 P2 ...'",
              help="Corpus parts to prepare, space- or comma-separated (default: the corpus's own default; "
                   "librispeech: train-clean-100 dev-clean test-clean; train-960 = the 960 h).")
@click.option("--sample-rate", type=int, default=None, help="Required sample rate of every recording [16000].")
@click.option("--resample", type=click.IntRange(min=1), default=None, metavar="RATE",
              help="Resample audio at another rate to RATE (e.g. 16000) instead of refusing it.")
@click.option("--option", "options", multiple=True, callback=_key_values, metavar="KEY=VALUE",
              help="A corpus-specific setting (repeatable), e.g. csv: --option text_column=sentence.")
@click.option("--no-geocode", is_flag=True, help="Do not place speakers from their zip/city/region/country.")
@click.option("--no-audio-check", is_flag=True, help="Do not read the start of every audio file.")
@click.option("--max-duration", type=float, default=60.0, show_default=True,
              help="Longest utterance allowed (seconds).")
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads for lhotse's corpus preparation.")
@force_option
def prepare(corpus: str, corpus_dir: Path, out_dir: Path, parts: str, sample_rate: Optional[int],
            resample: Optional[int], options: Dict[str, str], no_geocode: bool, no_audio_check: bool,
            max_duration: float, num_jobs: int, force: bool) -> None:
    """Turn a corpus you have on disk into manifests per split + speakers.csv (lhotse's own parsers).

    Writes recordings_<split>.jsonl.gz, supervisions_<split>.jsonl.gz, stats.json (as
    `data manifests` does), speakers.csv (id, split, every speaker attribute the corpus
    gives, lat/lon and how they were placed) and notes.txt. The corpus is checked before
    anything is written. CORPUS: librispeech, kaldi (a Kaldi data dir, or a directory of
    them), csv (one CSV/TSV table per split), commonvoice, vctk, voxceleb, libricss, ... (an
    unknown name prints the full list).

    \b
    kaldi: DIR is a data dir (wav.scp, text, utt2spk, [segments], spk2gender, any spk2<attr>;
      one split named after DIR, or --option split=NAME) or holds data dirs (one split each).
    csv: DIR holds <split>.csv / <split>.tsv with columns path|audio, text|transcript,
      speaker|speaker_id, optional id, start, end|duration; other columns are speaker
      attributes (--option text_column=NAME etc. for other names).

    \b
    Example: asrtools data prepare librispeech --corpus-dir /data/LibriSpeech --out-dir data/manifests
    Example: asrtools data prepare kaldi --corpus-dir data/test --out-dir data/manifests_test
    """
    from asrtools.data.corpora.stage import PrepareConfig, prepare_corpus

    config = PrepareConfig(corpus=corpus, parts=parts.replace(",", " ").split(),
                           sample_rate=_target_rate(sample_rate, resample), resample=resample is not None,
                           check_audio=not no_audio_check, geocode=not no_geocode, max_duration=max_duration,
                           num_jobs=num_jobs, options=options)
    prepare_corpus(config, corpus_dir, out_dir, force=force)


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
@config_options("asrtools.data.feature_config:FeatureConfig")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@feature_tasks_option
@force_option
def features(manifest_dir: Path, config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path,
             num_jobs: int, force: bool) -> None:
    """Compute Fbank features (lhotse) into cuts_<split>.jsonl.gz, resumable per shard.

    Example: asrtools data features --manifest-dir data/manifests --config conf/fbank.yaml --out-dir data/fbank -j 4
    """
    from asrtools.data.feature_config import FeatureConfig, fingerprint_params
    from asrtools.pipeline.sharding import run_sharded_stage

    cfg = load_config(FeatureConfig, config_path, overrides)

    def plan(ctx):
        from asrtools.data.features import FeatureWork

        return FeatureWork(manifest_dir, ctx.out_dir, cfg)

    run_sharded_stage(out_dir, "data features", fingerprint_params(to_dict(cfg)), {"manifests": manifest_dir}, plan, num_jobs,
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
@config_options("asrtools.data.feature_config:FeatureConfig")
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
    from asrtools.data.feature_config import FeatureConfig, fingerprint_params
    from asrtools.data.features import check_speed_factors
    from asrtools.pipeline.sharding import run_sharded_stage

    check_speed_factors(factors)  # before the stage directory is made
    cfg = load_config(FeatureConfig, config_path, overrides)

    def plan(ctx):
        from asrtools.data.features import SpeedPerturbWork

        return SpeedPerturbWork(cuts_path, factors, ctx.out_dir, cfg)

    run_sharded_stage(out_dir, "data perturb", {**fingerprint_params(to_dict(cfg)), "factors": factors}, {"cuts": cuts_path}, plan,
                      num_jobs, force=force)


@data.command()
@click.option("--source-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory with source cuts_<split>.jsonl.gz (e.g. from `asrtools data features`).")
@config_options("asrtools.data.conversations:MixConfig")
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
    from asrtools.data.feature_config import fingerprint_params

    cfg = load_config(MixConfig, config_path, overrides)
    sources = {f"cuts_{s}": source_dir / f"cuts_{s}.jsonl.gz" for s in sorted(cfg.conversations)}
    run_stage(out_dir, "data mix", fingerprint_params(to_dict(cfg)), sources,
              lambda ctx: simulate(source_dir, ctx.out_dir, cfg, num_jobs, ctx.log), force=force)
