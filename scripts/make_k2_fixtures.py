#!/usr/bin/env python3
"""Write golden k2 outputs for the RNN-T parity cases to tests/fixtures/k2/ (run in .venv-k2).

Every case of `asrtools.losses._rnnt_parity.make_cases` (float64 inputs) and of
`make_float32_cases` (float32 inputs at the edge of the range, where exp() underflows) is
evaluated on real k2; inputs, outputs and input gradients are saved in one file per set
(rnnt_k2_golden.pt, rnnt_k2_float32.pt) that `torch.load(path, weights_only=True)` reads in
any torch >= 1.13, so `tests/test_rnnt_k2_fixtures.py` checks the native backend against k2
where k2 cannot be installed.

Usage:
  scripts/setup_k2_env.sh && .venv-k2/bin/python scripts/make_k2_fixtures.py
"""
from __future__ import annotations

import argparse
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import torch

from asrtools.losses import _rnnt_parity, rnnt
from asrtools.pipeline import atomic_path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "k2"
SETS = {  # file name -> case generator
    "rnnt_k2_golden.pt": "make_cases",
    "rnnt_k2_float32.pt": "make_float32_cases",
}
MAX_BYTES = 2 * 1024 * 1024


def write_set(out: Path, generator: str, seed: int) -> None:
    """Evaluate `_rnnt_parity.<generator>(seed)` on k2 and save inputs and outputs to `out`."""
    cases = getattr(_rnnt_parity, generator)(seed)
    for case in cases:
        case["expected"] = _rnnt_parity.evaluate(case, "k2")
    golden = {
        "meta": {
            "k2": version("k2"),
            "torch": str(torch.__version__),
            "python": platform.python_version(),
            "seed": seed,
            "generator": f"asrtools.losses._rnnt_parity.{generator}",
        },
        "cases": [_rnnt_parity.to_storable(case) for case in cases],
    }
    with atomic_path(out) as tmp:
        torch.save(golden, tmp)
        size = tmp.stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"make_k2_fixtures.py: {size} bytes > {MAX_BYTES}; use fewer or smaller cases")
    print(f"wrote {len(cases)} cases ({size / 1024:.0f} KiB) from k2 {golden['meta']['k2']} to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=FIXTURES,
                        help=f"output directory (default {FIXTURES.relative_to(REPO)})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    args = parser.parse_args()
    if not rnnt.k2_available():
        sys.exit("make_k2_fixtures.py: k2 is not importable; run it with .venv-k2/bin/python (scripts/setup_k2_env.sh)")
    torch.set_num_threads(1)
    for name, generator in SETS.items():
        write_set(args.out_dir / name, generator, args.seed)


if __name__ == "__main__":
    main()
