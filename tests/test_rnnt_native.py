"""Native RNN-T backend: torchaudio equality, brute-force alignments, pruning, gradcheck."""
from __future__ import annotations

import itertools
import math
import warnings
from typing import Callable, List, Optional

import pytest
import torch

from asrtools.losses import rnnt
from ci_skip_policy import optional_in_k2_env

torch.set_num_threads(1)

RNNT_TYPES = ("regular", "modified", "constrained")
NATIVE = {"backend": "native"}


def _boundary(s_lens: List[int], t_lens: List[int]) -> torch.Tensor:
    zeros = [0] * len(s_lens)
    return torch.tensor(list(zip(zeros, zeros, s_lens, t_lens)), dtype=torch.int64)


def _brute_force(
    weight: Callable[[int, int, int], float],
    symbols: List[int],
    T_b: int,
    rnnt_type: str,
    delay_penalty: float = 0.0,
    blank: int = 0,
) -> float:
    """-log of the sum over every alignment of `symbols` to `T_b` frames, enumerated path by path.

    `weight(t, s, token)` = log-prob of emitting `token` on frame t after `s` symbols. regular:
    any number of symbols per frame, each frame ends with a blank; modified: one token per frame;
    constrained: as modified, and a symbol on frame t also pays the blank of the next context.
    A symbol emitted on frame t earns `delay_penalty * ((T_b - 1) / 2 - t)`.
    """
    S_b = len(symbols)
    scores: List[float] = []

    def walk(s: int, t: int, score: float) -> None:
        if t == T_b:
            if s == S_b:
                scores.append(score)
            return
        walk(s, t + 1, score + weight(t, s, blank))
        if s < S_b:
            gain = weight(t, s, symbols[s]) + delay_penalty * ((T_b - 1) / 2 - t)
            if rnnt_type == "regular":
                walk(s + 1, t, score + gain)
            elif rnnt_type == "modified":
                walk(s + 1, t + 1, score + gain)
            else:
                walk(s + 1, t + 1, score + gain + weight(t, s + 1, blank))

    walk(0, 0, 0.0)
    if not scores:
        return math.inf
    top = max(scores)
    return -(top + math.log(sum(math.exp(x - top) for x in scores)))


def _joiner_weight(logits_b: torch.Tensor) -> Callable[[int, int, int], float]:
    logp = logits_b.log_softmax(-1)
    return lambda t, s, token: float(logp[t, s, token])


# ------------------------------------------------------------------------- torchaudio


@pytest.mark.parametrize("ragged", [False, True])
def test_full_loss_matches_torchaudio(ragged: bool) -> None:
    functional = pytest.importorskip("torchaudio.functional",
                                     reason=optional_in_k2_env("torchaudio is not importable (the k2 env has none)"))
    gen = torch.Generator().manual_seed(1)
    B, T, S, C = 3, 9, 4, 7
    logits = torch.randn(B, T, S + 1, C, generator=gen)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    t_lens, s_lens = ([9, 6, 7], [4, 2, 3]) if ragged else ([T] * B, [S] * B)

    ours_in = logits.double().requires_grad_()
    ours = rnnt.rnnt_loss(ours_in, symbols, 0, boundary=_boundary(s_lens, t_lens), reduction="none", **NATIVE)
    ours_grad, = torch.autograd.grad(ours.sum(), ours_in)

    theirs_in = logits.clone().requires_grad_()  # torchaudio's CPU kernel takes float32 only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = functional.rnnt_loss(
            theirs_in, symbols.int(), torch.tensor(t_lens, dtype=torch.int32),
            torch.tensor(s_lens, dtype=torch.int32), blank=0, reduction="none",
        )
    theirs_grad, = torch.autograd.grad(theirs.sum(), theirs_in)
    torch.testing.assert_close(ours.float(), theirs, rtol=2e-6, atol=2e-5)
    torch.testing.assert_close(ours_grad.float(), theirs_grad, rtol=1e-4, atol=2e-6)
    mean = rnnt.rnnt_loss(logits.double(), symbols, 0, boundary=_boundary(s_lens, t_lens), **NATIVE)
    torch.testing.assert_close(mean.float(), theirs.mean(), rtol=2e-6, atol=2e-5)


# -------------------------------------------------------------------------- brute force


