#!/usr/bin/env python3
"""Real-time factor of chunk-wise streaming greedy decoding, one stream on one CPU thread.

The measurement is `asrtools.decoding.rtf` (its docstring says what is timed and how), the
same as the recipe stage `asrtools model rtf`; this script adds the defaults of the
docs/benchmarks.md table (the three recipe configs with random weights) and writes it there.

Models (default: the three recipe configs, randomly initialised):
  CONF.yaml or NAME=CONF.yaml     build the model of a training config, random weights
                                  (seeded); vocabulary from --bpe-model or --vocab-size
  --checkpoint [NAME=]CKPT.pt     a trained model (architecture and vocabulary from the
                                  checkpoint); NAME defaults to the checkpoint's directory

Input:
  --cuts CUTS.jsonl.gz            N cuts of a lhotse CutSet with precomputed features, a
                                  seeded random sample (all cuts if N exceeds them)
  (no --cuts)                     synthetic 80-dim "log-mel" frames, N(-6, 2^2) i.i.d., of
                                  seeded random durations log-normal with median 6 s and
                                  sigma 0.5, clipped to [1, 20] s (roughly LibriSpeech test
                                  utterances); compute does not depend on the values, only
                                  the number of emitted tokens does (reported as tokens/s)

Chunk: --chunk-frames, else the encoder's smallest valid chunk of >= 32 input frames
(32 frames = 320 ms for the recipe configs; the Conformer's attention chunk fixes it).

Writes the Markdown table into the "## Streaming decoding RTF" section of docs/benchmarks.md
(other sections are kept) and, with --json-out, a JSON file that `asrtools report results`
reads as a shared `streaming_rtf` artifact (models keyed by NAME; `asrtools model rtf`
writes the same document).

Usage:
  .venv/bin/python scripts/bench_streaming.py --num-utts 50 --out docs/benchmarks.md
  .venv/bin/python scripts/bench_streaming.py --checkpoint lstm=egs/synth/asr/exp/lstm/averaged.pt \\
      --checkpoint convrnnt=egs/synth/asr/exp/convrnnt/averaged.pt \\
      --cuts egs/synth/asr/data/fbank/cuts_test.jsonl.gz --num-utts 200 \\
      --json-out egs/synth/asr/exp/bench_streaming.json --out -
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from asrtools.cli.options import split_named
from asrtools.decoding import rtf
from asrtools.errors import AsrtoolsError
from asrtools.pipeline import atomic_write_json
from asrtools.report.markdown import write_markdown_section
from asrtools.training.config import load_train_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = tuple(f"egs/synth/asr/conf/train_{name}.yaml" for name in ("lstm", "convrnnt", "conformer"))


def _resolve(path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() or candidate.exists() else REPO / candidate


def _vocab_size(args: argparse.Namespace) -> int:
    if args.bpe_model:
        from asrtools.text.tokenizer import Tokenizer

        return Tokenizer(Path(args.bpe_model)).vocab_size
    return args.vocab_size


def load_models(args: argparse.Namespace) -> List[rtf.RtfModel]:
    """The models named on the command line (the recipe configs when none is)."""
    configs = list(args.configs) or ([] if args.checkpoint else list(DEFAULT_CONFIGS))
    models = []
    for spec in configs:
        name, path = split_named("config", spec, allow_bare=True)
        default = re.sub(r"^train_", "", Path(path).stem)
        config = load_train_config(_resolve(path)).model
        models.append(rtf.random_model(name or default, config, str(_resolve(path)), _vocab_size(args), args.seed))
    for spec in args.checkpoint:
        name, path = split_named("--checkpoint", spec, allow_bare=True)
        models.append(rtf.checkpoint_model(name or _resolve(path).parent.name, _resolve(path)))
    return models


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", metavar="[NAME=]CONF.yaml",
                        help="training configs to build with random weights (default: the three recipe configs "
                             "unless --checkpoint is given)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]CKPT.pt",
                        help="a trained model (repeatable)")
    parser.add_argument("--cuts", type=Path, help="CutSet with precomputed features (default: synthetic features)")
    parser.add_argument("--num-utts", type=int, default=20, help="utterances per model")
    parser.add_argument("--chunk-frames", type=int, default=0,
                        help="input frames per chunk (0: each encoder's default streaming chunk)")
    parser.add_argument("--vocab-size", type=int, default=256, help="vocabulary of randomly initialised models")
    parser.add_argument("--bpe-model", help="take the vocabulary size of random models from this BPE model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights, features and cut sample")
    parser.add_argument("--json-out", type=Path,
                        help="also write the results as JSON (read by `asrtools report results`)")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown file to update, or - to print only")
    args = parser.parse_args(argv)
    if args.num_utts < 1:
        parser.error("--num-utts must be >= 1")
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    command = ".venv/bin/python scripts/bench_streaming.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        models = load_models(args)
        feature_dim = rtf.common_feature_dim(models)
        cuts = _resolve(str(args.cuts)) if args.cuts else None
        utterances, frame_shift, input_text = rtf.load_utterances(cuts, args.num_utts, args.seed, feature_dim)
        results = rtf.measure_all(models, utterances, args.chunk_frames, frame_shift,
                                  report=lambda line: print(line, file=sys.stderr))
    except AsrtoolsError as err:
        sys.exit(f"bench_streaming: error: {err}")
    facts = rtf.run_facts(command, input_text, models)
    body = rtf.rtf_markdown(results, facts)
    print(body)
    if args.out != "-":
        write_markdown_section(_resolve(args.out), rtf.SECTION, body)
    if args.json_out:
        atomic_write_json(args.json_out, rtf.rtf_document(results, facts))


if __name__ == "__main__":
    main()
