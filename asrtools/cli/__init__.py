"""The `asrtools` command line: a click group whose subcommands live one family per module.

Families are imported lazily (only the one being run), so `asrtools --help` and
up-to-date stage checks start fast. Add a family by creating `asrtools/cli/<name>.py`
with a click command or group called `<name>` and listing it in `FAMILIES`.

User errors (`asrtools.errors.AsrtoolsError`) are printed as one line
`asrtools: error: ...` with exit status 1; anything else is a bug and shows a traceback.
"""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Dict, List, Optional

import click

from asrtools.errors import AsrtoolsError

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
}


def setup_logging(verbose: bool = False) -> None:
    """Console logging for the `asrtools` logger (stage logs add a file handler)."""
    log = logging.getLogger("asrtools")
    if not any(getattr(h, "_asrtools_console", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
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
        try:
            return super().invoke(ctx)
        except AsrtoolsError as err:
            message = " ".join(str(err).split())  # always exactly one line
            click.echo(f"asrtools: error: {message}", err=True)
            sys.exit(1)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug-level logging.")
@click.version_option(package_name="asrtools")
def cli(verbose: bool) -> None:
    """asrtools: streaming transducer ASR and speaker-cohort fairness experiments.

    Every subcommand is one resumable recipe stage; see egs/synth/asr/run.sh.
    """
    setup_logging(verbose)
