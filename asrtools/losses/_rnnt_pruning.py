"""Native pruning bounds for the pruned RNN-T loss: choose per-frame symbol windows.

From the arc occupations of the simple (trivial-joiner) lattice, `prune_ranges` picks for each
frame t the window of `s_range` consecutive symbol positions that best holds the paths' nodes
on that frame, then adjusts the window starts so that they start at 0, never decrease, never
skip a symbol (consecutive starts differ by < s_range; by < 2 for modified RNN-T, which emits
at most one symbol per frame), and so that the last frame of every item covers its last symbol.
`prune_inputs` gathers the encoder/decoder outputs for those windows.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from asrtools.losses._rnnt_recursion import default_boundary


def _running_min_from_right(x: Tensor) -> Tensor:
    """`y[..., i] = min(x[..., i:])`: the largest non-decreasing sequence below `x`."""
    return torch.flip(torch.cummin(torch.flip(x, dims=(-1,)), dim=-1)[0], dims=(-1,))


def _make_valid_starts(s_begin: Tensor, max_step: int) -> Tensor:
    """Lower `s_begin` `(B, T)` so it is non-negative, non-decreasing and rises by < `max_step` per frame.

    Non-decreasing: running min from the right. Step bound: `s[i+1] - s[i] <= max_step - 1` is
    the same as `(max_step - 1) * i - s[i]` being non-decreasing, so the running min is taken
    again on that transform (and the start clamped to >= 0 before transforming back).
    """
    T = s_begin.shape[1]
    slope = (max_step - 1) * torch.arange(T, device=s_begin.device)
    s_begin = _running_min_from_right(s_begin)
    transformed = _running_min_from_right(slope - s_begin).clamp(min=0)
    return slope - transformed


def _window_sums(x: Tensor, width: int) -> Tensor:
    """`y[:, k] = x[:, k] + ... + x[:, k + width - 1]` along dim 1, added left to right.

    (Explicit sequential adds, so equal inputs give bit-identical sums, whatever the torch build:
    the window choice is an argmax over values that can nearly tie.)
    """
    count = x.shape[1] - width + 1
    total = x[:, :count].clone()
    for offset in range(1, width):
        total += x[:, offset : offset + count]
    return total


def prune_ranges(px_grad: Tensor, py_grad: Tensor, boundary: Optional[Tensor], s_range: int) -> Tensor:
    """Symbol windows per frame from the simple lattice's arc occupations.

    A window of rows `[k, k + s_range)` on frame t scores the blank-arc occupation inside it
    (each path leaves frame t by exactly one blank arc) minus the occupation of the symbol arc
    that enters the window from row k - 1 on that frame (paths that started the frame below
    the window). The best-scoring start (first one on ties) is then made valid.

    Args:
      px_grad: `(B, S, T+1)` (regular) or `(B, S, T)` (modified) symbol-arc occupations.
      py_grad: `(B, S+1, T)` blank-arc occupations.
      boundary: optional `(B, 4)` int64 `[0, 0, S_b, T_b]`.
      s_range: window size, >= 2 for regular RNN-T (>= 1 otherwise); values > S are treated
        as S+1 (nothing pruned).

    Returns:
      `(B, T, s_range)` int64 symbol positions; `ranges[b, t] = start + arange(s_range)`.
    """
    B, S, T1 = px_grad.shape
    T = py_grad.shape[2]
    if py_grad.shape != (B, S + 1, T) or T1 not in (T, T + 1):
        raise ValueError(f"px_grad {tuple(px_grad.shape)} and py_grad {tuple(py_grad.shape)} do not form one lattice")
    is_regular = T1 == T + 1
    if s_range < (2 if is_regular else 1):
        raise ValueError(f"s_range {s_range}: no path survives pruning; use >= {2 if is_regular else 1}")
    if boundary is None:
        boundary = default_boundary(B, S, T, px_grad.device)
    s_range = min(s_range, S + 1)
    starts = S + 2 - s_range  # candidate window starts 0 .. S + 1 - s_range
    blank_mass = _window_sums(py_grad, s_range)  # (B, starts, T)
    entering = torch.cat((px_grad.new_zeros((B, 1, T)), px_grad[:, : starts - 1, :T]), dim=1)
    s_begin = torch.argmax(blank_mass - entering, dim=1)  # (B, T)

    # From each item's last frame on (padding included), the window must hold its last symbol.
    frames = torch.arange(T, device=px_grad.device).reshape(1, T)
    before_last = frames < boundary[:, 3].reshape(B, 1) - 1
    last_start = (boundary[:, 2].reshape(B, 1) - s_range + 1).clamp(min=0)
    s_begin = torch.where(before_last, s_begin, last_start)
    s_begin = _make_valid_starts(s_begin, s_range if is_regular else 2)
    return s_begin.unsqueeze(2) + torch.arange(s_range, device=px_grad.device)


def prune_inputs(am: Tensor, lm: Tensor, ranges: Tensor) -> Tuple[Tensor, Tensor]:
    """Encoder and decoder outputs at the kept (frame, symbol position) pairs.

    Args:
      am: `(B, T, C)` encoder output (joiner input).
      lm: `(B, S+1, C)` decoder output.
      ranges: `(B, T, s_range)` int64 from `prune_ranges`.

    Returns:
      `(am_pruned, lm_pruned)`, both `(B, T, s_range, C)`; `am_pruned` is a broadcast view.
    """
    B, T, R = ranges.shape
    C = lm.shape[2]
    if am.shape[:2] != (B, T) or lm.shape[0] != B or am.shape[2] != C:
        raise ValueError(f"am {tuple(am.shape)}, lm {tuple(lm.shape)} and ranges {tuple(ranges.shape)} disagree")
    am_pruned = am.unsqueeze(2).expand(B, T, R, C)
    # Row lookup (backward: index_add_ of whole rows), much cheaper than an element-wise gather.
    rows = (ranges + lm.shape[1] * torch.arange(B, device=ranges.device).reshape(B, 1, 1)).reshape(-1)
    lm_pruned = lm.reshape(B * lm.shape[1], C).index_select(0, rows).reshape(B, T, R, C)
    return am_pruned, lm_pruned
