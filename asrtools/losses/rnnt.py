"""Pruned RNN-T loss with k2's Python API (k2 1.23.4), on k2 or on a native PyTorch backend.

Same names and keyword arguments as `k2.rnnt_loss` / `k2.mutual_information`:
`rnnt_loss_simple`, `rnnt_loss_smoothed`, `get_rnnt_prune_ranges`, `do_rnnt_pruning`,
`rnnt_loss_pruned`, `rnnt_loss`, `mutual_information_recursion`, and the arc log-prob builders
`get_rnnt_logprobs_smoothed` / `get_rnnt_logprobs_pruned` (for losses that change arcs before
the recursion, e.g. the multi-talker `<eot>` latency penalty). Each also takes
`backend`: "k2" forwards the call to k2, "native" runs asrtools' own implementation, and
"auto" (the default) uses k2 when `import k2` works — unless the environment variable
`ASRTOOLS_RNNT_BACKEND` (k2 | native) says otherwise.

Typical use (icefall-style training step)::

    simple_loss, (px_grad, py_grad) = rnnt_loss_smoothed(
        lm=simple_lm_proj(decoder_out), am=simple_am_proj(encoder_out), symbols=y_padded,
        termination_symbol=blank_id, lm_only_scale=0.25, am_only_scale=0.0,
        boundary=boundary, reduction="sum", return_grad=True)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range=5)
    am_pruned, lm_pruned = do_rnnt_pruning(joiner.encoder_proj(encoder_out),
                                           joiner.decoder_proj(decoder_out), ranges)
    logits = joiner(am_pruned, lm_pruned)                         # (B, T, s_range, V)
    pruned_loss = rnnt_loss_pruned(logits, y_padded, ranges, blank_id, boundary, reduction="sum")

Shapes: B batch, T frames, S symbols (labels, without blank), C vocabulary size;
`boundary` is `(B, 4)` int64 rows `[0, 0, S_b, T_b]` (default `[0, 0, S, T]`).
Losses are negated total log-probs; `reduction` is "none" (`(B,)`), "mean" or "sum".

The native backend agrees with k2 1.23.4 to ~1e-14 in float64 (tests/test_rnnt_k2_*.py), with
these deliberate differences: the delay penalty is computed in the arcs' dtype (k2 computes it
in float32 when `boundary` is given, ~1e-8 relative for a non-dyadic penalty); a negative
`delay_penalty` is an error on both backends (k2 silently ignores it); native
`get_rnnt_prune_ranges` also accepts S > T, S = 0 and `boundary=None`, which k2 rejects; an
item without any valid alignment gets loss inf and zero gradients.
"""
from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from asrtools.errors import ConfigError
from asrtools.losses._rnnt_logprobs import (
    RNNT_TYPES,
    add_delay_penalty,
    joint_logprobs,
    pruned_logprobs,
    simple_logprobs,
    smoothed_logprobs,
)
from asrtools.losses._rnnt_pruning import prune_inputs, prune_ranges
from asrtools.losses._rnnt_recursion import mutual_information_recursion_native

BACKENDS = ("auto", "k2", "native")
REDUCTIONS = ("none", "mean", "sum")
BACKEND_ENV = "ASRTOOLS_RNNT_BACKEND"

LossAndGrads = Tuple[Tensor, Tuple[Tensor, Tensor]]

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "RNNT_TYPES",
    "do_rnnt_pruning",
    "get_rnnt_logprobs_pruned",
    "get_rnnt_logprobs_smoothed",
    "get_rnnt_prune_ranges",
    "k2_available",
    "mutual_information_recursion",
    "resolve_backend",
    "rnnt_loss",
    "rnnt_loss_pruned",
    "rnnt_loss_simple",
    "rnnt_loss_smoothed",
]


@functools.lru_cache(maxsize=None)
def _import_k2() -> Optional[ModuleType]:
    try:
        import k2
    except Exception:  # ImportError, or a k2 build that fails to load against this torch
        return None
    return k2


def k2_available() -> bool:
    """Whether `import k2` works in this environment."""
    return _import_k2() is not None


