#!/usr/bin/env python3
"""Benchmark asrtools' WER scorer against NIST sclite (`sctk sclite`) on the same input.

Generates a seeded test set (default 100,000 utterances of ~10 words from 500 speakers;
each speaker has an error rate drawn from U(0.10, 0.30), split into substitutions 60%,
deletions 25%, insertions 15%) as sclite trn files, then times, each once:

  sclite -o sum           sctk sclite -i rm -s, per-speaker summary only
  sclite -o all           sctk sclite -i rm -s, all reports (sum, rsum, pralign alignments, ...)
  asrtools API <mode>     in-process: read both trn files, align, count totals and per-speaker
                          counts (`load_pairs` + `score_pairs` + `by_speaker`)
  asrtools CLI <mode>     `asrtools score wer --mode <mode>` as a new process: the above plus
                          interpreter start-up, imports and every output file (wer.json,
                          utts.jsonl, errs.txt alignments, wer.sys, trn copies, stage marker)

It checks that the sclite-mode counts equal sclite's (Sum row of the rsum report) and writes
a Markdown table into the "## WER scoring" section of docs/benchmarks.md (other sections are
kept). Wall time is what a user waits; CPU is user+sys of the process(es).

Usage:
  .venv/bin/python scripts/bench_scoring.py --out docs/benchmarks.md
  .venv/bin/python scripts/bench_scoring.py --utts 20000 --speakers 100 --out -   (print only)
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

from asrtools.report.markdown import write_markdown_section
from asrtools.utils.provenance import format_provenance, provenance

SECTION = "## WER scoring"
REPO = Path(__file__).resolve().parents[1]


def generate(ref_path: Path, hyp_path: Path, n_utts: int, n_speakers: int, mean_words: int, seed: int) -> None:
    """Write a seeded synthetic test set as sclite trn files."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)])
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    speaker_rate = rng.uniform(0.10, 0.30, size=n_speakers)
    lengths = np.maximum(rng.poisson(mean_words, size=n_utts), 1)
    refs, hyps = [], []
    for utt in range(n_utts):
        speaker = utt % n_speakers
        rate = speaker_rate[speaker]
        ref = vocab[rng.choice(len(vocab), size=lengths[utt], p=zipf)]
        draws = rng.random(len(ref))
        replacement = vocab[rng.integers(0, len(vocab), size=len(ref))]
        insert = rng.random(len(ref)) < rate * 0.15
        hyp: List[str] = []
        for word, draw, other, ins in zip(ref.tolist(), draws, replacement.tolist(), insert):
            if draw < rate * 0.60:
                hyp.append(other)
            elif draw >= rate * 0.85:
                hyp.append(word)
            if ins:
                hyp.append(other)
        utt_id = f"spk{speaker:04d}-utt{utt:07d}"
        refs.append(f"{' '.join(ref.tolist())} ({utt_id})")
        hyps.append(f"{' '.join(hyp)} ({utt_id})")
    ref_path.write_text("\n".join(refs) + "\n")
    hyp_path.write_text("\n".join(hyps) + "\n")


