"""The `asrtools` command line: a click group whose subcommands live one family per module.

Families are imported lazily (only the one being run), so `asrtools --help` and
up-to-date stage checks start fast. Add a family by creating `asrtools/cli/<name>.py`
with a click command or group called `<name>` and listing it in `FAMILIES`.

User errors (`asrtools.errors.AsrtoolsError`) are printed as one line
`asrtools: error: ...` with exit status 1; anything else is a bug and shows a traceback.

Two options before the subcommand apply to every stage command (those with `--force`):
`asrtools --check ...` says whether the stage is up to date without running it (exit 0:
up to date, 3: it would run, 4: the command is no stage; `key=value` lines on stdout, see
`check_report`), and
`asrtools --task I ...` runs task I of a sharded stage (`asrtools.pipeline.sharding`). Job
runners (scripts/slurm/) use both.
"""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Dict, List, Optional, Tuple

import click

from asrtools.errors import AsrtoolsError
from asrtools.pipeline.stage import StageChecked, StageMode, StageStatus, stage_mode

CHECK_NEEDS_RUN = 3  # exit status of `asrtools --check` for a stage that would run
CHECK_NOT_A_STAGE = 4  # exit status of `asrtools --check` / `--task` for a command that is no stage

FAMILIES: Dict[str, str] = {
    "data": "Build, validate and featurise corpora (synthetic TTS corpus, Lhotse manifests).",
    "bpe": "Train and inspect sentencepiece BPE models.",
    "train": "Train models (transducers, multi-talker STS, speaker embeddings) from a YAML config.",
    "decode": "Decode cuts with a trained transducer (greedy, beam, streaming; multi-talker turns).",
    "score": "Score recognitions (WER, per-cohort tables, system comparisons, multi-talker metrics) and verification trials (EER).",
    "model": "Inspect models: parameters, FLOPs (info.json), streaming real-time factor.",
    "report": "Build result pages from stage artifacts (JSON): tables, comparisons, provenance.",
    "audit": "Transcribe with external ASR systems to audit them by cohort.",
    "sv": "Speaker verification: trials, embeddings, cosine / AS-norm scoring, results page.",
    "bench": "Timing measurements as stages: encoder wall-clock speed of several models.",
    "amortized": "Compute-amortized Transformer recipe: the results page (WER vs executed compute).",
    "cohorts": "Cohort discovery (geographic tree, geodemographic partition, embedding k-means), measured held out.",
    "mitigate": "Fairness mitigations (EWC fine-tuning, oversampling, cohort input) and their before/after evaluation.",
    "export": "Export streaming transducers for deployment (ONNX for sherpa-onnx / onnxruntime, int8 copies).",
    "transcribe": "Transcribe audio files with an exported model (any rate/channels; streamed; --json word times).",
}


class _ConsoleHandler(logging.StreamHandler):
    """A stream handler that writes to whatever `sys.stderr` is when a record is emitted, so
    a console handler installed once per process follows redirections (e.g. click's CliRunner)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    """Console logging for the `asrtools` logger (stage logs add a file handler)."""
    log = logging.getLogger("asrtools")
    if not any(getattr(h, "_asrtools_console", False) for h in log.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler._asrtools_console = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


class LazyGroup(click.Group):
    """A click group that imports `asrtools.cli.<name>` when `<name>` is invoked."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(FAMILIES) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in self.commands:
            return self.commands[name]
        if name not in FAMILIES:
            return None
        module = importlib.import_module(f"asrtools.cli.{name}")
        return getattr(module, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, FAMILIES.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from asrtools.cli.options import is_stage_command, stage_command_seen

        mode = StageMode(check=bool(ctx.params.get("check")), task=ctx.params.get("task"))
        try:
            if mode.check or mode.task is not None:
                names, leaf = _leaf_command(self, ctx)
                if leaf is not None and not is_stage_command(leaf):
                    flag = "--check" if mode.check else "--task"
                    click.echo(f"asrtools: error: {flag}: '{' '.join(names)}' is not a stage command", err=True)
                    sys.exit(CHECK_NOT_A_STAGE)
            with stage_mode(mode), stage_command_seen() as seen:
                result = super().invoke(ctx)
            if mode.check:  # a stage command that returned before its stage call
                raise AsrtoolsError("--check: the command returned before checking its stage")
            return result
        except StageChecked as checked:
            click.echo(check_report(checked.status, seen))
            sys.exit(0 if checked.status.up_to_date else CHECK_NEEDS_RUN)
        except AsrtoolsError as err:
            message = " ".join(str(err).split())  # always exactly one line
            click.echo(f"asrtools: error: {message}", err=True)
            sys.exit(1)


def _leaf_command(group: click.Group, ctx: click.Context) -> Tuple[List[str], Optional[click.Command]]:
    """The subcommand names and the command that `ctx`'s arguments name below `group` (None if
    they name none), found without running anything."""
    command: Optional[click.Command] = group
    context = ctx
    names: List[str] = []
    args = [*getattr(ctx, "_protected_args", []), *ctx.args]  # what click keeps for the subcommand
    while isinstance(command, click.Group) and args:
        try:
            name, command, args = command.resolve_command(context, args)
        except click.UsageError:
            return names, None  # click reports the unknown command when it runs
        names.append(name or "")
        if isinstance(command, click.Group):
            context = command.make_context(name, list(args), parent=context, resilient_parsing=True)
            args = [*getattr(context, "_protected_args", []), *context.args]
    return names, None if isinstance(command, click.Group) else command


def check_report(status: StageStatus, command: Dict[str, Any]) -> str:
    """The stdout of `asrtools --check`: one `key=value` line each, read by job runners.

    state=up-to-date|run, stage=<name>, out_dir=<absolute stage directory>, tasks=<N>,
    pending=<space-separated 1-based tasks with work left>, and device=<cpu|cuda> for a
    command with a --device option (what the job must ask for).
    """
    lines = [f"state={'up-to-date' if status.up_to_date else 'run'}", f"stage={status.name}"]
    if "\n" not in str(status.out_dir):
        lines.append(f"out_dir={status.out_dir}")
    lines += [f"tasks={status.num_tasks}", f"pending={' '.join(map(str, status.pending_tasks))}"]
    if command.get("device"):
        lines.append(f"device={command['device']}")
    return "\n".join(lines)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug-level logging.")
@click.option("--check", is_flag=True,
              help="Do not run the stage command: exit 0 if it is up to date, 3 if it would run "
                   "(details as key=value lines on stdout).")
@click.option("--task", type=click.IntRange(min=1), metavar="I",
              help="Run only task I (1..N) of a sharded stage run with -j N; the same command "
                   "without --task then merges the tasks' work.")
@click.version_option(package_name="asrtools")
def cli(verbose: bool, check: bool, task: Optional[int]) -> None:
    """asrtools: streaming transducer ASR and speaker-cohort fairness experiments.

    Every subcommand is one resumable recipe stage; see egs/synth/asr/run.sh.

    \b
    Examples:
      asrtools data features --manifest-dir data/manifests --out-dir data/fbank -j 4
      asrtools --check data features --manifest-dir data/manifests --out-dir data/fbank -j 4
      asrtools --task 2 data features --manifest-dir data/manifests --out-dir data/fbank -j 4
    """
    if check and task is not None:
        raise click.UsageError("--check and --task exclude each other")
    setup_logging(verbose)