def resolve_backend(backend: str = "auto") -> str:
    """Turn `backend` ("auto" | "k2" | "native") into "k2" or "native".

    "auto" is `$ASRTOOLS_RNNT_BACKEND` when set, else "k2" when k2 imports, else "native".
    Raises `ConfigError` for an unknown name, or for "k2" when k2 is not importable.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"rnnt backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        override = os.environ.get(BACKEND_ENV, "")
        if override:
            if override not in ("k2", "native"):
                raise ConfigError(f"{BACKEND_ENV}={override!r}: expected k2 or native")
            backend = override
        else:
            backend = "k2" if k2_available() else "native"
    if backend == "k2" and not k2_available():
        raise ConfigError("rnnt backend 'k2': k2 is not importable here (use backend 'native')")
    return backend


def _k2() -> ModuleType:
    module = _import_k2()
    assert module is not None
    return module


def _check_options(rnnt_type: str = "regular", reduction: Optional[str] = "mean", delay_penalty: float = 0.0) -> None:
    if rnnt_type not in RNNT_TYPES:
        raise ConfigError(f"rnnt_type {rnnt_type!r}: expected one of {', '.join(RNNT_TYPES)}")
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction {reduction!r}: expected one of {', '.join(REDUCTIONS)}")
    if delay_penalty < 0.0:
        raise ConfigError(f"delay_penalty {delay_penalty}: must be >= 0")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _loss_from_arcs(
    px: Tensor,
    py: Tensor,
    boundary: Optional[Tensor],
    rnnt_type: str,
    delay_penalty: float,
    reduction: str,
    return_grad: bool = False,
) -> Union[Tensor, LossAndGrads]:
    """Delay penalty, lattice sum, negation and reduction; optionally the arc occupations."""
    px = add_delay_penalty(px, delay_penalty, boundary, rnnt_type)
    if return_grad:
        scores, grads = mutual_information_recursion_native(px, py, boundary, return_grad=True)
        return _reduce(-scores, reduction), grads
    scores = mutual_information_recursion_native(px, py, boundary)
    return _reduce(-scores, reduction)


def mutual_information_recursion(
    px: Tensor,
    py: Tensor,
    boundary: Optional[Tensor] = None,
    return_grad: bool = False,
    backend: str = "auto",
) -> Union[Tensor, LossAndGrads]:
    """Total log-prob of all monotonic paths through the lattice given by `px` and `py`.

    `p[b, s_begin, t_begin] = 0`; regular (`px` has T+1 columns):
    `p[s, t] = logaddexp(p[s-1, t] + px[s-1, t], p[s, t-1] + py[s, t-1])`; modified (`px` has T
    columns): the symbol term is `p[s-1, t-1] + px[s-1, t-1]`.

    Args:
      px: `(B, S, T+1)` (regular) or `(B, S, T)` (modified) symbol-arc log-probs.
      py: `(B, S+1, T)` blank-arc log-probs, same dtype as `px`.
      boundary: optional `(B, 4)` int64 rows `[s_begin, t_begin, s_end, t_end]`; default `[0, 0, S, T]`.
      return_grad: also return `(px_grad, py_grad)`, the arc occupation probabilities
        (= gradient of `scores.sum()`), shaped like `px` and `py`.
      backend: "auto", "k2" or "native".

    Returns:
      `(B,)` scores `p[b, s_end, t_end]`, or `(scores, (px_grad, py_grad))`.
    """
    if resolve_backend(backend) == "k2":
        return _k2().mutual_information_recursion(px=px, py=py, boundary=boundary, return_grad=return_grad)
    return mutual_information_recursion_native(px, py, boundary, return_grad=return_grad)


def rnnt_loss_simple(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    return_grad: bool = False,
    backend: str = "auto",
) -> Union[Tensor, LossAndGrads]:
    """RNN-T loss with the trivial joiner `logits(t, s) = am[t] + lm[s]`; never builds (B, T, S+1, C).

    Args:
      lm: `(B, S+1, C)` decoder (LM) projection.
      am: `(B, T, C)` encoder (AM) projection.
      symbols: `(B, S)` int64 labels.
      termination_symbol: blank id, `0 <= termination_symbol < C`.
      boundary: optional `(B, 4)` int64 `[0, 0, S_b, T_b]`.
      rnnt_type: "regular", "modified" (one symbol per frame, a symbol also advances the frame)
        or "constrained" (modified, plus the next context's blank on the same frame).
      delay_penalty: >= 0; adds `delay_penalty * ((T_b - 1) / 2 - t)` to symbol arcs.
      reduction: "none" (`(B,)`), "mean" or "sum" over the batch.
      return_grad: also return `(px_grad, py_grad)`, the arc occupations (input to
        `get_rnnt_prune_ranges`).
      backend: "auto", "k2" or "native".

    Returns:
      The loss, or `(loss, (px_grad, py_grad))` when `return_grad`.
    """
    _check_options(rnnt_type, reduction, delay_penalty)
    if resolve_backend(backend) == "k2":
        return _k2().rnnt_loss_simple(
            lm=lm, am=am, symbols=symbols, termination_symbol=termination_symbol, boundary=boundary,
            rnnt_type=rnnt_type, delay_penalty=delay_penalty, reduction=reduction, return_grad=return_grad,
        )
    px, py = simple_logprobs(lm, am, symbols, termination_symbol, rnnt_type, boundary)
    return _loss_from_arcs(px, py, boundary, rnnt_type, delay_penalty, reduction, return_grad)


def rnnt_loss_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    return_grad: bool = False,
    backend: str = "auto",
) -> Union[Tensor, LossAndGrads]:
    """`rnnt_loss_simple` with arc log-probs smoothed toward LM-only and AM-only models.

    Arc log-prob = `(1 - lm_only_scale - am_only_scale) * combined + lm_only_scale *
    log_softmax(lm[s]) + am_only_scale * log_softmax(am[t] + log unigram_lm)`, the unigram LM
    being `softmax(lm)` averaged over the batch and positions.

    Args:
      lm, am, symbols, termination_symbol, boundary, rnnt_type, delay_penalty, reduction,
      return_grad, backend: as `rnnt_loss_simple`.
      lm_only_scale: weight of the LM-only term (icefall uses 0.25).
      am_only_scale: weight of the AM-only term (icefall uses 0.0).

    Returns:
      The loss, or `(loss, (px_grad, py_grad))` when `return_grad`.
    """
    _check_options(rnnt_type, reduction, delay_penalty)
    if resolve_backend(backend) == "k2":
        return _k2().rnnt_loss_smoothed(
            lm=lm, am=am, symbols=symbols, termination_symbol=termination_symbol,
            lm_only_scale=lm_only_scale, am_only_scale=am_only_scale, boundary=boundary,
            rnnt_type=rnnt_type, delay_penalty=delay_penalty, reduction=reduction, return_grad=return_grad,
        )
    px, py = smoothed_logprobs(
        lm, am, symbols, termination_symbol, lm_only_scale, am_only_scale, rnnt_type, boundary
    )
    return _loss_from_arcs(px, py, boundary, rnnt_type, delay_penalty, reduction, return_grad)


def get_rnnt_prune_ranges(
    px_grad: Tensor,
    py_grad: Tensor,
    boundary: Optional[Tensor],
    s_range: int,
    backend: str = "auto",
) -> Tensor:
    """Per-frame windows of `s_range` consecutive symbol positions holding the most occupation.

    Windows start at 0, never move back, never skip a symbol, and the last frame of each item
    covers its last symbol.

    Args:
      px_grad: `(B, S, T+1)` (regular) or `(B, S, T)` symbol-arc occupations (`return_grad`).
      py_grad: `(B, S+1, T)` blank-arc occupations.
      boundary: `(B, 4)` int64 `[0, 0, S_b, T_b]` (None: `[0, 0, S, T]`).
      s_range: window size (values > S mean "keep all S+1 positions").
      backend: "auto", "k2" or "native".

    Returns:
      `(B, T, s_range')` int64 symbol positions, `s_range' = min(s_range, S+1)`.
    """
    if resolve_backend(backend) == "k2":
        if boundary is None:
            B, S, _ = px_grad.shape
            boundary = torch.tensor([0, 0, S, py_grad.shape[2]], device=px_grad.device).expand(B, 4)
        return _k2().get_rnnt_prune_ranges(px_grad=px_grad, py_grad=py_grad, boundary=boundary, s_range=s_range)
    return prune_ranges(px_grad, py_grad, boundary, s_range)


def do_rnnt_pruning(am: Tensor, lm: Tensor, ranges: Tensor, backend: str = "auto") -> Tuple[Tensor, Tensor]:
    """Gather joiner inputs for the kept windows.

    Args:
      am: `(B, T, C)` encoder output (any feature size C).
      lm: `(B, S+1, C)` decoder output.
      ranges: `(B, T, s_range)` from `get_rnnt_prune_ranges`.
      backend: "auto", "k2" or "native".

    Returns:
      `(am_pruned, lm_pruned)`, both `(B, T, s_range, C)`.
    """
    if resolve_backend(backend) == "k2":
        return _k2().do_rnnt_pruning(am=am, lm=lm, ranges=ranges)
    return prune_inputs(am, lm, ranges)


def rnnt_loss_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    backend: str = "auto",
) -> Tensor:
    """RNN-T loss on the pruned lattice; the joiner was evaluated only inside the windows.

    Args:
      logits: `(B, T, s_range, C)` joiner output at positions `ranges`.
      symbols: `(B, S)` int64 labels.
      ranges: `(B, T, s_range)` int64 from `get_rnnt_prune_ranges`.
      termination_symbol, boundary, rnnt_type, delay_penalty, reduction, backend: as
        `rnnt_loss_simple`.

    Returns:
      The loss (`(B,)` for reduction "none", else a scalar).
    """
    _check_options(rnnt_type, reduction, delay_penalty)
    if resolve_backend(backend) == "k2":
        return _k2().rnnt_loss_pruned(
            logits=logits, symbols=symbols, ranges=ranges, termination_symbol=termination_symbol,
            boundary=boundary, rnnt_type=rnnt_type, delay_penalty=delay_penalty, reduction=reduction,
        )
    px, py = pruned_logprobs(logits, symbols, ranges, termination_symbol, rnnt_type, boundary)
    return _loss_from_arcs(px, py, boundary, rnnt_type, delay_penalty, reduction)


def rnnt_loss(
    logits: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    delay_penalty: float = 0.0,
    reduction: Optional[str] = "mean",
    backend: str = "auto",
) -> Tensor:
    """The full (unpruned) RNN-T loss; equals torchaudio's `rnnt_loss` for rnnt_type "regular".

    Args:
      logits: `(B, T, S+1, C)` joiner output.
      symbols: `(B, S)` int64 labels.
      termination_symbol, boundary, rnnt_type, delay_penalty, reduction, backend: as
        `rnnt_loss_simple`.

    Returns:
      The loss (`(B,)` for reduction "none", else a scalar).
    """
    _check_options(rnnt_type, reduction, delay_penalty)
    if resolve_backend(backend) == "k2":
        return _k2().rnnt_loss(
            logits=logits, symbols=symbols, termination_symbol=termination_symbol, boundary=boundary,
            rnnt_type=rnnt_type, delay_penalty=delay_penalty, reduction=reduction,
        )
    px, py = joint_logprobs(logits, symbols, termination_symbol, rnnt_type, boundary)
    return _loss_from_arcs(px, py, boundary, rnnt_type, delay_penalty, reduction)


def get_rnnt_logprobs_smoothed(
    lm: Tensor,
    am: Tensor,
    symbols: Tensor,
    termination_symbol: int,
    lm_only_scale: float = 0.1,
    am_only_scale: float = 0.1,
    boundary: Optional[Tensor] = None,
    rnnt_type: str = "regular",
    backend: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """The arc log-probs `(px, py)` that `rnnt_loss_smoothed` sums (before any delay penalty).

    Args: as `rnnt_loss_smoothed`.

    Returns:
      `px` `(B, S, T+1)` (regular) or `(B, S, T)`, and `py` `(B, S+1, T)`; differentiable.
    """
    _check_options(rnnt_type)
    if resolve_backend(backend) == "k2":
        return _k2().get_rnnt_logprobs_smoothed(
            lm=lm, am=am, symbols=symbols, termination_symbol=termination_symbol, lm_only_scale=lm_only_scale,
            am_only_scale=am_only_scale, boundary=boundary, rnnt_type=rnnt_type,
        )
    return smoothed_logprobs(lm, am, symbols, termination_symbol, lm_only_scale, am_only_scale, rnnt_type, boundary)


def get_rnnt_logprobs_pruned(
    logits: Tensor,
    symbols: Tensor,
    ranges: Tensor,
    termination_symbol: int,
    boundary: Tensor,
    rnnt_type: str = "regular",
    backend: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """The arc log-probs `(px, py)` that `rnnt_loss_pruned` sums (-inf outside the windows).

    Args: as `rnnt_loss_pruned`.

    Returns:
      `(px, py)` shaped as in `get_rnnt_logprobs_smoothed`; differentiable w.r.t. `logits`.
    """
    _check_options(rnnt_type)
    if resolve_backend(backend) == "k2":
        return _k2().get_rnnt_logprobs_pruned(
            logits=logits, symbols=symbols, ranges=ranges, termination_symbol=termination_symbol,
            boundary=boundary, rnnt_type=rnnt_type,
        )
    return pruned_logprobs(logits, symbols, ranges, termination_symbol, rnnt_type, boundary)
