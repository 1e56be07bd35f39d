"""`asrtools sv ...`: speaker-verification trials, embeddings, scoring and the results page.

Scoring the scores (EER, minDCF, per group, DET) is `asrtools score sv`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from asrtools.cli.options import force_option, split_named
from asrtools.errors import ConfigError
from asrtools.pipeline import run_stage

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)
_ANY = click.Path(path_type=Path)


@click.group()
def sv() -> None:
    """Speaker verification: trial lists, embeddings, cosine / AS-norm scoring, results page."""


@sv.command()
@click.option("--supervisions", type=_FILE, required=True,
              help="The evaluation split's lhotse SupervisionSet (utterances, speakers, their attributes).")
@click.option("--by", "groupings", multiple=True, default=("gender", "region", "engine"), show_default=True,
              help="Speaker attribute to balance trials within and across (repeatable).")
@click.option("--targets-per-speaker", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--nontargets-per-speaker", type=click.IntRange(min=1), default=20, show_default=True,
              help="Same-group non-target trials per speaker and grouping.")
@click.option("--cross-per-speaker", type=click.IntRange(min=0), default=10, show_default=True,
              help="Other-group non-target trials per speaker and grouping.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def trials(supervisions: Path, groupings: Tuple[str, ...], targets_per_speaker: int, nontargets_per_speaker: int,
           cross_per_speaker: int, seed: int, out_dir: Path, force: bool) -> None:
    """Balanced, seeded trials (trials.txt, VoxCeleb format `label enroll test`) + trials.json statistics.

    Example: asrtools sv trials --supervisions data/manifests/supervisions_test.jsonl.gz --by gender --by region --by engine --out-dir exp/trials_test
    """
    from asrtools.pipeline import atomic_write_json
    from asrtools.scoring.io import read_speaker_attributes
    from asrtools.scoring.sv_report import utterance_speakers
    from asrtools.sv.trials import TrialPlan, make_trials, write_trials

    plan = TrialPlan(list(groupings), targets_per_speaker, nontargets_per_speaker, cross_per_speaker, seed)

    def body(ctx: Any) -> None:
        made, stats = make_trials(utterance_speakers(supervisions), read_speaker_attributes(supervisions), plan)
        write_trials(ctx.out_dir / "trials.txt", made)
        atomic_write_json(ctx.out_dir / "trials.json", {"plan": vars(plan), "supervisions": str(supervisions),
                                                        "stats": stats})
        ctx.log.info("%d trials (%d target) of %d speakers", stats["total"]["trials"], stats["total"]["target"],
                     stats["total"]["speakers"])

    run_stage(out_dir, "sv trials", {"plan": vars(plan)}, {"supervisions": supervisions}, body, force=force)


@sv.command("import-trials")
@click.option("--list", "trial_list", type=_FILE, required=True,
              help="An official VoxCeleb trial list (`1 id10270/VIDEO/00001.wav id10270/VIDEO/00002.wav`).")
@click.option("--supervisions", type=_FILE, required=True,
              help="The SupervisionSet of the trial utterances (`asrtools data prepare voxceleb`).")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def import_trials(trial_list: Path, supervisions: Path, out_dir: Path, force: bool) -> None:
    """An official trial list in the toolkit's format (trials.txt with cut ids, trials.json), as `sv trials` writes.

    Example: asrtools sv import-trials --list /data/VoxCeleb1/veri_test2.txt --supervisions data/manifests/supervisions_test.jsonl.gz --out-dir exp/trials_vox1-o
    """
    from asrtools.sv.trial_import import TrialImportConfig
    from asrtools.sv.trial_import import import_trials as run_import

    run_import(TrialImportConfig(trial_list, supervisions), out_dir, force=force)


@sv.command()
@click.option("--checkpoint", type=_FILE, default=None,
              help="A `task: speaker` checkpoint (e.g. exp/baseline/averaged.pt).")
@click.option("--external", type=click.Choice(["resemblyzer"]), default=None,
              help="Use an external pretrained encoder instead (needs scripts/setup_sv_ref_env.sh).")
@click.option("--cuts", type=_FILE, required=True, help="Cuts to embed (Fbank cuts; audio for --external).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Cuts per resumable shard.")
@click.option("--num-threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="torch CPU threads of each process that embeds (0: torch's default). The embeddings "
                   "are byte-identical for any -j at the same value (oneDNN rounds differently with "
                   "other thread counts).")
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tasks that embed the shards: local processes (or SLURM array tasks, "
                   "`asrtools --task I`); the result does not depend on it.")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def embed(checkpoint: Optional[Path], external: Optional[str], cuts: Path, device: str, shard_size: int,
          num_threads: int, num_jobs: int, out_dir: Path, force: bool) -> None:
    """Utterance and speaker-averaged embeddings (utterances.npz, speakers.npz, embed.json); resumable per shard.

    Example: asrtools sv embed --checkpoint exp/baseline/averaged.pt --cuts data/fbank/cuts_test.jsonl.gz --out-dir exp/baseline/embed_test -j 4
    """
    if (checkpoint is None) == (external is None):
        raise ConfigError("give exactly one of --checkpoint and --external")
    import torch

    from asrtools.data.cuts import load_cuts
    from asrtools.pipeline.sharding import run_sharded_stage
    from asrtools.sv.embeddings import EmbedFn, EmbedWork
    from asrtools.sv.extract import checkpoint_embedder, load_speaker_checkpoint, resemblyzer_embedder

    inputs: Dict[str, Path] = {"cuts": cuts}
    if checkpoint is not None:
        inputs["checkpoint"] = checkpoint
    params = {"external": external, "shard_size": shard_size}

    def load() -> EmbedFn:  # in each process that embeds (a merge-only run loads nothing)
        if num_threads:
            torch.set_num_threads(num_threads)
        return (checkpoint_embedder(checkpoint, device) if checkpoint else resemblyzer_embedder())[0]

    def describe() -> Dict[str, Any]:
        return load_speaker_checkpoint(checkpoint)[2] if checkpoint else resemblyzer_embedder()[1]

    def validate() -> None:  # at the door, before the stage directory is touched
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        load_cuts(cuts, "cuts")
        if checkpoint is not None:
            load_speaker_checkpoint(checkpoint)

    def plan(ctx: Any) -> EmbedWork:
        return EmbedWork(ctx.out_dir, load_cuts(cuts, "cuts"), shard_size, load, describe, cuts)

    run_sharded_stage(out_dir, "sv embed", params, inputs, plan, num_jobs, force=force, validate=validate)


@sv.command()
@click.option("--embeddings", type=_DIR, required=True, help="`asrtools sv embed` directory of the trial utterances.")
@click.option("--trials", "trial_path", type=_ANY, required=True,
              help="Trial list (`label enroll test`) or an `asrtools sv trials` directory.")
@click.option("--cohort", type=_DIR, default=None,
              help="`asrtools sv embed` directory whose speaker embeddings are the AS-norm cohort.")
@click.option("--norm", type=click.Choice(["none", "asnorm"]), default="none", show_default=True)
@click.option("--top-k", type=click.IntRange(min=1), default=100, show_default=True, help="AS-norm top-k cohort.")
@click.option("--out-dir", type=_DIR, required=True)
@force_option
def score(embeddings: Path, trial_path: Path, cohort: Optional[Path], norm: str, top_k: int, out_dir: Path,
          force: bool) -> None:
    """Cosine scores (optionally AS-normalised) of every trial -> scores.txt (`label enroll test score`).

    Example: asrtools sv score --embeddings exp/baseline/embed_test --trials exp/trials_test --cohort exp/baseline/embed_train --norm asnorm --out-dir exp/baseline/scores_test
    """
    if norm == "asnorm" and cohort is None:
        raise ConfigError("--norm asnorm needs --cohort (an embedding directory of the cohort speakers)")
    trial_file = trial_path / "trials.txt" if trial_path.is_dir() else trial_path
    inputs: Dict[str, Path] = {"embeddings": embeddings, "trials": trial_file}
    if norm == "asnorm":
        inputs["cohort"] = cohort

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json
        from asrtools.sv.embeddings import UTTERANCES_NPZ, load_npz, read_embeddings
        from asrtools.sv.score import score_trials, write_scores
        from asrtools.sv.trials import read_trials

        arrays = load_npz(embeddings / UTTERANCES_NPZ, ("ids", "vectors"))
        ids = [str(i) for i in arrays["ids"]]
        trial_list = read_trials(trial_file, set(ids))
        cohort_vectors = None
        if norm == "asnorm":
            import numpy as np

            cohort_vectors = np.stack(list(read_embeddings(cohort, "speakers").values()))
        scores = score_trials(trial_list, ids, arrays["vectors"], cohort_vectors, top_k)
        write_scores(ctx.out_dir / "scores.txt", trial_list, scores)
        atomic_write_json(ctx.out_dir / "score.json", {"norm": norm, "top_k": top_k, "trials": len(trial_list),
                                                       "embeddings": str(embeddings), "trial_list": str(trial_file)})
        ctx.log.info("scored %d trials (%s)", len(trial_list), norm)

    run_stage(out_dir, "sv score", {"norm": norm, "top_k": top_k if norm == "asnorm" else None}, inputs, body,
              force=force)


@sv.command()
@click.option("--system", "systems", multiple=True, required=True, metavar="NAME=DIR",
              help="A system's `asrtools score sv` directory (repeatable; table order).")
@click.option("--baseline", required=True, help="The NAME of the system the others are compared with.")
@click.option("--reference", "references", multiple=True, metavar="NAME",
              help="System(s) shown as external references (not compared as ARW variants).")
@click.option("--title", default="Speaker verification results", show_default=True)
@click.option("--out", type=_FILE, required=True, help="The Markdown page to write (e.g. RESULTS.md).")
@click.option("--out-dir", type=_DIR, required=True, help="Stage directory (results.md, results.json).")
@force_option
def results(systems: Tuple[str, ...], baseline: str, references: Tuple[str, ...], title: str, out: Path,
            out_dir: Path, force: bool) -> None:
    """The results page: EER, minDCF, per-gender EER, gender gap, region std, changes vs the baseline with CIs.

    Example: asrtools sv results --system baseline=exp/baseline/sv_test --system aps=exp/aps/sv_test --baseline baseline --out RESULTS.md --out-dir exp/results
    """
    from asrtools.sv.results import build_results

    named = []
    for spec in systems:
        name, path = split_named("--system", spec)
        named.append((name, Path(path)))
    names = [n for n, _ in named]
    if baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not among the --system names ({', '.join(names)})")
    unknown = [r for r in references if r not in names]
    if unknown:
        raise ConfigError(f"--reference {unknown[0]!r} is not among the --system names")
    inputs = {f"system_{n}": p for n, p in named}

    def body(ctx: Any) -> None:
        from asrtools.pipeline import atomic_write_json, atomic_write_text

        page, doc = build_results(named, baseline, list(references), title)
        atomic_write_text(ctx.out_dir / "results.md", page)
        atomic_write_json(ctx.out_dir / "results.json", doc)

    run_stage(out_dir, "sv results", {"systems": names, "baseline": baseline, "references": list(references),
                                      "title": title}, inputs, body, force=force)
    from asrtools.pipeline import atomic_write_text

    atomic_write_text(out, (out_dir / "results.md").read_text())
    click.echo(f"wrote {out}")