@pytest.mark.parametrize("rnnt_type,delay_penalty", itertools.product(RNNT_TYPES, [0.0, 0.3]))
def test_full_loss_equals_brute_force_enumeration(rnnt_type: str, delay_penalty: float) -> None:
    gen = torch.Generator().manual_seed(2)
    B, T, S, C = 3, 5, 3, 4
    logits = torch.randn(B, T, S + 1, C, generator=gen, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    s_lens, t_lens = [3, 1, 2], [5, 3, 4]
    got = rnnt.rnnt_loss(logits, symbols, 0, boundary=_boundary(s_lens, t_lens), rnnt_type=rnnt_type,
                         delay_penalty=delay_penalty, reduction="none", **NATIVE)
    want = [
        _brute_force(_joiner_weight(logits[b]), symbols[b, : s_lens[b]].tolist(), t_lens[b], rnnt_type, delay_penalty)
        for b in range(B)
    ]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_simple_loss_is_full_loss_of_additive_joiner(rnnt_type: str) -> None:
    gen = torch.Generator().manual_seed(3)
    B, T, S, C = 2, 6, 3, 5
    lm = torch.randn(B, S + 1, C, generator=gen, dtype=torch.float64, requires_grad=True)
    am = torch.randn(B, T, C, generator=gen, dtype=torch.float64, requires_grad=True)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    boundary = _boundary([3, 2], [6, 4])
    kwargs = dict(boundary=boundary, rnnt_type=rnnt_type, delay_penalty=0.1, reduction="none", **NATIVE)
    simple = rnnt.rnnt_loss_simple(lm, am, symbols, 0, **kwargs)
    full = rnnt.rnnt_loss(am.unsqueeze(2) + lm.unsqueeze(1), symbols, 0, **kwargs)
    torch.testing.assert_close(simple, full, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(simple.sum(), (lm, am)), torch.autograd.grad(full.sum(), (lm, am))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rnnt_type,scales", itertools.product(RNNT_TYPES, [(0.25, 0.0), (0.1, 0.3)]))
def test_smoothed_loss_equals_brute_force_of_interpolated_models(rnnt_type: str, scales) -> None:
    lm_only_scale, am_only_scale = scales
    gen = torch.Generator().manual_seed(4)
    B, T, S, C = 2, 5, 3, 4
    lm = torch.randn(B, S + 1, C, generator=gen, dtype=torch.float64)
    am = torch.randn(B, T, C, generator=gen, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    s_lens, t_lens = [3, 2], [5, 4]
    got = rnnt.rnnt_loss_smoothed(lm, am, symbols, 0, lm_only_scale=lm_only_scale, am_only_scale=am_only_scale,
                                  boundary=_boundary(s_lens, t_lens), rnnt_type=rnnt_type, reduction="none", **NATIVE)
    unigram = lm.softmax(-1).mean(dim=(0, 1))
    combined = (am.unsqueeze(2) + lm.unsqueeze(1)).log_softmax(-1)  # (B, T, S+1, C)
    lm_only = lm.log_softmax(-1)  # (B, S+1, C)
    am_only = (am + unigram.log()).log_softmax(-1)  # (B, T, C)
    want = []
    for b in range(B):
        def weight(t: int, s: int, token: int, b: int = b) -> float:
            return float((1 - lm_only_scale - am_only_scale) * combined[b, t, s, token]
                         + lm_only_scale * lm_only[b, s, token] + am_only_scale * am_only[b, t, token])
        want.append(_brute_force(weight, symbols[b, : s_lens[b]].tolist(), t_lens[b], rnnt_type))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_impossible_alignment_gives_infinite_loss_and_zero_gradient() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    symbols = torch.randint(1, 4, (2, 4), generator=gen)
    # Item 0: 4 symbols in 3 frames cannot be aligned when each frame emits at most one token.
    loss = rnnt.rnnt_loss(logits, symbols, 0, boundary=_boundary([4, 2], [3, 3]), rnnt_type="modified",
                          reduction="none", **NATIVE)
    assert math.isinf(loss[0].item()) and math.isfinite(loss[1].item())
    grad, = torch.autograd.grad(loss[1] + 0 * loss[0], logits)
    assert torch.isfinite(grad).all() and grad[0].abs().sum() == 0


# ------------------------------------------------------------------------------ pruning


def _pruned_from_full(logits: torch.Tensor, ranges: torch.Tensor) -> torch.Tensor:
    """`logits[b, t, ranges[b, t, r]]`: the pruned joiner output a pruned model would compute."""
    B, T, R = ranges.shape
    return logits.gather(2, ranges.unsqueeze(3).expand(B, T, R, logits.shape[3]))


@pytest.mark.parametrize("rnnt_type,ragged,delay_penalty", itertools.product(RNNT_TYPES, [False, True], [0.0, 0.5]))
def test_pruned_loss_with_every_position_kept_equals_full_loss(rnnt_type, ragged, delay_penalty) -> None:
    gen = torch.Generator().manual_seed(6)
    B, T, S, C = 3, 7, 4, 6
    lm = torch.randn(B, S + 1, C, generator=gen, dtype=torch.float64)
    am = torch.randn(B, T, C, generator=gen, dtype=torch.float64)
    logits = torch.randn(B, T, S + 1, C, generator=gen, dtype=torch.float64, requires_grad=True)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    boundary = _boundary([4, 2, 3], [7, 4, 6]) if ragged else None
    _, (px_grad, py_grad) = rnnt.rnnt_loss_simple(lm, am, symbols, 0, boundary=boundary, rnnt_type=rnnt_type,
                                                  return_grad=True, **NATIVE)
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=S + 3, **NATIVE)
    assert ranges.shape == (B, T, S + 1)
    assert torch.equal(ranges, torch.arange(S + 1).expand(B, T, S + 1))
    kwargs = dict(boundary=boundary, rnnt_type=rnnt_type, delay_penalty=delay_penalty, reduction="sum", **NATIVE)
    pruned = rnnt.rnnt_loss_pruned(_pruned_from_full(logits, ranges), symbols, ranges, 0, **kwargs)
    full = rnnt.rnnt_loss(logits, symbols, 0, **kwargs)
    torch.testing.assert_close(pruned, full, rtol=1e-12, atol=1e-12)
    pruned_grad, = torch.autograd.grad(pruned, logits)
    full_grad, = torch.autograd.grad(full, logits)
    torch.testing.assert_close(pruned_grad, full_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_prune_ranges_are_valid_and_pruned_loss_bounds_full_loss(rnnt_type: str) -> None:
    gen = torch.Generator().manual_seed(7)
    B, T, S, C, s_range = 4, 12, 6, 8, 3
    lm = torch.randn(B, S + 1, C, generator=gen, dtype=torch.float64)
    am = 3 * torch.randn(B, T, C, generator=gen, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    s_lens, t_lens = [6, 3, 5, 1], [12, 7, 10, 4]
    boundary = _boundary(s_lens, t_lens)
    _, (px_grad, py_grad) = rnnt.rnnt_loss_simple(lm, am, symbols, 0, boundary=boundary, rnnt_type=rnnt_type,
                                                  return_grad=True, **NATIVE)
    ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range, **NATIVE)
    starts = ranges[:, :, 0]
    assert torch.equal(ranges, starts.unsqueeze(2) + torch.arange(s_range))
    assert (starts[:, 0] == 0).all() and (starts >= 0).all() and (ranges <= S).all()
    steps = starts[:, 1:] - starts[:, :-1]
    assert (steps >= 0).all() and (steps < (s_range if rnnt_type == "regular" else 2)).all()
    for b in range(B):  # the last frame's window holds the last symbol
        assert s_lens[b] in ranges[b, t_lens[b] - 1].tolist()
    # The pruned lattice is a sub-lattice: fewer paths, so a loss at least as large.
    logits = am.unsqueeze(2) + lm.unsqueeze(1)
    kwargs = dict(boundary=boundary, rnnt_type=rnnt_type, reduction="none", **NATIVE)
    pruned = rnnt.rnnt_loss_pruned(_pruned_from_full(logits, ranges), symbols, ranges, 0, **kwargs)
    full = rnnt.rnnt_loss(logits, symbols, 0, **kwargs)
    assert torch.isfinite(pruned).all() and (pruned >= full - 1e-12).all()


def test_do_rnnt_pruning_gathers_windows() -> None:
    gen = torch.Generator().manual_seed(8)
    am = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    lm = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    ranges = torch.tensor([[0, 0, 1, 1, 2], [0, 1, 1, 2, 2]]).unsqueeze(2) + torch.arange(2)
    am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges, **NATIVE)
    assert am_pruned.shape == lm_pruned.shape == (2, 5, 2, 3)
    for b, t, r in itertools.product(range(2), range(5), range(2)):
        assert torch.equal(am_pruned[b, t, r], am[b, t]) and torch.equal(lm_pruned[b, t, r], lm[b, ranges[b, t, r]])
    torch.autograd.gradcheck(lambda a, l: sum(x.sum() * (i + 1) for i, x in enumerate(rnnt.do_rnnt_pruning(a, l, ranges, **NATIVE))), (am, lm))


def test_pruned_path_never_builds_a_full_lattice_tensor() -> None:
    dispatch = pytest.importorskip("torch.utils._python_dispatch")
    gen = torch.Generator().manual_seed(9)
    B, T, S, V, s_range = 2, 10, 8, 30, 3
    am = torch.randn(B, T, V, generator=gen, requires_grad=True)
    lm = torch.randn(B, S + 1, V, generator=gen, requires_grad=True)
    symbols = torch.randint(1, V, (B, S), generator=gen)
    largest = [0]

    class RecordSizes(dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    largest[0] = max(largest[0], t.numel())
            return out

    with RecordSizes():
        simple, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(lm, am, symbols, 0, reduction="sum", return_grad=True, **NATIVE)
        ranges = rnnt.get_rnnt_prune_ranges(px_grad, py_grad, None, s_range, **NATIVE)
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(am, lm, ranges, **NATIVE)
        pruned = rnnt.rnnt_loss_pruned(torch.tanh(am_pruned + lm_pruned), symbols, ranges, 0, reduction="sum", **NATIVE)
        (simple + pruned).backward()
    assert largest[0] == B * T * s_range * V  # the pruned logits; (B, T, S+1, V) would be 3x that


# --------------------------------------------------------------------- recursion + grads


@pytest.mark.parametrize("modified", [False, True])
def test_occupations_are_gradients_and_probabilities(modified: bool) -> None:
    gen = torch.Generator().manual_seed(10)
    B, S, T = 3, 4, 7
    px = torch.randn(B, S, T + (0 if modified else 1), generator=gen, dtype=torch.float64, requires_grad=True)
    py = torch.randn(B, S + 1, T, generator=gen, dtype=torch.float64, requires_grad=True)
    boundary = _boundary([4, 2, 3], [7, 5, 6])
    scores, (px_grad, py_grad) = rnnt.mutual_information_recursion(px, py, boundary, return_grad=True, **NATIVE)
    want_px, want_py = torch.autograd.grad(scores.sum(), (px, py))
    torch.testing.assert_close(px_grad, want_px, rtol=0, atol=0)
    torch.testing.assert_close(py_grad, want_py, rtol=0, atol=0)
    # Every path leaves each frame t < T_b exactly once: by a blank (and, modified, also by a symbol).
    leaving = py_grad + (torch.nn.functional.pad(px_grad, (0, 0, 0, 1)) if modified else 0)
    for b, t_len in enumerate([7, 5, 6]):
        torch.testing.assert_close(leaving[b, :, :t_len].sum(0), torch.ones(t_len, dtype=torch.float64))
        assert leaving[b, :, t_len:].abs().sum() == 0


@pytest.mark.parametrize("modified,begins", itertools.product([False, True], [False, True]))
def test_gradcheck_mutual_information_recursion(modified: bool, begins: bool) -> None:
    gen = torch.Generator().manual_seed(11)
    B, S, T = 3, 3, 5
    px = torch.randn(B, S, T + (0 if modified else 1), generator=gen, dtype=torch.float64, requires_grad=True)
    py = torch.randn(B, S + 1, T, generator=gen, dtype=torch.float64, requires_grad=True)
    boundary = torch.tensor([[0, 0, 3, 5], [1, 1, 3, 4], [0, 2, 2, 5]]) if begins else None
    assert torch.autograd.gradcheck(lambda x, y: rnnt.mutual_information_recursion(x, y, boundary, **NATIVE), (px, py))


@pytest.mark.parametrize("rnnt_type", RNNT_TYPES)
def test_gradcheck_losses(rnnt_type: str) -> None:
    gen = torch.Generator().manual_seed(12)
    B, T, S, C = 2, 4, 2, 4
    lm = torch.randn(B, S + 1, C, generator=gen, dtype=torch.float64, requires_grad=True)
    am = torch.randn(B, T, C, generator=gen, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(B, T, S + 1, C, generator=gen, dtype=torch.float64, requires_grad=True)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    boundary = _boundary([2, 1], [4, 3])
    kw = dict(boundary=boundary, rnnt_type=rnnt_type, delay_penalty=0.2, reduction="sum", **NATIVE)
    ranges = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]]).unsqueeze(2) + torch.arange(2)
    pruned_logits = torch.randn(B, T, 2, C, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda l, a: rnnt.rnnt_loss_simple(l, a, symbols, 0, **kw), (lm, am))
    assert torch.autograd.gradcheck(
        lambda l, a: rnnt.rnnt_loss_smoothed(l, a, symbols, 0, lm_only_scale=0.2, am_only_scale=0.1, **kw), (lm, am)
    )
    assert torch.autograd.gradcheck(lambda x: rnnt.rnnt_loss(x, symbols, 0, **kw), (logits,))
    assert torch.autograd.gradcheck(lambda x: rnnt.rnnt_loss_pruned(x, symbols, ranges, 0, **kw), (pruned_logits,))


def test_float32_agrees_with_float64() -> None:
    gen = torch.Generator().manual_seed(13)
    B, T, S, C = 4, 30, 10, 20
    lm = torch.randn(B, S + 1, C, generator=gen, dtype=torch.float64)
    am = torch.randn(B, T, C, generator=gen, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=gen)
    want = rnnt.rnnt_loss_simple(lm, am, symbols, 0, reduction="none", **NATIVE)
    got = rnnt.rnnt_loss_simple(lm.float(), am.float(), symbols, 0, reduction="none", **NATIVE)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-4)
