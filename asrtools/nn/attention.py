"""Chunk-masked multi-head self-attention with relative position bias and a KV cache.

Streaming attention splits the frame sequence into chunks of `chunk_size` frames: a frame
sees every frame of its own chunk (a bounded look-ahead) and `left_context` frames before
its chunk's start, nothing later. The same mask is used in training (whole sequences) and
in streaming, where the keys/values of the last `left_context` frames are carried in a
cache, so chunk-by-chunk output equals the whole-sequence output under that mask.

Positions *(choice)*: a learned per-head scalar bias on the clipped relative distance
`key_pos - query_pos` (Shaw et al. / T5-style, without log buckets). It needs no absolute
frame index, so a stream of any length sees the same positional information at every chunk.

Two ways to evaluate the same attention:
- `forward`: scores of every query against every key of the call, masked (T x Tk work);
- `chunk_attention`: each query against the `left_context + chunk_size` keys of its chunk's
  window only (a strided view of the keys, T x (L + S) work), optionally with the query and
  output projections for a subset of the queries only (rows of the flattened batch). The
  Transformer encoder's per-frame compute skipping uses it (asrtools.models.enc_transformer).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from asrtools.errors import ConfigError


def chunk_attention_mask(
    query_pos: torch.Tensor, key_pos: torch.Tensor, chunk_size: int, left_context: int
) -> torch.Tensor:
    """Which keys each query may attend to.

    Positions count frames from a chunk boundary (in streaming, from the first frame of
    the current call; cached keys have negative positions).

    Args:
      query_pos: (Tq,) int64 query positions (>= 0).
      key_pos: (Tk,) int64 key positions.
      chunk_size: frames per chunk; <= 0 means full attention (everything allowed).
      left_context: frames before the query's chunk that it may see (>= 0).

    Returns:
      (Tq, Tk) bool, True where attention is allowed.
    """
    if chunk_size <= 0:
        return torch.ones(query_pos.numel(), key_pos.numel(), dtype=torch.bool, device=query_pos.device)
    chunk_start = torch.div(query_pos, chunk_size, rounding_mode="floor") * chunk_size
    keys = key_pos[None, :]
    return (keys < chunk_start[:, None] + chunk_size) & (keys >= chunk_start[:, None] - left_context)


def chunk_window_blocked(key_valid: torch.Tensor, chunk_size: int, left_context: int) -> torch.Tensor:
    """Which keys of each chunk's window may not be attended to (see `chunk_attention`).

    Args:
      key_valid: (B, L + T) bool keys that may be seen (cached frames first), T a multiple of S.
      chunk_size: S.
      left_context: L.

    Returns:
      (B, T // S, 1, 1, L + S) bool, True where blocked.
    """
    return ~key_valid.unfold(1, left_context + chunk_size, chunk_size)[:, :, None, None, :]


class RelPositionSelfAttention(nn.Module):
    """Multi-head self-attention with a learned relative-position bias and optional KV cache.

    Args:
      embed_dim: D, model size (divisible by `num_heads`).
      num_heads: H.
      max_relative_distance: relative distances are clipped to +-this many frames.
      dropout: dropout on the attention weights.
    """

    def __init__(self, embed_dim: int, num_heads: int, max_relative_distance: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ConfigError(f"attention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if max_relative_distance < 0:
            raise ConfigError(f"attention: max_relative_distance {max_relative_distance} must be >= 0")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.max_relative_distance = max_relative_distance
        self.in_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.relative_bias = nn.Embedding(2 * max_relative_distance + 1, num_heads)
        nn.init.zeros_(self.relative_bias.weight)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
        cache: Optional[List[torch.Tensor]] = None,
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Attend from the frames of `x` to the cached frames followed by those of `x`.

        Args:
          x: (B, T, D) input frames (queries; also the newest keys/values).
          mask: (B or 1, T, Tk) bool, True where allowed; Tk = cached frames + T.
          query_pos: (T,) int64 query positions (for the relative bias).
          key_pos: (Tk,) int64 key positions.
          cache: [keys (B, Tp, D), values (B, Tp, D)] of earlier frames, or None.

        Returns:
          y: (B, T, D) output.
          keys_values: [keys (B, Tk, D), values (B, Tk, D)] of cache + current frames (the
            caller keeps the frames it needs as the next cache).
        """
        query, key, value = self.in_proj(x).chunk(3, dim=-1)
        if cache is not None:
            key = torch.cat([cache[0], key], dim=1)
            value = torch.cat([cache[1], value], dim=1)
        scores = torch.matmul(self._heads(query), self._heads(key).transpose(2, 3))
        scores = scores / math.sqrt(self.head_dim) + self._position_bias(query_pos, key_pos)
        # A finite fill keeps fully masked (padding) rows finite: no NaN can reach valid frames.
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        context = torch.matmul(weights, self._heads(value))
        batch, _, frames, _ = context.shape
        y = self.out_proj(context.transpose(1, 2).reshape(batch, frames, self.embed_dim))
        return y, [key, value]

    def keys_values(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Key and value projections of every frame of `x`.

        Args:
          x: (..., D) input frames (already normalised).

        Returns:
          keys (..., D), values (..., D).
        """
        dim = self.embed_dim
        weight, bias = self.in_proj.weight[dim:], self.in_proj.bias[dim:]
        keys, values = F.linear(x, weight, bias).chunk(2, dim=-1)
        return keys, values

    def chunk_attention(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        key_valid: Optional[torch.Tensor],
        chunk_size: int,
        left_context: int,
        rows: Optional[torch.Tensor] = None,
        num_frames: int = 0,
        blocked: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Chunk attention over each query's key window (the mask of `chunk_attention_mask`).

        Layout: the keys are the `left_context` (L) frames before the call followed by the
        call's T frames, T a multiple of `chunk_size` (S); query `t` (chunk `c = t // S`)
        sees keys `c*S .. c*S + L + S - 1` of that layout (positions `c*S - L .. c*S + S - 1`
        relative to the call's first frame).

        With `rows`, only those queries are projected (query and output projections run on
        N rows); their scores and contexts are computed chunk-wise like everyone's, with
        zero queries in the other rows *(choice: one batched product per chunk is much
        faster on CPU than gathering a key window per query, for 4 D W of the 8 D^2 + 4 D W
        FLOPs of a query)*.

        Args:
          x: the queries' input frames (normalised): (B, T, D) for every query, or (N, D) for
            the queries `rows`.
          keys: (B, L + T, D) from `keys_values` (cached frames first).
          values: (B, L + T, D).
          key_valid: (B, L + T) bool, False for keys nobody may see (before the stream's
            start, padding); or None with `blocked`.
          chunk_size: S >= 1.
          left_context: L >= 0.
          rows: (N,) int64 indices of the queries into the flattened (B * T) frames, or None
            for all queries.
          num_frames: T (needed with `rows`).
          blocked: `chunk_window_blocked(key_valid, ...)`, precomputed once for several
            layers (instead of `key_valid`).

        Returns:
          (B, T, D) outputs of every query, or (N, D) of the queries `rows`.
        """
        heads, head_dim, window = self.num_heads, self.head_dim, left_context + chunk_size
        batch = keys.size(0)
        frames = num_frames if rows is not None else x.size(1)
        chunks = frames // chunk_size
        weight, in_bias = self.in_proj.weight[: self.embed_dim], self.in_proj.bias[: self.embed_dim]
        query = F.linear(x, weight, in_bias) / math.sqrt(head_dim)
        if rows is not None:
            query = query.new_zeros(batch * frames, self.embed_dim).index_copy(0, rows, query)
        # (B, C, H, S, d) @ (B, C, H, d, L + S) -> (B, C, H, S, L + S); windows are strided views.
        query = query.view(batch, chunks, chunk_size, heads, head_dim).transpose(2, 3)
        key_windows = keys.unfold(1, window, chunk_size).reshape(batch, chunks, heads, head_dim, window)
        scores = torch.matmul(query, key_windows)
        scores = scores + self._window_bias(chunk_size, left_context, keys.device)
        if blocked is None:
            blocked = chunk_window_blocked(key_valid, chunk_size, left_context)
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        value_windows = values.unfold(1, window, chunk_size).reshape(batch, chunks, heads, head_dim, window)
        context = torch.matmul(self.dropout(torch.softmax(scores, dim=-1)), value_windows.transpose(3, 4))
        context = context.transpose(2, 3).reshape(batch * frames, self.embed_dim)
        if rows is not None:
            context = context.index_select(0, rows)
        else:
            context = context.view(batch, frames, self.embed_dim)
        return self.out_proj(context)

    def _window_bias(self, chunk_size: int, left_context: int, device: torch.device) -> torch.Tensor:
        """(1, 1, H, S, L + S) position bias of a chunk's queries over its window.

        Without autograd (inference) it is kept until the bias weights change in place
        (their version counter) or another window is asked for.
        """
        def compute() -> torch.Tensor:
            bias = self._position_bias(torch.arange(chunk_size, device=device),
                                       torch.arange(-left_context, chunk_size, device=device))
            return bias.unsqueeze(0)

        if torch.is_grad_enabled():
            return compute()
        weight = self.relative_bias.weight
        key = (chunk_size, left_context, weight.data_ptr(), weight._version, str(device))
        cached = self.__dict__.get("_window_bias_cache")
        if cached is None or cached[0] != key:
            cached = (key, compute())
            self.__dict__["_window_bias_cache"] = cached
        return cached[1]

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, D/H)."""
        batch, frames, _ = x.shape
        return x.view(batch, frames, self.num_heads, self.head_dim).transpose(1, 2)

    def _position_bias(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        """(1, H, Tq, Tk) learned bias of the clipped relative distance."""
        distance = (key_pos[None, :] - query_pos[:, None]).clamp(
            -self.max_relative_distance, self.max_relative_distance
        )
        return self.relative_bias(distance + self.max_relative_distance).permute(2, 0, 1).unsqueeze(0)
