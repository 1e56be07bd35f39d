"""Native mutual-information recursion: the lattice sum behind every (pruned) RNN-T loss.

For arc log-probs ``px`` (symbol arcs) and ``py`` (blank / next-frame arcs) it computes, per
batch item, ``p[S_b, T_b]`` of the recursion (k2's `mutual_information_recursion`)::

    p[s_b, t_b] = 0
    regular  (px: (B, S, T+1)):  p[s,t] = logaddexp(p[s-1,t] + px[s-1,t],   p[s,t-1] + py[s,t-1])
    modified (px: (B, S, T)):    p[s,t] = logaddexp(p[s-1,t-1] + px[s-1,t-1], p[s,t-1] + py[s,t-1])

with ``boundary[b] = [s_b, t_b, S_b, T_b]``. The backward pass is analytic: the gradient of
``p[S_b, T_b]`` w.r.t. an arc's log-prob is the arc's occupation probability
``exp(alpha[src] + arc + beta[dst] - p[S_b, T_b])`` (forward-backward).

Speed on CPU comes from walking anti-diagonals ``d = s + t``: every node of a diagonal depends
only on the previous one or two diagonals, so one step is two tensor ops over (2, B, S+1)
values. The lattice and the arcs are stored "skewed", ``z[d, b, s] = x[b, s, d - s]``, so each
step reads contiguous slices of preallocated buffers and writes its result in place
(``out=``); a (2, B, S+1) strided view of the score buffer gives both predecessors of every
node in one read. Only APIs available in torch 1.13 are used.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

_NEG_INF = float("-inf")


def default_boundary(B: int, S: int, T: int, device: torch.device) -> Tensor:
    """The boundary `[0, 0, S, T]` for every item: `(B, 4)` int64."""
    row = torch.tensor([0, 0, S, T], dtype=torch.int64, device=device)
    return row.expand(B, 4).contiguous()


def _check_shapes(px: Tensor, py: Tensor, boundary: Optional[Tensor]) -> Tuple[int, int, int, bool]:
    """Validate `px`/`py`/`boundary`; return `(B, S, T, is_regular)`."""
    if px.dim() != 3 or py.dim() != 3:
        raise ValueError(f"px and py must be 3-D, got shapes {tuple(px.shape)} and {tuple(py.shape)}")
    B, S1, T = py.shape
    S = S1 - 1
    if px.shape[0] != B or px.shape[1] != S or px.shape[2] not in (T, T + 1):
        raise ValueError(
            f"px has shape {tuple(px.shape)}; with py {tuple(py.shape)} it must be "
            f"({B}, {S}, {T + 1}) (regular) or ({B}, {S}, {T}) (modified)"
        )
    if px.dtype != py.dtype or not px.dtype.is_floating_point:
        raise ValueError(f"px and py must share one floating dtype, got {px.dtype} and {py.dtype}")
    if boundary is not None:
        if boundary.shape != (B, 4) or boundary.dtype != torch.int64:
            raise ValueError(f"boundary must be a (B, 4) = ({B}, 4) int64 tensor, got {tuple(boundary.shape)} {boundary.dtype}")
        s_begin, t_begin, s_end, t_end = boundary.t()
        ok = (s_begin >= 0) & (s_begin <= s_end) & (s_end <= S) & (t_begin >= 0) & (t_begin <= t_end) & (t_end <= T)
        if not bool(ok.all()):
            raise ValueError(f"boundary rows must satisfy 0 <= s_begin <= s_end <= {S} and 0 <= t_begin <= t_end <= {T}")
    return B, S, T, px.shape[2] == T + 1


def _skew_into(out: Tensor, x: Tensor, ds: int, dt: int) -> None:
    """Write `out[d, b, s] = x[b, s - ds, d - s - dt]` (and -inf where that index is outside `x`).

    Args:
      out: `(D, B, K)` destination (any strides), with `K >= ds + R` and `D >= dt + C`.
      x: `(B, R, C)` source.
      ds, dt: shifts (0 or 1 / 0, 1) of the row and column index.
    """
    D, B, K = out.shape
    R, C = x.shape[1], x.shape[2]
    # Row s of `padded` holds x's row s - ds starting at column (K - 1) + dt, so that
    # padded[b, s, d - s + K - 1] is the wanted value; reading it for all (d, b, s) is one
    # strided view (the column index moves by -1 per row).
    width = D + K - 1
    padded = x.new_full((B, K, width), _NEG_INF)
    padded[:, ds : ds + R, K - 1 + dt : K - 1 + dt + C] = x
    out.copy_(padded.as_strided((D, B, K), (1, K * width, width - 1), K - 1))


def _unskew(z: Tensor, index: int, R: int, C: int) -> Tensor:
    """Read `x[b, s, t] = z[s + t, index, b, s]` for `s < R`, `t < C` from a contiguous `(D, 2, B, K)`."""
    D, _, B, K = z.shape
    assert z.is_contiguous() and R - 1 + C - 1 < D
    stride_d = 2 * B * K
    view = z.as_strided((B, R, C), (K, stride_d + 1, stride_d), z.storage_offset() + index * B * K)
    return view.contiguous()


class _Lattice:
    """Skewed buffers and the forward (alpha) / backward (beta) diagonal sweeps of one batch."""

    def __init__(self, px: Tensor, py: Tensor, boundary: Optional[Tensor]) -> None:
        B, S, T, self.is_regular = _check_shapes(px, py, boundary)
        self.B, self.S, self.T, self.K = B, S, T, S + 1
        self.D = S + T + 1  # diagonals d = s + t of the (S+1) x (T+1) node grid
        self.lag = 1 if self.is_regular else 2  # how many diagonals back a symbol arc starts
        self.px, self.py = px, py
        if boundary is None:
            boundary = default_boundary(B, S, T, px.device)
        rows = boundary.tolist()
        self.starts = [(s0 + t0, s0) for s0, t0, _, _ in rows]
        self.ends = [(s1 + t1, s1) for _, _, s1, t1 in rows]
        self.end_diag = torch.tensor([d for d, _ in self.ends], dtype=torch.int64, device=px.device)
        self.end_sym = torch.tensor([s for _, s in self.ends], dtype=torch.int64, device=px.device)

    def _buffer(self) -> Tensor:
        """Flat -inf storage for `D` diagonals plus 3 padding diagonals (read by the strided views)."""
        return self.px.new_full(((self.D + 3) * self.B * self.K,), _NEG_INF)

    @staticmethod
    def _injections(points: List[Tuple[int, int]]) -> Dict[int, Tuple[List[int], List[int]]]:
        """Group `(diagonal, s)` per item into `{diagonal: (items, s values)}`."""
        by_diag: Dict[int, Tuple[List[int], List[int]]] = {}
        for b, (d, s) in enumerate(points):
            items, syms = by_diag.setdefault(d, ([], []))
            items.append(b)
            syms.append(s)
        return by_diag

    def alpha(self) -> Tensor:
        """Forward scores `alpha[d, b, s] = p[b, s, d - s]`, `(D, B, K)` (a view into padding)."""
        B, K, D, BK = self.B, self.K, self.D, self.B * self.K
        # arcs[d, 0] = symbol arc into node (s, d - s); arcs[d, 1] = blank arc into it.
        arcs = self.px.new_empty((D, 2, B, K))
        _skew_into(arcs[:, 0], self.px, ds=1, dt=self.lag - 1)
        _skew_into(arcs[:, 1], self.py, ds=0, dt=1)
        store = self._buffer()
        alpha = store[3 * BK : (3 + D) * BK].view(D, B, K)
        # preds[d, 0, b, s] = alpha[d - lag, b, s - 1]; preds[d, 1, b, s] = alpha[d - 1, b, s].
        # (s = 0 reads a neighbouring -inf/finite value, always added to a -inf arc.)
        pair_stride = 1 if self.lag == 1 else BK + 1
        preds = store.as_strided((D, 2, B, K), (BK, pair_stride, K, 1), (3 - self.lag) * BK - 1)
        starts = self._injections(self.starts)
        last = max(d for d, _ in self.ends)
        self._inject(alpha[0], starts.get(0))
        rows, pred_rows, arc_rows = alpha.unbind(0), preds.unbind(0), arcs.unbind(0)
        both = self.px.new_empty((2, B, K))
        sym, blank = both.unbind(0)
        for d in range(1, last + 1):
            torch.add(pred_rows[d], arc_rows[d], out=both)
            torch.logaddexp(sym, blank, out=rows[d])
            self._inject(rows[d], starts.get(d))
        return alpha

    def beta(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Backward scores and the arcs out of each node.

        Returns `(beta, succ, arcs)`: `beta[d, b, s]` = log-sum of paths from node (s, d - s) to
        the end, `(D, B, K)`; `succ[d, 0|1]` = beta of the blank / symbol successor of each node,
        `(D, 2, B, K)` view; `arcs[d, 0|1]` = blank / symbol arc out of each node, `(D, 2, B, K)`.
        """
        B, K, D, BK = self.B, self.K, self.D, self.B * self.K
        arcs = self.px.new_empty((D, 2, B, K))
        _skew_into(arcs[:, 0], self.py, ds=0, dt=0)
        _skew_into(arcs[:, 1], self.px, ds=0, dt=0)
        store = self._buffer()
        beta = store[: D * BK].view(D, B, K)
        # succ[d, 0, b, s] = beta[d + 1, b, s]; succ[d, 1, b, s] = beta[d + lag, b, s + 1].
        succ = store.as_strided((D, 2, B, K), (BK, (self.lag - 1) * BK + 1, K, 1), BK)
        ends = self._injections(self.ends)
        first = min(d for d, _ in self.starts)
        last = max(ends)
        self._inject(beta[last], ends.get(last))
        rows, succ_rows, arc_rows = beta.unbind(0), succ.unbind(0), arcs.unbind(0)
        both = self.px.new_empty((2, B, K))
        blank, sym = both.unbind(0)
        for d in range(last - 1, first - 1, -1):
            torch.add(succ_rows[d], arc_rows[d], out=both)
            torch.logaddexp(blank, sym, out=rows[d])
            self._inject(rows[d], ends.get(d))
        return beta, succ, arcs

    @staticmethod
    def _inject(row: Tensor, where: Optional[Tuple[List[int], List[int]]]) -> None:
        """Set the start (or end) nodes of the listed items on this diagonal to log 1 = 0."""
        if where is not None:
            items, syms = where
            row[items, syms] = 0.0

    def totals(self, alpha: Tensor) -> Tensor:
        """`p[b, S_b, T_b]` for every item: `(B,)`."""
        items = torch.arange(self.B, device=alpha.device)
        return alpha[self.end_diag, items, self.end_sym]

    def occupations(self, alpha: Tensor, totals: Tensor) -> Tuple[Tensor, Tensor]:
        """Arc occupation probabilities `d totals.sum() / d (px, py)`: `(B, S, T1)`, `(B, S+1, T)`."""
        beta, succ, arcs = self.beta()
        # An item with no complete path (total -inf) gets zero occupation, not NaN.
        safe_totals = torch.where(torch.isfinite(totals), totals, torch.zeros_like(totals))
        occ = alpha.unsqueeze(1) + arcs
        occ += succ
        occ -= safe_totals.view(1, 1, self.B, 1)
        occ.exp_()
        py_occ = _unskew(occ, 0, self.S + 1, self.T)
        px_occ = _unskew(occ, 1, self.S, self.px.shape[2])
        return px_occ, py_occ


