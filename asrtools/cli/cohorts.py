"""`asrtools cohorts ...`: find the speaker cohorts a system under-serves, measured on held-out speakers.

`geo`, `geodemographic` and `auto` are stages (`asrtools.fairness.study`); `assign` applies a
discovery.json to other speakers (e.g. the ASR training speakers).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from asrtools.cli.options import config_options, force_option
from asrtools.pipeline import run_stage

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)
_ANY = click.Path(path_type=Path)


@click.group()
def cohorts() -> None:
    """Cohort discovery: geographic tree, geodemographic partition, embedding k-means; held-out measurement."""


def _inputs(func: Any) -> Any:
    options = [
        click.option("--recogs", type=_ANY, required=True,
                     help="The measured speakers' recognitions: recogs.jsonl, decode directory or WER directory."),
        click.option("--speakers", "speakers_csv", type=_FILE, required=True,
                     help="The corpus speaker table (speakers.csv: id, lat, lon, zip, ...)."),
        click.option("--discover-recogs", type=_ANY, default=None,
                     help="Discover on these speakers (e.g. dev) and measure on --recogs (e.g. test) instead of "
                          "K-fold cross-fitting on --recogs."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _outputs(func: Any) -> Any:
    func = click.option("--out-dir", type=_DIR, required=True)(func)
    return force_option(config_options("asrtools.fairness.config:CohortsConfig")(func))


def _load_vectors(path: Path) -> Dict[str, Any]:
    from asrtools.fairness.embeddings import load_embeddings

    return load_embeddings(path)


def _load_vector_files(paths: Tuple[Path, ...]) -> Dict[str, Any]:
    """The union of several embedding files; a speaker in two of them is a `DataError`."""
    from asrtools.fairness.assign import union_of_disjoint

    return union_of_disjoint([(path, _load_vectors(path)) for path in paths], "--embeddings file")


def _run(method: str, recogs: Path, speakers_csv: Path, zipcodes: Optional[Path], embeddings: Optional[Path],
         discover_recogs: Optional[Path], config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path,
         force: bool) -> None:
    from asrtools.config import load_config, to_dict
    from asrtools.fairness.config import CohortsConfig

    cfg = load_config(CohortsConfig, config_path, overrides)
    params = {"method": method, "config": to_dict(cfg)}
    named = {"recogs": recogs, "speakers": speakers_csv, "zipcodes": zipcodes, "embeddings": embeddings,
             "discover_recogs": discover_recogs}
    inputs = {name: path for name, path in named.items() if path is not None}
    loaded: Dict[str, Any] = {}

    def load() -> None:  # everything is computed at the door: a bad input leaves the directory untouched
        from asrtools.fairness.speakers import load_speaker_table, split_unplaced
        from asrtools.fairness.study import discover

        vectors = _load_vectors(embeddings) if embeddings is not None else None
        tables, unplaced = [], []
        for source in (recogs, discover_recogs):
            table = load_speaker_table(source, speakers_csv, zipcodes) if source is not None else None
            if table is not None and cfg.unplaced_speakers == "exclude":
                table, left_out = split_unplaced(table, method)
                unplaced += left_out
            tables.append(table.with_vectors(vectors) if table is not None and vectors is not None else table)
        if unplaced:
            logging.getLogger("asrtools").warning("%d scored speakers cannot be placed by %s and are left out "
                                                  "(unplaced_speakers: exclude): %s", len(unplaced), method,
                                                  ", ".join(unplaced[:10]) + (", ..." if len(unplaced) > 10 else ""))
        loaded["discovery_table"] = tables[1] or tables[0]
        loaded["study"] = dataclasses.replace(discover(method, tables[0], cfg, tables[1]), unplaced=unplaced)

    def body(ctx: Any) -> None:
        from asrtools.fairness.report import write_study

        study = loaded["study"]
        write_study(study, loaded["discovery_table"], ctx.out_dir, params)
        for name, m in (("held out", study.held_out), ("in-sample", study.in_sample)):
            d = m.designated
            ctx.log.info("%s (%s): %d cohorts; rank1 %s vs top %s; disparity p = %s", name, m.labelling.mode,
                         len(m.cohorts), _pct(d["wer_bottom"]), _pct(d["wer_top"]),
                         "n/a" if m.disparity is None else f"{m.disparity.p_value:.3g}")

    run_stage(out_dir, f"cohorts {method}", params, inputs, body, force=force, validate=load)


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


@cohorts.command()
@_inputs
@_outputs
def geo(recogs: Path, speakers_csv: Path, discover_recogs: Optional[Path], config_path: Optional[Path],
        overrides: Tuple[str, ...], out_dir: Path, force: bool) -> None:
    """Regions by a spatial scan over lat/lon rectangles (default) or a recursive lat/lon tree (geo.method).

    Writes discovery.json, assignments.json (held-out rank labels), cohorts.json/.csv/.md and
    regions.png. Settings: the `geo` and `measure` sections of --config (asrtools.fairness.config);
    `--set geo.method=tree` for the paper's one-threshold tree, `band_tree` for bands as well.

    Example: asrtools cohorts geo --recogs exp/lstm/decode_test_greedy --speakers data/synth/speakers.csv --set geo.max_leaves=6 --out-dir exp/lstm/cohorts_geo
    """
    _run("geo", recogs, speakers_csv, None, None, discover_recogs, config_path, overrides, out_dir, force)


@cohorts.command()
@_inputs
@click.option("--zipcodes", type=_FILE, required=True, help="The census table of zip codes (zipcodes.csv).")
@_outputs
def geodemographic(recogs: Path, speakers_csv: Path, discover_recogs: Optional[Path], zipcodes: Path,
                   config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path, force: bool) -> None:
    """The census-attribute partition of zip codes with the largest WER gap.

    Writes discovery.json, assignments.json, cohorts.json/.csv/.md and zip_partition.png.
    Settings: the `geodemographic` and `measure` sections of --config.

    Example: asrtools cohorts geodemographic --recogs exp/lstm/decode_test_greedy --speakers data/synth/speakers.csv --zipcodes data/synth/zipcodes.csv --out-dir exp/lstm/cohorts_geodemographic
    """
    _run("geodemographic", recogs, speakers_csv, zipcodes, None, discover_recogs, config_path, overrides, out_dir,
         force)


@cohorts.command()
@_inputs
@click.option("--embeddings", type=_FILE, required=True,
              help="Speaker embeddings: embeddings.npz (speakers, vectors) or JSON {speaker: [floats]}.")
@_outputs
def auto(recogs: Path, speakers_csv: Path, discover_recogs: Optional[Path], embeddings: Path,
         config_path: Optional[Path], overrides: Tuple[str, ...], out_dir: Path, force: bool) -> None:
    """k-means cohorts of speaker embeddings, ranked by WER.

    Writes discovery.json, assignments.json, cohorts.json/.csv/.md and embedding_pca.png.
    Settings: the `auto` and `measure` sections of --config.

    \b
    Examples:
      asrtools cohorts auto --recogs exp/lstm/decode_test_greedy --speakers data/synth/speakers.csv \\
        --embeddings exp/embed_test/embeddings.npz --set auto.k_max=6 --out-dir exp/lstm/cohorts_auto
      asrtools cohorts auto --show-config --set auto.k_max=6
    """
    _run("auto", recogs, speakers_csv, None, embeddings, discover_recogs, config_path, overrides, out_dir, force)


@cohorts.command()
@click.option("--discovery", "discovery_path", type=_FILE, required=True, help="A discovery.json.")
@click.option("--speakers", "speakers_csvs", type=_FILE, required=True, multiple=True,
              help="speakers.csv of the speakers to label (repeatable: e.g. the ASR training corpus and the "
                   "evaluation corpus).")
@click.option("--split", "splits", multiple=True,
              help="Label only the rows with this 'split' (e.g. train): once for every --speakers, or once per "
                   "--speakers in the same order.")
@click.option("--embeddings", "embedding_files", type=_FILE, multiple=True,
              help="Speaker embeddings (needed by an auto discovery; repeatable, their speakers are united).")
@click.option("--out", "out_path", type=_FILE, required=True, help="The assignments JSON to write.")
def assign(discovery_path: Path, speakers_csvs: Tuple[Path, ...], splits: Tuple[str, ...],
           embedding_files: Tuple[Path, ...], out_path: Path) -> None:
    """Label speakers with the ranked cohorts of a discovery (mode "applied").

    Example: asrtools cohorts assign --discovery exp/lstm/cohorts_geo_devtest/discovery.json
    --speakers ../asr/data/synth/speakers.csv --split train --speakers data/synth/speakers.csv --split dev
    --out exp/lstm/cohorts_geo_devtest/adapt_assignments.json
    """
    from asrtools.errors import ConfigError
    from asrtools.fairness.assign import apply_discovery
    from asrtools.pipeline import atomic_write_json

    if len(splits) > 1 and len(splits) != len(speakers_csvs):
        raise ConfigError(f"--split given {len(splits)} times for {len(speakers_csvs)} --speakers tables "
                          "(give it once for all, or once per table)")
    per_table = list(splits) if len(splits) > 1 else [splits[0] if splits else None] * len(speakers_csvs)
    vectors = _load_vector_files(embedding_files) if embedding_files else None
    document = apply_discovery(discovery_path, list(zip(speakers_csvs, per_table)), vectors)
    atomic_write_json(out_path, document)
    click.echo(f"{len(document['cohorts'])} speakers labelled with {document['method']} cohorts -> {out_path}")


# `cohorts embed` lives in its own module (speaker embeddings, asrtools.fairness.embeddings).
from asrtools.cli.cohorts_embed import embed  # noqa: E402

cohorts.add_command(embed)
