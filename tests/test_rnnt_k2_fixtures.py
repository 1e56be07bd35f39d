"""Native RNN-T backend against golden outputs of real k2 1.23.4 (tests/fixtures/k2/, float64).

The fixture is written by scripts/make_k2_fixtures.py in .venv-k2, so parity with k2 is checked
here even where k2 cannot be installed. Tolerance: 1e-9 relative to each output's scale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from asrtools.losses import _rnnt_parity

torch.set_num_threads(1)

FIXTURE = Path(__file__).parent / "fixtures" / "k2" / "rnnt_k2_golden.pt"
RTOL = 1e-9


def _golden() -> Dict[str, Any]:
    return torch.load(FIXTURE, weights_only=True)


GOLDEN = _golden()
CASES: List[Dict[str, Any]] = [_rnnt_parity.from_storable(case) for case in GOLDEN["cases"]]


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
