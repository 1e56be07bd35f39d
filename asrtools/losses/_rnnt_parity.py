"""Backend-parity cases for `asrtools.losses.rnnt`: fixed small inputs, and a runner for any backend.

One definition serves three checks: `scripts/make_k2_fixtures.py` runs the cases on k2 and
stores inputs + outputs as golden fixtures; `tests/test_rnnt_k2_fixtures.py` replays them on
the native backend; `tests/test_rnnt_k2_parity.py` runs both backends live where k2 imports.

A case is a dict: `name`, `function` (a name in `asrtools.losses.rnnt`),
`kwargs` (non-tensor keyword arguments), `inputs` (tensor keyword arguments) and
`grad_inputs` (names of the float64 inputs to differentiate). `evaluate` returns the outputs:
`out` (loss / scores / ranges / pruned tensors), `px_grad` / `py_grad` (return_grad), and
`grad.<input>` (gradient of the summed outputs). `to_storable` / `from_storable` convert a case
to and from a form with only str / int / tensors (kwargs as JSON text), which
`torch.load(..., weights_only=True)` reads back in torch 1.13 (no Python floats) and 2.x.
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

from asrtools.losses import rnnt

Case = Dict[str, Any]

# Dyadic on purpose: k2 computes the ragged-length delay penalty in float32 before adding it
# to float64 arc scores; 0.25 * half-integers is exact in float32, so parity can be 1e-9 tight.
PARITY_DELAY_PENALTY = 0.25
_B, _T, _S, _C = 3, 8, 4, 6
# float32 cases: scores x40 give arc log-probs of a few hundred, whose float32 rounding
# (~1e-5) moves occupations (gradients) by up to ~1e-4 of their scale between two correct
# implementations; measured against k2 1.23.4: at most 6.1e-5.
RTOL_FLOAT32 = 2e-4
_S_RANGE = 3


def _ragged_boundary() -> Tensor:
    """`[0, 0, S_b, T_b]`: item 0 full length, the others shorter in both axes (T_b >= S_b)."""
    s_lens = torch.tensor([_S, _S - 2, _S - 1])
    t_lens = torch.tensor([_T, _T - 3, _T - 1])
    zeros = torch.zeros(_B, dtype=torch.int64)
    return torch.stack((zeros, zeros, s_lens, t_lens), dim=1)


def _randn(generator: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale


def _simple_inputs(generator: torch.Generator) -> Dict[str, Tensor]:
    return {
        "lm": _randn(generator, _B, _S + 1, _C),
        "am": _randn(generator, _B, _T, _C, scale=2.0),
        "symbols": torch.randint(1, _C, (_B, _S), generator=generator),
    }


def _occupations(inputs: Dict[str, Tensor], rnnt_type: str, boundary: Optional[Tensor]) -> Dict[str, Tensor]:
    """Realistic `px_grad` / `py_grad` (native simple-loss occupations) as inputs of a ranges case."""
    _, (px_grad, py_grad) = rnnt.rnnt_loss_simple(
        inputs["lm"], inputs["am"], inputs["symbols"], 0, boundary=boundary, rnnt_type=rnnt_type,
        reduction="none", return_grad=True, backend="native",
    )
    return {"px_grad": px_grad, "py_grad": py_grad}


def make_cases(seed: int = 0) -> List[Case]:
    """All parity cases: every function x rnnt_type x {full, ragged boundary} x {0, dyadic delay}."""
    generator = torch.Generator().manual_seed(seed)
    cases: List[Case] = []
    for rnnt_type, ragged, delay in itertools.product(rnnt.RNNT_TYPES, (False, True), (0.0, PARITY_DELAY_PENALTY)):
        tag = f"{rnnt_type}-{'ragged' if ragged else 'full'}-delay{delay}"
        boundary = _ragged_boundary() if ragged else None
        common = {"termination_symbol": 0, "rnnt_type": rnnt_type, "delay_penalty": delay}
        extra = {"boundary": boundary} if boundary is not None else {}

        simple = _simple_inputs(generator)
        cases.append(_case(f"simple-{tag}", "rnnt_loss_simple", {**common, "reduction": "none", "return_grad": True},
                           {**simple, **extra}, ["lm", "am"]))
        for lm_only, am_only in ((0.25, 0.0), (0.1, 0.2)):
            cases.append(_case(
                f"smoothed{lm_only}-{am_only}-{tag}", "rnnt_loss_smoothed",
                {**common, "lm_only_scale": lm_only, "am_only_scale": am_only, "reduction": "sum", "return_grad": True},
                {**_simple_inputs(generator), **extra}, ["lm", "am"],
            ))
        logits = _randn(generator, _B, _T, _S + 1, _C)
        cases.append(_case(f"full-{tag}", "rnnt_loss", {**common, "reduction": "mean"},
                           {"logits": logits, "symbols": simple["symbols"], **extra}, ["logits"]))
        if delay:
            continue  # pruning and ranges do not depend on the delay penalty
        occupations = _occupations(simple, rnnt_type, boundary)
        full_boundary = boundary if boundary is not None else torch.tensor([[0, 0, _S, _T]] * _B)
        for s_range in (2, _S_RANGE, _S + 2):
            cases.append(_case(f"ranges{s_range}-{tag}", "get_rnnt_prune_ranges", {"s_range": s_range},
                               {**occupations, "boundary": full_boundary}, []))
        ranges = rnnt.get_rnnt_prune_ranges(
            occupations["px_grad"], occupations["py_grad"], full_boundary, _S_RANGE, backend="native"
        )
        cases.append(_case(f"pruning-{tag}", "do_rnnt_pruning", {},
                           {"am": simple["am"], "lm": simple["lm"], "ranges": ranges}, ["am", "lm"]))
        pruned_logits = _randn(generator, _B, _T, _S_RANGE, _C)
        for delay_p in (0.0, PARITY_DELAY_PENALTY):
            cases.append(_case(
                f"pruned-{tag}-delay{delay_p}", "rnnt_loss_pruned", {**common, "delay_penalty": delay_p, "reduction": "sum"},
                {"logits": pruned_logits, "symbols": simple["symbols"], "ranges": ranges, **extra}, ["logits"],
            ))
    cases.extend(_recursion_cases(generator))
    return cases


def make_float32_cases(seed: int = 0) -> List[Case]:
    """float32 cases at the edge of the range: the simple and smoothed losses where exp() underflows.

    `lm = [0, -110]`, `am = [-110, 0]` (the LM and AM distributions do not overlap: every
    term of the normaliser underflows to 0 in float32), and random scores scaled by 40;
    every rnnt_type, full and ragged lengths. k2 stays finite on all of them.
    """
    generator = torch.Generator().manual_seed(seed)
    apart_lm = torch.tensor([[[0.0, -110.0], [0.0, -110.0]]])
    apart_am = torch.tensor([[[-110.0, 0.0], [-110.0, 0.0], [-110.0, 0.0]]])
    apart = {"lm": apart_lm, "am": apart_am, "symbols": torch.tensor([[1]])}
    cases: List[Case] = []
    for rnnt_type, ragged in itertools.product(rnnt.RNNT_TYPES, (False, True)):
        tag = f"{rnnt_type}-{'ragged' if ragged else 'full'}"
        scaled = {
            "lm": (_randn(generator, _B, _S + 1, _C) * 40).float(),
            "am": (_randn(generator, _B, _T, _C) * 40).float(),
            "symbols": torch.randint(1, _C, (_B, _S), generator=generator),
        }
        if ragged:
            scaled["boundary"] = _ragged_boundary()
        for name, inputs in (("apart", apart), ("scaled40", scaled)):
            if ragged and name == "apart":
                continue
            common = {"termination_symbol": 0, "rnnt_type": rnnt_type, "reduction": "sum", "return_grad": True}
            cases.append(_case(f"f32-{name}-simple-{tag}", "rnnt_loss_simple", common, dict(inputs), ["lm", "am"]))
            for lm_only, am_only in ((0.25, 0.0), (0.1, 0.2)):
                cases.append(_case(f"f32-{name}-smoothed{lm_only}-{am_only}-{tag}", "rnnt_loss_smoothed",
                                   {**common, "lm_only_scale": lm_only, "am_only_scale": am_only},
                                   dict(inputs), ["lm", "am"]))
    return cases


def _recursion_cases(generator: torch.Generator) -> List[Case]:
    """`mutual_information_recursion` on raw arcs, including boundaries that do not start at (0, 0)."""
    begins = torch.tensor([[0, 0, _S, _T], [1, 2, _S, _T - 1], [0, 1, _S - 1, _T]])
    cases = []
    for columns, name in ((_T + 1, "regular"), (_T, "modified")):
        for boundary in (None, begins):
            inputs = {"px": _randn(generator, _B, _S, columns), "py": _randn(generator, _B, _S + 1, _T)}
            if boundary is not None:
                inputs["boundary"] = boundary
            tag = "boundary" if boundary is not None else "full"
            cases.append(_case(f"recursion-{name}-{tag}", "mutual_information_recursion", {"return_grad": True},
                               inputs, ["px", "py"]))
    return cases


def _case(name: str, function: str, kwargs: Dict[str, Any], inputs: Dict[str, Tensor], grad_inputs: List[str]) -> Case:
    return {"name": name, "function": function, "kwargs": dict(kwargs), "inputs": dict(inputs), "grad_inputs": list(grad_inputs)}


def to_storable(case: Case) -> Case:
    """`case` with its kwargs as JSON text (see module docstring)."""
    stored = {k: v for k, v in case.items() if k != "kwargs"}
    stored["kwargs_json"] = json.dumps(case["kwargs"], sort_keys=True)
    return stored


def from_storable(stored: Case) -> Case:
    """Inverse of `to_storable`."""
    case = {k: v for k, v in stored.items() if k != "kwargs_json"}
    case["kwargs"] = json.loads(stored["kwargs_json"])
    return case


def evaluate(case: Case, backend: str) -> Dict[str, Tensor]:
    """Run `case` on `backend` ("k2" or "native"); return its outputs and input gradients (detached)."""
    inputs = {k: (v.detach().clone().requires_grad_(k in case["grad_inputs"]) if v.is_floating_point() else v.clone())
              for k, v in case["inputs"].items()}
    result = getattr(rnnt, case["function"])(**inputs, **case["kwargs"], backend=backend)
    outputs: Dict[str, Tensor] = {}
    if case["function"] == "do_rnnt_pruning":
        outputs["out.am"], outputs["out.lm"] = result
        differentiable = list(result)
    else:
        if case["kwargs"].get("return_grad"):
            result, (outputs["px_grad"], outputs["py_grad"]) = result
        outputs["out"] = result
        differentiable = [result]
    if case["grad_inputs"]:
        total = sum(t.sum() for t in differentiable)
        grads = torch.autograd.grad(total, [inputs[k] for k in case["grad_inputs"]])
        outputs.update({f"grad.{k}": g for k, g in zip(case["grad_inputs"], grads)})
    return {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in outputs.items()}


def mismatches(actual: Dict[str, Tensor], expected: Dict[str, Tensor], rtol: float) -> List[str]:
    """Names (with the error) of outputs that differ by more than `rtol` relative to the expected scale.

    Float outputs: `max |a - e| <= rtol * max(|e|)` (a tensor-scale relative error, so that
    gradients near zero are not judged relative to themselves); integer outputs: exact.
    """
    problems = []
    for key in sorted(set(actual) | set(expected)):
        if key not in actual or key not in expected:
            problems.append(f"{key}: missing on one side")
            continue
        a, e = actual[key], expected[key]
        if a.shape != e.shape:
            problems.append(f"{key}: shape {tuple(a.shape)} != {tuple(e.shape)}")
        elif not e.is_floating_point():
            if not torch.equal(a, e):
                problems.append(f"{key}: integer outputs differ at {int((a != e).sum())} places")
        else:
            err = (a.double() - e.double()).abs().max().item() if e.numel() else 0.0
            scale = e.double().abs().max().item() if e.numel() else 0.0
            if not err <= rtol * scale:
                problems.append(f"{key}: max abs error {err:.3e} > {rtol:g} * scale {scale:.3e}")
    return problems
