"""Native RNN-T backend against golden outputs of real k2 1.23.4 (tests/fixtures/k2/).

The fixtures are written by scripts/make_k2_fixtures.py in .venv-k2, so parity with k2 is
checked here even where k2 cannot be installed. float64 cases: 1e-9 relative to each output's
scale. float32 cases at the edge of the range (LM and AM distributions that do not overlap,
scores x40, where exp() underflows): finite wherever k2 is, and equal to float32 precision
(`_rnnt_parity.RTOL_FLOAT32`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from asrtools.losses import _rnnt_parity

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "k2"
RTOL = 1e-9


def _golden(name: str) -> Dict[str, Any]:
    return torch.load(FIXTURES / name, weights_only=True)


GOLDEN = _golden("rnnt_k2_golden.pt")
CASES: List[Dict[str, Any]] = [_rnnt_parity.from_storable(case) for case in GOLDEN["cases"]]
GOLDEN32 = _golden("rnnt_k2_float32.pt")
CASES32: List[Dict[str, Any]] = [_rnnt_parity.from_storable(case) for case in GOLDEN32["cases"]]


def test_fixture_comes_from_k2_and_covers_every_parity_case() -> None:
    assert GOLDEN["meta"]["k2"] == "1.23.4"
    assert [c["name"] for c in CASES] == [c["name"] for c in _rnnt_parity.make_cases(GOLDEN["meta"]["seed"])]
    functions = {c["function"] for c in CASES}
    assert functions == {"rnnt_loss_simple", "rnnt_loss_smoothed", "get_rnnt_prune_ranges", "do_rnnt_pruning",
                         "rnnt_loss_pruned", "rnnt_loss", "mutual_information_recursion"}
    assert all(t.dtype == torch.float64 for c in CASES for t in c["expected"].values() if t.is_floating_point())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_native_matches_k2_golden(case: Dict[str, Any]) -> None:
    got = _rnnt_parity.evaluate(case, "native")
    assert _rnnt_parity.mismatches(got, case["expected"], RTOL) == []


def test_float32_fixture_comes_from_k2_and_covers_the_extreme_cases() -> None:
    assert GOLDEN32["meta"]["k2"] == "1.23.4"
    assert [c["name"] for c in CASES32] == [c["name"] for c in _rnnt_parity.make_float32_cases(GOLDEN32["meta"]["seed"])]
    assert all(t.dtype == torch.float32 for c in CASES32 for t in c["expected"].values() if t.is_floating_point())
    apart = next(c for c in CASES32 if c["name"] == "f32-apart-simple-regular-full")
    assert apart["inputs"]["lm"].tolist() == [[[0.0, -110.0], [0.0, -110.0]]]


@pytest.mark.parametrize("case", CASES32, ids=[c["name"] for c in CASES32])
def test_native_float32_is_finite_where_k2_is_and_matches_it(case: Dict[str, Any]) -> None:
    got = _rnnt_parity.evaluate(case, "native")
    for key, expected in case["expected"].items():
        if expected.is_floating_point() and bool(torch.isfinite(expected).all()):
            assert bool(torch.isfinite(got[key]).all()), key
    assert _rnnt_parity.mismatches(got, case["expected"], _rnnt_parity.RTOL_FLOAT32) == []
