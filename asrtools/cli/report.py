"""`asrtools report ...`: result pages built from stage artifacts (JSON) only."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Optional, Tuple

import click

from asrtools.cli.options import dataclass_loader, force_option, show_config_option


@click.group()
def report() -> None:
    """Build result pages from stage artifacts (JSON files)."""


@report.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Report config (YAML): the artifacts of a run and the page's sections, e.g. conf/report.yaml.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config value, e.g. --set title='My page' (repeatable).")
@show_config_option(dataclass_loader("asrtools.report.config:ReportConfig"))
@click.option("--system", "systems", multiple=True, required=True, metavar="NAME=RUN_DIR[,RUN_DIR...]",
              help="A system and its run directories (several: e.g. seeds, summarised by mean and spread); "
                   "repeatable, page order.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=PATH",
              help="The file of a shared artifact of the config (e.g. rtf=exp/rtf_streaming/rtf.json).")
@click.option("--allow-missing", is_flag=True, help="Show n/a for missing artifacts instead of failing.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The Markdown page to publish (e.g. egs/synth/asr/RESULTS.md), a copy of results.md.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for results.md and results.json.")
@force_option
def results(config_path: Path, overrides: Tuple[str, ...], systems: Tuple[str, ...], inputs: Tuple[str, ...],
            allow_missing: bool, out: Path, out_dir: Path, force: bool) -> None:
    """A result page: the configured sections over the systems' artifacts, with sources and provenance.

    Reads only JSON artifacts written by stages (wer.json of `asrtools score wer`, info.json
    of `asrtools model info --out-dir`, rtf.json of `asrtools model rtf`, ...); writes
    results.md and results.json into the stage directory and copies results.md to --out.

    \b
    Example:
      asrtools report results --config conf/report.yaml \\
        --system lstm=exp/lstm --system convrnnt=exp/convrnnt_s1,exp/convrnnt_s2 \\
        --input rtf=exp/rtf_streaming/rtf.json --out RESULTS.md --out-dir exp/results
    """
    import datetime

    from asrtools.config import to_dict
    from asrtools.pipeline import atomic_write_json, atomic_write_text, run_stage
    from asrtools.report.config import load_report_config, parse_inputs, parse_systems
    from asrtools.report.data import load_report_data
    from asrtools.report.page import build_page
    from asrtools.report.sections import make_sections
    from asrtools.utils.provenance import provenance

    config = load_report_config(config_path, overrides)
    sections = make_sections(config, str(config_path))
    system_specs = parse_systems(systems)
    shared = parse_inputs(inputs, config)
    data = load_report_data(config, system_specs, shared, allow_missing)
    files = {"config": config_path, **data.files}
    for index, section in enumerate(sections):
        files.update({f"section{index}.{k}": v for k, v in section.inputs(data).items()})
    command = _command(config_path, overrides, systems, inputs, allow_missing, out, out_dir)
    params = {"config": to_dict(config), "systems": [[s.name, [str(r) for r in s.runs]] for s in system_specs],
              "inputs": {k: str(v) for k, v in shared.items()}, "allow_missing": allow_missing,
              "missing": data.missing}

    def body(ctx: Any) -> None:
        generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        outputs = [section.build(data) for section in sections]
        page, document = build_page(data, sections, outputs, command, generated, provenance())
        atomic_write_text(ctx.out_dir / "results.md", page)
        atomic_write_json(ctx.out_dir / "results.json", document)
        for output in outputs:
            ctx.log.info("%s", output.summary)
        for line in data.missing:
            ctx.log.warning("missing (n/a): %s", line)

    run_stage(out_dir, "report results", params, files, body, force=force)
    page = (out_dir / "results.md").read_text(encoding="utf-8")
    if not out.is_file() or out.read_text(encoding="utf-8") != page:
        atomic_write_text(out, page)
    click.echo(f"wrote {out}")


def _command(config_path: Path, overrides: Tuple[str, ...], systems: Tuple[str, ...], inputs: Tuple[str, ...],
             allow_missing: bool, out: Path, out_dir: Optional[Path]) -> str:
    """The command line that builds the page (for its header)."""
    args = ["asrtools", "report", "results", "--config", str(config_path)]
    for flag, values in (("--set", overrides), ("--system", systems), ("--input", inputs)):
        for value in values:
            args += [flag, value]
    args += (["--allow-missing"] if allow_missing else []) + ["--out", str(out), "--out-dir", str(out_dir)]
    return " ".join(shlex.quote(a) for a in args)


@report.command()
@click.option("--run", "runs", multiple=True, required=True, metavar="METHOD:SYSTEM=DIR",
              help="An `asrtools cohorts geo|geodemographic|auto` output directory (repeatable; table order).")
@click.option("--paper-system", default="lstm", show_default=True,
              help="The SYSTEM whose crossfit auto/geodemographic gaps are compared with the paper's.")
@click.option("--title", default="Cohort discovery: geographic, geodemographic and automatic cohorts", show_default=True)
@click.option("--mitigations", "mitigation_runs", multiple=True, metavar="COHORTS=DIR",
              help="An `asrtools mitigate results` directory (results.json): its table is added to the page, "
                   "titled by COHORTS (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The Markdown page to publish (e.g. egs/synth/fairness/RESULTS.md), a copy of results.md.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for results.md and results.json.")
@force_option
def fairness(runs: Tuple[str, ...], paper_system: str, title: str, mitigation_runs: Tuple[str, ...], out: Path,
             out_dir: Path, force: bool) -> None:
    """The fairness recipe's page: held-out gap, CI, p and bottom-cohort shares per discovery method and system.

    Reads only cohorts.json (and the stage marker's provenance) of each run; in-sample figures
    beside the held-out ones; a comparison with the paper's automatic / geodemographic figures.

    \b
    Example:
      asrtools report fairness --run geo:lstm=exp/lstm/cohorts_geo --run auto:lstm=exp/lstm/cohorts_auto \\
        --out RESULTS.md --out-dir exp/results
    """
    import datetime

    from asrtools.errors import ConfigError
    from asrtools.pipeline import atomic_write_json, atomic_write_text, run_stage
    from asrtools.report.fairness import build_fairness_page, parse_mitigations, parse_run, read_mitigations, read_run

    specs = [parse_run(spec) for spec in runs]
    mitigation_specs = [parse_mitigations(spec) for spec in mitigation_runs]
    keys = [(s.method, s.system, str(s.directory)) for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError("--run: a run is given twice")
    command = " ".join(shlex.quote(a) for a in ["asrtools", "report", "fairness", *[x for r in runs for x in ("--run", r)],
                                                *[x for m in mitigation_runs for x in ("--mitigations", m)],
                                                "--paper-system", paper_system, "--out", str(out),
                                                "--out-dir", str(out_dir)])
    loaded = {}

    def validate() -> None:
        loaded["runs"] = [read_run(spec) for spec in specs]
        loaded["mitigations"] = [read_mitigations(name, directory) for name, directory in mitigation_specs]

    def body(ctx: Any) -> None:
        generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        page, document = build_fairness_page(loaded["runs"], title=title, paper_system=paper_system,
                                             command=command, generated=generated,
                                             mitigations=loaded["mitigations"])
        atomic_write_text(ctx.out_dir / "results.md", page)
        atomic_write_json(ctx.out_dir / "results.json", document)

    inputs = {f"run{i}": spec.directory for i, spec in enumerate(specs)}
    inputs.update({f"mitigations{i}": directory for i, (_, directory) in enumerate(mitigation_specs)})
    run_stage(out_dir, "report fairness", {"runs": list(runs), "mitigations": list(mitigation_runs),
                                           "paper_system": paper_system, "title": title},
              inputs, body, force=force, validate=validate)
    page = (out_dir / "results.md").read_text(encoding="utf-8")
    if not out.is_file() or out.read_text(encoding="utf-8") != page:
        atomic_write_text(out, page)
    click.echo(f"wrote {out}")