def _timed_process(cmd: List[str]) -> Tuple[float, float]:
    """Run `cmd`; return (wall seconds, user+sys CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _timed_call(func: Callable[[], object]) -> Tuple[float, float, object]:
    start_cpu = time.process_time()
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, time.process_time() - start_cpu, result


def sclite_sum_row(raw: Path) -> List[int]:
    """The `Sum` row (#Snt #Wrd Corr Sub Del Ins Err S.Err) of an sclite rsum report."""
    for line in raw.read_text().splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[1].strip() == "Sum":
            return [int(x) for x in (parts[2] + " " + parts[3]).split()]
    raise RuntimeError(f"{raw}: no Sum row")


def run(work: Path, args: argparse.Namespace) -> Tuple[List[Tuple[str, str, float, float]], Dict[str, str]]:
    from asrtools.scoring.io import load_pairs
    from asrtools.scoring.wer import score_pairs

    ref, hyp = work / "ref.trn", work / "hyp.trn"
    generate(ref, hyp, args.utts, args.speakers, args.words, args.seed)
    rows: List[Tuple[str, str, float, float]] = []
    facts: Dict[str, str] = {"words": str(sum(len(line.split()) - 1 for line in ref.read_text().splitlines()))}
    sclite = shutil.which("sctk")
    if sclite is None:
        raise SystemExit("sctk not found: install the Debian package 'sctk' (NIST SCTK)")
    for outputs in ("sum", "all"):
        out = work / f"sclite_{outputs}"
        out.mkdir()
        wall, cpu = _timed_process([sclite, "sclite", "-r", str(ref), "trn", "-h", str(hyp), "trn", "-i", "rm", "-s",
                                    "-o", outputs, *(["rsum"] if outputs == "sum" else []), "-O", str(out), "-f", "0"])
        rows.append((f"sclite `-o {outputs}`", "summary by speaker" if outputs == "sum" else "all reports + alignments",
                     wall, cpu))
    their_sum = sclite_sum_row(work / "sclite_sum" / "hyp.trn.raw")
    for mode in ("levenshtein", "sclite"):
        def api() -> object:
            report = score_pairs(load_pairs(ref, hyp), mode)
            return report.total, report.by_speaker()

        wall, cpu, (total, _) = _timed_call(api)
        rows.append((f"asrtools API `{mode}`", "totals + per-speaker counts", wall, cpu))
        if mode == "sclite":
            ours = [total.sents, total.words, total.corr, total.sub, total.del_, total.ins, total.err, total.sent_err]
            facts["sclite counts identical"] = "yes" if ours == their_sum else f"NO: ours {ours} vs sclite {their_sum}"
            facts["WER"] = f"{100 * total.wer:.2f}%"
    for mode in ("levenshtein", "sclite"):
        cli = [sys.executable, "-m", "asrtools.cli.main", "score", "wer", "--ref", str(ref), "--hyp", str(hyp),
               "--mode", mode, "--out-dir", str(work / f"wer_{mode}")]
        wall, cpu = _timed_process(cli)
        rows.append((f"asrtools CLI `score wer --mode {mode}`", "all files (wer.json, utts.jsonl, errs.txt, ...)",
                     wall, cpu))
    return rows, facts


def markdown(rows: List[Tuple[str, str, float, float]], facts: Dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        SECTION,
        "",
        "Written by `scripts/bench_scoring.py` (see its docstring); command:",
        "",
        "```",
        f".venv/bin/python scripts/bench_scoring.py --utts {args.utts} --speakers {args.speakers} "
        f"--words {args.words} --seed {args.seed} --out docs/benchmarks.md",
        "```",
        "",
        f"{args.utts} utterances, {facts['words']} reference words, {args.speakers} speakers, WER "
        f"{facts.get('WER', 'n/a')}; each tool run once, single-threaded, on shared CPU cores, so timings carry "
        "noise from other work on the machine. "
        f"sclite-mode counts identical to sclite's: {facts.get('sclite counts identical', 'n/a')}.",
        "",
        f"Provenance: {format_provenance(provenance(threads=1))}.",
        "",
        "| scorer | produces | wall s | CPU s |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {name} | {what} | {wall:.2f} | {cpu:.2f} |" for name, what, wall, cpu in rows]
    return "\n".join(lines) + "\n"


def write_section(path: Path, body: str) -> None:
    """Replace (or append) the "## WER scoring" section of `path`, keeping the others."""
    write_markdown_section(path, SECTION, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utts", type=int, default=100_000)
    parser.add_argument("--speakers", type=int, default=500)
    parser.add_argument("--words", type=int, default=10, help="mean reference words per utterance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/benchmarks.md", help="Markdown file to update, or - to print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp:
        rows, facts = run(Path(tmp), args)
    body = markdown(rows, facts, args)
    print(body)
    if args.out != "-":
        write_section(REPO / args.out if not os.path.isabs(args.out) else Path(args.out), body)


if __name__ == "__main__":
    main()
