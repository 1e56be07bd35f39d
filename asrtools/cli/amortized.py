"""`asrtools amortized results`: the compute-amortized Transformer recipe's results page (a stage)."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional, Tuple

import click

from asrtools.cli.options import force_option


@click.group("amortized")
def amortized() -> None:
    """Compute-amortized Transformer (egs/synth/amortized): result pages from stage artifacts."""


@amortized.command("results")
@click.option("--system", "systems", multiple=True, required=True, metavar="KIND:NAME=EXP_DIR",
              help="A system (repeatable, in table order); KIND: dense (exactly one), arbitrated, window, "
                   "static or random. Its decode_{dev,test}_greedy/ (summary.json, wer/) are read.")
@click.option("--label", "labels", multiple=True, metavar="NAME=TEXT", help="Plot label of a system (e.g. lambda=1).")
@click.option("--speed-json", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="encoder_speed.json of `asrtools bench encoder` (systems matched by NAME).")
@click.option("--title", default="Compute-amortized Transformer transducer", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Copy the page here (e.g. RESULTS.md).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Copy the WER-vs-compute PNG here (linked from the page by its file name).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for results.md, results.json and wer_vs_compute.png.")
@force_option
def results(systems: Tuple[str, ...], labels: Tuple[str, ...], speed_json: Path, title: str, out: Path,
            plot: Optional[Path], out_dir: Path, force: bool) -> None:
    """WER against executed encoder compute: dense model, lambda sweep, baselines at matched compute.

    Per system: compute % of dense and the measured encoder speed-up, dev/test WER, relative
    test WER change against the dense model with a paired speaker-bootstrap CI and p-value;
    the operating point is chosen on dev and measured on test; the acceptance checks of
    issue 16 (compute cut, WER increase, speed-up, arbitrated vs baselines) are stated.

    \b
    Example:
      asrtools amortized results --system dense:dense=exp/dense \\
        --system arbitrated:arb_l1=exp/arb_l1 --system window:window=exp/window \\
        --speed-json exp/encoder_speed/encoder_speed.json --out RESULTS.md \\
        --plot wer_vs_compute.png --out-dir exp/results
    """
    import datetime
    import shutil

    from asrtools.cli.options import split_named
    from asrtools.errors import ConfigError
    from asrtools.pipeline import atomic_path, atomic_write_json, atomic_write_text, run_stage
    from asrtools.report import amortized as page

    specs = [page.parse_system(s) for s in systems]
    for spec in labels:
        name, text = split_named("--label", spec)
        match = [s for s in specs if s.name == name]
        if not match:
            raise ConfigError(f"--label {spec!r}: no --system named {name!r}")
        match[0].label = text
    files = page.input_files(specs, speed_json)
    plot_name = plot.name if plot is not None else "wer_vs_compute.png"
    command = "asrtools amortized results " + " ".join(
        [f"--system {shlex.quote(s)}" for s in systems] + [f"--label {shlex.quote(s)}" for s in labels]
        + [f"--speed-json {shlex.quote(str(speed_json))}", f"--title {shlex.quote(title)}",
           f"--out {shlex.quote(str(out))}"] + ([f"--plot {shlex.quote(str(plot))}"] if plot else [])
        + [f"--out-dir {shlex.quote(str(out_dir))}"])
    params = {"systems": [[s.kind, s.name, str(s.exp_dir), s.label] for s in specs], "title": title,
              "plot_name": plot_name}

    def body(ctx) -> None:
        generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rows, speed = page.collect(specs, speed_json)
        chosen = page.choose_operating_point(rows)
        page.plot_wer_vs_compute(rows, chosen, ctx.out_dir / "wer_vs_compute.png")
        markdown = page.results_markdown(rows, chosen, speed, title=title, command=command, generated=generated,
                                         plot_name=plot_name)
        atomic_write_text(ctx.out_dir / "results.md", markdown)
        atomic_write_json(ctx.out_dir / "results.json", page.results_json(rows, chosen, speed, command, generated))
        for line in page.verdicts(rows, chosen, speed):
            ctx.log.info("%s", line.replace("**", ""))

    run_stage(out_dir, "amortized results", params, files, body, force=force)
    text = (out_dir / "results.md").read_text(encoding="utf-8")
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        atomic_write_text(out, text)
    if plot is not None:
        with atomic_path(plot) as tmp:
            shutil.copyfile(out_dir / "wer_vs_compute.png", tmp)
    click.echo(f"wrote {out}" + (f" and {plot}" if plot else ""))
