"""Arc-level terms of the separator-transducer-segmenter loss (METHODS.md §3).

Both act on the symbol-arc log-probs `px` of an RNN-T lattice (`(B, S, T+1)` for a regular
transducer, `(B, S, T)` for modified; `px[b, s, t]` = emitting symbol s on frame t), as
returned by `asrtools.losses.rnnt.get_rnnt_logprobs_smoothed` / `..._pruned`, before the
lattice sum `mutual_information_recursion`:

- `eot_latency_penalty`: subtracts `weight * lateness` from the arcs that emit an `<eot>`
  after the end of the turn it closes, lateness = emission time `(t + 1) * frame_seconds`
  minus the reference turn end, in seconds (0 when on time). Every other arc, and every
  `<eot>` arc on time, is left exactly as it was: the penalty discourages late `<eot>`
  only, and its gradient w.r.t. anything but those arcs is zero.
- `fast_emit`: FastEmit regularisation (Yu et al., 2021) as a zero-valued term whose
  gradient scales the gradient of every symbol (non-blank) arc by `1 + lambda`: with
  occupation probabilities `gamma` of the symbol arcs, the RNN-T loss has gradient
  `-gamma` w.r.t. `px`, and `-lambda * sum(stopgrad(gamma) * px)` adds `-lambda * gamma`.
  Its value is subtracted again, so the logged loss stays the RNN-T loss.
"""
from __future__ import annotations

import torch
from torch import Tensor


def eot_deadlines(symbols: Tensor, eot_id: int, positions_times: list) -> Tensor:
    """Per symbol position, the end time (s) of the turn an `<eot>` closes; +inf elsewhere.

    Args:
      symbols: (N, S) int64 padded target ids.
      eot_id: id of `<eot>`.
      positions_times: N lists of `(position, end time)` of each target's `<eot>` tokens.

    Returns:
      (N, S) float32 deadlines.
    """
    deadlines = torch.full(symbols.shape, float("inf"), dtype=torch.float32)
    for n, pairs in enumerate(positions_times):
        for position, end in pairs:
            if int(symbols[n, position]) != eot_id:
                raise ValueError(f"target {n}: position {position} holds {int(symbols[n, position])}, not <eot>")
            deadlines[n, position] = float(end)
    return deadlines.to(symbols.device)


def eot_lateness(deadlines: Tensor, num_columns: int, frame_seconds: float) -> Tensor:
    """Seconds by which an emission on each frame is late for each symbol's deadline.

    Args:
      deadlines: (N, S) float end times, +inf for symbols without one.
      num_columns: columns of `px` (T+1 regular, T modified).
      frame_seconds: duration of one encoder frame.

    Returns:
      (N, S, num_columns) float, `max(0, (t + 1) * frame_seconds - deadline)`; 0 at +inf.
    """
    emit_time = (torch.arange(num_columns, device=deadlines.device, dtype=torch.float32) + 1) * frame_seconds
    return (emit_time.view(1, 1, -1) - deadlines.unsqueeze(2)).clamp(min=0.0)


def eot_latency_penalty(px: Tensor, deadlines: Tensor, frame_seconds: float, weight: float) -> Tensor:
    """`px` with `weight * lateness` subtracted from late `<eot>` arcs (see the module doc).

    Args:
      px: (N, S, T') symbol-arc log-probs.
      deadlines: (N, S) from `eot_deadlines`.
      frame_seconds: duration of one encoder frame.
      weight: nats per second of lateness (>= 0; 0 returns `px` itself).

    Returns:
      (N, S, T') penalised arc log-probs.
    """
    if weight == 0.0:
        return px
    if weight < 0:
        raise ValueError(f"latency penalty weight {weight} must be >= 0")
    late = eot_lateness(deadlines, px.shape[2], frame_seconds).to(px.dtype)
    return px - weight * late


def fast_emit(px: Tensor, px_occupation: Tensor, fastemit_lambda: float) -> Tensor:
    """FastEmit's zero-valued regulariser (see the module doc).

    Args:
      px: (N, S, T') symbol-arc log-probs (the ones the loss summed; -inf arcs are skipped).
      px_occupation: (N, S, T') their occupation probabilities (`return_grad=True`).
      fastemit_lambda: lambda >= 0.

    Returns:
      A scalar that is 0 in value; add it to the (sum-reduced) RNN-T loss.
    """
    if fastemit_lambda == 0.0:
        return px.new_zeros(())
    finite = torch.isfinite(px)
    term = -fastemit_lambda * (px_occupation.detach() * torch.where(finite, px, torch.zeros_like(px))).sum()
    return term - term.detach()
