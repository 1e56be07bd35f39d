#!/usr/bin/env python3
"""Check the disparity statistics of `asrtools score cohorts` on simulated test sets.

Issue 11's design (`asrtools.scoring.simulate`): 8 cohorts x 7 speakers x 20 utterances,
speaker error rates ~ Beta(4, 6), 5-15 reference words per utterance, binomial word errors;
the null has no cohort difference, a planted gap adds G to the error rate of every speaker
of cohort c0. Three sections, each written into docs/statistics.md (others are kept):

  ## Through the CLI      every set is written as recogs.jsonl + a `speaker cohort` map and
                          scored by `asrtools score cohorts` (the click command, in this
                          process, default options but --seed); the table is read back
                          from each cohorts.json: false-positive rate / power of the
                          permutation test, how often the gap interval excludes 0, and its
                          coverage of the true gap
  ## Power curve          the same statistics through the library over a range of planted
                          gaps, beside a test that is told which cohort was planted
                          (Welch t-test of c0's speakers against all others)
  ## Interval constructions  candidate intervals on the same sets: the old fixed-pair
                          bootstrap, the bootstrap of max-min with best and worst re-chosen
                          (percentile and basic/bias-corrected), and the one asrtools uses
  ## Speed                one `speaker_disparity` call on 300 speakers in 10 cohorts with
                          1000 permutations, plus 1000 per-cohort bootstrap replicates

Usage:
  .venv/bin/python scripts/simulate_disparity.py --out docs/statistics.md
  .venv/bin/python scripts/simulate_disparity.py --sets 50 --out -        (quick look, print only)
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from scipy import stats

from asrtools.report.markdown import write_markdown_section
from asrtools.scoring.bootstrap import bootstrap_wer, percentile_ci, rng_for
from asrtools.scoring.disparity import speaker_disparity
from asrtools.scoring.simulate import PLANTED_COHORT, SimulatedSet, SimulationDesign, simulate_set

PAGE_HEAD = "# Statistics of cohort disparities\n"
ALPHA = 0.05


def _quiet_cli_logging() -> None:
    """Keep the per-stage console lines of hundreds of CLI runs off the terminal."""
    log = logging.getLogger("asrtools")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler._asrtools_console = True  # type: ignore[attr-defined]  (setup_logging then adds none)
    log.addHandler(handler)


def run_cli(sim: SimulatedSet, work: Path, seed: int, permutations: int) -> Dict:
    """Score one simulated set with `asrtools score cohorts`; return its disparity JSON."""
    from asrtools.cli import cli

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "recogs.jsonl").write_text("\n".join(sim.recogs_lines()) + "\n")
    (work / "cohorts.txt").write_text("".join(f"{spk} {cohort}\n" for spk, cohort in sim.speaker_cohorts()))
    args = ["score", "cohorts", "--recogs", str(work / "recogs.jsonl"), "--cohort-map", str(work / "cohorts.txt"),
            "--seed", str(seed), "--permutations", str(permutations), "--out-dir", str(work / "cohorts")]
    cli.main(args, prog_name="asrtools", standalone_mode=False)
    doc = json.loads((work / "cohorts" / "cohorts.json").read_text())
    return doc["groupings"][0]["disparity"]


def _rates(rows: Sequence[Dict], true_abs: float, true_rel: float) -> Dict[str, float]:
    def covers(ci: Sequence, value: float) -> bool:
        return ci[0] is not None and ci[0] <= value <= ci[1]

    return {
        "reject": float(np.mean([r["p_value"] < ALPHA for r in rows])),
        "excludes0": float(np.mean([r["abs_gap_ci"][0] > 0 for r in rows])),
        "cover_abs": float(np.mean([covers(r["abs_gap_ci"], true_abs) for r in rows])),
        "cover_rel": float(np.mean([covers(r["rel_gap_ci"], true_rel) for r in rows])),
        "mean_abs": float(np.mean([r["abs_gap"] for r in rows])),
        "mean_rel": float(np.mean([r["rel_gap"] for r in rows])),
        "width": float(np.mean([r["abs_gap_ci"][1] - r["abs_gap_ci"][0] for r in rows])),
    }


def cli_section(args: argparse.Namespace, work_root: Path) -> str:
    _quiet_cli_logging()
    lines = [
        "## Through the CLI", "",
        f"{args.sets} simulated sets per row, each scored by `asrtools score cohorts --cohort-map ... --seed i "
        f"--permutations {args.permutations}` (other options default: thresholds 5 speakers / 200 words; "
        "95% interval); rates at alpha = 0.05. True gap = difference of the cohorts' expected WER "
        "(relative: divided by the best cohort's).", "",
        "| planted gap (WER points) | true abs / rel gap | mean observed abs / rel gap | test rejects | "
        "interval excludes 0 | covers true abs gap | covers true rel gap | mean interval width (points) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    started = time.time()
    for gap in [0.0] + args.gaps:
        design = SimulationDesign(planted_gap=gap)
        true_abs, true_rel = design.true_gap()
        rng = np.random.default_rng([args.seed, int(round(gap * 1000))])
        rows = [run_cli(simulate_set(design, rng), work_root / "set", index, args.permutations)
                for index in range(args.sets)]
        r = _rates(rows, true_abs, true_rel)
        label = "0 (null)" if gap == 0 else f"+{100 * gap:g}"
        lines.append(
            f"| {label} | {100 * true_abs:.1f} / {100 * true_rel:.1f}% | {100 * r['mean_abs']:.1f} / "
            f"{100 * r['mean_rel']:.1f}% | {r['reject']:.3f} | {r['excludes0']:.3f} | {r['cover_abs']:.3f} | "
            f"{r['cover_rel']:.3f} | {100 * r['width']:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", f"({len(args.gaps) + 1} x {args.sets} CLI runs in {time.time() - started:.0f} s.)"]
    return "\n".join(lines)


def _oracle_p(sim: SimulatedSet) -> float:
    """Welch t-test of the planted cohort's speaker WERs against all other speakers'."""
    speakers = list(dict.fromkeys(sim.speakers))
    index = {s: i for i, s in enumerate(speakers)}
    rows = [index[s] for s in sim.speakers]
    wer = np.bincount(rows, weights=sim.errors) / np.bincount(rows, weights=sim.words)
    planted = np.array([s.startswith(PLANTED_COHORT + "-") for s in speakers])
    return float(stats.ttest_ind(wer[planted], wer[~planted], equal_var=False).pvalue)


def power_section(args: argparse.Namespace) -> str:
    lines = [
        "## Power curve", "",
        f"Through the library (`speaker_disparity`, {args.permutations} permutations), {args.sets} sets per row, "
        "8 cohorts x 20 utterances per speaker. The last column is a test that is *told* which cohort was "
        "planted (Welch t-test of its speakers' WER against all others): a test that has to find the cohort "
        "cannot be expected to do better.", "",
        "| speakers per cohort | planted gap (points) | permutation test (gap) | permutation test (max-t) | "
        "interval excludes 0 | covers true abs gap | covers true rel gap | oracle t-test |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for speakers, gap in ((s, g) for s in args.curve_speakers for g in args.curve):
        design = SimulationDesign(planted_gap=gap, speakers_per_cohort=speakers)
        true_abs, true_rel = design.true_gap()
        rng = np.random.default_rng([args.seed, 1, speakers, int(round(gap * 1000))])
        found, oracle = [], []
        for index in range(args.sets):
            sim = simulate_set(design, rng)
            found.append(speaker_disparity(sim.speakers, sim.cohorts, sim.errors, sim.words,
                                           n_permutations=args.permutations, seed=index))
            oracle.append(_oracle_p(sim))
        rows = [d.to_dict() for d in found]
        r = _rates(rows, true_abs, true_rel)
        max_t = np.mean([d.p_value_max_t < ALPHA for d in found])
        lines.append(f"| {speakers} | {'0 (null)' if gap == 0 else f'+{100 * gap:g}'} | {r['reject']:.3f} | {max_t:.3f} | "
                     f"{r['excludes0']:.3f} | {r['cover_abs']:.3f} | {r['cover_rel']:.3f} | "
                     f"{np.mean(np.array(oracle) < ALPHA):.3f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


# ------------------------------------------------------------------ interval constructions


def _speaker_sums(sim: SimulatedSet) -> Tuple[List[str], np.ndarray, np.ndarray]:
    speakers = list(dict.fromkeys(sim.speakers))
    index = {s: i for i, s in enumerate(speakers)}
    rows = [index[s] for s in sim.speakers]
    cohort = dict(zip(sim.speakers, sim.cohorts))
    return ([cohort[s] for s in speakers], np.bincount(rows, weights=sim.errors),
            np.bincount(rows, weights=sim.words))


def _alternatives(sim: SimulatedSet, n_boot: int, seed: int) -> Dict[str, Tuple[float, float]]:
    """Bootstrap intervals for the gap that asrtools does not use (for comparison)."""
    cohorts, errors, words = _speaker_sums(sim)
    labels = sorted(set(cohorts))
    members = [np.array([i for i, c in enumerate(cohorts) if c == label]) for label in labels]
    wer = np.array([errors[m].sum() / words[m].sum() for m in members])
    reps = np.stack([bootstrap_wer(errors[m], words[m], n_boot, rng_for(seed, "speaker", label))
                     for m, label in zip(members, labels)], axis=1)  # (n_boot, K): independent per cohort
    gap = wer.max() - wer.min()
    worst, best = int(np.argmax(wer)), int(np.argmin(wer))
    fixed = percentile_ci(reps[:, worst] - reps[:, best])
    rechosen = reps.max(axis=1) - reps.min(axis=1)
    low, high = percentile_ci(rechosen)
    return {
        "fixed best/worst pair, percentile (the old score cohorts)": fixed,
        "re-chosen max-min, percentile": (low, high),
        "re-chosen max-min, basic (bias-corrected)": (max(0.0, 2 * gap - high), max(0.0, 2 * gap - low)),
    }


def constructions_section(args: argparse.Namespace) -> str:
    names: List[str] = []
    table: Dict[str, Dict[float, List[Tuple[float, float]]]] = {}
    gaps = [0.0] + args.gaps
    for gap in gaps:
        design = SimulationDesign(planted_gap=gap)
        rng = np.random.default_rng([args.seed, 2, int(round(gap * 1000))])
        for index in range(args.sets):
            sim = simulate_set(design, rng)
            intervals = _alternatives(sim, 1000, index)
            d = speaker_disparity(sim.speakers, sim.cohorts, sim.errors, sim.words,
                                  n_permutations=args.permutations, seed=index)
            intervals["asrtools: simultaneous pairwise, permutation-calibrated"] = d.abs_gap_ci
            for name, ci in intervals.items():
                if name not in table:
                    names.append(name)
                    table[name] = {g: [] for g in gaps}
                table[name][gap].append(ci)
    header = ["interval for the best-worst gap", "null: excludes 0"]
    header += [f"+{100 * g:g}: covers true gap" for g in args.gaps]
    header += [f"+{100 * g:g}: mean width (points)" for g in args.gaps]
    lines = [
        "## Interval constructions", "",
        f"{args.sets} sets per gap, 95% intervals (1000 bootstrap replicates per cohort; {args.permutations} "
        "permutations). A right interval excludes 0 in at most 5% of null sets and covers the true gap in at "
        "least 95% of planted sets.", "",
        "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
    ]
    for name in names:
        cells = [f"{np.mean([ci[0] > 0 for ci in table[name][0.0]]):.3f}"]
        for gap in args.gaps:
            true_abs, _ = SimulationDesign(planted_gap=gap).true_gap()
            cells.append(f"{np.mean([ci[0] <= true_abs <= ci[1] for ci in table[name][gap]]):.3f}")
        for gap in args.gaps:
            cells.append(f"{100 * np.mean([ci[1] - ci[0] for ci in table[name][gap]]):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed_section(args: argparse.Namespace) -> str:
    design = SimulationDesign(n_cohorts=10, speakers_per_cohort=30)
    sim = simulate_set(design, np.random.default_rng(args.seed))
    cohorts, errors, words = _speaker_sums(sim)
    speakers = list(dict.fromkeys(sim.speakers))

    def disparity() -> object:
        return speaker_disparity(speakers, cohorts, errors, words, n_permutations=1000, seed=0)

    def per_cohort_bootstrap() -> object:
        return [bootstrap_wer(errors[np.array(cohorts) == c], words[np.array(cohorts) == c], 1000, rng_for(0, c))
                for c in sorted(set(cohorts))]

    t_disparity = _best_of(5, disparity)
    t_bootstrap = _best_of(5, per_cohort_bootstrap)
    return "\n".join([
        "## Speed", "",
        f"300 speakers in 10 cohorts, best of 5 runs on this machine ({platform.machine()}, Python "
        f"{platform.python_version()}, shared CPU cores):", "",
        "| step | wall s |", "|---|---:|",
        f"| `speaker_disparity`, 1000 permutations (p-values + both intervals) | {t_disparity:.3f} |",
        f"| per-cohort speaker bootstrap CIs, 1000 replicates each | {t_bootstrap:.3f} |",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=200, help="simulated sets per row (default 200)")
    parser.add_argument("--permutations", type=int, default=1000, help="permutations per set (default 1000)")
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.15, 0.30],
                        help="planted gaps of the CLI and constructions tables (default 0.15 0.30)")
    parser.add_argument("--curve", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30],
                        help="planted gaps of the power curve")
    parser.add_argument("--curve-speakers", type=int, nargs="+", default=[7, 30],
                        help="speakers per cohort of the power curve (default 7 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sections", nargs="+", default=["cli", "power", "constructions", "speed"],
                        choices=["cli", "power", "constructions", "speed"])
    parser.add_argument("--out", default="docs/statistics.md", help="Markdown page to update, or - to print only")
    args = parser.parse_args()

    command = "scripts/simulate_disparity.py " + " ".join(sys.argv[1:])
    builders = {"cli": "## Through the CLI", "power": "## Power curve", "constructions": "## Interval constructions",
                "speed": "## Speed"}
    with tempfile.TemporaryDirectory(prefix="simulate_disparity-") as tmp:
        for name in args.sections:
            started = time.time()
            if name == "cli":
                body = cli_section(args, Path(tmp))
            elif name == "power":
                body = power_section(args)
            elif name == "constructions":
                body = constructions_section(args)
            else:
                body = speed_section(args)
            body += f"\n\nWritten by `.venv/bin/python {command}` ({time.time() - started:.0f} s).\n"
            if args.out == "-":
                print(body)
            else:
                path = Path(args.out)
                write_markdown_section(path, builders[name], body, new_page=PAGE_HEAD)
                print(f"wrote section {builders[name]!r} of {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
