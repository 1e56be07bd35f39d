#!/usr/bin/env python3
"""Training time of the recipe configs: seconds per optimizer step and per validation, and the
whole schedule each config asks for, measured with the real `asrtools train`.

For each config, `asrtools train` runs twice on the given training cuts with a step limit
(`max_steps` = --warm-steps, then --warm-steps + --steps, no checkpoints but the final one,
no TensorBoard): the difference of the two wall times divided by --steps is the time of one
optimizer step, free of start-up costs (imports, manifest reading, model building). A third
run adds two validations (`valid_every_n_steps`), which gives the time of one validation
(dev loss on every dev cut plus the greedy dev-subset WER). The projected training time of a
config is its `num_epochs` x (steps per epoch x step time + validation time), with the steps
per epoch that the DynamicBucketingSampler makes of --cuts-train at the config's
`max_duration`. Run it on otherwise idle cores: other processes slow every figure.

Writes the table into the "## Training time" section of docs/benchmarks.md (other sections
are kept), or prints it with --out -.

Usage (from the repository root, after egs/synth/asr/run.sh --stop-stage 3):
  .venv/bin/python scripts/bench_train.py --threads 2 --out docs/benchmarks.md
  .venv/bin/python scripts/bench_train.py --amp none bf16    # each config in float32 and bfloat16
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asrtools.report.markdown import write_markdown_section  # noqa: E402
from asrtools.utils.provenance import format_provenance, provenance  # noqa: E402

SECTION = "## Training time"
ASR = REPO / "egs" / "synth" / "asr"
DEFAULT_CONFIGS = tuple(str(ASR / "conf" / f"train_{name}.yaml") for name in ("lstm", "convrnnt", "conformer"))


def train_seconds(config: str, args: argparse.Namespace, max_steps: int, valid_every: int = 0,
                  amp: Optional[str] = None) -> float:
    """Wall time of one `asrtools train` run stopped after `max_steps` optimizer steps (with
    the config's `amp` replaced by `amp` if given)."""
    with tempfile.TemporaryDirectory() as exp:
        command = [sys.executable, "-m", "asrtools.cli.main", "train", "--config", config,
                   "--cuts-train", str(args.cuts_train), "--cuts-dev", str(args.cuts_dev),
                   "--bpe-model", str(args.bpe_model), "--exp-dir", exp]
        for kv in (f"max_steps={max_steps}", f"num_threads={args.threads}", "save_every_n_steps=0",
                   "tensorboard=false", f"valid_every_n_steps={valid_every}") + ((f"amp={amp}",) if amp else ()):
            command += ["--set", kv]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench_train.py: {shlex.join(command)} failed:\n{proc.stderr[-2000:]}")
        return time.perf_counter() - start


def steps_per_epoch(cfg, cuts_train: Path) -> int:
    """Batches the trainer's sampler makes of `cuts_train` in one epoch (duration filters applied)."""
    from asrtools.data.cuts import load_cuts
    from asrtools.training.data import make_sampler

    data = cfg.data
    cuts = load_cuts(cuts_train).filter(lambda c: data.min_cut_duration <= c.duration <= data.max_cut_duration)
    return sum(1 for _ in make_sampler(cuts.to_eager(), data.max_duration, data.num_buckets, True, cfg.seed))


def measure(config: str, args: argparse.Namespace, amp: Optional[str] = None) -> Dict:
    short = train_seconds(config, args, args.warm_steps, amp=amp)
    long = train_seconds(config, args, args.warm_steps + args.steps, amp=amp)
    step = (long - short) / args.steps
    validated = train_seconds(config, args, args.warm_steps, valid_every=args.warm_steps // 2, amp=amp)
    from asrtools.training.config import load_train_config

    cfg = load_train_config(Path(config), [f"amp={amp}"] if amp else [])
    batches = steps_per_epoch(cfg, args.cuts_train)
    epochs = cfg.num_epochs
    validation = max(0.0, (validated - short) / 2)
    return {"config": Path(config).name, "amp": cfg.amp, "step": step, "validation": validation, "batches": batches,
            "epochs": epochs, "total": epochs * (batches * step + validation)}


def markdown(rows: List[Dict], args: argparse.Namespace) -> str:
    amp_option = "" if args.amp == [None] else " --amp " + " ".join(args.amp)
    lines = [
        SECTION, "",
        f"`python3 scripts/bench_train.py --threads {args.threads}{amp_option}` on `{args.cuts_train.relative_to(REPO)}`: the time "
        f"of one optimizer step (the difference of `asrtools train` runs of {args.warm_steps} and "
        f"{args.warm_steps + args.steps} steps, over {args.steps} steps) and of one validation, and the projected "
        "training time of each config's whole schedule (epochs x (batches per epoch x step + validation)), "
        "at the config's mixed precision (`amp`) or, where --amp asked for it, another.", "",
        "| config | amp | s / step | batches / epoch | validation s | epochs | projected training min |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['config']} | {row['amp']} | {row['step']:.3f} | {row['batches']} | "
                     f"{row['validation']:.1f} | {row['epochs']} | {row['total'] / 60:.1f} |")
    lines += ["", f"Made by: {format_provenance(provenance(threads=args.threads))}."]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="*", default=list(DEFAULT_CONFIGS), help="Training configs (YAML).")
    parser.add_argument("--cuts-train", type=Path, default=ASR / "data" / "fbank" / "cuts_train.jsonl.gz")
    parser.add_argument("--cuts-dev", type=Path, default=ASR / "data" / "fbank" / "cuts_dev.jsonl.gz")
    parser.add_argument("--bpe-model", type=Path, default=ASR / "data" / "lang_bpe" / "bpe.model")
    parser.add_argument("--threads", type=int, default=2, help="Torch threads of each training run.")
    parser.add_argument("--warm-steps", type=int, default=20, help="Steps of the shorter run.")
    parser.add_argument("--steps", type=int, default=100, help="Steps timed (the longer run's extra steps).")
    parser.add_argument("--amp", nargs="+", default=[None], choices=["none", "bf16"],
                        help="Time every config at each of these `amp` settings (default: the config's own).")
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown page to update, or - to print.")
    args = parser.parse_args(argv)
    args.cuts_train = args.cuts_train.resolve()
    rows = []
    for config in args.configs:
        for amp in args.amp:
            rows.append(measure(config, args, amp))
            print(f"{rows[-1]['config']} (amp {rows[-1]['amp']}): {rows[-1]['step']:.3f} s/step", file=sys.stderr)
    body = markdown(rows, args)
    if args.out == "-":
        print(body)
    else:
        write_markdown_section(REPO / args.out, SECTION, body)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