class MutualInformationRecursion(torch.autograd.Function):
    """Autograd wrapper: forward = alpha sweep; backward = beta sweep + occupations."""

    @staticmethod
    def forward(ctx, px: Tensor, py: Tensor, boundary: Optional[Tensor], want_occupation: bool):  # type: ignore[override]
        lattice = _Lattice(px.detach(), py.detach(), boundary)
        alpha = lattice.alpha()
        totals = lattice.totals(alpha)
        if want_occupation:
            px_occ, py_occ = lattice.occupations(alpha, totals)
            ctx.save_for_backward(px_occ, py_occ)
        else:
            px_occ = py_occ = px.new_empty(0)
            ctx.lattice, ctx.alpha = lattice, alpha
            ctx.save_for_backward(totals)
        ctx.want_occupation = want_occupation
        ctx.mark_non_differentiable(px_occ, py_occ)
        return totals, px_occ, py_occ

    @staticmethod
    def backward(ctx, grad_totals: Tensor, _grad_px_occ: Tensor, _grad_py_occ: Tensor):  # type: ignore[override]
        if ctx.want_occupation:
            px_occ, py_occ = ctx.saved_tensors
        else:
            (totals,) = ctx.saved_tensors
            px_occ, py_occ = ctx.lattice.occupations(ctx.alpha, totals)
        scale = grad_totals.view(-1, 1, 1)
        return px_occ * scale, py_occ * scale, None, None


def mutual_information_recursion_native(
    px: Tensor, py: Tensor, boundary: Optional[Tensor] = None, return_grad: bool = False
):
    """Native backend of `asrtools.losses.rnnt.mutual_information_recursion` (same arguments).

    Args:
      px: `(B, S, T+1)` (regular) or `(B, S, T)` (modified) symbol-arc log-probs.
      py: `(B, S+1, T)` blank-arc log-probs, same dtype as `px`.
      boundary: optional `(B, 4)` int64 rows `[s_begin, t_begin, s_end, t_end]`; default `[0, 0, S, T]`.
      return_grad: also return the arc occupations `(px_grad, py_grad)` (shapes of px, py).

    Returns:
      `(B,)` total log-probs `p[b, s_end, t_end]`, or `(totals, (px_grad, py_grad))`.
    """
    totals, px_occ, py_occ = MutualInformationRecursion.apply(px, py, boundary, return_grad)
    if return_grad:
        return totals, (px_occ, py_occ)
    return totals
