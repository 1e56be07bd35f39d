#!/usr/bin/env python3
"""Benchmark the pruned RNN-T loss against full RNN-T losses on CPU (time and peak memory).

Methods (each one training step: forward + backward, fp32, CPU):
  native-pruned     asrtools native backend: rnnt_loss_smoothed(return_grad) + get_rnnt_prune_ranges
                    + do_rnnt_pruning + joiner + rnnt_loss_pruned, loss = 0.5 * simple + pruned
  k2-pruned         the same calls on k2 (only where `import k2` works)
  native-full       joiner on the full (B, T, U+1, V) grid + asrtools rnnt_loss (native)
  torchaudio-full   joiner on the full grid + torchaudio.functional.rnnt_loss (where installed)
  k2-full           joiner on the full grid + k2.rnnt_loss (only where `import k2` works)

The joiner is `tanh(am[t] + lm[u])` on V-dim inputs (no projections), so the numbers isolate
the loss and the size of the logits it needs; a real joiner's output layer adds cost in
proportion to the number of (t, u) cells, i.e. it favours pruning further.

Peak memory: every (method, shape) runs in a fresh child process with glibc's mmap threshold
fixed at 64 KiB (`MALLOC_MMAP_THRESHOLD_`), so large tensors are mmap'ed and their pages leave
the resident set as soon as they are freed. The child does one warm-up step, resets the
kernel's resident-set high-water mark (`echo 5 > /proc/self/clear_refs`), then reports
`VmHWM - VmRSS` around one step: the extra resident memory (MiB) the step needed on top of its
inputs. Time: a second fresh child with the default allocator settings (the fixed mmap
threshold would add page-fault cost) does one warm-up step, then reports the median wall time
of --repeats steps.

Usage:
  scripts/bench_rnnt_loss.py --threads 1 --repeats 3 --out docs/benchmarks.md
  .venv-k2/bin/python scripts/bench_rnnt_loss.py --threads 1 --out docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from asrtools.pipeline import atomic_write_text
from asrtools.utils.provenance import format_provenance, provenance

SECTION = "## Pruned RNN-T loss"
DEFAULT_SHAPES = ["16,250,50,500", "8,500,100,500"]
METHODS = ["native-pruned", "k2-pruned", "native-full", "torchaudio-full", "k2-full"]
S_RANGE = 5


def _shape(text: str) -> Tuple[int, int, int, int]:
    parts = tuple(int(x) for x in text.split(","))
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected B,T,U,V")
    return parts  # type: ignore[return-value]


def _available(method: str) -> Optional[str]:
    """None when `method` can run here, else the reason it cannot."""
    import importlib.util

    if method.startswith("k2-") and importlib.util.find_spec("k2") is None:
        return "k2 not installed"
    if method == "torchaudio-full" and importlib.util.find_spec("torchaudio") is None:
        return "torchaudio not installed"
    return None


# ----------------------------------------------------------------------------- child side


def _make_step(method: str, B: int, T: int, U: int, V: int) -> Callable[[], None]:
    import torch

    from asrtools.losses import rnnt

    gen = torch.Generator().manual_seed(0)
    am0 = torch.randn(B, T, V, generator=gen)
    lm0 = torch.randn(B, U + 1, V, generator=gen)
    symbols = torch.randint(1, V, (B, U), generator=gen)
    boundary = torch.tensor([[0, 0, U, T]] * B, dtype=torch.int64)

    def pruned(backend: str) -> None:
        am = am0.clone().requires_grad_()
        lm = lm0.clone().requires_grad_()
        simple, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
            lm=lm, am=am, symbols=symbols, termination_symbol=0, lm_only_scale=0.25, am_only_scale=0.0,
            boundary=boundary, reduction="sum", return_grad=True, backend=backend,
        )
        ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, S_RANGE, backend=backend)
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges, backend=backend)
        logits = torch.tanh(am_pruned + lm_pruned)
        pruned_loss = rnnt.rnnt_loss_pruned(logits, symbols, ranges, 0, boundary, reduction="sum", backend=backend)
        (0.5 * simple + pruned_loss).backward()

    def full(loss_fn: Callable) -> None:
        am = am0.clone().requires_grad_()
        lm = lm0.clone().requires_grad_()
        logits = torch.tanh(am.unsqueeze(2) + lm.unsqueeze(1))
        loss_fn(logits).backward()

    if method == "native-pruned":
        return lambda: pruned("native")
    if method == "k2-pruned":
        return lambda: pruned("k2")
    if method == "native-full":
        return lambda: full(lambda lg: rnnt.rnnt_loss(lg, symbols, 0, boundary, reduction="sum", backend="native"))
    if method == "k2-full":
        return lambda: full(lambda lg: rnnt.rnnt_loss(lg, symbols, 0, boundary, reduction="sum", backend="k2"))
    if method == "torchaudio-full":
        import warnings

        import torchaudio.functional

        warnings.filterwarnings("ignore", category=UserWarning, module="torchaudio")
        lengths = torch.full((B,), T, dtype=torch.int32)
        label_lengths = torch.full((B,), U, dtype=torch.int32)
        targets = symbols.int()
        return lambda: full(
            lambda lg: torchaudio.functional.rnnt_loss(
                lg, targets, lengths, label_lengths, blank=0, reduction="sum"
            )
        )
    raise ValueError(method)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(method: str, shape: Tuple[int, int, int, int], threads: int, repeats: int, measure: str) -> Dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    step = _make_step(method, *shape)
    step()  # warm-up: lazy initialisation, first-touch of libraries
    if measure == "memory":
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
        base_kib = _status_kib("VmRSS")
        step()
        return {"mib": (_status_kib("VmHWM") - base_kib) / 1024}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times)}


# ---------------------------------------------------------------------------- parent side


def _run_child(method: str, shape: Tuple[int, int, int, int], threads: int, repeats: int) -> Dict[str, float]:
    """Peak memory and median time of `method`, each measured in its own fresh process."""
    result: Dict[str, float] = {}
    for measure in ("memory", "time"):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if measure == "memory":
            env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        cmd = [sys.executable, __file__, "--child", method, "--measure", measure, "--threads", str(threads),
               "--repeats", str(repeats), "--shape", ",".join(map(str, shape))]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{method} {shape} ({measure}) failed:\n{proc.stderr[-3000:]}")
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return result


def _environment(threads: int) -> Tuple[str, str]:
    """(subsection title, one-line description of the software and machine of the measuring run)."""
    import importlib.metadata as md

    try:
        k2_version: Optional[str] = md.version("k2")
    except md.PackageNotFoundError:
        k2_version = None
    try:
        ta = "torchaudio " + md.version("torchaudio")
    except md.PackageNotFoundError:
        ta = "no torchaudio"
    title = "### k2 environment (.venv-k2)" if k2_version else "### Main environment (.venv, no k2)"
    desc = (
        f"Provenance: {format_provenance(provenance(threads=threads))} (the measuring child processes); "
        f"{ta}, {'k2 ' + k2_version if k2_version else 'no k2'}; CPU cores shared with other jobs"
    )
    return title, desc


def _table(results: List[Tuple[str, Tuple[int, ...], Optional[Dict[str, float]], str]], repeats: int) -> str:
    lines = [
        f"| method | B, T, U, V | time fwd+bwd (ms, median of {repeats}) | peak extra RSS (MiB) | time / torchaudio-full | memory / torchaudio-full | time / k2-pruned |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    ref: Dict[Tuple[Tuple[int, ...], str], Dict[str, float]] = {
        (shape, m): r for m, shape, r, _ in results if r is not None
    }

    def ratio(r: Dict[str, float], other: Optional[Dict[str, float]], key: str) -> str:
        return f"{r[key] / other[key]:.3f}" if other and other[key] > 0 else "–"

    for method, shape, r, note in results:
        dims = ", ".join(map(str, shape))
        if r is None:
            lines.append(f"| {method} | {dims} | n/a ({note}) | | | | |")
            continue
        ta = ref.get((shape, "torchaudio-full"))
        k2p = ref.get((shape, "k2-pruned"))
        lines.append(
            f"| {method} | {dims} | {r['ms']:.1f} | {r['mib']:.1f} | {ratio(r, ta, 'ms')} | {ratio(r, ta, 'mib')} | {ratio(r, k2p, 'ms')} |"
        )
    return "\n".join(lines)


def _targets(results: List[Tuple[str, Tuple[int, ...], Optional[Dict[str, float]], str]]) -> str:
    """One line per shape comparing native-pruned with the targets (<= 1/5 of torchaudio-full's
    time and memory; <= 1.2x k2-pruned's time)."""
    found = {(shape, m): r for m, shape, r, _ in results if r is not None}
    lines = []
    for shape in dict.fromkeys(shape for _, shape, _, _ in results):
        ours = found.get((shape, "native-pruned"))
        if ours is None:
            continue
        checks = []
        for ref, key, limit, what in (("torchaudio-full", "ms", 0.2, "time"), ("torchaudio-full", "mib", 0.2, "memory"),
                                      ("k2-pruned", "ms", 1.2, "time")):
            other = found.get((shape, ref))
            if other and other[key] > 0:
                value = ours[key] / other[key]
                checks.append(f"{what} {value:.3f}x {ref} (target <= {limit}: {'met' if value <= limit else 'NOT met'})")
        if checks:
            lines.append(f"- {', '.join(map(str, shape))}: native-pruned " + "; ".join(checks))
    return "\n".join(lines)


def _section_intro() -> str:
    return (
        f"{SECTION}\n\n"
        "Written by `scripts/bench_rnnt_loss.py` (see its docstring). One training step (forward and\n"
        "backward) on CPU, fp32, random inputs; the joiner is `tanh(am + lm)` on V-dim inputs, so\n"
        "the full losses pay for the (B, T, U+1, V) logits and the pruned ones for (B, T, 5, V).\n"
        "native-pruned and k2-pruned run the smoothed simple loss (return_grad), the prune ranges\n"
        "(s_range 5), do_rnnt_pruning and the pruned loss. Peak memory is the resident-set\n"
        "high-water mark minus the resident set before the step, in a fresh process per row with\n"
        "glibc's mmap threshold fixed at 64 KiB so freed tensors leave the resident set; times come\n"
        "from another fresh process with default allocator settings. Times are wall-clock medians\n"
        "on a shared 2-core machine: treat ratios measured in the same run as the meaningful\n"
        "numbers. Most of k2-pruned's extra time and memory is the backward of k2's\n"
        "`do_rnnt_pruning`, which gathers from the decoder output expanded to (B, T, U+1, C) and so\n"
        "zero-fills a tensor of that size; the native version looks rows up with `index_select`.\n"
    )


def _write_section(path: Path, title: str, body: str) -> None:
    """Replace (or add) subsection `title` of the "## Pruned RNN-T loss" section of `path`."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    sec_match = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    section = sec_match.group(0) if sec_match else ""
    subsections = dict(
        (m.group(1), m.group(0).rstrip("\n") + "\n")
        for m in re.finditer(r"^(### [^\n]*)\n.*?(?=^### |\Z)", section, flags=re.S | re.M)
    )
    subsections[title] = f"{title}\n\n{body}\n"
    new_section = _section_intro() + "\n" + "\n".join(subsections[k] for k in sorted(subsections)) + "\n"
    if sec_match:
        text = text[: sec_match.start()] + new_section + text[sec_match.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + new_section
    atomic_write_text(path, text)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per row (median; default 3)")
    parser.add_argument("--shape", type=_shape, action="append", help="B,T,U,V (repeatable); default: " + " and ".join(DEFAULT_SHAPES))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file's '## Pruned RNN-T loss' section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("memory", "time"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shapes = args.shape or [_shape(s) for s in DEFAULT_SHAPES]

    if args.child:
        print(json.dumps(_child(args.child, shapes[0], args.threads, args.repeats, args.measure)))
        return

    title, desc = _environment(args.threads)
    results = []
    for shape in shapes:
        for method in args.methods.split(","):
            why_not = _available(method)
            if why_not:
                results.append((method, shape, None, why_not))
                continue
            print(f"[bench] {method} {shape} ...", file=sys.stderr, flush=True)
            results.append((method, shape, _run_child(method, shape, args.threads, args.repeats), ""))
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).parent.parent.name + "/bin/python", "scripts/bench_rnnt_loss.py", *sys.argv[1:]])
    body = f"{desc}\n\nCommand: `{command}`\n\n{_table(results, args.repeats)}"
    targets = _targets(results)
    if targets:
        body += f"\n\nTargets:\n\n{targets}"
    print(f"{title}\n\n{body}")
    if args.out:
        _write_section(args.out, title, body)
        print(f"[bench] wrote {title!r} into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
