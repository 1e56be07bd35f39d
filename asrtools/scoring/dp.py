"""Batched word-alignment dynamic programming with two exact tie-breaking conventions.

Why our own DP (the "nothing fits" case): WER counts (sub/del/ins) depend not only on the
minimum cost but on which of several equally cheap paths a scorer picks, and we need the
counts of two specific tools exactly:

- ``levenshtein``: unit costs, minimum S+D+I, with the path rapidfuzz picks (so counts equal
  jiwer's, which calls ``rapidfuzz.distance.Levenshtein.opcodes``): the common prefix and
  suffix are matched first, then the backtrace from the end prefers, at each cell, a
  deletion if ``D[i][j] == D[i-1][j] + 1``, else an insertion if
  ``D[i][j-1] == D[i-1][j-1] - 1``, else the diagonal. kaldialign picks other paths among
  equal-cost ones (different S/D/I splits on ~5% of adversarial pairs), so it cannot give
  jiwer's counts. For one utterance with more than ~2000 words on *both* sides
  (``n * m >= 4 * 2**20``) rapidfuzz switches to Hirschberg splitting with its own
  tie-breaking; such utterances are handed to rapidfuzz itself (jiwer's dependency) when it
  is installed. Without it our DP still gives the minimum S+D+I, but the S vs D+I split of
  those few utterances may differ from jiwer's.
- ``sclite``: NIST sclite's weights (correct 0, substitution 4, insertion 3, deletion 3) and
  its choice at each cell (``net_dp.c``, checked against ``sctk sclite`` on random and
  adversarial pairs): the diagonal if its cost is <= both others, else the deletion if
  strictly cheaper than the insertion, else the insertion; the backtrace starts at the end.
  kaldialign's ``sclite_mode`` uses the same weights but not this tie-breaking.

Speed: utterances are processed in batches padded to a common shape (sorted by length to
limit padding). Each DP row is computed for the whole batch at once; the in-row insertion
recurrence ``D[i][j] = min(X[j], D[i][j-1] + c_ins)`` is solved with a cumulative minimum
(``c_ins * j + cummin(X[k] - c_ins * k)``). The backtrace then walks all paths of a batch in
lock-step, deciding each step from the stored cost matrix. Memory per batch is bounded by
``max_cells`` int32 cells (an utterance larger than that gets a batch of its own).

Words are given as non-negative int ids (same id = same word); alignments come back as op
strings over ``C`` (correct), ``S``, ``D`` (deletion of a reference word), ``I``.
"""
from __future__ import annotations

import logging
from typing import Callable, List, Tuple

import numpy as np

logger = logging.getLogger("asrtools")

LEVENSHTEIN = "levenshtein"
SCLITE = "sclite"
MODES = (LEVENSHTEIN, SCLITE)

OP_CORRECT, OP_SUB, OP_DEL, OP_INS = (ord(c) for c in "CSDI")

_COSTS = {LEVENSHTEIN: (1, 1, 1), SCLITE: (4, 3, 3)}  # (substitution, deletion, insertion)
_REF_PAD, _HYP_PAD = -1, -2  # never equal to each other nor to a word id
DEFAULT_MAX_CELLS = 1 << 23


def check_mode(mode: str) -> str:
    """Return `mode` if it is a known alignment mode, else raise ValueError."""
    if mode not in MODES:
        raise ValueError(f"unknown alignment mode {mode!r} (choose from {', '.join(MODES)})")
    return mode


