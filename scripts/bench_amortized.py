#!/usr/bin/env python3
"""Wall-clock encoder time of the dense and the compute-amortized Transformer on the same test cuts.

The measurement is `asrtools.models.timing` (its docstring says what is timed and how), the same
as the recipe stage `asrtools bench encoder`; this script writes its table into the
"## Compute-amortized Transformer: encoder speed" section of docs/benchmarks.md (other sections
are kept): per model the executed FLOPs fraction on those cuts and, offline (whole utterance)
and streaming (chunks with carried state), the encoder time per second of audio and the
speed-up over the reference, one utterance at a time and in length-sorted batches of 16, on one
CPU thread and on every core; on a CUDA GPU too when one is available (--gpu auto). The commit, torch version, CPU and thread counts are in the table text.

Models: --checkpoint NAME=CKPT (repeatable), default the recipe's dense model and every
arbitrated model found in egs/synth/amortized/exp (arb_*). Measure on idle cores, e.g.
`flock /work/cpu.lock .venv/bin/python scripts/bench_amortized.py`.

--from-json writes the section from an `asrtools bench encoder` result instead of measuring again
(e.g. the recipe's stage 5, egs/synth/amortized/exp/encoder_speed/encoder_speed.json).

Usage:
  .venv/bin/python scripts/bench_amortized.py --num-utts 100
  .venv/bin/python scripts/bench_amortized.py --from-json egs/synth/amortized/exp/encoder_speed/encoder_speed.json
  .venv/bin/python scripts/bench_amortized.py --checkpoint dense=egs/synth/amortized/exp/dense/averaged.pt \\
      --checkpoint arb_l2=egs/synth/amortized/exp/arb_l2/averaged.pt --out - --json-out /tmp/speed.json
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from asrtools.cli.options import split_named
from asrtools.decoding.rtf import cut_features
from asrtools.errors import AsrtoolsError, ConfigError
from asrtools.models import timing
from asrtools.pipeline import atomic_write_json
from asrtools.report.markdown import write_markdown_section

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "synth" / "amortized"
SECTION = "## Compute-amortized Transformer: encoder speed"


def default_checkpoints() -> List[Tuple[str, Path]]:
    """The recipe's dense model and its arbitrated models, where trained."""
    found = [("dense", RECIPE / "exp" / "dense" / "averaged.pt")]
    found += sorted((p.parent.name, p) for p in (RECIPE / "exp").glob("arb_*/averaged.pt"))
    return [(name, path) for name, path in found if path.is_file()]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=CKPT",
                        help="a trained model (repeatable; default: the recipe's dense and arb_* models)")
    parser.add_argument("--reference", help="the model speed-ups are relative to (default: the first)")
    parser.add_argument("--cuts", type=Path, default=RECIPE.parent / "asr" / "data" / "fbank" / "cuts_test.jsonl.gz",
                        help="CutSet with precomputed features (default: egs/synth/asr's test cuts)")
    parser.add_argument("--num-utts", type=int, default=100, help="cuts timed (a seeded sample)")
    parser.add_argument("--batch-size", type=int, action="append", default=[],
                        help="utterances (streams) per call, sorted by length (repeatable; default 1 and 16)")
    parser.add_argument("--chunk-frames", type=int, default=32, help="streaming chunk in input frames")
    parser.add_argument("--repeats", type=int, default=3, help="timings per cut and model; the fastest counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cut sample")
    parser.add_argument("--gpu", choices=("auto", "yes", "no"), default="auto",
                        help="also time on a CUDA GPU (auto: when one is available)")
    parser.add_argument("--json-out", type=Path, help="also write the CPU results as JSON")
    parser.add_argument("--from-json", type=Path,
                        help="an `asrtools bench encoder` encoder_speed.json to tabulate instead of measuring")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown file to update, or - to print only")
    args = parser.parse_args(argv)
    if args.num_utts < 1 or args.repeats < 1:
        parser.error("--num-utts and --repeats must be >= 1")
    return args


def measure(args: argparse.Namespace, named: List[Tuple[str, Path]], device: str, threads: List[int],
            command: str) -> dict:
    """One `speed_document` on `device`."""
    torch_device = torch.device(device)
    models = timing.load_timed_models(named, torch_device)
    dims = {m.feature_dim for m in models}
    if len(dims) != 1:
        raise ConfigError(f"the models take different feature sizes {sorted(dims)}")
    utterances, frame_shift = cut_features(args.cuts, args.num_utts, args.seed, dims.pop())
    audio = sum(u.size(0) for u in utterances) * frame_shift
    sizes = sorted(set(args.batch_size or [1, 16]))
    results = timing.measure_encoder_speed(models, utterances, frame_shift, threads, timing.MODES, sizes,
                                           args.chunk_frames, args.repeats, args.reference, torch_device,
                                           report=lambda line: print(f"{device}: {line}", file=sys.stderr))
    return timing.speed_document(results, command=command,
                                 input_text=f"{len(utterances)} cuts ({audio:.1f} s) of {args.cuts} (seed {args.seed})",
                                 reference=args.reference or named[0][0], thread_counts=threads, modes=timing.MODES,
                                 batch_sizes=sizes, chunk_frames=args.chunk_frames, repeats=args.repeats,
                                 device=device)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    command = ".venv/bin/python scripts/bench_amortized.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        if args.from_json:
            from asrtools.report.amortized import read_speed

            docs = [read_speed(args.from_json)]
        else:
            docs = measure_all(args, command)
    except AsrtoolsError as err:
        sys.exit(f"bench_amortized: error: {err}")
    body = timing.speed_markdown(docs[0], SECTION)
    if len(docs) > 1:
        body += "\n" + timing.speed_markdown(docs[1], "### On the GPU")
    elif docs[0].get("device") == "cpu":
        body += "\nNo CUDA GPU was available for this run: GPU timings are not measured.\n"
    print(body)
    if args.out != "-":
        out = Path(args.out)
        write_markdown_section(out if out.is_absolute() else REPO / out, SECTION, body)
    if args.json_out:
        atomic_write_json(args.json_out, docs[0])


def measure_all(args: argparse.Namespace, command: str) -> List[dict]:
    """The CPU speed document, and the GPU one when a GPU is asked for or available."""
    named = []
    for spec in args.checkpoint:
        name, path = split_named("--checkpoint", spec, allow_bare=True)
        named.append((name or Path(path).parent.name, Path(path)))
    named = named or default_checkpoints()
    if not named:
        raise ConfigError(f"no checkpoints given and none trained under {RECIPE / 'exp'} (run its run.sh first)")
    cpu_threads = sorted({1, os.cpu_count() or 1})
    docs = [measure(args, named, "cpu", cpu_threads, command)]
    if args.gpu == "yes" or (args.gpu == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--gpu yes: no CUDA device is available")
        docs.append(measure(args, named, "cuda", [torch.get_num_threads()], command))
    return docs


if __name__ == "__main__":
    main()
