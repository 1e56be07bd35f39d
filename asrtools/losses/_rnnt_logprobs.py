"""Native arc log-probs `(px, py)` of the RNN-T lattice, for `mutual_information_recursion`.

Each builder turns a transducer's outputs into the symbol-arc log-probs `px` and the
blank-arc log-probs `py` of the (B, S+1, T+1) node lattice:

- `simple_logprobs`: trivial joiner `logit(t, s) = am[t] + lm[s]`; its normaliser is one
  batched matmul of `exp(lm)` and `exp(am)` (with max-shifts), so the (B, T, S+1, C) tensor is
  never built;
- `smoothed_logprobs`: `simple_logprobs` interpolated in log space with LM-only and AM-only
  (unigram-LM) arc log-probs;
- `joint_logprobs`: a full joiner output `(B, T, S+1, C)`;
- `pruned_logprobs`: a pruned joiner output `(B, T, s_range, C)`; arcs outside the windows
  are -inf.

Shapes: `px` is `(B, S, T+1)` for rnnt_type "regular" (column `T_b` is -inf: no symbol after
the last frame) and `(B, S, T)` for "modified" / "constrained"; `py` is `(B, S+1, T)`.
"constrained" adds to each symbol arc the blank arc of the next context on the same frame.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

RNNT_TYPES = ("regular", "modified", "constrained")


def _append_no_symbol_frame(px: Tensor) -> Tensor:
    """Regular RNN-T: add the column t = T of `px` (B, S, T) -> (B, S, T+1), all -inf."""
    B, S, _ = px.shape
    return torch.cat((px, px.new_full((B, S, 1), float("-inf"))), dim=2)


def _no_symbol_after_last_frame(px: Tensor, boundary: Optional[Tensor]) -> Tensor:
    """Regular RNN-T with ragged lengths: `px[b, :, T_b] = -inf`. `px`: (B, S, T+1)."""
    if boundary is None:
        return px
    B, S, _ = px.shape
    index = boundary[:, 3].reshape(B, 1, 1).expand(B, S, 1)
    return px.scatter(2, index, float("-inf"))


def finish_arcs(px: Tensor, py: Tensor, rnnt_type: str, boundary: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """Apply the lattice type to `px` (B, S, T) and `py` (B, S+1, T); return `(px, py)`."""
    if rnnt_type == "regular":
        px = _no_symbol_after_last_frame(_append_no_symbol_frame(px), boundary)
    elif rnnt_type == "constrained":
        px = px + py[:, 1:, :]
    return px, py


def add_delay_penalty(px: Tensor, delay_penalty: float, boundary: Optional[Tensor], rnnt_type: str) -> Tensor:
    """Add `delay_penalty * ((T_b - 1) / 2 - t)` to every symbol arc of frame t.

    Args:
      px: `(B, S, T+1)` (regular) or `(B, S, T)` symbol-arc log-probs.
      delay_penalty: >= 0; 0 returns `px` unchanged.
      boundary: optional `(B, 4)` int64; `T_b = boundary[:, 3]`, else the padded T.
      rnnt_type: "regular", "modified" or "constrained".
    """
    if delay_penalty == 0.0:
        return px
    B, _, T1 = px.shape
    T = T1 - 1 if rnnt_type == "regular" else T1
    if boundary is None:
        centre = px.new_full((B, 1, 1), (T - 1) / 2)
    else:
        centre = ((boundary[:, 3] - 1).to(px.dtype) / 2).reshape(B, 1, 1)
    frames = torch.arange(T1, device=px.device, dtype=px.dtype).reshape(1, 1, T1)
    return px + (centre - frames) * delay_penalty


def _shifted_exp(x: Tensor) -> Tuple[Tensor, Tensor]:
    """`(exp(x - max), max)` over the last dim.

    The max is not detached, and is `torch.max` (gradient to one arg-max), as in k2: the
    normaliser adds a tiny constant before its log (`_log_normalizers`), so the max no
    longer cancels out exactly where the exponentials underflow; there its gradient is
    what keeps the loss's gradient equal to k2's.
    """
    x_max = torch.max(x, dim=-1, keepdim=True)[0]
    return (x - x_max).exp(), x_max


def _log_normalizers(lm_probs: Tensor, lm_max: Tensor, am_probs: Tensor, am_max: Tensor) -> Tensor:
    """`log sum_c exp(lm[s, c] + am[t, c])` for all (s, t): `(B, S+1, T)`, one batched matmul.

    As in k2, the smallest normal number of the dtype is added before the log: when the
    shifted LM and AM distributions do not overlap (e.g. lm = [0, -110], am = [-110, 0] in
    float32) every product underflows to 0, and log(0) would make the loss and its
    gradients NaN instead of large and finite.
    """
    products = torch.matmul(lm_probs, am_probs.transpose(1, 2)) + torch.finfo(lm_probs.dtype).tiny
    return products.log() + lm_max + am_max.transpose(1, 2)


def _symbol_and_blank_scores(lm: Tensor, am: Tensor, symbols: Tensor, termination_symbol: int):
    """Unnormalised scores of the trivial joiner on the arcs.

    Returns `(px_am (B, S, T), px_lm (B, S, 1), py_am (B, 1, T), py_lm (B, S+1, 1))`.
    """
    B, T, _ = am.shape
    S = symbols.shape[1]
    px_am = am.gather(2, symbols.unsqueeze(1).expand(B, T, S)).transpose(1, 2)
    px_lm = lm[:, :S].gather(2, symbols.unsqueeze(2))
    py_am = am[:, :, termination_symbol].unsqueeze(1)
    py_lm = lm[:, :, termination_symbol].unsqueeze(2)
    return px_am, px_lm, py_am, py_lm


def _check_simple_inputs(lm: Tensor, am: Tensor, symbols: Tensor) -> None:
    if lm.dim() != 3 or am.dim() != 3 or symbols.dim() != 2:
        raise ValueError("expected lm (B, S+1, C), am (B, T, C), symbols (B, S)")
    B, S1, C = lm.shape
    if am.shape[0] != B or am.shape[2] != C or symbols.shape != (B, S1 - 1):
        raise ValueError(
            f"inconsistent shapes: lm {tuple(lm.shape)}, am {tuple(am.shape)}, symbols {tuple(symbols.shape)}; "
            "expected lm (B, S+1, C), am (B, T, C), symbols (B, S)"
        )


def simple_logprobs(
    lm: Tensor, am: Tensor, symbols: Tensor, termination_symbol: int, rnnt_type: str, boundary: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """Arc log-probs of the trivial joiner `log_softmax(am[t] + lm[s])`.

    Args:
      lm: `(B, S+1, C)` decoder (LM) part of the logits.
      am: `(B, T, C)` encoder (AM) part of the logits.
      symbols: `(B, S)` int64 label sequences.
      termination_symbol: the blank / next-frame symbol id.
      rnnt_type: "regular", "modified" or "constrained".
      boundary: optional `(B, 4)` int64 `[0, 0, S_b, T_b]`.

    Returns:
      `(px, py)`: `(B, S, T+1)` or `(B, S, T)`, and `(B, S+1, T)`.
    """
    _check_simple_inputs(lm, am, symbols)
    lm_probs, lm_max = _shifted_exp(lm)
    am_probs, am_max = _shifted_exp(am)
    normalizers = _log_normalizers(lm_probs, lm_max, am_probs, am_max)
    px_am, px_lm, py_am, py_lm = _symbol_and_blank_scores(lm, am, symbols, termination_symbol)
    S = symbols.shape[1]
    px = px_am + px_lm - normalizers[:, :S, :]
    py = py_am + py_lm - normalizers
    return finish_arcs(px, py, rnnt_type, boundary)


def smoothed_logprobs(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float,
    am_only_scale: float,
    rnnt_type: str,
    boundary: Optional[Tensor],
) -> Tuple[Tensor, Tensor]:
    """Arc log-probs interpolated in log space between three models.

    `(1 - lm_only_scale - am_only_scale) * combined + lm_only_scale * lm_only
    + am_only_scale * am_only`, where combined is `simple_logprobs`, lm_only is
    `log_softmax(lm[s])`, and am_only is `log_softmax(am[t] + log unigram)` with the unigram LM
    = `softmax(lm)` averaged over all batch items and positions.

    Args: as `simple_logprobs`, plus the two scales (each >= 0). Returns `(px, py)` likewise.
    """
    _check_simple_inputs(lm, am, symbols)
    B, S1, C = lm.shape
    S = S1 - 1
    lm_probs, lm_max = _shifted_exp(lm)
    am_probs, am_max = _shifted_exp(am)
    normalizers = _log_normalizers(lm_probs, lm_max, am_probs, am_max)
    lm_sums = lm_probs.sum(dim=2, keepdim=True)
    # Floored like k2 so that a symbol the LM never predicts has a finite log-probability.
    unigram = (lm_probs / lm_sums).mean(dim=(0, 1)) + torch.finfo(lm_probs.dtype).tiny  # (C,)
    am_only_normalizers = (torch.matmul(am_probs, unigram).log().unsqueeze(2) + am_max).transpose(1, 2)  # (B, 1, T)
    lm_only_normalizers = lm_sums.log() + lm_max  # (B, S+1, 1)
    log_unigram = unigram.log()

    px_am, px_lm, py_am, py_lm = _symbol_and_blank_scores(lm, am, symbols, termination_symbol)
    px_combined = px_am + px_lm - normalizers[:, :S, :]
    py_combined = py_am + py_lm - normalizers
    px_lm_only = px_lm - lm_only_normalizers[:, :S, :]
    py_lm_only = py_lm - lm_only_normalizers
    px_am_only = px_am + log_unigram[symbols].unsqueeze(2) - am_only_normalizers
    py_am_only = py_am + log_unigram[termination_symbol] - am_only_normalizers

    combined_scale = 1.0 - lm_only_scale - am_only_scale
    px = px_combined * combined_scale
    py = py_combined * combined_scale
    # A zero scale drops its term (multiplying would still be exact: all terms are finite).
    if lm_only_scale != 0.0:
        px = px + px_lm_only * lm_only_scale
        py = py + py_lm_only * lm_only_scale
    if am_only_scale != 0.0:
        px = px + px_am_only * am_only_scale
        py = py + py_am_only * am_only_scale
    return finish_arcs(px, py, rnnt_type, boundary)


class _JoinerArcLogprobs(torch.autograd.Function):
    """Log-softmax of joiner logits read at one symbol and at the blank, with a fused backward.

    forward: `(logits (B, T, R, C), symbol_ids (B, T, R), blank)` -> `(px, py)`, both `(B, T, R)`:
    `px = logits[..., symbol_ids] - lse`, `py = logits[..., blank] - lse`, `lse = logsumexp(logits)`.
    backward writes `-softmax(logits) * (g_px + g_py)` plus the two one-hot terms into a
    single new `(B, T, R, C)` tensor (autograd through gather/select/logsumexp would allocate
    and add up three of them).
    """

    @staticmethod
    def forward(ctx, logits: Tensor, symbol_ids: Tensor, blank: int):  # type: ignore[override]
        lse = torch.logsumexp(logits, dim=3)
        px = logits.gather(3, symbol_ids.unsqueeze(3)).squeeze(3) - lse
        py = logits[:, :, :, blank] - lse
        ctx.save_for_backward(logits, lse, symbol_ids)
        ctx.blank = blank
        return px, py

    @staticmethod
    def backward(ctx, grad_px: Tensor, grad_py: Tensor):  # type: ignore[override]
        logits, lse, symbol_ids = ctx.saved_tensors
        grad = torch.sub(logits, lse.unsqueeze(3))
        grad.exp_()
        grad.mul_(torch.add(grad_px, grad_py).neg_().unsqueeze(3))
        grad.scatter_add_(3, symbol_ids.unsqueeze(3), grad_px.unsqueeze(3))
        grad[:, :, :, ctx.blank] += grad_py
        return grad, None, None


def joint_logprobs(
    logits: Tensor, symbols: Tensor, termination_symbol: int, rnnt_type: str, boundary: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """Arc log-probs of a full joiner output.

    Args:
      logits: `(B, T, S+1, C)` unnormalised joiner output.
      symbols: `(B, S)` int64; termination_symbol, rnnt_type, boundary as `simple_logprobs`.

    Returns `(px, py)` as `simple_logprobs`.
    """
    if logits.dim() != 4 or symbols.dim() != 2 or symbols.shape != (logits.shape[0], logits.shape[2] - 1):
        raise ValueError(f"expected logits (B, T, S+1, C) and symbols (B, S), got {tuple(logits.shape)} and {tuple(symbols.shape)}")
    B, T, S1, _ = logits.shape
    S = S1 - 1
    # Position S has no symbol to emit; read the blank there (its px is dropped).
    padded_symbols = torch.cat((symbols, symbols.new_full((B, 1), termination_symbol)), dim=1)
    px, py = _JoinerArcLogprobs.apply(logits, padded_symbols.unsqueeze(1).expand(B, T, S1), termination_symbol)
    px = px[:, :, :S].transpose(1, 2)
    py = py.transpose(1, 2)
    return finish_arcs(px, py, rnnt_type, boundary)


def pruned_logprobs(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    rnnt_type: str,
    boundary: Optional[Tensor],
) -> Tuple[Tensor, Tensor]:
    """Arc log-probs of a pruned joiner output, placed on the full lattice (-inf outside).

    Args:
      logits: `(B, T, s_range, C)`: `logits[b, t, r]` is the joiner output at symbol position
        `ranges[b, t, r]` on frame t.
      symbols: `(B, S)` int64.
      ranges: `(B, T, s_range)` int64 consecutive symbol positions in `[0, S]`.
      termination_symbol, rnnt_type, boundary: as `simple_logprobs`.

    Returns `(px, py)` as `simple_logprobs`.
    """
    if logits.dim() != 4 or ranges.shape != logits.shape[:3]:
        raise ValueError(f"expected logits (B, T, s_range, C) and ranges (B, T, s_range), got {tuple(logits.shape)} and {tuple(ranges.shape)}")
    B, T, R, _ = logits.shape
    S = symbols.shape[1]
    # The symbol that would be emitted at each kept position (position S emits nothing).
    padded_symbols = torch.cat((symbols, symbols.new_full((B, 1), termination_symbol)), dim=1)
    window_symbols = padded_symbols.gather(1, ranges.reshape(B, T * R)).reshape(B, T, R)
    px_window, py_window = _JoinerArcLogprobs.apply(logits, window_symbols, termination_symbol)
    outside = logits.new_full((B, T, S + 1), float("-inf"))
    px = outside.scatter(2, ranges, px_window)[:, :, :S].transpose(1, 2)
    py = outside.scatter(2, ranges, py_window).transpose(1, 2)
    return finish_arcs(px, py, rnnt_type, boundary)