def align_batch(
    ref_flat: np.ndarray,
    ref_offsets: np.ndarray,
    hyp_flat: np.ndarray,
    hyp_offsets: np.ndarray,
    mode: str = LEVENSHTEIN,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> List[bytes]:
    """Align many (reference, hypothesis) word-id sequences.

    Args:
      ref_flat: all reference word ids concatenated, shape `(sum_n,)` int.
      ref_offsets: utterance `u` is `ref_flat[ref_offsets[u]:ref_offsets[u + 1]]`, `(U + 1,)`.
      hyp_flat: hypothesis word ids concatenated, `(sum_m,)` int.
      hyp_offsets: `(U + 1,)` offsets into `hyp_flat`.
      mode: `levenshtein` or `sclite` (see the module docstring).
      max_cells: upper bound on the cost-matrix cells held at once (memory knob).

    Returns:
      One op string per utterance (ASCII bytes over `CSDI`, in word order).
    """
    check_mode(mode)
    ref_flat = np.asarray(ref_flat, dtype=np.int64)
    hyp_flat = np.asarray(hyp_flat, dtype=np.int64)
    ref_offsets = np.asarray(ref_offsets, dtype=np.int64)
    hyp_offsets = np.asarray(hyp_offsets, dtype=np.int64)
    n_utts = len(ref_offsets) - 1
    if len(hyp_offsets) != n_utts + 1:
        raise ValueError("ref_offsets and hyp_offsets describe different numbers of utterances")
    ref_lens = np.diff(ref_offsets)
    hyp_lens = np.diff(hyp_offsets)
    results: List[bytes] = [b""] * n_utts
    order = np.lexsort((hyp_lens, ref_lens))
    if mode == LEVENSHTEIN:
        long_utts = _hirschberg_sized(ref_lens, hyp_lens)
        if long_utts.any() and _align_with_rapidfuzz(
            np.flatnonzero(long_utts), ref_flat, ref_offsets, hyp_flat, hyp_offsets, results
        ):
            order = order[~long_utts[order]]
    for chunk in _chunks(ref_lens[order], hyp_lens[order], max_cells):
        utts = order[chunk]
        refs = _pad(ref_flat, ref_offsets[utts], ref_lens[utts], _REF_PAD)
        hyps = _pad(hyp_flat, hyp_offsets[utts], hyp_lens[utts], _HYP_PAD)
        ops = _align_padded(refs, ref_lens[utts], hyps, hyp_lens[utts], mode)
        for utt, op in zip(utts.tolist(), ops):
            results[utt] = op
    return results


def _hirschberg_sized(ref_lens: np.ndarray, hyp_lens: np.ndarray) -> np.ndarray:
    """Utterances long enough for rapidfuzz to align with Hirschberg splitting, `(U,)` bool."""
    return (ref_lens >= 65) & (hyp_lens >= 10) & (2 * ref_lens * hyp_lens // 8 >= 1 << 20)


def _align_with_rapidfuzz(
    utts: np.ndarray,
    ref_flat: np.ndarray,
    ref_offsets: np.ndarray,
    hyp_flat: np.ndarray,
    hyp_offsets: np.ndarray,
    results: List[bytes],
) -> bool:
    """Fill `results[u]` for `utts` with rapidfuzz's opcodes; False if rapidfuzz is missing."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:
        logger.warning(
            "%d very long utterances: without rapidfuzz their S/D/I split may differ from jiwer's "
            "(totals are the same)", len(utts)
        )
        return False
    letters = {"equal": b"C", "replace": b"S", "delete": b"D", "insert": b"I"}
    for utt in utts.tolist():
        ref = ref_flat[ref_offsets[utt] : ref_offsets[utt + 1]].tolist()
        hyp = hyp_flat[hyp_offsets[utt] : hyp_offsets[utt + 1]].tolist()
        results[utt] = b"".join(
            letters[tag] * max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp)
        )
    return True


def _chunks(ref_lens: np.ndarray, hyp_lens: np.ndarray, max_cells: int) -> List[slice]:
    """Consecutive slices whose padded cost matrices fit in `max_cells` (sorted input)."""
    chunks = []
    start = 0
    total = len(ref_lens)
    while start < total:
        end = start
        max_n = max_m = 0
        while end < total:
            n = max(max_n, int(ref_lens[end]))
            m = max(max_m, int(hyp_lens[end]))
            if end > start and (end - start + 1) * (n + 1) * (m + 1) > max_cells:
                break
            max_n, max_m = n, m
            end += 1
        chunks.append(slice(start, end))
        start = end
    return chunks


def _pad(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray, pad: int) -> np.ndarray:
    """Rows `flat[starts[b]:starts[b] + lens[b]]` right-padded with `pad`: `(B, max_len)`."""
    width = int(lens.max()) if len(lens) else 0
    out = np.full((len(lens), width), pad, dtype=np.int64)
    if width:
        cols = np.arange(width)
        mask = cols[None, :] < lens[:, None]
        index = np.minimum(starts[:, None] + cols[None, :], max(len(flat) - 1, 0))
        if len(flat):
            out[mask] = flat[index[mask]]
    return out


def _align_padded(
    refs: np.ndarray, ref_lens: np.ndarray, hyps: np.ndarray, hyp_lens: np.ndarray, mode: str
) -> List[bytes]:
    if mode == SCLITE:
        costs = _cost_matrix(refs, hyps, _COSTS[SCLITE])
        rev = _backtrace(costs, refs, hyps, ref_lens, hyp_lens, _sclite_step)
        return _forward_ops(rev)
    prefix, suffix = _common_affixes(refs, ref_lens, hyps, hyp_lens)
    mid_refs, mid_ref_lens = _middle(refs, ref_lens, prefix, suffix, _REF_PAD)
    mid_hyps, mid_hyp_lens = _middle(hyps, hyp_lens, prefix, suffix, _HYP_PAD)
    costs = _cost_matrix(mid_refs, mid_hyps, _COSTS[LEVENSHTEIN])
    rev = _backtrace(costs, mid_refs, mid_hyps, mid_ref_lens, mid_hyp_lens, _rapidfuzz_step)
    return [
        b"C" * pre + mid + b"C" * suf
        for pre, mid, suf in zip(prefix.tolist(), _forward_ops(rev), suffix.tolist())
    ]


def _forward_ops(rev: np.ndarray) -> List[bytes]:
    """Per-row op strings in word order from reversed, 0-padded op codes `(B, L)`."""
    width = rev.shape[1]
    forward = np.ascontiguousarray(rev[:, ::-1])
    lengths = (rev != 0).sum(axis=1).tolist()
    return [row.tobytes()[width - length :] for row, length in zip(forward, lengths)]


def _cost_matrix(refs: np.ndarray, hyps: np.ndarray, costs: Tuple[int, int, int]) -> np.ndarray:
    """Full DP cost matrix `(B, N + 1, M + 1)` int32 for padded refs `(B, N)`, hyps `(B, M)`."""
    c_sub, c_del, c_ins = costs
    batch, n_max = refs.shape
    m_max = hyps.shape[1]
    ins_ramp = (c_ins * np.arange(m_max + 1, dtype=np.int32))[None, :]
    table = np.empty((batch, n_max + 1, m_max + 1), dtype=np.int32)
    table[:, 0, :] = ins_ramp
    best = np.empty((batch, m_max + 1), dtype=np.int32)
    for i in range(1, n_max + 1):
        prev = table[:, i - 1, :]
        diag = prev[:, :-1] + np.where(refs[:, i - 1 : i] == hyps, 0, c_sub).astype(np.int32)
        np.minimum(diag, prev[:, 1:] + c_del, out=best[:, 1:])
        best[:, 0] = c_del * i
        best -= ins_ramp
        np.minimum.accumulate(best, axis=1, out=table[:, i, :])
        table[:, i, :] += ins_ramp
    return table


# A backtrace rule: from the cost table `(B, N + 1, M + 1)`, the batch indices `(B,)`, the
# current cells `i`, `j` `(B,)`, their predecessors `im`, `jm` (clamped at 0), whether
# ref[i - 1] == hyp[j - 1] and which rows are still walking, choose this step's move:
# `(diagonal, deletion, insertion)` masks, each `(B,)` bool and mutually exclusive.
_Masks = Tuple[np.ndarray, np.ndarray, np.ndarray]
_BacktraceRule = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], _Masks
]


def _sclite_step(
    table: np.ndarray, batch: np.ndarray, i: np.ndarray, j: np.ndarray,
    im: np.ndarray, jm: np.ndarray, same: np.ndarray, active: np.ndarray,
) -> _Masks:
    """sclite's rule: the cheapest predecessor, preferring diagonal, then deletion, then insertion."""
    c_sub, c_del, c_ins = _COSTS[SCLITE]
    sub = table[batch, im, jm] + np.where(same, 0, c_sub)
    dele = table[batch, im, j] + c_del
    ins = table[batch, i, jm] + c_ins
    both = (i > 0) & (j > 0)
    diag = both & (sub <= dele) & (sub <= ins)
    is_del = (i > 0) & ~diag & ((j == 0) | (dele < ins))
    is_ins = active & ~diag & ~is_del
    return diag, is_del, is_ins


def _rapidfuzz_step(
    table: np.ndarray, batch: np.ndarray, i: np.ndarray, j: np.ndarray,
    im: np.ndarray, jm: np.ndarray, same: np.ndarray, active: np.ndarray,
) -> _Masks:
    """rapidfuzz's Levenshtein rule: deletion when the cell is one above, then insertion, else diagonal."""
    both = (i > 0) & (j > 0)
    here = table[batch, i, j]
    vertical_up = here - table[batch, im, j] == 1
    left_down = table[batch, i, jm] - table[batch, im, jm] == -1
    is_del = (i > 0) & ((j == 0) | vertical_up)
    is_ins = active & ~is_del & ((i == 0) | (both & (jm > 0) & left_down))
    diag = both & ~is_del & ~is_ins
    return diag, is_del, is_ins


def _backtrace(
    table: np.ndarray,
    refs: np.ndarray,
    hyps: np.ndarray,
    ref_lens: np.ndarray,
    hyp_lens: np.ndarray,
    rule: _BacktraceRule,
) -> np.ndarray:
    """Reversed op codes `(B, N + M)` (0-padded), walking back from the end with `rule` at each cell."""
    batch = np.arange(len(ref_lens))
    i = ref_lens.astype(np.int64).copy()
    j = hyp_lens.astype(np.int64).copy()
    rev = np.zeros((len(ref_lens), refs.shape[1] + hyps.shape[1]), dtype=np.uint8)
    for step in range(rev.shape[1]):
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        im, jm = np.maximum(i - 1, 0), np.maximum(j - 1, 0)
        same = refs[batch, im] == hyps[batch, jm] if refs.shape[1] and hyps.shape[1] else np.zeros_like(active)
        diag, is_del, is_ins = rule(table, batch, i, j, im, jm, same, active)
        rev[:, step] = np.select(
            [diag & same, diag, is_del, is_ins], [OP_CORRECT, OP_SUB, OP_DEL, OP_INS], 0
        )
        i -= diag | is_del
        j -= diag | is_ins
    return rev


def _common_affixes(
    refs: np.ndarray, ref_lens: np.ndarray, hyps: np.ndarray, hyp_lens: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Lengths of the common prefix and of the common suffix of the remainders, `(B,)` each."""
    shortest = np.minimum(ref_lens, hyp_lens)
    width = int(shortest.max()) if len(shortest) else 0
    if width == 0:
        zeros = np.zeros(len(ref_lens), dtype=np.int64)
        return zeros, zeros.copy()
    cols = np.arange(width)[None, :]
    valid = cols < shortest[:, None]
    equal_head = (refs[:, :width] == hyps[:, :width]) & valid
    prefix = np.cumprod(equal_head, axis=1).sum(axis=1)
    batch = np.arange(len(ref_lens))[:, None]
    ref_tail = refs[batch, np.maximum(ref_lens[:, None] - 1 - cols, 0)]
    hyp_tail = hyps[batch, np.maximum(hyp_lens[:, None] - 1 - cols, 0)]
    equal_tail = (ref_tail == hyp_tail) & (cols < (shortest - prefix)[:, None])
    suffix = np.cumprod(equal_tail, axis=1).sum(axis=1)
    return prefix.astype(np.int64), suffix.astype(np.int64)


def _middle(
    rows: np.ndarray, lens: np.ndarray, prefix: np.ndarray, suffix: np.ndarray, pad: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Rows with the prefix and suffix removed, left-aligned and padded, plus their lengths."""
    mid_lens = lens - prefix - suffix
    width = int(mid_lens.max()) if len(mid_lens) else 0
    cols = np.arange(width)[None, :]
    source = np.minimum(prefix[:, None] + cols, max(rows.shape[1] - 1, 0))
    out = np.full((len(lens), width), pad, dtype=np.int64)
    if width:
        taken = np.take_along_axis(rows, source, axis=1)
        mask = cols < mid_lens[:, None]
        out[mask] = taken[mask]
    return out, mid_lens
